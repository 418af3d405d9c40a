//! Cinder's attachments API (3.27+), read side: the attachments of the caller's volumes as
//! Nova's `os-volume_attachments` made them (`openstack volume attachment list/show`).
//! Attachments are made and removed through Nova; the write side is not served.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use model::volume::{AttachmentRec, VolumeRec};
use serde_json::{Value, json};

use super::Version;
use crate::extract::{Caller, Path, QueryPairs};
use crate::{AppState, Fault};

/// The first microversion that has the attachments API.
const FIRST: u16 = 27;

fn needs_version(v: Version) -> Result<(), Fault> {
    if v.0 < FIRST {
        return Err(Fault::not_found("The resource could not be found."));
    }
    Ok(())
}

fn status(a: &AttachmentRec) -> &str {
    match a.status.as_str() {
        "reserved" => "reserved",
        "detaching" => "detaching",
        _ => "attached",
    }
}

fn view(a: &AttachmentRec, detail: bool) -> Value {
    let mut o = json!({
        "id": a.id,
        "status": status(a),
        "instance": a.server_id,
        "volume_id": a.volume_id,
    });
    if detail {
        o["attached_at"] = json!(a.attached_at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string());
        o["detached_at"] = Value::Null;
        o["attach_mode"] = json!(a.attach_mode);
        // What a host would need to connect is the box's own business.
        o["connection_info"] = json!({});
    }
    o
}

/// The attachments of the volumes the caller sees (every project's for an admin asking
/// with `all_tenants`), filtered as Cinder filters them, newest first.
async fn visible(
    s: &AppState,
    c: &model::Context,
    q: &QueryPairs,
) -> Result<Vec<AttachmentRec>, Fault> {
    let all = q
        .get("all_tenants")
        .is_some_and(|v| v != "0" && v != "false")
        && c.is_admin();
    let volumes: Vec<VolumeRec> = s.volumes.list(c, all).await?;
    let want = |k: &str| q.get(k).map(str::to_owned);
    let (vol, inst, st) = (want("volume_id"), want("instance_id"), want("status"));
    let mut out: Vec<AttachmentRec> = volumes
        .into_iter()
        .flat_map(|v| v.attachments)
        .filter(|a| vol.as_ref().is_none_or(|x| *x == a.volume_id))
        .filter(|a| inst.as_ref().is_none_or(|x| *x == a.server_id))
        .filter(|a| st.as_ref().is_none_or(|x| x == status(a)))
        .collect();
    out.sort_by(|a, b| b.attached_at.cmp(&a.attached_at).then(b.id.cmp(&a.id)));
    Ok(out)
}

async fn listing(
    s: &AppState,
    c: &model::Context,
    v: Version,
    q: &QueryPairs,
    detail: bool,
) -> Result<Json<Value>, Fault> {
    needs_version(v)?;
    let items: Vec<Value> = visible(s, c, q)
        .await?
        .iter()
        .map(|a| view(a, detail))
        .collect();
    Ok(Json(json!({ "attachments": items })))
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    Extension(v): Extension<Version>,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    listing(&s, &c, v, &q, false).await
}

pub async fn detail(
    State(s): State<AppState>,
    Caller(c): Caller,
    Extension(v): Extension<Version>,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    listing(&s, &c, v, &q, true).await
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    Extension(v): Extension<Version>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    needs_version(v)?;
    let found = s
        .volumes
        .list(&c, c.is_admin())
        .await?
        .into_iter()
        .flat_map(|v| v.attachments)
        .find(|a| a.id == id)
        .ok_or_else(|| Fault::not_found(format!("VolumeAttachment {id} could not be found.")))?;
    Ok(Json(json!({"attachment": view(&found, true)})))
}
