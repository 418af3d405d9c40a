//! `/v2.0/{resources}/{id}/tags[/{tag}]`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use serde_json::{Value, json};

use super::body;
use crate::extract::{AnyJson, Caller, JsonBody};
use crate::{AppState, Fault};

/// The collection a tags path is under (`/network/v2.0/<collection>/{id}/tags…`).
fn kind(uri: &Uri) -> Result<::network::Tagged, Fault> {
    let coll = uri.path().split('/').nth(3).unwrap_or_default();
    ::network::Tagged::parse(coll)
        .ok_or_else(|| Fault::not_found("The resource could not be found.").kind("HTTPNotFound"))
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let tags = s.network.tags(&c, kind(&uri)?, &id).await?;
    Ok(Json(json!({ "tags": tags })))
}

pub async fn replace(
    State(s): State<AppState>,
    Caller(c): Caller,
    uri: Uri,
    Path(id): Path<String>,
    JsonBody(b): AnyJson,
) -> Result<Json<Value>, Fault> {
    let o = b
        .as_object()
        .ok_or_else(|| body::invalid("Invalid tags body"))?;
    let tags = body::string_list(o, "tags")?.ok_or_else(|| body::invalid("Invalid tags body"))?;
    let tags = s.network.set_tags(&c, kind(&uri)?, &id, tags).await?;
    Ok(Json(json!({ "tags": tags })))
}

pub async fn clear(
    State(s): State<AppState>,
    Caller(c): Caller,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<StatusCode, Fault> {
    s.network.set_tags(&c, kind(&uri)?, &id, Vec::new()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn check(
    State(s): State<AppState>,
    Caller(c): Caller,
    uri: Uri,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, Fault> {
    let tags = s.network.tags(&c, kind(&uri)?, &id).await?;
    if tags.contains(&tag) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(
            Fault::not_found(format!("Tag {tag} could not be found for resource {id}."))
                .kind("TagNotFound"),
        )
    }
}

pub async fn add(
    State(s): State<AppState>,
    Caller(c): Caller,
    uri: Uri,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, Fault> {
    s.network.add_tag(&c, kind(&uri)?, &id, &tag).await?;
    Ok(StatusCode::CREATED)
}

pub async fn remove(
    State(s): State<AppState>,
    Caller(c): Caller,
    uri: Uri,
    Path((id, tag)): Path<(String, String)>,
) -> Result<StatusCode, Fault> {
    s.network.remove_tag(&c, kind(&uri)?, &id, &tag).await?;
    Ok(StatusCode::NO_CONTENT)
}
