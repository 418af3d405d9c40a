//! `/servers/{id}/metadata`: a server's metadata, all at once or one key at a time.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::servers::server;
use super::validate as v;
use crate::extract::{AnyJson, Caller, JsonBody, Path};
use crate::{AppState, Fault};

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    Ok(Json(
        json!({"metadata": server(&s, &c, &id).await?.metadata}),
    ))
}

async fn set_all(
    s: &AppState,
    c: &identity::Context,
    id: &str,
    body: &Value,
    replace: bool,
) -> Result<Json<Value>, Fault> {
    let root = v::root(body)?;
    let m = v::required(root, "metadata")?;
    v::only("", body, &["metadata"])?;
    let items = v::metadata("metadata", m)?;
    let out = s.compute.set_metadata(c, id, items, replace).await?;
    Ok(Json(json!({ "metadata": out })))
}

pub async fn merge(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    set_all(&s, &c, &id, &body, false).await
}

pub async fn replace(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    set_all(&s, &c, &id, &body, true).await
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, key)): Path<(String, String)>,
) -> Result<Json<Value>, Fault> {
    let sv = server(&s, &c, &id).await?;
    let val = sv
        .metadata
        .get(&key)
        .ok_or_else(|| Fault::not_found("Metadata item was not found"))?;
    Ok(Json(json!({"meta": { key: val }})))
}

pub async fn set(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, key)): Path<(String, String)>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    let root = v::root(&body)?;
    let m = v::required(root, "meta")?;
    v::only("", &body, &["meta"])?;
    let items = v::metadata("meta", m)?;
    if items.len() != 1 {
        return Err(Fault::bad_request("Request body contains too many items"));
    }
    if !items.contains_key(&key) {
        return Err(Fault::bad_request("Request body and URI mismatch"));
    }
    s.compute
        .set_metadata(&c, &id, items.clone(), false)
        .await?;
    Ok(Json(json!({ "meta": items })))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode, Fault> {
    s.compute.delete_metadata_item(&c, &id, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
