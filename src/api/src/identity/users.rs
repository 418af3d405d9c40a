//! `/v3/users`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use identity::{NewUser, UserPatch};
use model::UserFilter;
use model::{DomainId, ProjectId, UserId};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::projects::query_bool;
use super::views;
use crate::extract::{Caller, JsonBody, QueryPairs};
use crate::{AppState, Fault};

#[derive(Deserialize)]
pub struct CreateBody {
    user: CreateUser,
}

#[derive(Deserialize)]
struct CreateUser {
    name: String,
    domain_id: Option<String>,
    password: Option<String>,
    email: Option<String>,
    description: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    default_project_id: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
pub struct UpdateBody {
    user: UpdateUser,
}

/// A field that may be absent (leave alone), null (clear) or a value.
fn some_nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct UpdateUser {
    name: Option<String>,
    password: Option<String>,
    #[serde(default, deserialize_with = "some_nullable")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "some_nullable")]
    description: Option<Option<String>>,
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "some_nullable")]
    default_project_id: Option<Option<String>>,
}

#[derive(Deserialize)]
pub struct PasswordBody {
    user: PasswordChange,
}

#[derive(Deserialize)]
struct PasswordChange {
    original_password: String,
    password: String,
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    let base = s.base_url(&h);
    let filter = UserFilter {
        name: q.get("name").map(str::to_owned),
        domain_id: q.get("domain_id").map(DomainId::new),
        enabled: q.get("enabled").map(query_bool),
    };
    let us = s.identity.list_users(&c, filter).await?;
    Ok(Json(views::collection(
        "users",
        format!("{base}/identity/v3/users"),
        us.iter().map(|u| views::user(&base, u)).collect(),
    )))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let u = s.identity.get_user(&c, &UserId::new(id)).await?;
    Ok(Json(json!({"user": views::user(&s.base_url(&h), &u)})))
}

pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<(StatusCode, Json<Value>), Fault> {
    let b = body.user;
    let u = s
        .identity
        .create_user(
            &c,
            NewUser {
                name: b.name,
                domain_id: b.domain_id.map(DomainId::new),
                password: b.password,
                email: b.email,
                description: b.description,
                enabled: b.enabled,
                default_project_id: b.default_project_id.map(ProjectId::new),
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"user": views::user(&s.base_url(&h), &u)})),
    ))
}

pub async fn update(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateBody>,
) -> Result<Json<Value>, Fault> {
    let b = body.user;
    let u = s
        .identity
        .update_user(
            &c,
            &UserId::new(id),
            UserPatch {
                name: b.name,
                password: b.password,
                email: b.email,
                description: b.description,
                enabled: b.enabled,
                default_project_id: b.default_project_id.map(|p| p.map(ProjectId::new)),
            },
        )
        .await?;
    Ok(Json(json!({"user": views::user(&s.base_url(&h), &u)})))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Fault> {
    s.identity.delete_user(&c, &UserId::new(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v3/users/{id}/password`: a user changes its own password.
pub async fn change_password(
    State(s): State<AppState>,
    Caller(c): Caller,
    crate::extract::ClientAddr(source): crate::extract::ClientAddr,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PasswordBody>,
) -> Result<StatusCode, Fault> {
    s.identity
        .change_own_password(
            &c,
            &UserId::new(id),
            body.user.original_password,
            body.user.password,
            source,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v3/users/{id}/projects`: the projects a user has roles on.
pub async fn projects(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let user = UserId::new(id);
    if !c.is_admin() && !c.is_self(&user) {
        return Err(identity::policy::forbidden().into());
    }
    let base = s.base_url(&h);
    let ps = s.identity.projects_for(&user).await?;
    Ok(Json(views::collection(
        "projects",
        format!("{base}/identity/v3/users/{user}/projects"),
        ps.iter().map(|p| views::project(&base, p)).collect(),
    )))
}
