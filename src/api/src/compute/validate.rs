//! Request validation with Nova's wording.
//!
//! Nova validates bodies against JSON schemas and reports the first failure as
//! `Invalid input for field/attribute <field>. Value: <value>. <reason>`, printing values as
//! Python would. These helpers check the same rules and produce the same messages, so clients
//! and scripts that match on them keep working.

use serde_json::{Map, Value};

use crate::Fault;

/// A value as Python's `repr` prints it (`'text'`, `None`, `True`, `{'a': 1}`).
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => py_str_repr(s),
        Value::Array(a) => format!("[{}]", a.iter().map(py_repr).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{}: {}", py_str_repr(k), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A string as Python's `repr` prints it: single quotes unless the text holds a single quote
/// and no double quote, backslashes and control characters escaped.
fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// A value as Python's `str` prints it: a string bare, anything else as [`py_repr`].
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

pub fn invalid(field: &str, value: &Value, reason: &str) -> Fault {
    Fault::bad_request(format!(
        "Invalid input for field/attribute {field}. Value: {}. {reason}",
        py_str(value)
    ))
}

fn not_type(field: &str, v: &Value, ty: &str) -> Fault {
    invalid(field, v, &format!("{} is not of type '{ty}'", py_repr(v)))
}

/// The body's root object; Nova's message names the value (`None is not of type 'object'`).
pub fn root(v: &Value) -> Result<&Map<String, Value>, Fault> {
    v.as_object()
        .ok_or_else(|| Fault::bad_request(format!("{} is not of type 'object'", py_repr(v))))
}

/// A required key of the root object.
pub fn required<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a Value, Fault> {
    obj.get(key)
        .ok_or_else(|| Fault::bad_request(format!("'{key}' is a required property")))
}

/// A required key of a nested object (`field` names the object in the message).
pub fn required_in<'a>(
    field: &str,
    obj_value: &Value,
    obj: &'a Map<String, Value>,
    key: &str,
) -> Result<&'a Value, Fault> {
    obj.get(key)
        .ok_or_else(|| invalid(field, obj_value, &format!("'{key}' is a required property")))
}

pub fn object<'a>(field: &str, v: &'a Value) -> Result<&'a Map<String, Value>, Fault> {
    v.as_object().ok_or_else(|| not_type(field, v, "object"))
}

/// Refuses keys outside `allowed`, as `additionalProperties: false` does.
pub fn only(field: &str, v: &Value, allowed: &[&str]) -> Result<(), Fault> {
    let Some(o) = v.as_object() else {
        return Err(not_type(field, v, "object"));
    };
    let mut extra: Vec<&String> = o
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .collect();
    if extra.is_empty() {
        return Ok(());
    }
    extra.sort();
    let list = extra
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let verb = if extra.len() == 1 { "was" } else { "were" };
    if field.is_empty() {
        return Err(Fault::bad_request(format!(
            "Additional properties are not allowed ({list} {verb} unexpected)"
        )));
    }
    Err(invalid(
        field,
        v,
        &format!("Additional properties are not allowed ({list} {verb} unexpected)"),
    ))
}

pub fn string(field: &str, v: &Value, min: usize, max: usize) -> Result<String, Fault> {
    let s = v.as_str().ok_or_else(|| not_type(field, v, "string"))?;
    let n = s.chars().count();
    if n == 0 && min == 1 {
        return Err(invalid(
            field,
            v,
            &format!("{} should be non-empty", py_repr(v)),
        ));
    }
    if n < min {
        return Err(invalid(field, v, &format!("{} is too short", py_repr(v))));
    }
    if n > max {
        return Err(invalid(field, v, &format!("{} is too long", py_repr(v))));
    }
    Ok(s.to_owned())
}

pub fn opt_string(
    field: &str,
    v: Option<&Value>,
    min: usize,
    max: usize,
) -> Result<Option<String>, Fault> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => string(field, v, min, max).map(Some),
    }
}

/// Nova's resource names: 1 to 255 printable characters without leading or trailing
/// whitespace.
pub fn name(field: &str, v: &Value) -> Result<String, Fault> {
    let s = string(field, v, 1, 255)?;
    if s.trim() != s || s.chars().any(char::is_control) {
        return Err(Fault::bad_request(
            "An invalid 'name' value was provided. The name must be: printable characters. Can not start or end with whitespace.",
        ));
    }
    Ok(s)
}

/// A quota limit: an integer from -1 to 2^31-1, given as a number or a string of digits
/// (Nova's `^-?[0-9]+$`).
pub fn quota_limit(field: &str, v: &Value) -> Result<i64, Fault> {
    if let Value::String(s) = v {
        let digits = s.strip_prefix('-').unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(
                field,
                v,
                &format!("{} does not match '^-?[0-9]+$'", py_repr(v)),
            ));
        }
    }
    integer(field, v, -1, i64::from(i32::MAX))
}

