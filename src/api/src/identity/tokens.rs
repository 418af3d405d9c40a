//! `/v3/auth/*`: issuing, validating and revoking tokens, and what a token may see.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use identity::{DomainRef, ProjectRef, Scope, TokenInfo, UserRef};
use model::{DomainId, ProjectId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::catalog::catalog;
use super::views::{self, keystone_time};
use crate::extract::{Caller, ClientAddr, JsonBody, QueryPairs};
use crate::{AppState, Fault};

#[derive(Deserialize)]
pub struct AuthBody {
    auth: Auth,
}

#[derive(Deserialize)]
struct Auth {
    identity: IdentityPart,
    #[serde(default)]
    scope: Option<Value>,
}

#[derive(Deserialize)]
struct IdentityPart {
    methods: Vec<String>,
    password: Option<PasswordPart>,
    token: Option<TokenPart>,
}

#[derive(Deserialize)]
struct PasswordPart {
    user: PasswordUser,
}

#[derive(Deserialize)]
struct PasswordUser {
    id: Option<String>,
    name: Option<String>,
    domain: Option<DomainSel>,
    password: String,
}

#[derive(Deserialize)]
struct DomainSel {
    id: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct TokenPart {
    id: String,
}

fn validation(msg: &str) -> Fault {
    Fault::bad_request(format!(
        "{msg} The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error."
    ))
}

fn domain_ref(d: Option<DomainSel>, what: &str) -> Result<DomainRef, Fault> {
    match d {
        Some(DomainSel { id: Some(id), .. }) => Ok(DomainRef::Id(DomainId::new(id))),
        Some(DomainSel {
            name: Some(name), ..
        }) => Ok(DomainRef::Name(name)),
        _ => Err(validation(&format!("Expecting to find domain in {what}."))),
    }
}

fn parse_scope(scope: Option<Value>) -> Result<Option<Scope>, Fault> {
    let Some(scope) = scope else {
        return Ok(None);
    };
    if scope == json!("unscoped") {
        return Ok(Some(Scope::Unscoped));
    }
    if let Some(p) = scope.get("project") {
        let p: ProjectSel = serde_json::from_value(p.clone())
            .map_err(|_| validation("Expecting to find project in scope."))?;
        return Ok(Some(Scope::Project(match p {
            ProjectSel { id: Some(id), .. } => ProjectRef::Id(ProjectId::new(id)),
            ProjectSel {
                name: Some(name),
                domain,
                ..
            } => ProjectRef::Name {
                name,
                domain: domain_ref(domain, "project")?,
            },
            _ => return Err(validation("Expecting to find id or name in project.")),
        })));
    }
    if scope.get("domain").is_some() || scope.get("system").is_some() {
        return Err(Fault::new(
            StatusCode::UNAUTHORIZED,
            "Domain and system scoped tokens are not supported by onebox; scope the token to a project.",
        ));
    }
    Err(validation("Expecting to find project in scope."))
}

#[derive(Deserialize)]
struct ProjectSel {
    id: Option<String>,
    name: Option<String>,
    domain: Option<DomainSel>,
}

/// In front of `POST /v3/auth/tokens`: a token bucket per client address; past it, 429 with
/// `Retry-After`, before the body is even read.
pub async fn rate_limit(
    State(s): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let ClientAddr(source) = ClientAddr::of(req.extensions());
    if let Err(e) = s.identity.admit_auth(source) {
        return Fault::from(e).into_response();
    }
    next.run(req).await
}

/// `POST /v3/auth/tokens`.
pub async fn issue(
    State(s): State<AppState>,
    ClientAddr(source): ClientAddr,
    h: HeaderMap,
    q: QueryPairs,
    JsonBody(body): JsonBody<AuthBody>,
) -> Result<Response, Fault> {
    let ident = body.auth.identity;
    let scope = parse_scope(body.auth.scope)?;
    let issued = if ident.methods.iter().any(|m| m == "password") {
        let user = ident
            .password
            .ok_or_else(|| validation("Expecting to find password in identity."))?
            .user;
        let uref = match (user.id, user.name) {
            (Some(id), _) => UserRef::Id(UserId::new(id)),
            (None, Some(name)) => UserRef::Name {
                name,
                domain: domain_ref(user.domain, "user")?,
            },
            (None, None) => return Err(validation("Expecting to find id or name in user.")),
        };
        let scope = match scope {
            Some(sc) => sc,
            None => default_scope(&s, uref.clone()).await?,
        };
        s.identity
            .authenticate_password_from(source, uref, user.password, scope)
            .await?
    } else if ident.methods.iter().any(|m| m == "token") {
        let token = ident
            .token
            .ok_or_else(|| validation("Expecting to find token in identity."))?;
        s.identity
            .authenticate_token(&token.id, scope.unwrap_or(Scope::Unscoped))
            .await?
    } else {
        return Err(Fault::new(
            StatusCode::UNAUTHORIZED,
            "Attempted to authenticate with an unsupported method.",
        ));
    };
    let with_catalog = q.get("nocatalog").is_none();
    let body = token_body(&s, &s.base_url(&h), &issued.info, with_catalog);
    let mut resp = (StatusCode::CREATED, Json(body)).into_response();
    let v = HeaderValue::from_str(&issued.token).map_err(|e| Fault::internal(&e))?;
    resp.headers_mut().insert("x-subject-token", v);
    Ok(resp)
}

/// With no scope, Keystone scopes to the user's default project when the user has a role
/// there, and leaves the token unscoped otherwise.
async fn default_scope(s: &AppState, user: UserRef) -> Result<Scope, Fault> {
    let Some(u) = s.identity.find_user(user).await? else {
        return Ok(Scope::Unscoped);
    };
    let Some(p) = u.default_project_id else {
        return Ok(Scope::Unscoped);
    };
    if s.identity.effective_roles(&u.id, &p).await?.is_empty() {
        return Ok(Scope::Unscoped);
    }
    Ok(Scope::Project(ProjectRef::Id(p)))
}

/// The body Keystone returns for a token.
pub fn token_body(s: &AppState, base: &str, info: &TokenInfo, with_catalog: bool) -> Value {
    let mut t = json!({
        "methods": info.record.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        "user": {
            "id": info.user.id.as_str(),
            "name": info.user.name,
            "domain": {"id": info.user_domain.id.as_str(), "name": info.user_domain.name},
            "password_expires_at": info.user.password_expires_at.map(keystone_time),
        },
        "audit_ids": info.record.audit_ids,
        "expires_at": keystone_time(info.record.expires_at),
        "issued_at": keystone_time(info.record.issued_at),
    });
    if let Some((p, d)) = &info.project {
        t["project"] = json!({
            "id": p.id.as_str(),
            "name": p.name,
            "domain": {"id": d.id.as_str(), "name": d.name},
        });
        t["is_domain"] = json!(false);
        t["roles"] = json!(
            info.roles
                .iter()
                .map(|r| json!({"id": r.id.as_str(), "name": r.name}))
                .collect::<Vec<_>>()
        );
        if with_catalog {
            t["catalog"] = catalog(s, base);
        }
    }
    json!({ "token": t })
}

fn subject(h: &HeaderMap) -> Result<String, Fault> {
    h.get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Fault::not_found("No token in the request"))
}

/// The subject token, if the caller may see it: its own, or any as an admin.
async fn subject_info(
    s: &AppState,
    caller: &identity::Context,
    h: &HeaderMap,
) -> Result<TokenInfo, Fault> {
    let token = subject(h)?;
    let info = s
        .identity
        .validate(&token)
        .await?
        .ok_or_else(|| Fault::not_found("Could not find token."))?;
    if !caller.is_admin() && caller.user_id != info.user.id {
        return Err(Fault::forbidden(
            "You are not authorized to perform the requested action: identity:validate_token.",
        ));
    }
    Ok(info)
}

/// `GET /v3/auth/tokens`.
pub async fn validate(
    State(s): State<AppState>,
    Caller(caller): Caller,
    h: HeaderMap,
    q: QueryPairs,
) -> Result<Response, Fault> {
    let info = subject_info(&s, &caller, &h).await?;
    let body = token_body(&s, &s.base_url(&h), &info, q.get("nocatalog").is_none());
    let mut resp = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&subject(&h)?) {
        resp.headers_mut().insert("x-subject-token", v);
    }
    Ok(resp)
}

