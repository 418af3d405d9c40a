//! `/flavors`, their extra specs and access lists.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use model::ProjectId;
use model::compute::{Flavor, FlavorId, FlavorSortKey};
use serde_json::{Value, json};

use super::validate as v;
use super::{Links, views};
use crate::extract::{AnyJson, Caller, JsonBody, Path, QueryPairs};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

async fn listing(
    s: &AppState,
    c: &identity::Context,
    ver: ApiVersion,
    l: &Links,
    q: &QueryPairs,
    detail: bool,
) -> Result<Json<Value>, Fault> {
    if ver.at_least(75) {
        let mut allowed = vec![
            "is_public",
            "minRam",
            "minDisk",
            "limit",
            "marker",
            "sort_key",
            "sort_dir",
        ];
        // 2.102 added the name filter (a regular expression, as Nova's database reads it).
        if ver.at_least(102) {
            allowed.push("name");
        }
        v::query_only(&q.0, &allowed)?;
    }
    let name =
        match q.get("name").filter(|_| ver.at_least(102)) {
            Some(n) => Some(regex::Regex::new(n).map_err(|_| {
                Fault::bad_request(format!("Invalid filter regular expression: {n}"))
            })?),
            None => None,
        };
    // Admins choose with is_public (true by default; "none" for all); others always see
    // public flavors plus those shared with their project.
    let is_public = match q.get("is_public") {
        None => Some(true),
        Some(x) if x.eq_ignore_ascii_case("none") => None,
        Some(x) => Some(
            v::query_bool(x)
                .ok_or_else(|| Fault::bad_request(format!("Invalid is_public filter [{x}]")))?,
        ),
    };
    // Nova reads the filters with Python's `int()`: a negative minimum filters nothing out.
    let num = |name: &str| -> Result<Option<u64>, Fault> {
        match q.get(name) {
            None => Ok(None),
            Some(x) => x
                .trim()
                .parse::<i64>()
                .map(|n| Some(n.max(0) as u64))
                .map_err(|_| Fault::bad_request(format!("Invalid {name} filter [{x}]"))),
        }
    };
    let (min_ram, min_disk) = (num("minRam")?, num("minDisk")?);
    // 2.102 took rxtx_factor out of the sort keys.
    let sort_key = match q.get("sort_key") {
        None => FlavorSortKey::FlavorId,
        Some(k) => FlavorSortKey::parse(k)
            .filter(|k| !(ver.at_least(102) && *k == FlavorSortKey::RxtxFactor))
            .ok_or_else(|| {
                let rxtx = if ver.at_least(102) {
                    ""
                } else {
                    "'rxtx_factor', "
                };
                Fault::bad_request(format!(
                    "Invalid input for query parameters sort_key. Value: {k}. {} is not one of \
                     ['created_at', 'description', 'disabled', 'ephemeral_gb', 'flavorid', \
                     'id', 'is_public', 'memory_mb', 'name', 'root_gb', {rxtx}'swap', \
                     'updated_at', 'vcpu_weight', 'vcpus']",
                    v::py_repr(&Value::String(k.to_string()))
                ))
            })?,
    };
    let ascending = match q.get("sort_dir") {
        None | Some("asc") => true,
        Some("desc") => false,
        Some(d) => {
            return Err(Fault::bad_request(format!(
                "Invalid input for query parameters sort_dir. Value: {d}. {} is not one of \
                 ['asc', 'desc']",
                v::py_repr(&Value::String(d.to_string()))
            )));
        }
    };
    let (limit, marker) = v::paging(q)?;
    let mut all = s
        .compute
        .list_flavors(c, is_public, min_ram, min_disk, sort_key, ascending)
        .await?;
    if let Some(re) = &name {
        all.retain(|f| re.is_match(&f.name));
    }
    let start = match &marker {
        Some(m) => {
            all.iter()
                .position(|f| &f.id.0 == m)
                .ok_or_else(|| Fault::bad_request(format!("marker [{m}] not found")))?
                + 1
        }
        None => 0,
    };
    let max = s.compute.config().max_limit;
    let limit = limit.unwrap_or(max).min(max);
    let page: Vec<&Flavor> = all.iter().skip(start).take(limit).collect();
    let items: Vec<Value> = page
        .iter()
        .map(|f| {
            if detail {
                views::flavor(l, ver, f)
            } else {
                views::flavor_brief(l, ver, f)
            }
        })
        .collect();
    let mut body = json!({ "flavors": items });
    if page.len() == limit && limit > 0 {
        let path = if detail { "flavors/detail" } else { "flavors" };
        if let Some(last) = page.last() {
            body["flavors_links"] = l.next(path, &q.0, &last.id.0);
        }
    }
    Ok(Json(body))
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    listing(&s, &c, ver, &l, &q, false).await
}

