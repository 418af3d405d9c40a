//! The Block Storage API (Cinder v3), under `/volume`.
//!
//! | method | path | handler |
//! |---|---|---|
//! | GET | `/`, `/v3/` | version documents |
//! | GET, POST | `/v3[/{project_id}]/volumes`, `…/volumes/detail` | [`volumes`] |
//! | GET, PUT, DELETE | `/v3[/{project_id}]/volumes/{id}` | [`volumes`] |
//! | POST | `/v3[/{project_id}]/volumes/{id}/action` | [`volumes::action`] |
//! | GET, POST, PUT / GET, PUT, DELETE | `…/volumes/{id}/metadata[/{key}]` | [`volumes`] |
//! | GET, POST / GET, PUT, DELETE | `…/snapshots[/detail]`, `…/snapshots/{id}` | [`snapshots`] |
//! | GET | `…/types[/default,/{id}]`, `…/limits`, `…/os-availability-zone`, `…/os-services` | [`misc`] |
//! | GET, PUT, DELETE | `…/os-quota-sets/{project}[/defaults]` | [`misc`] |
//!
//! A project id in the URL must be the token's ("Malformed request url" otherwise); without
//! one the path is the same (Cinder allows it since 3.67). `OpenStack-API-Version: volume
//! 3.x` picks the microversion. Faults are Cinder's (`{"itemNotFound": {"code", "message"}}`,
//! [`fault::render`] with [`Service::Volume`]).

mod attachments;
pub(crate) mod for_compute;
mod misc;
mod snapshots;
pub mod views;
mod volumes;

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};
use tower::ServiceBuilder;

use crate::{AppState, Fault, Service, auth, fault};

/// The microversions served.
pub const MIN_VERSION: u16 = 0;
pub const MAX_VERSION: u16 = 71;

/// The negotiated microversion's minor number (`3.x`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u16);

/// The project part of the URL prefix the client used, for links.
#[derive(Clone, Debug)]
pub struct Prefix(pub String);

fn api_routes(state: AppState) -> Router {
    Router::new()
        .route("/volumes", get(volumes::list).post(volumes::create))
        .route("/volumes/detail", get(volumes::detail))
        .route(
            "/volumes/{id}",
            get(volumes::show)
                .put(volumes::update)
                .delete(volumes::delete),
        )
        .route("/volumes/{id}/action", axum::routing::post(volumes::action))
        .route(
            "/volumes/{id}/metadata",
            get(volumes::metadata_list)
                .post(volumes::metadata_merge)
                .put(volumes::metadata_replace),
        )
        .route(
            "/volumes/{id}/metadata/{key}",
            get(volumes::metadata_show)
                .put(volumes::metadata_set)
                .delete(volumes::metadata_delete),
        )
        .route("/attachments", get(attachments::list))
        .route("/attachments/detail", get(attachments::detail))
        .route("/attachments/{id}", get(attachments::show))
        .route("/snapshots", get(snapshots::list).post(snapshots::create))
        .route("/snapshots/detail", get(snapshots::detail))
        .route(
            "/snapshots/{id}",
            get(snapshots::show)
                .put(snapshots::update)
                .delete(snapshots::delete),
        )
        .route("/types", get(misc::types).post(misc::type_create))
        .route("/types/default", get(misc::default_type))
        .route("/types/{id}", get(misc::type_show))
        .route("/limits", get(misc::limits))
        .route("/os-availability-zone", get(misc::zones))
        .route("/os-services", get(misc::services))
        .route("/extensions", get(misc::extensions))
        .route(
            "/os-quota-sets/{project}",
            get(misc::quota_show)
                .put(misc::quota_update)
                .delete(misc::quota_reset),
        )
        .route(
            "/os-quota-sets/{project}/defaults",
            get(misc::quota_defaults),
        )
        .fallback(fault::unknown_route)
        .with_state(state)
}

pub fn router(state: AppState) -> Router {
    let v3 = ServiceBuilder::new()
        .layer(from_fn_with_state(state.clone(), auth::required))
        .layer(from_fn(microversion))
        .layer(from_fn(project_scope))
        .service(api_routes(state.clone()));
    Router::new()
        .route("/volume", get(versions))
        .route("/volume/", get(versions))
        .route("/volume/v3", get(v3_doc))
        .route("/volume/v3/", get(v3_doc))
        .route_service("/volume/v3/{*rest}", v3)
        .route("/volume/{*rest}", any(fault::unknown_route))
        .layer(from_fn(|req, next| {
            fault::render(Service::Volume, req, next)
        }))
        .with_state(state)
}

/// Collections served without a project id in front.
const COLLECTIONS: &[&str] = &[
    "volumes",
    "snapshots",
    "types",
    "limits",
    "os-availability-zone",
    "os-services",
    "os-quota-sets",
    "extensions",
    "attachments",
    "backups",
    "groups",
    "messages",
];

