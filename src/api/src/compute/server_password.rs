//! `/servers/{id}/os-server-password`: the encrypted password the guest posted to the
//! metadata service (empty when none), and clearing it. Another project's server is a 404.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::extract::{Caller, Path};
use crate::{AppState, Fault};

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let password = s.compute.server_password(&c, &id).await?;
    Ok(Json(json!({ "password": password })))
}

/// `DELETE`: 204. The guest's own password does not change.
pub async fn clear(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Fault> {
    s.compute.clear_server_password(&c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