/// An integer, given as a number or a string of digits, within bounds.
pub fn integer(field: &str, v: &Value, min: i64, max: i64) -> Result<i64, Fault> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        invalid(
            field,
            v,
            &format!("{} is not of type 'integer', 'string'", py_repr(v)),
        )
    })?;
    if n < min {
        return Err(invalid(
            field,
            v,
            &format!("{} is less than the minimum of {min}", py_repr(v)),
        ));
    }
    if n > max {
        return Err(invalid(
            field,
            v,
            &format!("{} is greater than the maximum of {max}", py_repr(v)),
        ));
    }
    Ok(n)
}

/// A flavor's integer (`ram`, `vcpus`, `disk`, ephemeral): a number, or a string of digits
/// (`'^[0-9]+$'`), within bounds.
pub fn flavor_integer(field: &str, v: &Value, min: i64) -> Result<i64, Fault> {
    if let Value::String(s) = v
        && (s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(invalid(
            field,
            v,
            &format!("{} does not match '^[0-9]+$'", py_repr(v)),
        ));
    }
    integer(field, v, min, i64::from(i32::MAX))
}

/// A strictly positive number, given as a number or a decimal string (Nova's `rxtx_factor`).
pub fn positive_number(field: &str, v: &Value) -> Result<f64, Fault> {
    const PATTERN: &str = r"^[0-9]+(\.[0-9]+)?$";
    let n = match v {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => {
            let ok = match s.split_once('.') {
                Some((a, b)) => {
                    !a.is_empty()
                        && !b.is_empty()
                        && (a.to_owned() + b).bytes().all(|c| c.is_ascii_digit())
                }
                None => !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()),
            };
            if !ok {
                return Err(invalid(
                    field,
                    v,
                    &format!(
                        "{} does not match {}",
                        py_repr(v),
                        py_repr(&Value::String(PATTERN.into()))
                    ),
                ));
            }
            s.parse::<f64>().unwrap_or(0.0)
        }
        _ => {
            return Err(invalid(
                field,
                v,
                &format!("{} is not of type 'number', 'string'", py_repr(v)),
            ));
        }
    };
    if let Value::Number(_) = v {
        if n <= 0.0 {
            return Err(invalid(
                field,
                v,
                &format!("{} is less than or equal to the minimum of 0", py_repr(v)),
            ));
        }
        if n > 3.40282e38 {
            return Err(invalid(
                field,
                v,
                &format!("{} is greater than the maximum of 3.40282e+38", py_repr(v)),
            ));
        }
    }
    Ok(n)
}

/// The strings and booleans Nova's boolean schema enumerates, as jsonschema lists them.
const BOOLEAN_ENUM: &str = "[True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', \
    'yes', False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no']";

/// Nova's boolean: JSON booleans and the strings it recognises.
pub fn boolean(field: &str, v: &Value) -> Result<bool, Fault> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.as_str() {
            "True" | "TRUE" | "true" | "1" | "ON" | "On" | "on" | "YES" | "Yes" | "yes" => Ok(true),
            "False" | "FALSE" | "false" | "0" | "OFF" | "Off" | "off" | "NO" | "No" | "no" => {
                Ok(false)
            }
            _ => Err(invalid(
                field,
                v,
                &format!("{} is not one of {BOOLEAN_ENUM}", py_repr(v)),
            )),
        },
        _ => Err(invalid(
            field,
            v,
            &format!("{} is not of type 'boolean', 'string'", py_repr(v)),
        )),
    }
}

/// A query-string boolean as Nova reads it (`strutils.bool_from_string`).
pub fn query_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// A metadata object: string keys of 1..=255 and string values of 0..=255.
pub fn metadata(
    field: &str,
    v: &Value,
) -> Result<std::collections::BTreeMap<String, String>, Fault> {
    let o = object(field, v)?;
    let mut out = std::collections::BTreeMap::new();
    for (k, val) in o {
        if k.is_empty() || k.chars().count() > 255 {
            return Err(invalid(
                field,
                v,
                &format!("'{k}' does not match any of the regexes: '^[a-zA-Z0-9-_:. ]{{1,255}}$'"),
            ));
        }
        let s = val.as_str().ok_or_else(|| not_type(field, val, "string"))?;
        if s.chars().count() > 255 {
            return Err(invalid(
                field,
                val,
                &format!("{} is too long", py_repr(val)),
            ));
        }
        out.insert(k.clone(), s.to_owned());
    }
    Ok(out)
}

