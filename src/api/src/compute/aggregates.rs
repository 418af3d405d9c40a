//! `/os-aggregates` (admin): host aggregates. The box's one compute host (as os-services
//! and os-hypervisors name it) is the only host an aggregate can hold; an aggregate's
//! `availability_zone` metadata puts it in that zone. Bodies are checked in Nova's order
//! (the body first, then the policy, then the id), with Nova's messages.

use axum::Json;
use axum::extract::State;
use compute::aggregates::AggregateView;
use model::operator::Aggregate;
use serde_json::{Map, Value, json};

use super::validate as v;
use super::views::naive_time;
use crate::extract::{AnyJson, Caller, JsonBody, Path};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

fn may(c: &identity::Context, rule: &str) -> Result<(), Fault> {
    if !c.is_admin() {
        return Err(Fault::forbidden(format!(
            "Policy doesn't allow os_compute_api:os-aggregates:{rule} to be performed."
        )));
    }
    Ok(())
}

/// Nova's `validate_integer` of the id in the path: what Python's `int()` takes.
fn aggregate_id(raw: &str) -> Result<i64, Fault> {
    let bad = || Fault::bad_request("Invalid input received: id must be an integer");
    let t = raw.trim();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    // A number too large for any row is simply not found.
    Ok(t.parse::<i64>().unwrap_or(i64::MAX))
}

/// An aggregate as Nova shows it; `brief` (create) leaves out hosts and metadata.
fn view(
    ver: ApiVersion,
    a: &Aggregate,
    updated: Option<chrono::DateTime<chrono::Utc>>,
    brief: bool,
) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(a.id));
    if ver.at_least(41) {
        o.insert("uuid".into(), json!(a.uuid));
    }
    o.insert("name".into(), json!(a.name));
    o.insert("availability_zone".into(), json!(a.availability_zone()));
    o.insert("created_at".into(), json!(naive_time(a.created_at)));
    o.insert("updated_at".into(), json!(updated.map(naive_time)));
    o.insert("deleted_at".into(), Value::Null);
    o.insert("deleted".into(), json!(false));
    if !brief {
        o.insert("hosts".into(), json!(a.hosts));
        o.insert("metadata".into(), json!(a.metadata));
    }
    Value::Object(o)
}

fn one(ver: ApiVersion, a: &Aggregate) -> Json<Value> {
    Json(json!({"aggregate": view(ver, a, a.updated_at, false)}))
}

fn shown(ver: ApiVersion, v: &AggregateView) -> Json<Value> {
    Json(json!({"aggregate": view(ver, &v.aggregate, v.shown_updated_at, false)}))
}

/// An availability zone of a body: a zone name (printable, no `:`, no surrounding
/// whitespace) or null.
fn zone(v: &Value) -> Result<Option<String>, Fault> {
    let ok = match v {
        Value::Null => return Ok(None),
        Value::String(s) => {
            let n = s.chars().count();
            (1..=255).contains(&n)
                && s.trim() == s
                && !s.contains(':')
                && !s.chars().any(char::is_control)
        }
        _ => false,
    };
    if !ok {
        return Err(v::invalid(
            "availability_zone",
            v,
            &format!(
                "{} is not valid under any of the given schemas",
                v::py_repr(v)
            ),
        ));
    }
    Ok(v.as_str().map(ToOwned::to_owned))
}

/// A name that may carry surrounding whitespace, which is dropped (Nova's `normalize_name`).
fn loose_name(v: &Value) -> Result<String, Fault> {
    let s = v::string("name", v, 1, 255)?;
    if s.chars().any(char::is_control) {
        return Err(Fault::bad_request(
            "An invalid 'name' value was provided. The name must be: printable characters with optional leading/trailing whitespace.",
        ));
    }
    Ok(s.trim().to_owned())
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
) -> Result<Json<Value>, Fault> {
    let all = s.compute.aggregates(&c).await?;
    let items: Vec<Value> = all
        .iter()
        .map(|a| view(ver, a, a.updated_at, false))
        .collect();
    Ok(Json(json!({ "aggregates": items })))
}

/// `POST /os-aggregates`: 200 with the aggregate, without hosts and metadata.
pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    let root = v::root(&body)?;
    let agg = v::required(root, "aggregate")?;
    v::only("", &body, &["aggregate"])?;
    let o = v::object("aggregate", agg)?;
    let name = v::required_in("aggregate", agg, o, "name")?;
    v::only("aggregate", agg, &["name", "availability_zone"])?;
    let name = v::name("name", name)?;
    let az = match o.get("availability_zone") {
        Some(z) => zone(z)?,
        None => None,
    };
    let a = s.compute.create_aggregate(&c, name, az).await?;
    Ok(Json(
        json!({"aggregate": view(ver, &a, a.updated_at, true)}),
    ))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(raw): Path<String>,
) -> Result<Json<Value>, Fault> {
    may(&c, "show")?;
    let id = aggregate_id(&raw)?;
    let a = s.compute.aggregate(&c, id, &raw).await?;
    Ok(one(ver, &a))
}

