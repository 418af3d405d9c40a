//! Request bodies as Neutron reads them: `{"<resource>": {...}}`, unknown attributes refused,
//! each attribute's type and bounds checked, with Neutron's messages.

use serde_json::{Map, Value};

use crate::Fault;

pub fn invalid(m: impl Into<String>) -> Fault {
    Fault::bad_request(format!("Invalid input for operation: {}", m.into())).kind("InvalidInput")
}

fn attr_invalid(attr: &str, reason: String) -> Fault {
    Fault::bad_request(format!("Invalid input for {attr}. Reason: {reason}."))
        .kind("HTTPBadRequest")
}

/// The resource object of a body, every key in `allowed`.
pub fn object<'a>(
    body: &'a Value,
    resource: &str,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, Fault> {
    let o = body
        .get(resource)
        .and_then(Value::as_object)
        .ok_or_else(|| {
            Fault::bad_request(format!("Unable to find '{resource}' in request body"))
                .kind("HTTPBadRequest")
        })?;
    let unknown: Vec<&str> = o
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(Fault::bad_request(format!(
            "Unrecognized attribute(s) '{}'",
            unknown.join(", ")
        ))
        .kind("HTTPBadRequest"));
    }
    Ok(o)
}

pub fn string(o: &Map<String, Value>, attr: &str, max: usize) -> Result<Option<String>, Fault> {
    match o.get(attr) {
        None => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Value::String(s)) => Err(attr_invalid(
            attr,
            format!("'{s}' exceeds maximum length of {max}"),
        )),
        Some(v) => Err(attr_invalid(attr, format!("'{v}' is not a valid string"))),
    }
}

/// A string that may be `null` (`Some(None)`).
pub fn nullable_string(
    o: &Map<String, Value>,
    attr: &str,
    max: usize,
) -> Result<Option<Option<String>>, Fault> {
    match o.get(attr) {
        Some(Value::Null) => Ok(Some(None)),
        _ => Ok(string(o, attr, max)?.map(Some)),
    }
}

pub fn boolean(o: &Map<String, Value>, attr: &str) -> Result<Option<bool>, Fault> {
    match o.get(attr) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") || s == "1" => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") || s == "0" => Ok(Some(false)),
        Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
        Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
        Some(v) => Err(attr_invalid(
            attr,
            format!("'{v}' cannot be converted to boolean"),
        )),
    }
}

pub fn integer(o: &Map<String, Value>, attr: &str) -> Result<Option<Option<i64>>, Fault> {
    match o.get(attr) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(Some(n.as_i64())),
        Some(Value::String(s)) if s.parse::<i64>().is_ok() => Ok(Some(s.parse().ok())),
        Some(v) => Err(attr_invalid(attr, format!("'{v}' is not an integer"))),
    }
}

pub fn string_list(o: &Map<String, Value>, attr: &str) -> Result<Option<Vec<String>>, Fault> {
    match o.get(attr) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(Vec::new())),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| attr_invalid(attr, format!("'{x}' is not a valid string")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(attr_invalid(attr, format!("'{v}' is not a list"))),
    }
}

/// A list of objects, each with string members among `keys`.
pub fn object_list(
    o: &Map<String, Value>,
    attr: &str,
    keys: &[&str],
) -> Result<Option<Vec<Map<String, Value>>>, Fault> {
    match o.get(attr) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(Vec::new())),
        Some(Value::Array(a)) => {
            let mut out = Vec::new();
            for x in a {
                let m = x
                    .as_object()
                    .ok_or_else(|| attr_invalid(attr, format!("'{x}' is not a dictionary")))?;
                if let Some(k) = m.keys().find(|k| !keys.contains(&k.as_str())) {
                    return Err(attr_invalid(attr, format!("Unexpected keys supplied: {k}")));
                }
                for (k, v) in m {
                    if !v.is_string() {
                        return Err(attr_invalid(
                            attr,
                            format!("'{v}' is not a valid string for {k}"),
                        ));
                    }
                }
                out.push(m.clone());
            }
            Ok(Some(out))
        }
        Some(v) => Err(attr_invalid(attr, format!("'{v}' is not a list"))),
    }
}

pub fn member(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(Value::as_str).map(str::to_owned)
}

/// `project_id` or `tenant_id` (they must agree when both are given).
pub fn project(o: &Map<String, Value>) -> Result<Option<String>, Fault> {
    let p = string(o, "project_id", 255)?;
    let t = string(o, "tenant_id", 255)?;
    match (p, t) {
        (Some(a), Some(b)) if a != b => Err(invalid("'project_id' and 'tenant_id' do not match")),
        (a, b) => Ok(a.or(b)),
    }
}
