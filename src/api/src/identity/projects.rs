//! `/v3/projects`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use identity::{NewProject, ProjectPatch};
use model::ProjectFilter;
use model::{DomainId, ProjectId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::views;
use crate::extract::{Caller, JsonBody, QueryPairs};
use crate::{AppState, Fault};

#[derive(Deserialize)]
pub struct CreateBody {
    project: CreateProject,
}

#[derive(Deserialize)]
struct CreateProject {
    name: String,
    domain_id: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    is_domain: bool,
    parent_id: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
pub struct UpdateBody {
    project: UpdateProject,
}

#[derive(Deserialize)]
struct UpdateProject {
    name: Option<String>,
    description: Option<String>,
    enabled: Option<bool>,
}

/// Keystone's boolean query values: `0`, `false`, `no`, `off` and the empty string... are false.
pub fn query_bool(v: &str) -> bool {
    !matches!(
        v.to_ascii_lowercase().as_str(),
        "0" | "false" | "f" | "no" | "n" | "off"
    )
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    let base = s.base_url(&h);
    let filter = ProjectFilter {
        name: q.get("name").map(str::to_owned),
        domain_id: q.get("domain_id").map(DomainId::new),
        enabled: q.get("enabled").map(query_bool),
    };
    let ps = s.identity.list_projects(&c, filter).await?;
    Ok(Json(views::collection(
        "projects",
        format!("{base}/identity/v3/projects"),
        ps.iter().map(|p| views::project(&base, p)).collect(),
    )))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let p = s.identity.get_project(&c, &ProjectId::new(id)).await?;
    Ok(Json(
        json!({"project": views::project(&s.base_url(&h), &p)}),
    ))
}

pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<(StatusCode, Json<Value>), Fault> {
    let b = body.project;
    if b.is_domain {
        return Err(Fault::new(
            StatusCode::NOT_IMPLEMENTED,
            "Projects acting as domains are not supported.",
        ));
    }
    // Projects are flat: a parent, if named, must be the project's domain.
    let domain_id = b.domain_id.map(DomainId::new);
    if let (Some(parent), Some(d)) = (&b.parent_id, &domain_id)
        && parent != d.as_str()
    {
        return Err(Fault::bad_request(
            "Project hierarchies are not supported: parent_id must be the domain.",
        ));
    }
    let p = s
        .identity
        .create_project(
            &c,
            NewProject {
                name: b.name,
                domain_id: domain_id.or(b.parent_id.map(DomainId::new)),
                description: b.description.unwrap_or_default(),
                enabled: b.enabled,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"project": views::project(&s.base_url(&h), &p)})),
    ))
}

pub async fn update(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateBody>,
) -> Result<Json<Value>, Fault> {
    let b = body.project;
    let p = s
        .identity
        .update_project(
            &c,
            &ProjectId::new(id),
            ProjectPatch {
                name: b.name,
                description: b.description,
                enabled: b.enabled,
            },
        )
        .await?;
    Ok(Json(
        json!({"project": views::project(&s.base_url(&h), &p)}),
    ))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Fault> {
    s.identity.delete_project(&c, &ProjectId::new(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