pub async fn detail(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    listing(&s, &c, ver, &l, &q, true).await
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let f = s.compute.get_flavor(&c, &FlavorId(id)).await?;
    Ok(Json(json!({"flavor": views::flavor(&l, ver, &f)})))
}

pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    let root = v::root(&body)?;
    let fv = v::required(root, "flavor")?;
    v::only("", &body, &["flavor"])?;
    let mut allowed = vec![
        "name",
        "id",
        "ram",
        "vcpus",
        "disk",
        "OS-FLV-EXT-DATA:ephemeral",
        "swap",
        "os-flavor-access:is_public",
    ];
    // 2.102 removed rxtx_factor from the request too.
    if !ver.at_least(102) {
        allowed.push("rxtx_factor");
    }
    if ver.at_least(55) {
        allowed.push("description");
    }
    v::only("flavor", fv, &allowed)?;
    let f = v::object("flavor", fv)?;
    let name = v::name("name", v::required_in("flavor", fv, f, "name")?)?;
    let id = match f.get("id") {
        None | Some(Value::Null) => uuid::Uuid::new_v4().hyphenated().to_string(),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        Some(x) => {
            let id = v::string("id", x, 1, 255)?;
            if id.trim() != id
                || !id
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_. ".contains(ch))
            {
                return Err(v::invalid(
                    "id",
                    x,
                    &format!("'{id}' does not match '^(?! )[a-zA-Z0-9. _-]+(?<! )$'"),
                ));
            }
            id
        }
    };
    let int = |key: &str, min: i64, required: bool| -> Result<Option<i64>, Fault> {
        match f.get(key) {
            None if required => Err(v::invalid(
                "flavor",
                fv,
                &format!("'{key}' is a required property"),
            )),
            None => Ok(None),
            Some(x) => v::flavor_integer(key, x, min).map(Some),
        }
    };
    let ram = int("ram", 1, true)?.unwrap_or(1);
    let vcpus = int("vcpus", 1, true)?.unwrap_or(1);
    let disk = int("disk", 0, true)?.unwrap_or(0);
    let ephemeral = int("OS-FLV-EXT-DATA:ephemeral", 0, false)?.unwrap_or(0);
    let swap = match f.get("swap") {
        Some(Value::String(x)) if x.is_empty() => 0,
        Some(x) => v::integer("swap", x, 0, i64::from(i32::MAX))?,
        None => 0,
    };
    let rxtx = match f.get("rxtx_factor") {
        None => 1.0,
        Some(x) => v::positive_number("rxtx_factor", x)?,
    };
    let is_public = match f.get("os-flavor-access:is_public") {
        None => true,
        Some(x) => v::boolean("os-flavor-access:is_public", x)?,
    };
    let description = if ver.at_least(55) {
        v::opt_string("description", f.get("description"), 0, 65535)?
    } else {
        None
    };
    let flavor = Flavor {
        id: FlavorId(id),
        name,
        vcpus: vcpus as u32,
        ram_mb: ram as u64,
        disk_gb: disk as u64,
        ephemeral_gb: ephemeral as u64,
        swap_mb: swap as u64,
        rxtx_factor: rxtx,
        is_public,
        disabled: false,
        description,
        extra_specs: Default::default(),
    };
    let f = s.compute.create_flavor(&c, flavor).await?;
    Ok(Json(json!({"flavor": views::flavor(&l, ver, &f)})))
}

