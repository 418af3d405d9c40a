//! `/v3/roles`, role grants on projects and domains, and `/v3/role_assignments`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use model::AssignmentFilter;
use model::{Assignment, DomainId, ProjectId, RoleId, Target, UserId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::projects::query_bool;
use super::views;
use crate::extract::{Caller, JsonBody, QueryPairs};
use crate::{AppState, Fault};

#[derive(Deserialize)]
pub struct CreateBody {
    role: CreateRole,
}

#[derive(Deserialize)]
struct CreateRole {
    name: String,
    description: Option<String>,
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    let base = s.base_url(&h);
    let rs = s
        .identity
        .list_roles(&c, q.get("name").map(str::to_owned))
        .await?;
    Ok(Json(views::collection(
        "roles",
        format!("{base}/identity/v3/roles"),
        rs.iter().map(|r| views::role(&base, r)).collect(),
    )))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let r = s.identity.get_role(&c, &RoleId::new(id)).await?;
    Ok(Json(json!({"role": views::role(&s.base_url(&h), &r)})))
}

pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<(StatusCode, Json<Value>), Fault> {
    let r = s
        .identity
        .create_role(&c, body.role.name, body.role.description)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"role": views::role(&s.base_url(&h), &r)})),
    ))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Fault> {
    s.identity.delete_role(&c, &RoleId::new(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn project_grant(p: String, u: String, r: String) -> Assignment {
    Assignment {
        user_id: UserId::new(u),
        target: Target::Project(ProjectId::new(p)),
        role_id: RoleId::new(r),
    }
}

fn domain_grant(d: String, u: String, r: String) -> Assignment {
    Assignment {
        user_id: UserId::new(u),
        target: Target::Domain(DomainId::new(d)),
        role_id: RoleId::new(r),
    }
}

pub async fn grant_project(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((p, u, r)): Path<(String, String, String)>,
) -> Result<StatusCode, Fault> {
    s.identity.grant(&c, project_grant(p, u, r)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn check_project_grant(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((p, u, r)): Path<(String, String, String)>,
) -> Result<StatusCode, Fault> {
    s.identity.check_grant(&c, project_grant(p, u, r)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn revoke_project(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((p, u, r)): Path<(String, String, String)>,
) -> Result<StatusCode, Fault> {
    s.identity.revoke_grant(&c, project_grant(p, u, r)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn grant_domain(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((d, u, r)): Path<(String, String, String)>,
) -> Result<StatusCode, Fault> {
    s.identity.grant(&c, domain_grant(d, u, r)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn check_domain_grant(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((d, u, r)): Path<(String, String, String)>,
) -> Result<StatusCode, Fault> {
    s.identity.check_grant(&c, domain_grant(d, u, r)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn revoke_domain(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((d, u, r)): Path<(String, String, String)>,
) -> Result<StatusCode, Fault> {
    s.identity.revoke_grant(&c, domain_grant(d, u, r)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn grants_on(
    s: &AppState,
    c: &identity::Context,
    h: &HeaderMap,
    user: UserId,
    target: Target,
    self_url: String,
) -> Result<Json<Value>, Fault> {
    let base = s.base_url(h);
    let assignments = s
        .identity
        .list_assignments(
            c,
            AssignmentFilter {
                user_id: Some(user),
                target: Some(target),
                role_id: None,
            },
        )
        .await?;
    let (_, _, roles) = s
        .identity
        .names(
            vec![],
            vec![],
            assignments.into_iter().map(|a| a.role_id).collect(),
        )
        .await?;
    Ok(Json(views::collection(
        "roles",
        self_url,
        roles.iter().map(|r| views::role(&base, r)).collect(),
    )))
}

pub async fn list_project_grants(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    Path((p, u)): Path<(String, String)>,
) -> Result<Json<Value>, Fault> {
    let url = format!(
        "{}/identity/v3/projects/{p}/users/{u}/roles",
        s.base_url(&h)
    );
    grants_on(
        &s,
        &c,
        &h,
        UserId::new(u),
        Target::Project(ProjectId::new(p)),
        url,
    )
    .await
}

pub async fn list_domain_grants(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    Path((d, u)): Path<(String, String)>,
) -> Result<Json<Value>, Fault> {
    let url = format!("{}/identity/v3/domains/{d}/users/{u}/roles", s.base_url(&h));
    grants_on(
        &s,
        &c,
        &h,
        UserId::new(u),
        Target::Domain(DomainId::new(d)),
        url,
    )
    .await
}

/// `GET /v3/role_assignments` with Keystone's filters `user.id`, `role.id`,
/// `scope.project.id`, `scope.domain.id`, and the flags `effective` and `include_names`.
pub async fn assignments(
    State(s): State<AppState>,
    Caller(c): Caller,
    h: HeaderMap,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    if q.get("group.id").is_some() || q.get("scope.system").is_some() {
        // onebox has neither groups nor system scope: nothing can match.
        let base = s.base_url(&h);
        return Ok(Json(views::collection(
            "role_assignments",
            format!("{base}/identity/v3/role_assignments"),
            vec![],
        )));
    }
    let target = match (q.get("scope.project.id"), q.get("scope.domain.id")) {
        (Some(p), _) => Some(Target::Project(ProjectId::new(p))),
        (None, Some(d)) => Some(Target::Domain(DomainId::new(d))),
        (None, None) => None,
    };
    let role_filter = q.get("role.id").map(RoleId::new);
    let effective = q.get("effective").is_some_and(query_bool);
    let include_names = q.get("include_names").is_some_and(query_bool);
    let filter = AssignmentFilter {
        user_id: q.get("user.id").map(UserId::new),
        target,
        // With `effective`, implied roles can match the filter, so filter after expansion.
        role_id: if effective { None } else { role_filter.clone() },
    };
    let mut list = s.identity.list_assignments(&c, filter).await?;
    // Each entry: the assignment, and the role it was implied by when `effective` expanded it.
    let mut entries: Vec<(Assignment, Option<RoleId>)> = Vec::new();
    for a in list.drain(..) {
        if effective {
            let implied = implied_closure(&s, &a.role_id).await?;
            for r in implied {
                let prior = (r != a.role_id).then(|| a.role_id.clone());
                entries.push((
                    Assignment {
                        role_id: r,
                        ..a.clone()
                    },
                    prior,
                ));
            }
        } else {
            entries.push((a, None));
        }
    }
    if let Some(r) = &role_filter {
        entries.retain(|(a, _)| &a.role_id == r);
    }
    let base = s.base_url(&h);
    let names = if include_names {
        let users = entries.iter().map(|(a, _)| a.user_id.clone()).collect();
        let projects = entries
            .iter()
            .filter_map(|(a, _)| match &a.target {
                Target::Project(p) => Some(p.clone()),
                Target::Domain(_) => None,
            })
            .collect();
        let roles = entries.iter().map(|(a, _)| a.role_id.clone()).collect();
        Some(s.identity.names(users, projects, roles).await?)
    } else {
        None
    };
    let user_names: HashMap<String, (String, String)> = names
        .as_ref()
        .map(|(us, _, _)| {
            us.iter()
                .map(|u| (u.id.to_string(), (u.name.clone(), u.domain_id.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let project_names: HashMap<String, (String, String)> = names
        .as_ref()
        .map(|(_, ps, _)| {
            ps.iter()
                .map(|p| (p.id.to_string(), (p.name.clone(), p.domain_id.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let role_names: HashMap<String, String> = names
        .as_ref()
        .map(|(_, _, rs)| {
            rs.iter()
                .map(|r| (r.id.to_string(), r.name.clone()))
                .collect()
        })
        .unwrap_or_default();
    let domain_name = |id: &str| {
        if id == "default" {
            "Default".to_owned()
        } else {
            id.to_owned()
        }
    };

    let items = entries
        .iter()
        .map(|(a, prior)| {
            let (scope_kind, scope_id) = match &a.target {
                Target::Project(p) => ("projects", p.to_string()),
                Target::Domain(d) => ("domains", d.to_string()),
            };
            let mut user = json!({"id": a.user_id.as_str()});
            let mut role = json!({"id": a.role_id.as_str()});
            let mut scope_obj = json!({"id": scope_id});
            if include_names {
                if let Some((n, d)) = user_names.get(a.user_id.as_str()) {
                    user["name"] = json!(n);
                    user["domain"] = json!({"id": d, "name": domain_name(d)});
                }
                if let Some(n) = role_names.get(a.role_id.as_str()) {
                    role["name"] = json!(n);
                }
                match &a.target {
                    Target::Project(p) => {
                        if let Some((n, d)) = project_names.get(p.as_str()) {
                            scope_obj["name"] = json!(n);
                            scope_obj["domain"] = json!({"id": d, "name": domain_name(d)});
                        }
                    }
                    Target::Domain(d) => {
                        scope_obj["name"] = json!(domain_name(d.as_str()));
                    }
                }
            }
            let origin_role = prior.as_ref().unwrap_or(&a.role_id);
            let mut links = json!({
                "assignment": format!(
                    "{base}/identity/v3/{scope_kind}/{scope_id}/users/{}/roles/{origin_role}",
                    a.user_id
                )
            });
            if let Some(p) = prior {
                links["prior_role"] = json!(format!("{base}/identity/v3/roles/{p}"));
            }
            let scope = if scope_kind == "projects" {
                json!({"project": scope_obj})
            } else {
                json!({"domain": scope_obj})
            };
            json!({"role": role, "user": user, "scope": scope, "links": links})
        })
        .collect();
    Ok(Json(views::collection(
        "role_assignments",
        format!("{base}/identity/v3/role_assignments"),
        items,
    )))
}

/// A role and every role it implies, directly or not.
async fn implied_closure(s: &AppState, role: &RoleId) -> Result<Vec<RoleId>, Fault> {
    let pairs = s.identity.implied_pairs().await?;
    let mut out = vec![role.clone()];
    let mut i = 0;
    while i < out.len() {
        let cur = out[i].clone();
        for (prior, implied) in &pairs {
            if prior == &cur && !out.contains(implied) {
                out.push(implied.clone());
            }
        }
        i += 1;
    }
    Ok(out)
}
