//! The deprecated images proxy: `/images` up to 2.35 and `/images/{id}/metadata` up to 2.38,
//! in Nova's shape, answered by the image service with the caller's rights.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use image::{Change, ListQuery};
use model::image::{Image, ImageId, ImageStatus};
use serde_json::{Value, json};

use super::Links;
use super::validate as v;
use super::views::nova_time;
use crate::extract::{AnyJson, Caller, JsonBody, Path, QueryPairs};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

fn gone() -> Fault {
    Fault::not_found("The resource could not be found.")
}

fn proxy_allowed(ver: ApiVersion) -> Result<(), Fault> {
    if ver.at_least(36) {
        Err(gone())
    } else {
        Ok(())
    }
}

fn metadata_allowed(ver: ApiVersion) -> Result<(), Fault> {
    if ver.at_least(39) {
        Err(gone())
    } else {
        Ok(())
    }
}

/// The image service's refusals in Nova's words.
fn fault(e: image::Error) -> Fault {
    match e {
        image::Error::NotFound(_) => Fault::not_found("Image not found."),
        image::Error::OverLimit(m) => Fault::forbidden(m),
        other => Fault::from(other),
    }
}

fn image_id(s: &str) -> Result<ImageId, Fault> {
    ImageId::parse(s).ok_or_else(|| Fault::not_found("Image not found."))
}

/// Nova's status and progress for a Glance status.
fn status(s: ImageStatus) -> (&'static str, u32) {
    match s {
        ImageStatus::Active => ("ACTIVE", 100),
        ImageStatus::Queued => ("SAVING", 25),
        ImageStatus::Saving => ("SAVING", 50),
        ImageStatus::Deleted => ("DELETED", 0),
        ImageStatus::Killed => ("ERROR", 0),
        ImageStatus::Deactivated => ("UNKNOWN", 0),
    }
}

fn links(l: &Links, base: &str, id: &str) -> Value {
    let mut v = l.pair("images", id);
    if let Some(a) = v.as_array_mut() {
        a.push(json!({
            "rel": "alternate",
            "type": "application/vnd.openstack.image",
            "href": format!("{base}/image/images/{id}"),
        }));
    }
    v
}

fn brief(l: &Links, base: &str, i: &Image) -> Value {
    let id = i.id.to_string();
    json!({"id": id, "name": i.name, "links": links(l, base, &id)})
}

fn detail(l: &Links, base: &str, i: &Image) -> Value {
    let mut o = brief(l, base, i);
    let (st, progress) = status(i.status);
    o["status"] = json!(st);
    o["progress"] = json!(progress);
    o["minDisk"] = json!(i.min_disk);
    o["minRam"] = json!(i.min_ram);
    o["created"] = json!(nova_time(i.created_at));
    o["updated"] = json!(nova_time(i.updated_at));
    o["metadata"] = json!(i.properties);
    o["OS-EXT-IMG-SIZE:size"] = json!(i.size);
    if let Some(auto) = i.properties.get("auto_disk_config") {
        let on = auto.eq_ignore_ascii_case("true");
        o["OS-DCF:diskConfig"] = json!(if on { "AUTO" } else { "MANUAL" });
    }
    if let Some(server) = i.properties.get("instance_uuid") {
        o["server"] = json!({"id": server, "links": l.pair("servers", server)});
    }
    o
}

/// The Glance statuses a Nova image status stands for (the inverse of [`status`]).
fn glance_statuses(nova: &str) -> Vec<ImageStatus> {
    use ImageStatus as S;
    [
        S::Active,
        S::Queued,
        S::Saving,
        S::Deleted,
        S::Killed,
        S::Deactivated,
    ]
    .into_iter()
    .filter(|g| status(*g).0.eq_ignore_ascii_case(nova))
    .collect()
}

