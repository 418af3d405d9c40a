//! `/v2/images` and `/v2/images/{id}`: create, list, show, JSON-patch update, delete,
//! (de)activation and tags.

use ::image::{
    Change, ListQuery, MemberFilter, NewImage, SortDir, SortKey, TimeOp, VisibilityFilter,
};
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use model::ProjectId;
use model::image::{ContainerFormat, DiskFormat, ImageId, ImageStatus, MemberStatus, Visibility};
use serde_json::{Map, Value, json};

use super::{image_id, views};
use crate::extract::{AnyJson, Caller, JsonBody, MAX_BODY, QueryPairs};
use crate::{AppState, Fault};

fn schema_error(msg: impl std::fmt::Display) -> Fault {
    Fault::bad_request(format!(
        "Provided object does not match schema 'image': {msg}"
    ))
}

fn read_only(key: &str) -> Fault {
    Fault::forbidden(format!("Attribute '{key}' is read-only."))
}

/// Refuses attributes a client may never set, as Glance does (403).
fn check_settable(key: &str) -> Result<(), Fault> {
    if views::READ_ONLY.contains(&key) {
        return Err(read_only(key));
    }
    if views::RESERVED.contains(&key) || key.starts_with("os_glance") {
        return Err(Fault::forbidden(format!("Attribute '{key}' is reserved.")));
    }
    Ok(())
}

fn string_or_null(key: &str, v: &Value) -> Result<Option<String>, Fault> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(schema_error(format!(
            "{other} is not of type 'string' ({key})"
        ))),
    }
}

fn boolean(key: &str, v: &Value) -> Result<bool, Fault> {
    v.as_bool()
        .ok_or_else(|| schema_error(format!("{v} is not of type 'boolean' ({key})")))
}

fn count(key: &str, v: &Value) -> Result<u64, Fault> {
    v.as_u64()
        .ok_or_else(|| schema_error(format!("{v} is not a non-negative integer ({key})")))
}

fn one_of<T: Copy>(
    key: &str,
    v: &Value,
    parse: fn(&str) -> Option<T>,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<Option<T>, Fault> {
    match string_or_null(key, v)? {
        None => Ok(None),
        Some(s) => parse(&s).map(Some).ok_or_else(|| {
            let names: Vec<_> = all.iter().map(|x| name(*x)).collect();
            schema_error(format!("'{s}' is not one of {names:?} ({key})"))
        }),
    }
}

fn disk_format(v: &Value) -> Result<Option<DiskFormat>, Fault> {
    one_of(
        "disk_format",
        v,
        DiskFormat::parse,
        DiskFormat::ALL,
        DiskFormat::as_str,
    )
}

fn container_format(v: &Value) -> Result<Option<ContainerFormat>, Fault> {
    one_of(
        "container_format",
        v,
        ContainerFormat::parse,
        ContainerFormat::ALL,
        ContainerFormat::as_str,
    )
}

fn visibility(v: &Value) -> Result<Visibility, Fault> {
    one_of(
        "visibility",
        v,
        Visibility::parse,
        Visibility::ALL,
        Visibility::as_str,
    )?
    .ok_or_else(|| schema_error("None is not of type 'string' (visibility)"))
}

fn tags(v: &Value) -> Result<Vec<String>, Fault> {
    let Value::Array(items) = v else {
        return Err(schema_error(format!("{v} is not of type 'array' (tags)")));
    };
    items
        .iter()
        .map(|t| {
            t.as_str()
                .map(str::to_owned)
                .ok_or_else(|| schema_error(format!("{t} is not of type 'string' (tags)")))
        })
        .collect()
}

/// A custom property's value: Glance's schema types them as strings.
fn property(key: &str, v: &Value) -> Result<String, Fault> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| schema_error(format!("{v} is not of type 'string' ({key})")))
}

pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    JsonBody(body): AnyJson,
) -> Result<impl IntoResponse, Fault> {
    let Value::Object(body) = body else {
        return Err(schema_error("the body is not an object"));
    };
    let mut new = NewImage::default();
    for (k, v) in body {
        check_settable(&k)?;
        match k.as_str() {
            "id" => {
                let id = v.as_str().and_then(ImageId::parse).ok_or_else(|| {
                    schema_error(format!("{v} does not match the UUID pattern (id)"))
                })?;
                new.id = Some(id);
            }
            "name" => new.name = string_or_null("name", &v)?,
            "visibility" => new.visibility = Some(visibility(&v)?),
            "protected" => new.protected = boolean("protected", &v)?,
            "os_hidden" => new.os_hidden = boolean("os_hidden", &v)?,
            "disk_format" => new.disk_format = disk_format(&v)?,
            "container_format" => new.container_format = container_format(&v)?,
            "min_disk" => new.min_disk = count("min_disk", &v)?,
            "min_ram" => new.min_ram = count("min_ram", &v)?,
            "tags" => new.tags = tags(&v)?,
            "owner" => new.owner = string_or_null("owner", &v)?.map(ProjectId::new),
            _ => {
                let value = property(&k, &v)?;
                new.properties.push((k, value));
            }
        }
    }
    let img = s.images.create(&c, new).await?;
    Ok((StatusCode::CREATED, Json(views::image(&img))))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let img = s.images.get(&c, &image_id(&id)?).await?;
    Ok(Json(views::image(&img)))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Fault> {
    s.images.delete(&c, &image_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn deactivate(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Fault> {
    s.images.deactivate(&c, &image_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn reactivate(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Fault> {
    s.images.reactivate(&c, &image_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn add_tag(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, Fault> {
    s.images.add_tag(&c, &image_id(&id)?, tag).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove_tag(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, Fault> {
    s.images.remove_tag(&c, &image_id(&id)?, tag).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- update (JSON patch) -------------------------------------------------------------------

/// The media types Glance accepts for PATCH: 2.1's operations are RFC 6902's
/// (`{"op": "replace", "path": "/name", …}`), 2.0's name the operation as the key
/// (`{"replace": "/name", …}`) and refuse to `add` what the image already has.
const PATCH_TYPES: &[&str] = &[
    "application/openstack-images-v2.1-json-patch",
    "application/openstack-images-v2.0-json-patch",
];

/// Decodes a one-level JSON pointer (`/name`, `/a~1b`).
fn pointer(path: &str) -> Result<String, Fault> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(Fault::bad_request(format!(
            "Pointer `{path}` does not start with \"/\"."
        )));
    };
    if rest.is_empty() || rest.contains('/') {
        return Err(Fault::bad_request(format!(
            "Invalid JSON pointer for this resource: '{path}'"
        )));
    }
    Ok(rest.replace("~1", "/").replace("~0", "~"))
}

fn change(op: &str, key: String, value: Option<&Value>) -> Result<Change, Fault> {
    check_settable(&key)?;
    if key == "id" {
        return Err(read_only("id"));
    }
    let core = views::CORE.contains(&key.as_str());
    if op == "remove" {
        if core {
            return Err(Fault::forbidden(format!(
                "Property {key} may not be removed."
            )));
        }
        return Ok(Change::RemoveProperty(key));
    }
    let v = value.ok_or_else(|| {
        Fault::bad_request(format!(
            "Operation \"{op}\" requires a member named \"value\"."
        ))
    })?;
    Ok(match key.as_str() {
        "name" => Change::Name(string_or_null("name", v)?),
        "visibility" => Change::Visibility(visibility(v)?),
        "protected" => Change::Protected(boolean("protected", v)?),
        "os_hidden" => Change::OsHidden(boolean("os_hidden", v)?),
        "disk_format" => Change::DiskFormat(disk_format(v)?),
        "container_format" => Change::ContainerFormat(container_format(v)?),
        "min_disk" => Change::MinDisk(count("min_disk", v)?),
        "min_ram" => Change::MinRam(count("min_ram", v)?),
        "tags" => Change::Tags(tags(v)?),
        "owner" => Change::Owner(ProjectId::new(
            string_or_null("owner", v)?.ok_or_else(|| schema_error("None (owner)"))?,
        )),
        _ => Change::SetProperty {
            value: property(&key, v)?,
            must_exist: op == "replace",
            key,
        },
    })
}

/// A 2.0 operation: exactly one of the members `add`, `remove`, `replace`, whose value is
/// the path.
fn draft4_operation(obj: &serde_json::Map<String, Value>) -> Result<(&'static str, &str), Fault> {
    let mut found = None;
    for op in ["add", "remove", "replace"] {
        if let Some(p) = obj.get(op) {
            if found.is_some() {
                return Err(Fault::bad_request(
                    "Operation objects must contain only one member named \"add\", \"remove\", or \"replace\".",
                ));
            }
            found = Some((op, p));
        }
    }
    let (op, p) = found.ok_or_else(|| {
        Fault::bad_request(
            "Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\".",
        )
    })?;
    let path = p.as_str().ok_or_else(|| {
        Fault::bad_request(format!("Invalid JSON pointer for this resource: '{p}'"))
    })?;
    Ok((op, path))
}

pub async fn update(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    req: Request,
) -> Result<Json<Value>, Fault> {
    let id = image_id(&id)?;
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !PATCH_TYPES.contains(&ct.as_str()) {
        return Err(Fault::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content type {ct} not supported. Use {}",
                PATCH_TYPES.join(", ")
            ),
        ));
    }
    let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| Fault::too_large())?;
    let ops: Value = crate::extract::parse(&bytes)?;
    let Value::Array(ops) = ops else {
        return Err(Fault::bad_request(
            "Request body must be a JSON array of operation objects.",
        ));
    };
    let draft4 = ct == "application/openstack-images-v2.0-json-patch";
    // 2.0 refuses to add what the image has: its core attributes and its properties.
    let existing = if draft4 {
        Some(s.images.get(&c, &id).await?.properties)
    } else {
        None
    };
    let mut changes = Vec::with_capacity(ops.len());
    for op in &ops {
        let Some(obj) = op.as_object() else {
            return Err(Fault::bad_request("Operations must be JSON objects."));
        };
        let (name, path) = if draft4 {
            draft4_operation(obj)?
        } else {
            let name = obj.get("op").and_then(Value::as_str).unwrap_or("");
            if !matches!(name, "add" | "replace" | "remove") {
                return Err(Fault::bad_request(format!(
                    "Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\"; got {name:?}."
                )));
            }
            let path = obj
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| Fault::bad_request("Unable to find 'path' in JSON Schema change"))?;
            (name, path)
        };
        let key = pointer(path)?;
        if name == "add"
            && let Some(props) = &existing
            && (views::CORE.contains(&key.as_str()) || props.contains_key(&key))
        {
            return Err(Fault::conflict(format!("Property {key} already present.")));
        }
        changes.push(change(name, key, obj.get("value"))?);
    }
    let img = s.images.update(&c, &id, changes).await?;
    Ok(Json(views::image(&img)))
}

// ---- list ----------------------------------------------------------------------------------

/// `in:a,b` or a single value.
fn values(v: &str) -> Vec<String> {
    match v.strip_prefix("in:") {
        Some(list) => list
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        None => vec![v.to_owned()],
    }
}

fn parse_each<T>(key: &str, v: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, Fault> {
    values(v)
        .iter()
        .map(|s| parse(s).ok_or_else(|| Fault::bad_request(format!("Invalid {key} value: {s}"))))
        .collect()
}

fn query_bool(key: &str, v: &str) -> Result<bool, Fault> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Fault::bad_request(format!("Invalid {key} value: {v}"))),
    }
}

fn query_u64(key: &str, v: &str) -> Result<u64, Fault> {
    v.parse()
        .map_err(|_| Fault::bad_request(format!("Invalid {key} value: {v}")))
}

/// `gt:2026-01-01T00:00:00Z` and the like; a bare time means `eq`.
fn time_filter(key: &str, v: &str) -> Result<(TimeOp, chrono::DateTime<chrono::Utc>), Fault> {
    let bad = || Fault::bad_request(format!("Invalid {key} value: {v}"));
    let (op, t) = match v.split_once(':') {
        Some((op, t)) if TimeOp::parse(op).is_some() => (TimeOp::parse(op).ok_or_else(bad)?, t),
        _ => (TimeOp::Eq, v),
    };
    let t = chrono::DateTime::parse_from_rfc3339(t)
        .map_err(|_| bad())?
        .with_timezone(&chrono::Utc);
    Ok((op, t))
}

fn sort_dir(v: &str) -> Result<SortDir, Fault> {
    match v {
        "asc" => Ok(SortDir::Asc),
        "desc" => Ok(SortDir::Desc),
        _ => Err(Fault::bad_request(format!("Invalid sort direction: {v}"))),
    }
}

fn sort_key(v: &str) -> Result<SortKey, Fault> {
    SortKey::parse(v).ok_or_else(|| Fault::bad_request(format!("Invalid sort key: {v}")))
}

fn list_query(q: &QueryPairs) -> Result<ListQuery, Fault> {
    let mut out = ListQuery::default();
    let mut keys = Vec::new();
    let mut dirs = Vec::new();
    let mut sort = None;
    for (k, v) in &q.0 {
        match k.as_str() {
            "limit" => out.limit = query_u64("limit", v)? as usize,
            "marker" => {
                out.marker = Some(ImageId::parse(v).ok_or_else(|| {
                    Fault::bad_request(format!("Invalid marker. Image {v} could not be found."))
                })?)
            }
            "sort_key" => keys.push(sort_key(v)?),
            "sort_dir" => dirs.push(sort_dir(v)?),
            "sort" => sort = Some(v.clone()),
            "id" => out.ids = Some(parse_each("id", v, ImageId::parse)?),
            "name" => out.names = Some(values(v)),
            "status" => out.statuses = Some(parse_each("status", v, ImageStatus::parse)?),
            "visibility" => {
                out.visibility = Some(match v.as_str() {
                    "all" => VisibilityFilter::All,
                    other => VisibilityFilter::Only(Visibility::parse(other).ok_or_else(|| {
                        Fault::bad_request(format!("Invalid visibility value: {other}"))
                    })?),
                })
            }
            "member_status" => {
                out.member_status = match v.as_str() {
                    "all" => MemberFilter::All,
                    other => MemberFilter::Only(MemberStatus::parse(other).ok_or_else(|| {
                        Fault::bad_request(format!("Invalid status value: {other}"))
                    })?),
                }
            }
            "owner" => out.owner = Some(ProjectId::new(v.clone())),
            "tag" => out.tags.push(v.clone()),
            "disk_format" => out.disk_formats = Some(parse_each(k, v, DiskFormat::parse)?),
            "container_format" => {
                out.container_formats = Some(parse_each(k, v, ContainerFormat::parse)?)
            }
            "size_min" => out.size_min = Some(query_u64(k, v)?),
            "size_max" => out.size_max = Some(query_u64(k, v)?),
            "protected" => out.protected = Some(query_bool(k, v)?),
            "os_hidden" => out.os_hidden = Some(query_bool(k, v)?),
            "created_at" => out.created_at.push(time_filter(k, v)?),
            "updated_at" => out.updated_at.push(time_filter(k, v)?),
            _ => out.properties.push((k.clone(), v.clone())),
        }
    }
    if let Some(sort) = sort {
        if !keys.is_empty() || !dirs.is_empty() {
            return Err(Fault::bad_request(
                "The 'sort' parameter cannot be combined with 'sort_key' or 'sort_dir'.",
            ));
        }
        for part in sort.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, d) = part.split_once(':').unwrap_or((part, "desc"));
            out.sort.push((sort_key(k)?, sort_dir(d)?));
        }
    } else {
        if dirs.len() > keys.len().max(1) {
            return Err(Fault::bad_request("More sort directions than sort keys."));
        }
        if keys.is_empty() && !dirs.is_empty() {
            keys.push(SortKey::CreatedAt);
        }
        // As in Glance: one direction applies to every key; otherwise they pair up.
        for (i, k) in keys.iter().enumerate() {
            let d = if dirs.len() == 1 {
                dirs[0]
            } else {
                dirs.get(i).copied().unwrap_or(SortDir::Desc)
            };
            out.sort.push((*k, d));
        }
    }
    Ok(out)
}

/// Percent-encodes a query component.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query_string(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    let query = list_query(&q)?;
    let page = s.images.list(&c, query).await?;
    let kept: Vec<(String, String)> = q.0.iter().filter(|(k, _)| k != "marker").cloned().collect();
    let first = if kept.is_empty() {
        "/v2/images".to_owned()
    } else {
        format!("/v2/images?{}", query_string(&kept))
    };
    let mut body = Map::new();
    body.insert(
        "images".into(),
        Value::Array(page.images.iter().map(views::image).collect()),
    );
    body.insert("first".into(), json!(first));
    body.insert("schema".into(), json!("/v2/schemas/images"));
    if let Some(m) = page.next_marker {
        let mut next = kept;
        next.push(("marker".into(), m.to_string()));
        body.insert(
            "next".into(),
            json!(format!("/v2/images?{}", query_string(&next))),
        );
    }
    Ok(Json(Value::Object(body)))
}
