//! Neutron's list parameters on any collection: attribute filters (repeated values match
//! any), `tags`/`tags-any`/`not-tags`/`not-tags-any`, `fields`, `sort_key`/`sort_dir`, and
//! `limit`/`marker`/`page_reverse` paging with `<collection>_links`. Applied to the JSON views
//! of the rows the caller may see, so every attribute filters and sorts the same way.

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use crate::Fault;
use crate::extract::QueryPairs;

#[derive(Debug, Default)]
pub struct ListParams {
    filters: Vec<(String, Vec<String>)>,
    tags: Vec<(String, Vec<String>)>,
    fields: Vec<String>,
    sort: Vec<(String, bool)>,
    limit: Option<usize>,
    marker: Option<String>,
    page_reverse: bool,
}

fn bad(m: String) -> Fault {
    Fault::bad_request(m)
}

impl ListParams {
    /// Reads the query; `attrs` are the collection's attributes (filters and sort keys
    /// outside them are refused, as Neutron refuses them).
    pub fn parse(q: &QueryPairs, attrs: &[&str]) -> Result<Self, Fault> {
        let mut p = ListParams::default();
        let mut dirs = Vec::new();
        for (k, v) in &q.0 {
            match k.as_str() {
                "fields" => p.fields.extend(v.split(',').map(str::to_owned)),
                "sort_key" => {
                    if !attrs.contains(&v.as_str()) {
                        return Err(bad(format!("{v} is invalid attribute for sort_key")));
                    }
                    p.sort.push((v.clone(), true));
                }
                "sort_dir" => match v.as_str() {
                    "asc" => dirs.push(true),
                    "desc" => dirs.push(false),
                    _ => {
                        return Err(bad(format!(
                            "{v} is invalid value for sort_dir, valid value is 'asc' and 'desc'"
                        )));
                    }
                },
                "limit" => {
                    let n: i64 = v.parse().map_err(|_| {
                        bad(format!(
                            "Limit must be an integer 0 or greater and not '{v}'"
                        ))
                    })?;
                    if n < 0 {
                        return Err(bad(format!(
                            "Limit must be an integer 0 or greater and not '{v}'"
                        )));
                    }
                    p.limit = (n > 0).then_some(n as usize);
                }
                "marker" => p.marker = Some(v.clone()),
                "page_reverse" => p.page_reverse = v.eq_ignore_ascii_case("true"),
                t @ ("tags" | "tags-any" | "not-tags" | "not-tags-any") => {
                    p.tags
                        .push((t.to_owned(), v.split(',').map(str::to_owned).collect()));
                }
                other => {
                    if !attrs.contains(&other) {
                        return Err(bad(format!("[{other}] is invalid attribute for filtering")));
                    }
                    match p.filters.iter_mut().find(|(f, _)| f == other) {
                        Some((_, vals)) => vals.push(v.clone()),
                        None => p.filters.push((other.to_owned(), vec![v.clone()])),
                    }
                }
            }
        }
        if !dirs.is_empty() && dirs.len() != p.sort.len() {
            return Err(bad(
                "The number of sort_keys and sort_dirs must be same".into()
            ));
        }
        for (i, d) in dirs.into_iter().enumerate() {
            p.sort[i].1 = d;
        }
        Ok(p)
    }

