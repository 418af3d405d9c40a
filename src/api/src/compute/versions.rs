//! Compute version documents, shaped as `api_samples/versions/` shows them.

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::AppState;
use crate::microversion::{MAX_VERSION, MIN_VERSION};

const V21_UPDATED: &str = "2013-07-23T11:33:21Z";
const V20_UPDATED: &str = "2025-07-04T12:00:00Z";

struct Entry {
    id: &'static str,
    path: &'static str,
    status: &'static str,
    version: String,
    min_version: String,
    updated: &'static str,
    media_type: &'static str,
}

fn entries() -> [Entry; 2] {
    [
        Entry {
            id: "v2.0",
            path: "v2",
            status: "DEPRECATED",
            version: String::new(),
            min_version: String::new(),
            updated: V20_UPDATED,
            media_type: "application/vnd.openstack.compute+json;version=2",
        },
        Entry {
            id: "v2.1",
            path: "v2.1",
            status: "CURRENT",
            version: MAX_VERSION.to_string(),
            min_version: MIN_VERSION.to_string(),
            updated: V21_UPDATED,
            media_type: "application/vnd.openstack.compute+json;version=2.1",
        },
    ]
}

fn summary(base: &str, e: &Entry) -> Value {
    json!({
        "id": e.id,
        "status": e.status,
        "version": e.version,
        "min_version": e.min_version,
        "updated": e.updated,
        "links": [{"rel": "self", "href": format!("{base}/compute/{}/", e.path)}],
    })
}

fn document(base: &str, e: &Entry) -> Value {
    json!({"version": {
        "id": e.id,
        "status": e.status,
        "version": e.version,
        "min_version": e.min_version,
        "updated": e.updated,
        "links": [
            {"rel": "self", "href": format!("{base}/compute/{}/", e.path)},
            {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"},
        ],
        "media-types": [{"base": "application/json", "type": e.media_type}],
    }})
}

/// `GET /compute/`: every version, 200.
pub async fn list(State(s): State<AppState>, h: HeaderMap) -> Json<Value> {
    let base = s.base_url(&h);
    Json(json!({"versions": entries().iter().map(|e| summary(&base, e)).collect::<Vec<_>>()}))
}

/// `GET /compute/v2.1/` (also reached as `/compute/v2.1/{project_id}/` with a token).
pub async fn v21_doc(State(s): State<AppState>, h: HeaderMap) -> Json<Value> {
    let [_, v21] = entries();
    Json(document(&s.base_url(&h), &v21))
}

/// `GET /compute/v2/`.
pub async fn v20_doc(State(s): State<AppState>, h: HeaderMap) -> Json<Value> {
    let [v20, _] = entries();
    Json(document(&s.base_url(&h), &v20))
}

/// Any other unversioned path: 300 with a choice per version, pointing at the same path.
pub async fn choices(
    State(s): State<AppState>,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> (StatusCode, Json<Value>) {
    let base = s.base_url(&h);
    let rest = uri
        .path()
        .strip_prefix("/compute/")
        .unwrap_or_default()
        .to_owned();
    let choices: Vec<Value> = entries()
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "status": e.status,
                "links": [{"rel": "self", "href": format!("{base}/compute/{}/{rest}", e.path)}],
                "media-types": [{"base": "application/json", "type": e.media_type}],
            })
        })
        .collect();
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(json!({"choices": choices})),
    )
}

/// APIs Nova removed: 410 Gone at every microversion, as Nova answers them. Anything else
/// unknown is 404.
pub async fn gone(
    axum::extract::Path(params): axum::extract::Path<std::collections::HashMap<String, String>>,
) -> crate::Fault {
    const REMOVED: &[&str] = &[
        "os-agents",
        "os-cells",
        "os-certificates",
        "os-cloudpipe",
        "os-fping",
        "os-fixed-ips",
        "os-floating-ip-dns",
        "os-floating-ips-bulk",
        "os-security-group-default-rules",
        "os-consoles",
    ];
    match params.get("gone") {
        Some(g) if REMOVED.contains(&g.as_str()) => crate::Fault::new(
            StatusCode::GONE,
            "This resource is no longer available. No forwarding address is given.",
        ),
        _ => crate::Fault::not_found("The resource could not be found.").webob(),
    }
}
