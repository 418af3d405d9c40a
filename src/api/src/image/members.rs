//! `/v2/images/{id}/members`: sharing an image with other projects.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use model::ProjectId;
use model::image::MemberStatus;
use serde_json::{Value, json};

use super::{image_id, views};
use crate::extract::{AnyJson, Caller, JsonBody};
use crate::{AppState, Fault};

fn field<'a>(body: &'a Value, key: &str) -> Result<&'a str, Fault> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Fault::bad_request(format!(
                "Provided object does not match schema 'member': '{key}' is a required property"
            ))
        })
}

pub async fn add(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    let member = ProjectId::new(field(&body, "member")?);
    let m = s.images.add_member(&c, &image_id(&id)?, member).await?;
    Ok(Json(views::member(&m)))
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let ms = s.images.list_members(&c, &image_id(&id)?).await?;
    Ok(Json(json!({
        "members": ms.iter().map(views::member).collect::<Vec<_>>(),
        "schema": "/v2/schemas/members",
    })))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, member)): Path<(String, String)>,
) -> Result<Json<Value>, Fault> {
    let m = s
        .images
        .get_member(&c, &image_id(&id)?, &ProjectId::new(member))
        .await?;
    Ok(Json(views::member(&m)))
}

pub async fn update(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, member)): Path<(String, String)>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    let raw = field(&body, "status")?;
    let status = MemberStatus::parse(raw).ok_or_else(|| {
        Fault::bad_request(format!(
            "Provided object does not match schema 'member': '{raw}' is not one of ['pending', 'accepted', 'rejected']"
        ))
    })?;
    let m = s
        .images
        .update_member(&c, &image_id(&id)?, &ProjectId::new(member), status)
        .await?;
    Ok(Json(views::member(&m)))
}

pub async fn remove(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, member)): Path<(String, String)>,
) -> Result<StatusCode, Fault> {
    s.images
        .remove_member(&c, &image_id(&id)?, &ProjectId::new(member))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
