//! `/volumes`: create, list, detail, show, update, delete, metadata and actions.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use model::volume::VolumeRec;
use serde_json::{Map, Value, json};

use super::{Prefix, Version, boolish, link_base, parse_bool, views};
use crate::extract::{AnyJson, Caller, JsonBody, Path, QueryPairs};
use crate::{AppState, Fault};

fn invalid(field: &str, value: &Value, why: &str) -> Fault {
    let shown = match value {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    Fault::bad_request(format!(
        "Invalid input for field/attribute {field}. Value: {shown}. {why}"
    ))
}

/// The object under `key` in a body.
fn object<'a>(b: &'a Value, key: &str) -> Result<&'a Map<String, Value>, Fault> {
    b.get(key).and_then(Value::as_object).ok_or_else(|| {
        Fault::bad_request(format!("Missing required element '{key}' in request body."))
    })
}

/// A metadata object: string keys (1–255) to string values (≤ 255).
pub(super) fn metadata(v: &Value, field: &str) -> Result<BTreeMap<String, String>, Fault> {
    let o = v
        .as_object()
        .ok_or_else(|| invalid(field, v, &format!("{v} is not of type 'object'")))?;
    let mut out = BTreeMap::new();
    for (k, val) in o {
        let s = val
            .as_str()
            .ok_or_else(|| invalid(field, v, &format!("{val} is not of type 'string'")))?;
        if k.is_empty() || k.len() > 255 || s.len() > 255 {
            return Err(invalid(
                field,
                v,
                "Metadata key and value must be 1 to 255 characters.",
            ));
        }
        out.insert(k.clone(), s.to_owned());
    }
    Ok(out)
}

/// A name or description: a string (≤ 255 for names) or null.
pub(super) fn text(
    o: &Map<String, Value>,
    key: &str,
    max: usize,
) -> Result<Option<Option<String>>, Fault> {
    match o.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(Some(s.clone()))),
        Some(Value::String(s)) => Err(invalid(key, &json!(s), &format!("'{s}' is too long"))),
        Some(v) => Err(invalid(
            key,
            v,
            &format!("{v} is not of type 'string', 'null'"),
        )),
    }
}

fn size(v: &Value) -> Result<u64, Fault> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        Value::String(s) => {
            return Err(invalid(
                "size",
                v,
                &format!("'{s}' does not match '^[0-9]+$'"),
            ));
        }
        _ => None,
    }
    .ok_or_else(|| {
        invalid(
            "size",
            v,
            &format!("{v} is not of type 'integer', 'string'"),
        )
    })?;
    if n < 1 {
        return Err(invalid(
            "size",
            v,
            &format!("{n} is less than the minimum of 1"),
        ));
    }
    Ok(n as u64)
}

fn opt_str(o: &Map<String, Value>, key: &str) -> Result<Option<String>, Fault> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(invalid(
            key,
            v,
            &format!("{v} is not of type 'string', 'null'"),
        )),
    }
}

/// The image a volume is made from, as the caller's project sees it.
pub(super) async fn source_image(
    images: &image::Images,
    c: &model::Context,
    id: &str,
) -> Result<volume::SourceImage, Fault> {
    let missing = || Fault::not_found(format!("Image {id} could not be found."));
    let iid = model::image::ImageId::parse(id).ok_or_else(missing)?;
    let project = c.project_id.clone().ok_or_else(missing)?;
    let (img, path) = images.data_for(&project, &iid).await.map_err(|e| match e {
        image::Error::BadRequest(_) => {
            Fault::bad_request(format!("Invalid input received: Image {id} is not active."))
        }
        _ => missing(),
    })?;
    let mut meta: BTreeMap<String, String> = img.properties.clone();
    meta.insert("image_id".into(), img.id.to_string());
    if let Some(n) = &img.name {
        meta.insert("image_name".into(), n.clone());
    }
    if let Some(c) = &img.checksum {
        meta.insert("checksum".into(), c.clone());
    }
    if let Some(f) = img.disk_format {
        meta.insert("disk_format".into(), f.as_str().into());
    }
    if let Some(f) = img.container_format {
        meta.insert("container_format".into(), f.as_str().into());
    }
    meta.insert("min_disk".into(), img.min_disk.to_string());
    meta.insert("min_ram".into(), img.min_ram.to_string());
    if let Some(sz) = img.size {
        meta.insert("size".into(), sz.to_string());
    }
    let disk_format = img
        .disk_format
        .map(|f| f.as_str().to_owned())
        .ok_or_else(|| {
            Fault::bad_request("Invalid input received: The image has no disk format.")
        })?;
    Ok(volume::SourceImage {
        id: img.id.to_string(),
        path,
        disk_format,
        size: img.size.unwrap_or(0),
        virtual_size: img.virtual_size,
        min_disk_gb: img.min_disk,
        metadata: meta,
    })
}

pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    Extension(v): Extension<Version>,
    Extension(p): Extension<Prefix>,
    h: HeaderMap,
    JsonBody(b): AnyJson,
) -> Result<(StatusCode, Json<Value>), Fault> {
    let o = object(&b, "volume")?;
    let size_gb = o
        .get("size")
        .filter(|v| !v.is_null())
        .map(size)
        .transpose()?;
    let name = text(o, "name", 255)?
        .or(text(o, "display_name", 255)?)
        .flatten();
    let description = text(o, "description", 255)?
        .or(text(o, "display_description", 255)?)
        .flatten();
    let meta = match o.get("metadata") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(m) => metadata(m, "metadata")?,
    };
    let bootable = match o.get("bootable") {
        None => false,
        Some(x) => boolish(x).ok_or_else(|| invalid("bootable", x, "is not a boolean"))?,
    };
    let image_ref = opt_str(o, "imageRef")?.or(opt_str(o, "image_id")?);
    let source = match (
        image_ref,
        opt_str(o, "source_volid")?,
        opt_str(o, "snapshot_id")?,
    ) {
        (None, None, None) => volume::Source::Blank,
        (Some(i), None, None) => volume::Source::Image(source_image(&s.images, &c, &i).await?),
        (None, Some(vid), None) => volume::Source::Volume(vid),
        (None, None, Some(sid)) => volume::Source::Snapshot(sid),
        _ => {
            return Err(Fault::bad_request(
                "Invalid input received: only one of snapshot, imageRef, source volume may be specified.",
            ));
        }
    };
    let req = volume::VolumeCreate {
        size_gb,
        name,
        description,
        volume_type: opt_str(o, "volume_type")?,
        availability_zone: opt_str(o, "availability_zone")?,
        metadata: meta,
        bootable,
        source,
    };
    let rec = s.volumes.create(&c, req).await?;
    let base = link_base(&s, &h, &p);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"volume": views::volume(&rec, &base, v.0, c.is_admin())})),
    ))
}