/// The query parameters outside `allowed`, each once, sorted (as jsonschema lists them).
fn unknown_params<'a>(pairs: &'a [(String, String)], allowed: &[&str]) -> Vec<&'a str> {
    let mut extra: Vec<&str> = pairs
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !allowed.contains(k))
        .collect();
    extra.sort_unstable();
    extra.dedup();
    extra
}

fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses query parameters outside `allowed` (Nova's strict query schemas), in jsonschema's
/// words for the schema's root.
pub fn query_only(pairs: &[(String, String)], allowed: &[&str]) -> Result<(), Fault> {
    let extra = unknown_params(pairs, allowed);
    if extra.is_empty() {
        return Ok(());
    }
    let verb = if extra.len() == 1 { "was" } else { "were" };
    Err(Fault::bad_request(format!(
        "Additional properties are not allowed ({} {verb} unexpected)",
        quoted_list(&extra)
    )))
}

/// From 2.102 the GET routes whose query schema once let anything through refuse every
/// parameter (Nova's `*_query_v2102` schemas, none of which names a parameter). A middleware
/// on those routes' GET handlers, run before the handler as Nova's schema check is.
pub async fn no_query_from_2_102(
    ver: crate::microversion::ApiVersion,
    q: crate::extract::QueryPairs,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if ver.at_least(102)
        && let Err(f) = query_only(&q.0, &[])
    {
        return f.into_response();
    }
    next.run(req).await
}

/// As [`query_only`], for the server list's schema, which also takes any parameter starting
/// with `_` and says so when it refuses one.
pub fn query_only_or_underscore(pairs: &[(String, String)], allowed: &[&str]) -> Result<(), Fault> {
    let extra: Vec<&str> = unknown_params(pairs, allowed)
        .into_iter()
        .filter(|k| !k.starts_with('_'))
        .collect();
    if extra.is_empty() {
        return Ok(());
    }
    let verb = if extra.len() == 1 { "does" } else { "do" };
    Err(Fault::bad_request(format!(
        "{} {verb} not match any of the regexes: '^_'",
        quoted_list(&extra)
    )))
}

/// `limit` and `marker` of a paged listing.
pub fn paging(q: &crate::extract::QueryPairs) -> Result<(Option<usize>, Option<String>), Fault> {
    let limit = match q.get("limit") {
        Some(l) => Some(l.parse::<usize>().map_err(|_| {
            Fault::bad_request(format!(
                "Invalid input for query parameters limit. Value: {l}. '{l}' does not match '^[0-9]*$'"
            ))
        })?),
        None => None,
    };
    Ok((limit, q.get("marker").map(str::to_owned)))
}

/// A date-time query parameter (`changes-since` and the like): RFC 3339, or ISO 8601 without
/// a zone (taken as UTC).
pub fn parse_time(name: &str, s: &str) -> Result<chrono::DateTime<chrono::Utc>, Fault> {
    let bad = || {
        Fault::bad_request(format!(
            "Invalid input for query parameters {name}. Value: {s}. '{s}' is not a 'date-time'"
        ))
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc());
        }
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z"] {
        if let Ok(t) = chrono::DateTime::parse_from_str(s, f) {
            return Ok(t.with_timezone(&chrono::Utc));
        }
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_read_like_novas() {
        let v = json!({"name": "k", "foo": 1});
        let e = only("keypair", &v, &["name", "public_key", "type", "user_id"]).expect_err("extra");
        assert_eq!(
            e.message,
            "Invalid input for field/attribute keypair. Value: {'name': 'k', 'foo': 1}. Additional properties are not allowed ('foo' was unexpected)"
        );
        let e = string("name", &json!(1), 1, 255).expect_err("type");
        assert_eq!(
            e.message,
            "Invalid input for field/attribute name. Value: 1. 1 is not of type 'string'"
        );
        assert_eq!(
            root(&Value::Null).expect_err("null").message,
            "None is not of type 'object'"
        );
        assert_eq!(
            required(&Map::new(), "keypair").expect_err("req").message,
            "'keypair' is a required property"
        );
        assert!(name("name", &json!(" x")).is_err());
        assert_eq!(integer("min_count", &json!("3"), 1, 100).expect("int"), 3);
        assert!(boolean("b", &json!("yes")).expect("bool"));
        assert_eq!(
            py_repr(&json!({"b": "it's", "a": "x\ny\\"})),
            r#"{'b': "it's", 'a': 'x\ny\\'}"#
        );
        assert_eq!(py_repr(&json!("'\"")), r#"'\'"'"#);
        assert!(positive_number("r", &json!(0)).is_err());
        assert_eq!(positive_number("r", &json!("1.5")).expect("num"), 1.5);
        assert!(positive_number("r", &json!("1.")).is_err());
        assert!(flavor_integer("vcpus", &json!("many"), 1).is_err());
        assert_eq!(flavor_integer("vcpus", &json!("2"), 1).expect("int"), 2);
    }
}
