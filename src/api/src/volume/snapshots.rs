//! `/snapshots`: create, list, detail, show, update, delete.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::volumes::{metadata, text};
use super::{Version, boolish, parse_bool, views};
use crate::extract::{AnyJson, Caller, JsonBody, Path, QueryPairs};
use crate::{AppState, Fault};

async fn listing(
    s: &AppState,
    c: &model::Context,
    q: &QueryPairs,
) -> Result<Vec<model::volume::SnapshotRec>, Fault> {
    let all = q
        .get("all_tenants")
        .is_some_and(|v| parse_bool(v).unwrap_or(true));
    let mut items = s.volumes.list_snapshots(c, all).await?;
    if let Some(n) = q.get("name") {
        items.retain(|x| x.name.as_deref() == Some(n));
    }
    if let Some(st) = q.get("status") {
        items.retain(|x| x.status == st);
    }
    if let Some(v) = q.get("volume_id") {
        items.retain(|x| x.volume_id == v);
    }
    items.reverse();
    if let Some(m) = q.get("marker") {
        let at = items
            .iter()
            .position(|x| x.id == m)
            .ok_or_else(|| Fault::not_found(format!("Marker {m} could not be found.")))?;
        items.drain(..=at);
    }
    if let Some(l) = q.get("limit").and_then(|l| l.parse::<usize>().ok()) {
        items.truncate(l);
    }
    Ok(items)
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    Extension(v): Extension<Version>,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    let items = listing(&s, &c, &q).await?;
    Ok(Json(
        json!({"snapshots": items.iter().map(|x| views::snapshot(x, v.0)).collect::<Vec<_>>()}),
    ))
}

pub async fn detail(
    State(s): State<AppState>,
    Caller(c): Caller,
    Extension(v): Extension<Version>,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    let items = listing(&s, &c, &q).await?;
    Ok(Json(
        json!({"snapshots": items.iter().map(|x| views::snapshot(x, v.0)).collect::<Vec<_>>()}),
    ))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    Extension(v): Extension<Version>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let x = s.volumes.get_snapshot(&c, &id).await?;
    Ok(Json(json!({"snapshot": views::snapshot(&x, v.0)})))
}

pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    Extension(v): Extension<Version>,
    JsonBody(b): AnyJson,
) -> Result<(StatusCode, Json<Value>), Fault> {
    let o = b
        .get("snapshot")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            Fault::bad_request("Missing required element 'snapshot' in request body.")
        })?;
    let volume_id = o
        .get("volume_id")
        .and_then(Value::as_str)
        .ok_or_else(|| Fault::bad_request("Invalid input for field/attribute volume_id."))?
        .to_owned();
    let force = match o.get("force") {
        None | Some(Value::Null) => false,
        Some(x) => boolish(x)
            .ok_or_else(|| Fault::bad_request(format!("Invalid value '{x}' for force.")))?,
    };
    let meta = match o.get("metadata") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(m) => metadata(m, "metadata")?,
    };
    let req = volume::SnapshotCreate {
        volume_id,
        name: text(o, "name", 255)?
            .or(text(o, "display_name", 255)?)
            .flatten(),
        description: text(o, "description", 255)?
            .or(text(o, "display_description", 255)?)
            .flatten(),
        metadata: meta,
        force,
    };
    let x = s.volumes.create_snapshot(&c, req).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"snapshot": views::snapshot(&x, v.0)})),
    ))
}

pub async fn update(
    State(s): State<AppState>,
    Caller(c): Caller,
    Extension(v): Extension<Version>,
    Path(id): Path<String>,
    JsonBody(b): AnyJson,
) -> Result<Json<Value>, Fault> {
    let o = b
        .get("snapshot")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            Fault::bad_request("Missing required element 'snapshot' in request body.")
        })?;
    let x = s
        .volumes
        .update_snapshot(
            &c,
            &id,
            text(o, "name", 255)?.or(text(o, "display_name", 255)?),
            text(o, "description", 255)?.or(text(o, "display_description", 255)?),
            o.get("metadata")
                .map(|m| metadata(m, "metadata"))
                .transpose()?,
        )
        .await?;
    Ok(Json(json!({"snapshot": views::snapshot(&x, v.0)})))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Fault> {
    s.volumes.delete_snapshot(&c, &id).await?;
    Ok(StatusCode::ACCEPTED)
}