    /// The value of a filter given once (for narrowing the read in SQL).
    pub fn single(&self, key: &str) -> Option<String> {
        self.filters
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| (v.len() == 1).then(|| v[0].clone()))
    }

    fn keeps(&self, item: &Value) -> bool {
        self.filters.iter().all(|(k, vals)| {
            let got = &item[k.as_str()];
            vals.iter().any(|want| matches(got, want))
        }) && self.tags.iter().all(|(kind, want)| {
            let have: Vec<&str> = item["tags"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let all = want.iter().all(|t| have.contains(&t.as_str()));
            let any = want.iter().any(|t| have.contains(&t.as_str()));
            match kind.as_str() {
                "tags" => all,
                "tags-any" => any,
                "not-tags" => !all,
                _ => !any,
            }
        })
    }

    /// The filtered, sorted, paged and projected collection as `{name: [...], name_links}`.
    pub fn respond(&self, name: &str, items: Vec<Value>, self_url: &str) -> Result<Value, Fault> {
        let mut items: Vec<Value> = items.into_iter().filter(|i| self.keeps(i)).collect();
        let mut keys = self.sort.clone();
        if !keys.iter().any(|(k, _)| k == "id") && (self.limit.is_some() || !keys.is_empty()) {
            keys.push(("id".into(), keys.last().is_none_or(|k| k.1)));
        }
        if !keys.is_empty() {
            items.sort_by(|a, b| {
                for (k, asc) in &keys {
                    let o = compare(&a[k.as_str()], &b[k.as_str()]);
                    if o != Ordering::Equal {
                        return if *asc { o } else { o.reverse() };
                    }
                }
                Ordering::Equal
            });
        }
        let mut links = Vec::new();
        if let Some(limit) = self.limit {
            let at = match &self.marker {
                Some(m) => Some(
                    items
                        .iter()
                        .position(|i| i["id"].as_str() == Some(m.as_str()))
                        .ok_or_else(|| {
                            Fault::not_found(format!("Marker {m} could not be found."))
                        })?,
                ),
                None => None,
            };
            let (page, more_after, more_before): (Vec<Value>, bool, bool) = if self.page_reverse {
                let end = at.unwrap_or(items.len());
                let start = end.saturating_sub(limit);
                (items[start..end].to_vec(), at.is_some(), start > 0)
            } else {
                let start = at.map_or(0, |a| a + 1);
                let end = (start + limit).min(items.len());
                (items[start..end].to_vec(), end < items.len(), at.is_some())
            };
            let link = |rel: &str, marker: &Value, reverse: bool| {
                let mut href = format!(
                    "{self_url}?limit={limit}&marker={}",
                    marker.as_str().unwrap_or("")
                );
                if reverse {
                    href.push_str("&page_reverse=True");
                }
                json!({"rel": rel, "href": href})
            };
            if more_after && let Some(last) = page.last() {
                links.push(link("next", &last["id"], false));
            }
            if more_before && let Some(first) = page.first() {
                links.push(link("previous", &first["id"], true));
            }
            items = page;
        }
        if !self.fields.is_empty() {
            items = items
                .into_iter()
                .map(|i| {
                    let mut o = Map::new();
                    for f in &self.fields {
                        if let Some(v) = i.get(f) {
                            o.insert(f.clone(), v.clone());
                        }
                    }
                    Value::Object(o)
                })
                .collect();
        }
        let mut out = json!({ name: items });
        if !links.is_empty() {
            out[format!("{name}_links")] = Value::Array(links);
        }
        Ok(out)
    }

    /// One resource projected on `fields`.
    pub fn project(&self, item: Value) -> Value {
        if self.fields.is_empty() {
            return item;
        }
        let mut o = Map::new();
        for f in &self.fields {
            if let Some(v) = item.get(f) {
                o.insert(f.clone(), v.clone());
            }
        }
        Value::Object(o)
    }
}

/// Whether an attribute's value matches a query value (Neutron compares their string
/// forms; booleans in any case; a list attribute matches when any member does, and a
/// `key=value` query matches an object member's key, as `fixed_ips=ip_address=…` does).
fn matches(got: &Value, want: &str) -> bool {
    match got {
        Value::Null => want.is_empty() || want.eq_ignore_ascii_case("none"),
        Value::Bool(b) => want.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        Value::Number(n) => n.to_string() == want,
        Value::String(s) => s == want,
        Value::Array(a) => a.iter().any(|x| matches(x, want)),
        Value::Object(o) => match want.split_once('=') {
            Some((k, v)) => o.get(k).is_some_and(|x| matches(x, v)),
            None => false,
        },
    }
}

fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &[(&str, &str)]) -> QueryPairs {
        QueryPairs(
            s.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    #[test]
    fn filters_sort_page_and_project() {
        let attrs = ["id", "name", "shared", "fixed_ips"];
        let items: Vec<Value> = (0..5)
            .map(|i| json!({"id": format!("id{i}"), "name": format!("n{}", i % 2), "shared": i == 3, "fixed_ips": [{"ip_address": format!("10.0.0.{i}")}], "tags": if i == 1 {json!(["a","b"])} else {json!([])}}))
            .collect();
        let p = ListParams::parse(&q(&[("name", "n1")]), &attrs).expect("p");
        assert_eq!(
            p.respond("x", items.clone(), "u").expect("r")["x"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        let p = ListParams::parse(&q(&[("shared", "True")]), &attrs).expect("p");
        assert_eq!(
            p.respond("x", items.clone(), "u").expect("r")["x"][0]["id"],
            "id3"
        );
        let p = ListParams::parse(&q(&[("fixed_ips", "ip_address=10.0.0.4")]), &attrs).expect("p");
        assert_eq!(
            p.respond("x", items.clone(), "u").expect("r")["x"][0]["id"],
            "id4"
        );
        let p = ListParams::parse(&q(&[("tags", "a,b")]), &attrs).expect("p");
        assert_eq!(
            p.respond("x", items.clone(), "u").expect("r")["x"][0]["id"],
            "id1"
        );
        let p = ListParams::parse(
            &q(&[
                ("sort_key", "id"),
                ("sort_dir", "desc"),
                ("limit", "2"),
                ("fields", "id"),
            ]),
            &attrs,
        )
        .expect("p");
        let r = p.respond("x", items.clone(), "u").expect("r");
        assert_eq!(r["x"], json!([{"id": "id4"}, {"id": "id3"}]));
        assert_eq!(r["x_links"][0]["rel"], "next");
        let p = ListParams::parse(&q(&[("limit", "2"), ("marker", "id3")]), &attrs).expect("p");
        let r = p.respond("x", items.clone(), "u").expect("r");
        assert_eq!(r["x"].as_array().map(Vec::len), Some(1));
        assert_eq!(r["x_links"][0]["rel"], "previous");
        assert!(ListParams::parse(&q(&[("colour", "x")]), &attrs).is_err());
        assert!(ListParams::parse(&q(&[("sort_key", "colour")]), &attrs).is_err());
    }
}