/// The image listing with Nova's proxy filters, which go to the image service as Nova
/// sends them to Glance: `name`, `status`, `changes-since` (images updated since),
/// `server` (snapshots of that server: its id or URL) and `type` (`snapshot` or `backup`),
/// then `minRam`/`minDisk`, which the image service has no filter for and which are applied
/// here before the page is cut.
async fn listing(
    s: &AppState,
    c: &identity::Context,
    q: &QueryPairs,
) -> Result<(Vec<Image>, Option<usize>), Fault> {
    let mut lq = ListQuery::default();
    if let Some(n) = q.get("name") {
        lq.names = Some(vec![n.to_owned()]);
    }
    if let Some(st) = q.get("status") {
        lq.statuses = Some(glance_statuses(st));
    }
    if let Some(t) = q.get("changes-since") {
        let since = super::validate::parse_time("changes-since", t)?;
        lq.updated_at.push((image::TimeOp::Gte, since));
    }
    if let Some(server) = q.get("server") {
        // A server's id or its URL, as Nova accepts: the last path segment.
        let id = server
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(server);
        lq.properties
            .push(("instance_uuid".to_owned(), id.to_owned()));
    }
    if let Some(t) = q.get("type") {
        lq.properties.push(("image_type".to_owned(), t.to_owned()));
    }
    let (limit, marker) = v::paging(q)?;
    if let Some(m) = marker {
        lq.marker = Some(
            image_id(&m)
                .map_err(|_| Fault::bad_request(format!("Marker {m} could not be found.")))?,
        );
    }
    let max = s.compute.config().max_limit;
    let limit = limit.map(|l| l.min(max));
    let min_ram = q.get("minRam").and_then(|x| x.parse::<u64>().ok());
    let min_disk = q.get("minDisk").and_then(|x| x.parse::<u64>().ok());
    let wanted = limit.unwrap_or(max);
    // With filters applied here, a fuller page is read so that the page cut comes after them.
    lq.limit = if min_ram.is_some() || min_disk.is_some() {
        max
    } else {
        wanted
    };
    let mut images = s.images.list(c, lq).await.map_err(fault)?.images;
    if let Some(m) = min_ram {
        images.retain(|i| i.min_ram >= m);
    }
    if let Some(m) = min_disk {
        images.retain(|i| i.min_disk >= m);
    }
    images.truncate(wanted);
    Ok((images, limit))
}

fn page(
    l: &Links,
    path: &str,
    q: &QueryPairs,
    items: Vec<Value>,
    images: &[Image],
    limit: Option<usize>,
) -> Value {
    let mut body = json!({"images": items});
    if let (Some(lim), Some(last)) = (limit, images.last())
        && lim > 0
        && images.len() == lim
    {
        body["images_links"] = l.next(path, &q.0, &last.id.to_string());
    }
    body
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    h: HeaderMap,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    proxy_allowed(ver)?;
    let base = s.base_url(&h);
    let (images, limit) = listing(&s, &c, &q).await?;
    let items = images.iter().map(|i| brief(&l, &base, i)).collect();
    Ok(Json(page(&l, "images", &q, items, &images, limit)))
}