/// `HEAD /v3/auth/tokens`.
pub async fn check(
    State(s): State<AppState>,
    Caller(caller): Caller,
    h: HeaderMap,
) -> Result<StatusCode, Fault> {
    subject_info(&s, &caller, &h).await?;
    Ok(StatusCode::OK)
}

/// `DELETE /v3/auth/tokens`: a user may revoke its own tokens, an admin any.
pub async fn revoke(
    State(s): State<AppState>,
    Caller(caller): Caller,
    h: HeaderMap,
) -> Result<StatusCode, Fault> {
    subject_info(&s, &caller, &h).await?;
    s.identity.revoke(&subject(&h)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v3/auth/catalog`.
pub async fn auth_catalog(
    State(s): State<AppState>,
    Caller(_): Caller,
    Extension(info): Extension<TokenInfo>,
    h: HeaderMap,
) -> Result<Json<Value>, Fault> {
    if info.project.is_none() {
        return Err(Fault::forbidden(
            "The service catalog is only available to a scoped token.",
        ));
    }
    let base = s.base_url(&h);
    Ok(Json(json!({
        "catalog": catalog(&s, &base),
        "links": {"self": format!("{base}/identity/v3/auth/catalog"), "previous": null, "next": null},
    })))
}

/// `GET /v3/auth/projects`: the projects the caller may scope to.
pub async fn projects(
    State(s): State<AppState>,
    Caller(caller): Caller,
    h: HeaderMap,
) -> Result<Json<Value>, Fault> {
    let base = s.base_url(&h);
    let ps = s.identity.projects_for(&caller.user_id).await?;
    Ok(Json(views::collection(
        "projects",
        format!("{base}/identity/v3/auth/projects"),
        ps.iter()
            .filter(|p| p.enabled)
            .map(|p| views::project(&base, p))
            .collect(),
    )))
}

/// `GET /v3/auth/domains`: onebox issues no domain-scoped tokens, so there are none.
pub async fn domains(State(s): State<AppState>, Caller(_): Caller, h: HeaderMap) -> Json<Value> {
    let base = s.base_url(&h);
    Json(views::collection(
        "domains",
        format!("{base}/identity/v3/auth/domains"),
        vec![],
    ))
}

/// `GET /v3/auth/system`: no system scope on onebox.
pub async fn system(State(s): State<AppState>, Caller(_): Caller, h: HeaderMap) -> Json<Value> {
    let base = s.base_url(&h);
    Json(views::collection(
        "system",
        format!("{base}/identity/v3/auth/system"),
        vec![],
    ))
}