/// Strips an optional project id after `/volume/v3`, refusing one that is not the token's.
async fn project_scope(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let rest = path.strip_prefix("/volume/v3/").unwrap_or("");
    let (first, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let token_project = req
        .extensions()
        .get::<identity::Context>()
        .and_then(|c| c.project_id.clone());
    let inner = if COLLECTIONS.contains(&first) {
        format!("/{rest}")
    } else {
        if token_project.as_ref().map(|p| p.as_str()) != Some(first) {
            return Fault::bad_request("Malformed request url").into_response();
        }
        format!("/{tail}")
    };
    let pq = match req.uri().query() {
        Some(q) => format!("{inner}?{q}"),
        None => inner,
    };
    match pq.parse::<Uri>() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return Fault::not_found("The resource could not be found.").into_response(),
    }
    let prefix = token_project.map(|p| p.to_string()).unwrap_or_default();
    req.extensions_mut().insert(Prefix(prefix));
    next.run(req).await
}

/// Parses `OpenStack-API-Version: volume 3.x` (absent: 3.0; `latest`: the maximum).
fn requested(headers: &HeaderMap) -> Result<Version, Fault> {
    let Some(v) = headers
        .get_all("openstack-api-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|v| {
            let v = v.trim();
            let (svc, ver) = v.split_once(' ')?;
            (svc.eq_ignore_ascii_case("volume")).then(|| ver.trim().to_owned())
        })
    else {
        return Ok(Version(MIN_VERSION));
    };
    if v == "latest" {
        return Ok(Version(MAX_VERSION));
    }
    let bad = || {
        Fault::bad_request(format!(
            "Invalid API version request string {v}: API version request must be in the format 'X.Y' where X and Y are integers (e.g. 3.0)."
        ))
    };
    let (major, minor) = v.split_once('.').ok_or_else(bad)?;
    let (major, minor): (u16, u16) = (
        major.parse().map_err(|_| bad())?,
        minor.parse().map_err(|_| bad())?,
    );
    if major != 3 || !(MIN_VERSION..=MAX_VERSION).contains(&minor) {
        return Err(Fault::new(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "Version {major}.{minor} is not supported by the API. Minimum is 3.{MIN_VERSION} and maximum is 3.{MAX_VERSION}."
            ),
        ));
    }
    Ok(Version(minor))
}

async fn microversion(mut req: Request, next: Next) -> Response {
    let v = match requested(req.headers()) {
        Ok(v) => v,
        Err(f) => return f.into_response(),
    };
    req.extensions_mut().insert(v);
    let mut resp = next.run(req).await;
    if let Ok(h) = HeaderValue::from_str(&format!("volume 3.{}", v.0)) {
        resp.headers_mut().insert("openstack-api-version", h);
    }
    resp.headers_mut()
        .insert("vary", HeaderValue::from_static("OpenStack-API-Version"));
    resp
}

impl From<::volume::Error> for Fault {
    fn from(e: ::volume::Error) -> Self {
        use ::volume::Error as E;
        match e {
            E::NotFound(m) => Fault::not_found(m),
            E::BadRequest(m) => Fault::bad_request(m),
            E::Forbidden(m) => Fault::forbidden(m),
            E::OverQuota(m) => Fault::new(StatusCode::PAYLOAD_TOO_LARGE, m),
            E::Backend(b) => Fault::internal(&b),
            E::Store(s) => crate::fault::storage(s.conflict(), &s),
        }
    }
}

fn version_doc(href: String) -> Value {
    json!({
        "id": "v3.0",
        "status": "CURRENT",
        "version": format!("3.{MAX_VERSION}"),
        "min_version": format!("3.{MIN_VERSION}"),
        "updated": "2023-08-31T00:00:00Z",
        "links": [
            {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
            {"rel": "self", "href": href},
        ],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}
        ],
    })
}

async fn versions(State(s): State<AppState>, h: HeaderMap) -> (StatusCode, Json<Value>) {
    let href = format!("{}/volume/v3/", s.base_url(&h));
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(json!({ "versions": [version_doc(href)] })),
    )
}

async fn v3_doc(State(s): State<AppState>, h: HeaderMap) -> Json<Value> {
    let href = format!("{}/volume/v3/", s.base_url(&h));
    Json(json!({ "versions": [version_doc(href)] }))
}

/// The base of links: `<base>/volume/v3/<project>`.
fn link_base(s: &AppState, h: &HeaderMap, p: &Prefix) -> String {
    format!("{}/volume/v3/{}", s.base_url(h), p.0)
}

/// A boolean as Cinder reads one from a body or query (`true`, `"True"`, `"1"`, …).
fn boolish(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => parse_bool(s),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        _ => None,
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "on" | "t" => Some(true),
        "false" | "0" | "no" | "n" | "off" | "f" => Some(false),
        _ => None,
    }
}