/// Filters, sorting and paging of a volume list, as Cinder reads them.
fn select(
    mut items: Vec<VolumeRec>,
    q: &QueryPairs,
) -> Result<(Vec<VolumeRec>, Option<usize>), Fault> {
    for (k, val) in &q.0 {
        match k.as_str() {
            "name" | "display_name" => items.retain(|v| v.name.as_deref() == Some(val.as_str())),
            "status" => items.retain(|v| v.status == *val),
            "availability_zone" => items.retain(|v| v.availability_zone == *val),
            "bootable" => {
                if let Some(b) = parse_bool(val) {
                    items.retain(|v| v.bootable == b)
                }
            }
            "project_id" | "tenant_id" => items.retain(|v| v.project_id.as_str() == val),
            "metadata" => {
                // Clients send a dict, JSON or Python's repr of one.
                let parsed: Value = serde_json::from_str(&val.replace('\'', "\""))
                    .map_err(|_| Fault::bad_request(format!("Invalid filter metadata: {val}")))?;
                let want = metadata(&parsed, "metadata")?;
                items.retain(|v| want.iter().all(|(k, x)| v.metadata.get(k) == Some(x)));
            }
            _ => {}
        }
    }
    let mut keys: Vec<(String, bool)> = Vec::new();
    if let Some(sort) = q.get("sort") {
        for part in sort.split(',').filter(|p| !p.is_empty()) {
            let (k, d) = part.split_once(':').unwrap_or((part, "desc"));
            keys.push((k.trim().to_owned(), d.trim() != "asc"));
        }
    } else if let Some(k) = q.get("sort_key") {
        keys.push((k.to_owned(), q.get("sort_dir") != Some("asc")));
    }
    if keys.is_empty() {
        keys.push(("created_at".into(), true));
    }
    for (k, _) in &keys {
        if ![
            "created_at",
            "updated_at",
            "id",
            "name",
            "size",
            "status",
            "display_name",
        ]
        .contains(&k.as_str())
        {
            return Err(Fault::bad_request(format!(
                "Invalid input received: Invalid sort key {k}"
            )));
        }
    }
    items.sort_by(|a, b| {
        for (k, desc) in &keys {
            let o = match k.as_str() {
                "created_at" => a.created_at.cmp(&b.created_at),
                "updated_at" => a.updated_at.cmp(&b.updated_at),
                "name" | "display_name" => a.name.cmp(&b.name),
                "size" => a.size_gb.cmp(&b.size_gb),
                "status" => a.status.cmp(&b.status),
                _ => a.id.cmp(&b.id),
            };
            let o = if *desc { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        b.id.cmp(&a.id)
    });
    if let Some(m) = q.get("marker") {
        let at = items
            .iter()
            .position(|v| v.id == m)
            .ok_or_else(|| Fault::not_found(format!("Marker {m} could not be found.")))?;
        items.drain(..=at);
    }
    if let Some(off) = q.get("offset") {
        let off: usize = off
            .parse()
            .map_err(|_| Fault::bad_request("Invalid input received: offset must be an integer"))?;
        items.drain(..off.min(items.len()));
    }
    let limit = match q.get("limit") {
        None => None,
        Some(l) => Some(l.parse::<usize>().map_err(|_| {
            Fault::bad_request(format!(
                "Invalid input received: limit must be an integer: {l}"
            ))
        })?),
    };
    if let Some(l) = limit {
        items.truncate(l);
    }
    Ok((items, limit))
}

async fn listing(
    s: &AppState,
    c: &model::Context,
    q: &QueryPairs,
) -> Result<(Vec<VolumeRec>, Option<usize>), Fault> {
    let all = q
        .get("all_tenants")
        .is_some_and(|v| parse_bool(v).unwrap_or(true));
    let items = s.volumes.list(c, all).await?;
    select(items, q)
}

fn next_link(items: &[VolumeRec], limit: Option<usize>, url: &str) -> Option<Value> {
    let l = limit?;
    let last = items.last()?;
    (items.len() == l && l > 0)
        .then(|| json!([{"rel": "next", "href": format!("{url}?limit={l}&marker={}", last.id)}]))
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    Extension(p): Extension<Prefix>,
    q: QueryPairs,
    h: HeaderMap,
) -> Result<Json<Value>, Fault> {
    let (items, limit) = listing(&s, &c, &q).await?;
    let base = link_base(&s, &h, &p);
    let mut out = json!({"volumes": items.iter().map(|v| views::volume_summary(v, &base)).collect::<Vec<_>>()});
    if let Some(l) = next_link(&items, limit, &format!("{base}/volumes")) {
        out["volumes_links"] = l;
    }
    Ok(Json(out))
}

pub async fn detail(
    State(s): State<AppState>,
    Caller(c): Caller,
    Extension(v): Extension<Version>,
    Extension(p): Extension<Prefix>,
    q: QueryPairs,
    h: HeaderMap,
) -> Result<Json<Value>, Fault> {
    let (items, limit) = listing(&s, &c, &q).await?;
    let base = link_base(&s, &h, &p);
    let admin = c.is_admin();
    let mut out = json!({"volumes": items.iter().map(|x| views::volume(x, &base, v.0, admin)).collect::<Vec<_>>()});
    if let Some(l) = next_link(&items, limit, &format!("{base}/volumes/detail")) {
        out["volumes_links"] = l;
    }
    Ok(Json(out))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    Extension(v): Extension<Version>,
    Extension(p): Extension<Prefix>,
    Path(id): Path<String>,
    h: HeaderMap,
) -> Result<Json<Value>, Fault> {
    let rec = s.volumes.get(&c, &id).await?;
    let base = link_base(&s, &h, &p);
    Ok(Json(
        json!({"volume": views::volume(&rec, &base, v.0, c.is_admin())}),
    ))
}

pub async fn update(
    State(s): State<AppState>,
    Caller(c): Caller,
    Extension(v): Extension<Version>,
    Extension(p): Extension<Prefix>,
    Path(id): Path<String>,
    h: HeaderMap,
    JsonBody(b): AnyJson,
) -> Result<Json<Value>, Fault> {
    let o = object(&b, "volume")?;
    let u = volume::VolumeUpdate {
        name: text(o, "name", 255)?.or(text(o, "display_name", 255)?),
        description: text(o, "description", 255)?.or(text(o, "display_description", 255)?),
        metadata: o
            .get("metadata")
            .map(|m| metadata(m, "metadata"))
            .transpose()?,
    };
    let rec = s.volumes.update(&c, &id, u).await?;
    let base = link_base(&s, &h, &p);
    Ok(Json(
        json!({"volume": views::volume(&rec, &base, v.0, c.is_admin())}),
    ))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    q: QueryPairs,
) -> Result<StatusCode, Fault> {
    let cascade = q.get("cascade").and_then(parse_bool).unwrap_or(false);
    s.volumes.delete(&c, &id, cascade, false).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `os-volume_upload_image` (`openstack image create --volume`): a new image of the
/// caller's project receives the volume's data, converted to `disk_format` (raw or qcow2);
/// the volume is `uploading` meanwhile and returns to the status it had.
async fn upload_image(
    s: &AppState,
    c: &model::Context,
    id: &str,
    args: &Value,
    ver: Version,
) -> Result<Value, Fault> {
    let o = args
        .as_object()
        .ok_or_else(|| Fault::bad_request("Invalid request body: an object expected."))?;
    let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
    let name = text("image_name")
        .ok_or_else(|| Fault::bad_request("No image_name was specified in request."))?;
    let force = match o.get("force") {
        None | Some(Value::Null) => false,
        Some(x) => boolish(x).ok_or_else(|| invalid("force", x, "is not a boolean"))?,
    };
    let disk_format = text("disk_format").unwrap_or_else(|| "raw".into());
    if !matches!(disk_format.as_str(), "raw" | "qcow2") {
        return Err(Fault::bad_request(format!(
            "Invalid disk-format '{disk_format}' is specified. Allowed disk-formats are raw, qcow2."
        )));
    }
    let container_format = text("container_format").unwrap_or_else(|| "bare".into());
    let container = model::image::ContainerFormat::parse(&container_format).ok_or_else(|| {
        Fault::bad_request(format!(
            "Invalid container-format '{container_format}' is specified."
        ))
    })?;
    // Visibility and protection from 3.1, as Cinder reads them.
    let (visibility, protected) = if ver.0 >= 1 {
        let vis = match text("visibility") {
            None => model::image::Visibility::Private,
            Some(v) => model::image::Visibility::parse(&v)
                .ok_or_else(|| Fault::bad_request(format!("Invalid visibility '{v}'.")))?,
        };
        let protected = match o.get("protected") {
            None | Some(Value::Null) => false,
            Some(x) => boolish(x).ok_or_else(|| invalid("protected", x, "is not a boolean"))?,
        };
        (vis, protected)
    } else {
        (model::image::Visibility::Private, false)
    };
    let v = s.volumes.begin_upload(c, id, force).await?;
    let back_to = v.status.clone();
    let new = image::NewImage {
        id: None,
        name: Some(name.clone()),
        owner: None,
        visibility: Some(visibility),
        protected,
        os_hidden: false,
        disk_format: model::image::DiskFormat::parse(&disk_format),
        container_format: Some(container),
        min_disk: v.size_gb,
        min_ram: 0,
        tags: Vec::new(),
        properties: Vec::new(),
    };
    let img = match s.images.create(c, new).await {
        Ok(i) => i,
        Err(e) => {
            s.volumes.end_upload(id, &back_to).await;
            return Err(e.into());
        }
    };
    let (images, volumes, ctx) = (s.images.clone(), s.volumes.clone(), c.clone());
    let (vol, image_id, fmt) = (v.clone(), img.id.clone(), disk_format.clone());
    tokio::spawn(async move {
        let r = match volumes.export(&vol, &fmt).await {
            Ok(file) => {
                let up = images.upload_file(&ctx, &image_id, &file).await;
                let _ = tokio::fs::remove_file(&file).await;
                up.map(|_| ()).map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = r {
            tracing::warn!(volume_id = %vol.id, image_id = %image_id, error = %e, "uploading a volume to an image failed");
            let _ = images.delete(&ctx, &image_id).await;
        }
        volumes.end_upload(&vol.id, &back_to).await;
    });
    Ok(json!({"os-volume_upload_image": {
        "id": v.id,
        "updated_at": v.updated_at.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()),
        "status": "uploading",
        "display_description": v.description,
        "size": v.size_gb,
        "volume_type": {"id": v.volume_type_id, "name": v.volume_type_name},
        "image_id": img.id.to_string(),
        "container_format": container_format,
        "disk_format": disk_format,
        "image_name": name,
        "visibility": visibility.as_str(),
        "protected": protected,
    }}))
}

pub async fn action(
    State(s): State<AppState>,
    Caller(c): Caller,
    Extension(ver): Extension<Version>,
    Path(id): Path<String>,
    JsonBody(b): AnyJson,
) -> Result<axum::response::Response, Fault> {
    let o = b
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| Fault::bad_request("Invalid request body: one action expected."))?;
    let (name, args) = o
        .iter()
        .next()
        .ok_or_else(|| Fault::bad_request("No action"))?;
    match name.as_str() {
        "os-extend" => {
            let n = args.get("new_size").ok_or_else(|| {
                Fault::bad_request("Invalid input received: new_size is required.")
            })?;
            let n = size(n).map_err(|_| invalid("new_size", n, "is not a valid size"))?;
            s.volumes.extend(&c, &id, n, ver.0 >= 42).await?;
        }
        "os-set_bootable" => {
            let x = args.get("bootable").unwrap_or(&Value::Null);
            let b = boolish(x).ok_or_else(|| invalid("bootable", x, "is not a boolean"))?;
            s.volumes.set_bootable(&c, &id, b).await?;
        }
        "os-update_readonly_flag" => {
            let x = args.get("readonly").unwrap_or(&Value::Null);
            let b = boolish(x).ok_or_else(|| invalid("readonly", x, "is not a boolean"))?;
            s.volumes.set_read_only(&c, &id, b).await?;
        }
        "os-reset_status" => {
            let st = args
                .get("status")
                .and_then(Value::as_str)
                .ok_or_else(|| Fault::bad_request("Must specify 'status'"))?;
            s.volumes.reset_status(&c, &id, st).await?;
        }
        "os-force_delete" => {
            s.volumes.delete(&c, &id, true, true).await?;
        }
        "os-volume_upload_image" => {
            let body = upload_image(&s, &c, &id, args, ver).await?;
            return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
        }
        other => {
            // An unknown action on another project's volume is still its 404 first.
            s.volumes.get(&c, &id).await?;
            return Err(Fault::bad_request(format!(
                "There is no such action: {other}"
            )));
        }
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

pub async fn metadata_list(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let rec = s.volumes.get(&c, &id).await?;
    Ok(Json(json!({"metadata": rec.metadata})))
}

async fn set_meta(
    s: &AppState,
    c: &model::Context,
    id: &str,
    b: &Value,
    replace: bool,
) -> Result<Json<Value>, Fault> {
    let m = b
        .get("metadata")
        .ok_or_else(|| Fault::bad_request("Malformed request body"))?;
    let m = metadata(m, "metadata")?;
    let out = s.volumes.set_metadata(c, id, m, replace).await?;
    Ok(Json(json!({"metadata": out})))
}

pub async fn metadata_merge(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    JsonBody(b): AnyJson,
) -> Result<Json<Value>, Fault> {
    set_meta(&s, &c, &id, &b, false).await
}

pub async fn metadata_replace(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    JsonBody(b): AnyJson,
) -> Result<Json<Value>, Fault> {
    set_meta(&s, &c, &id, &b, true).await
}

pub async fn metadata_show(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, key)): Path<(String, String)>,
) -> Result<Json<Value>, Fault> {
    let rec = s.volumes.get(&c, &id).await?;
    let v = rec
        .metadata
        .get(&key)
        .ok_or_else(|| Fault::not_found(format!("Volume {id} has no metadata with key {key}.")))?;
    Ok(Json(json!({"meta": {key: v}})))
}

pub async fn metadata_set(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, key)): Path<(String, String)>,
    JsonBody(b): AnyJson,
) -> Result<Json<Value>, Fault> {
    let m = b
        .get("meta")
        .ok_or_else(|| Fault::bad_request("Malformed request body"))?;
    let m = metadata(m, "meta")?;
    if m.len() != 1 || !m.contains_key(&key) {
        return Err(Fault::bad_request("Request body and URI mismatch"));
    }
    s.volumes.set_metadata(&c, &id, m.clone(), false).await?;
    Ok(Json(json!({"meta": m})))
}

pub async fn metadata_delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode, Fault> {
    s.volumes.delete_metadata_key(&c, &id, &key).await?;
    Ok(StatusCode::OK)
}