pub async fn detail_list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    h: HeaderMap,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    proxy_allowed(ver)?;
    let base = s.base_url(&h);
    let (images, limit) = listing(&s, &c, &q).await?;
    let items = images.iter().map(|i| detail(&l, &base, i)).collect();
    Ok(Json(page(&l, "images/detail", &q, items, &images, limit)))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    proxy_allowed(ver)?;
    let img = s.images.get(&c, &image_id(&id)?).await.map_err(fault)?;
    Ok(Json(json!({"image": detail(&l, &s.base_url(&h), &img)})))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
) -> Result<Response, Fault> {
    proxy_allowed(ver)?;
    s.images.delete(&c, &image_id(&id)?).await.map_err(fault)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- metadata --------------------------------------------------------------------------

async fn image_of(s: &AppState, c: &identity::Context, id: &str) -> Result<Image, Fault> {
    s.images.get(c, &image_id(id)?).await.map_err(fault)
}

/// Checks the image's metadata count against the `metadata_items` quota, as Nova does.
async fn check_quota(s: &AppState, c: &identity::Context, count: usize) -> Result<(), Fault> {
    let Some(p) = c.project_id.clone() else {
        return Ok(());
    };
    let report = s.compute.quotas(c, &p).await?;
    let limit = report.limits.get("metadata_items").copied().unwrap_or(-1);
    if limit >= 0 && count as i64 > limit {
        return Err(Fault::forbidden(format!(
            "Quota exceeded for metadata_items: Requested {count}, but already used 0 of {limit} metadata_items"
        )));
    }
    Ok(())
}

async fn apply(
    s: &AppState,
    c: &identity::Context,
    img: &Image,
    changes: Vec<Change>,
) -> Result<BTreeMap<String, String>, Fault> {
    if changes.is_empty() {
        return Ok(img.properties.clone());
    }
    let updated = s.images.update(c, &img.id, changes).await.map_err(fault)?;
    Ok(updated.properties)
}

fn set(key: &str, value: &str) -> Change {
    Change::SetProperty {
        key: key.to_owned(),
        value: value.to_owned(),
        must_exist: false,
    }
}

pub async fn metadata_list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    metadata_allowed(ver)?;
    let img = image_of(&s, &c, &id).await?;
    Ok(Json(json!({"metadata": img.properties})))
}

/// `POST` merges, `PUT` replaces every item.
async fn write_all(
    s: AppState,
    c: identity::Context,
    id: String,
    body: Value,
    replace: bool,
) -> Result<Json<Value>, Fault> {
    let root = v::root(&body)?;
    let m = v::required(root, "metadata")?;
    let items = v::metadata("metadata", m)?;
    let img = image_of(&s, &c, &id).await?;
    let mut after = if replace {
        BTreeMap::new()
    } else {
        img.properties.clone()
    };
    after.extend(items.clone());
    check_quota(&s, &c, after.len()).await?;
    let mut changes: Vec<Change> = Vec::new();
    if replace {
        changes.extend(
            img.properties
                .keys()
                .filter(|k| !items.contains_key(*k))
                .map(|k| Change::RemoveProperty(k.clone())),
        );
    }
    changes.extend(items.iter().map(|(k, v)| set(k, v)));
    let props = apply(&s, &c, &img, changes).await?;
    Ok(Json(json!({"metadata": props})))
}

pub async fn metadata_merge(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    metadata_allowed(ver)?;
    write_all(s, c, id, body, false).await
}

pub async fn metadata_replace(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    metadata_allowed(ver)?;
    write_all(s, c, id, body, true).await
}

pub async fn metadata_show(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path((id, key)): Path<(String, String)>,
) -> Result<Json<Value>, Fault> {
    metadata_allowed(ver)?;
    let img = image_of(&s, &c, &id).await?;
    let value = img
        .properties
        .get(&key)
        .ok_or_else(|| Fault::not_found("Invalid metadata key"))?;
    Ok(Json(json!({"meta": {key: value}})))
}

pub async fn metadata_set(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path((id, key)): Path<(String, String)>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    metadata_allowed(ver)?;
    let root = v::root(&body)?;
    let meta = v::required(root, "meta")?;
    let items = v::metadata("meta", meta)?;
    if items.len() > 1 {
        return Err(Fault::bad_request("Request body contains too many items"));
    }
    let Some(value) = items.get(&key) else {
        return Err(Fault::bad_request("Request body and URI mismatch"));
    };
    let img = image_of(&s, &c, &id).await?;
    let count = img.properties.len() + usize::from(!img.properties.contains_key(&key));
    check_quota(&s, &c, count).await?;
    apply(&s, &c, &img, vec![set(&key, value)]).await?;
    Ok(Json(json!({"meta": {key: value}})))
}

pub async fn metadata_delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response, Fault> {
    metadata_allowed(ver)?;
    let img = image_of(&s, &c, &id).await?;
    if !img.properties.contains_key(&key) {
        return Err(Fault::not_found("Invalid metadata key"));
    }
    apply(&s, &c, &img, vec![Change::RemoveProperty(key)]).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
