//! `/servers/{id}/os-volume_attachments`: list, show, attach, detach.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use model::volume::AttachmentRec;
use serde_json::{Value, json};

use super::validate as v;
use crate::extract::{AnyJson, Caller, JsonBody, Path};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

fn view(a: &AttachmentRec, ver: ApiVersion) -> Value {
    let mut o = json!({
        "serverId": a.server_id,
        "volumeId": a.volume_id,
        "device": a.device,
    });
    if !ver.at_least(89) {
        o["id"] = json!(a.volume_id);
    }
    if ver.at_least(70) {
        o["tag"] = json!(a.tag);
    }
    if ver.at_least(79) {
        o["delete_on_termination"] = json!(a.delete_on_termination);
    }
    if ver.at_least(89) {
        o["attachment_id"] = json!(a.id);
        o["bdm_uuid"] = json!(a.id);
    }
    o
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let atts = s.compute.volume_attachments(&c, &id).await?;
    Ok(Json(
        json!({"volumeAttachments": atts.iter().map(|a| view(a, ver)).collect::<Vec<_>>()}),
    ))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path((id, volume)): Path<(String, String)>,
) -> Result<Json<Value>, Fault> {
    let atts = s.compute.volume_attachments(&c, &id).await?;
    let a = atts
        .iter()
        .find(|a| a.volume_id == volume)
        .ok_or_else(|| Fault::not_found(format!("Volume {volume} is not attached to {id}")))?;
    Ok(Json(json!({"volumeAttachment": view(a, ver)})))
}

pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
    JsonBody(b): AnyJson,
) -> Result<Response, Fault> {
    let o = b
        .get("volumeAttachment")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            Fault::bad_request(
                "Invalid input for field/attribute volumeAttachment. Value: None. 'volumeAttachment' is a required property",
            )
        })?;
    let mut allowed = vec!["volumeId", "device"];
    if ver.at_least(49) {
        allowed.push("tag");
    }
    if ver.at_least(79) {
        allowed.push("delete_on_termination");
    }
    v::only("volumeAttachment", &b["volumeAttachment"], &allowed)?;
    let volume_id = o
        .get("volumeId")
        .and_then(Value::as_str)
        .filter(|v| uuid::Uuid::parse_str(v).is_ok())
        .ok_or_else(|| {
            Fault::bad_request(
                "Invalid input for field/attribute volumeId. Value: None. 'volumeId' is a required property and must be a UUID",
            )
        })?
        .to_owned();
    let text = |k: &str| -> Result<Option<String>, Fault> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(v)) if v.len() <= 255 => Ok(Some(v.clone())),
            Some(v) => Err(Fault::bad_request(format!(
                "Invalid input for field/attribute {k}. Value: {v}. {v} is not of type 'string', 'null'"
            ))),
        }
    };
    let delete_on_termination = match o.get("delete_on_termination") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(Fault::bad_request(format!(
                "Invalid input for field/attribute delete_on_termination. Value: {v}. {v} is not of type 'boolean'"
            )));
        }
    };
    let req = compute::volumes::VolumeAttach {
        volume_id,
        device: text("device")?,
        tag: text("tag")?,
        delete_on_termination,
    };
    let a = s.compute.attach_volume(&c, &id, req).await?;
    // From 2.101 an attach answers 202 without a body, as Nova's asynchronous attach does.
    if ver.at_least(101) {
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    Ok(Json(json!({"volumeAttachment": created_view(&a, ver)})).into_response())
}

/// What an attach answered before 2.101: the volume id as `id` at every version, and never
/// 2.89's attachment ids (Nova's attach answer did not follow 2.89).
fn created_view(a: &AttachmentRec, ver: ApiVersion) -> Value {
    let mut o = json!({
        "id": a.volume_id,
        "serverId": a.server_id,
        "volumeId": a.volume_id,
        "device": a.device,
    });
    if ver.at_least(70) {
        o["tag"] = json!(a.tag);
    }
    if ver.at_least(79) {
        o["delete_on_termination"] = json!(a.delete_on_termination);
    }
    o
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, volume)): Path<(String, String)>,
) -> Result<StatusCode, Fault> {
    s.compute.detach_volume(&c, &id, &volume).await?;
    Ok(StatusCode::ACCEPTED)
}
