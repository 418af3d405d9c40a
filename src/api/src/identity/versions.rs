//! Identity version documents (`GET /identity` and `GET /identity/v3`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::AppState;

/// The Identity API version onebox speaks (Keystone's current v3 minor).
pub const VERSION_ID: &str = "v3.14";
const UPDATED: &str = "2020-04-07T00:00:00Z";

fn v3_entry(base: &str) -> Value {
    json!({
        "id": VERSION_ID,
        "status": "stable",
        "updated": UPDATED,
        "links": [{"rel": "self", "href": format!("{base}/identity/v3/")}],
        "media-types": [{
            "base": "application/json",
            "type": "application/vnd.openstack.identity-v3+json"
        }]
    })
}

/// `GET /identity`: 300 with the one version.
pub async fn list(State(s): State<AppState>, h: HeaderMap) -> (StatusCode, Json<Value>) {
    let base = s.base_url(&h);
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(json!({"versions": {"values": [v3_entry(&base)]}})),
    )
}

/// `GET /identity/v3`.
pub async fn v3(State(s): State<AppState>, h: HeaderMap) -> Json<Value> {
    Json(json!({"version": v3_entry(&s.base_url(&h))}))
}