/// `PUT /os-aggregates/{id}`: a new name and/or zone.
pub async fn update(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(raw): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    let root = v::root(&body)?;
    let agg = v::required(root, "aggregate")?;
    v::only("", &body, &["aggregate"])?;
    let o = v::object("aggregate", agg)?;
    v::only("aggregate", agg, &["name", "availability_zone"])?;
    if o.is_empty() {
        return Err(v::invalid(
            "aggregate",
            agg,
            "{} is not valid under any of the given schemas",
        ));
    }
    let name = o.get("name").map(loose_name).transpose()?;
    let az = o.get("availability_zone").map(zone).transpose()?;
    may(&c, "update")?;
    let id = aggregate_id(&raw)?;
    let out = s.compute.update_aggregate(&c, id, &raw, name, az).await?;
    Ok(shown(ver, &out))
}

/// `DELETE /os-aggregates/{id}`: 200 with an empty body, as Nova answers.
pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(raw): Path<String>,
) -> Result<(), Fault> {
    may(&c, "delete")?;
    let id = aggregate_id(&raw)?;
    s.compute.delete_aggregate(&c, id, &raw).await?;
    Ok(())
}

/// The host of `add_host` / `remove_host`: Nova's host name pattern.
fn host_arg(action: &str, arg: &Value) -> Result<String, Fault> {
    let o = v::object(action, arg)?;
    let h = v::required_in(action, arg, o, "host")?;
    v::only(action, arg, &["host"])?;
    let Some(s) = h.as_str() else {
        return Err(v::invalid(
            "host",
            h,
            &format!("{} is not of type 'string'", v::py_repr(h)),
        ));
    };
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err(v::invalid(
            "host",
            h,
            &format!("{} does not match '^[a-zA-Z0-9-._]*$'", v::py_repr(h)),
        ));
    }
    v::string("host", h, 1, 255)
}

/// Metadata keys Nova takes: `^[a-zA-Z0-9-_:. ]{1,255}$`.
fn metadata_key_ok(k: &str) -> bool {
    let n = k.chars().count();
    (1..=255).contains(&n)
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.' | b' '))
}

/// `set_metadata`'s metadata: string or null values (null removes the key).
fn metadata_arg(arg: &Value) -> Result<Vec<(String, Option<String>)>, Fault> {
    let o = v::object("set_metadata", arg)?;
    let m = v::required_in("set_metadata", arg, o, "metadata")?;
    v::only("set_metadata", arg, &["metadata"])?;
    let mo = v::object("metadata", m)?;
    let mut bad: Vec<&String> = mo.keys().filter(|k| !metadata_key_ok(k)).collect();
    if !bad.is_empty() {
        bad.sort();
        let list: Vec<String> = bad.iter().map(|k| v::py_repr(&json!(k))).collect();
        let verb = if bad.len() == 1 { "does" } else { "do" };
        return Err(v::invalid(
            "metadata",
            m,
            &format!(
                "{} {verb} not match any of the regexes: '^[a-zA-Z0-9-_:. ]{{1,255}}$'",
                list.join(", ")
            ),
        ));
    }
    let mut out = Vec::new();
    for (k, val) in mo {
        match val {
            Value::Null => out.push((k.clone(), None)),
            Value::String(s) if s.chars().count() <= 255 => {
                out.push((k.clone(), Some(s.clone())));
            }
            Value::String(_) => {
                return Err(v::invalid(
                    k,
                    val,
                    &format!("{} is too long", v::py_repr(val)),
                ));
            }
            other => {
                return Err(v::invalid(
                    k,
                    other,
                    &format!("{} is not of type 'string', 'null'", v::py_repr(other)),
                ));
            }
        }
    }
    Ok(out)
}

/// `POST /os-aggregates/{id}/action`: `add_host`, `remove_host`, `set_metadata`.
pub async fn action(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(raw): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    let malformed = || Fault::bad_request("Malformed request body");
    let root = body.as_object().ok_or_else(malformed)?;
    if root.len() != 1 {
        return Err(malformed());
    }
    let (name, arg) = root.iter().next().ok_or_else(malformed)?;
    match name.as_str() {
        "add_host" | "remove_host" => {
            let host = host_arg(name, arg)?;
            may(&c, name)?;
            let id = aggregate_id(&raw)?;
            let a = if name == "add_host" {
                s.compute.add_aggregate_host(&c, id, &raw, &host).await?
            } else {
                s.compute.remove_aggregate_host(&c, id, &raw, &host).await?
            };
            Ok(one(ver, &a))
        }
        "set_metadata" => {
            let metadata = metadata_arg(arg)?;
            may(&c, name)?;
            let id = aggregate_id(&raw)?;
            let out = s
                .compute
                .set_aggregate_metadata(&c, id, &raw, metadata)
                .await?;
            Ok(shown(ver, &out))
        }
        other => Err(Fault::bad_request(format!(
            "There is no such action: {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_what_python_int_takes() {
        assert_eq!(aggregate_id("7").ok(), Some(7));
        assert_eq!(aggregate_id(" 7 ").ok(), Some(7));
        assert_eq!(aggregate_id("-1").ok(), Some(-1));
        assert_eq!(aggregate_id("99999999999999999999").ok(), Some(i64::MAX));
        assert!(aggregate_id("abc").is_err());
        assert!(aggregate_id("").is_err());
        assert!(aggregate_id("1.5").is_err());
    }

    #[test]
    fn metadata_keys() {
        assert!(metadata_key_ok("availability_zone"));
        assert!(metadata_key_ok("a-b_c:d.e f"));
        assert!(!metadata_key_ok("a/b"));
        assert!(!metadata_key_ok(""));
    }
}