/// `PUT /flavors/{id}` (2.55): only the description changes.
pub async fn update(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    Path(id): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    if !ver.at_least(55) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    let root = v::root(&body)?;
    let fv = v::required(root, "flavor")?;
    v::only("", &body, &["flavor"])?;
    // jsonschema's order: the required key before the unexpected ones.
    let f = v::object("flavor", fv)?;
    let d = v::required_in("flavor", fv, f, "description")?;
    v::only("flavor", fv, &["description"])?;
    let d = match d {
        Value::Null => None,
        x => Some(v::string("description", x, 0, 65535)?),
    };
    let f = s
        .compute
        .update_flavor_description(&c, &FlavorId(id), d)
        .await?;
    Ok(Json(json!({"flavor": views::flavor(&l, ver, &f)})))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Fault> {
    s.compute.delete_flavor(&c, &FlavorId(id)).await?;
    Ok(StatusCode::ACCEPTED)
}

pub async fn list_specs(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let f = s.compute.get_flavor(&c, &FlavorId(id)).await?;
    Ok(Json(json!({"extra_specs": f.extra_specs})))
}

fn spec_map(field: &str, v_: &Value) -> Result<Vec<(String, String)>, Fault> {
    let o = v::object(field, v_)?;
    let mut out = Vec::new();
    for (k, val) in o {
        // Nova's key pattern, `^[a-zA-Z0-9-_:. ]{1,255}$` (its `-` and `_` are literal).
        let key_ok = (1..=255).contains(&k.chars().count())
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_:. ".contains(c));
        if !key_ok {
            return Err(v::invalid(
                field,
                v_,
                &format!("'{k}' does not match any of the regexes: '^[a-zA-Z0-9-_:. ]{{1,255}}$'"),
            ));
        }
        let s = match val {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => {
                if *b {
                    "True".into()
                } else {
                    "False".into()
                }
            }
            other => {
                return Err(v::invalid(
                    field,
                    v_,
                    &format!(
                        "{} is not of type 'string', 'integer', 'number', 'boolean'",
                        v::py_repr(other)
                    ),
                ));
            }
        };
        if s.len() > 255 {
            return Err(v::invalid(field, val, "value is too long"));
        }
        out.push((k.clone(), s));
    }
    Ok(out)
}

pub async fn create_specs(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    let root = v::root(&body)?;
    let specs = v::required(root, "extra_specs")?;
    v::only("", &body, &["extra_specs"])?;
    let specs = spec_map("extra_specs", specs)?;
    s.compute
        .set_extra_specs(&c, &FlavorId(id), specs.clone())
        .await?;
    let m: serde_json::Map<String, Value> = specs.into_iter().map(|(k, v)| (k, json!(v))).collect();
    Ok(Json(json!({"extra_specs": m})))
}

pub async fn show_spec(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, key)): Path<(String, String)>,
) -> Result<Json<Value>, Fault> {
    let f = s.compute.get_flavor(&c, &FlavorId(id.clone())).await?;
    let val = f.extra_specs.get(&key).ok_or_else(|| {
        Fault::not_found(format!("Flavor {id} has no extra specs with key {key}."))
    })?;
    Ok(Json(json!({ key: val })))
}

pub async fn update_spec(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, key)): Path<(String, String)>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    let specs = spec_map("extra_specs", &body)?;
    if specs.len() != 1 {
        return Err(Fault::bad_request("Request body contains too many items"));
    }
    if specs[0].0 != key {
        return Err(Fault::bad_request("Request body and URI mismatch"));
    }
    s.compute
        .set_extra_specs(&c, &FlavorId(id), specs.clone())
        .await?;
    Ok(Json(json!({ key: specs[0].1 })))
}

pub async fn delete_spec(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode, Fault> {
    s.compute.delete_extra_spec(&c, &FlavorId(id), &key).await?;
    Ok(StatusCode::ACCEPTED)
}

fn access_body(id: &str, projects: &[ProjectId]) -> Value {
    json!({"flavor_access": projects
        .iter()
        .map(|p| json!({"flavor_id": id, "tenant_id": p.as_str()}))
        .collect::<Vec<_>>()})
}

pub async fn access(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let projects = s.compute.flavor_access(&c, &FlavorId(id.clone())).await?;
    Ok(Json(access_body(&id, &projects)))
}

/// `POST /flavors/{id}/action`: `addTenantAccess` and `removeTenantAccess`.
pub async fn action(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    let root = v::root(&body)?;
    if root.len() != 1 {
        return Err(Fault::bad_request(
            "Malformed request body: exactly one action is expected",
        ));
    }
    let (name, arg) = root
        .iter()
        .next()
        .ok_or_else(|| Fault::bad_request("Malformed request body"))?;
    let add = match name.as_str() {
        "addTenantAccess" => true,
        "removeTenantAccess" => false,
        other => {
            return Err(Fault::bad_request(format!(
                "There is no such action: {other}"
            )));
        }
    };
    v::only(name, arg, &["tenant"])?;
    let o = v::object(name, arg)?;
    let tenant = v::string("tenant", v::required_in(name, arg, o, "tenant")?, 1, 255)?;
    let fid = FlavorId(id.clone());
    let projects = if add {
        s.compute
            .add_flavor_access(&c, &fid, ProjectId::new(tenant), ver.at_least(7))
            .await?
    } else {
        s.compute
            .remove_flavor_access(&c, &fid, ProjectId::new(tenant))
            .await?
    };
    Ok(Json(access_body(&id, &projects)))
}
