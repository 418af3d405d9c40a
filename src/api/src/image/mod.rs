//! The Image API (Glance v2), under `/image`. Version discovery lives here; the image
//! resources join it as the image service grows.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::from_fn;
use axum::routing::{any, get};
use serde_json::{Value, json};

use crate::{AppState, Service, fault};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/image", get(versions_300))
        .route("/image/", get(versions_300))
        .route("/image/versions", get(versions_200))
        .route("/image/{*rest}", any(fault::unknown_route))
        .layer(from_fn(|req, next| {
            fault::render(Service::Image, req, next)
        }))
        .with_state(state)
}

/// Glance's version list: the newest minor first, CURRENT, and the older v2 minors SUPPORTED.
fn versions(base: &str) -> Value {
    let href = format!("{base}/image/v2/");
    let mut out =
        vec![json!({"id": "v2.16", "status": "CURRENT", "links": [{"rel": "self", "href": href}]})];
    for minor in (0..16).rev() {
        out.push(json!({"id": format!("v2.{minor}"), "status": "SUPPORTED", "links": [{"rel": "self", "href": href}]}));
    }
    json!({ "versions": out })
}

async fn versions_300(State(s): State<AppState>, h: HeaderMap) -> (StatusCode, Json<Value>) {
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(versions(&s.base_url(&h))),
    )
}

async fn versions_200(State(s): State<AppState>, h: HeaderMap) -> Json<Value> {
    Json(versions(&s.base_url(&h)))
}
