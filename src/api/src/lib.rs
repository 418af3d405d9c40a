//! The HTTP face of onebox. OpenStack JSON lives only in this crate.
//!
//! One router serves every service under the DevStack-style prefixes users already know:
//!
//! | prefix      | service                    | module       |
//! |-------------|----------------------------|--------------|
//! | `/identity` | Keystone v3 subset         | [`identity`] |
//! | `/compute`  | Nova v2.1 with microversions | [`compute`] |
//! | `/image`    | Glance v2 subset           | [`image`]    |
//! | `/baremetal` | Ironic v1 subset (admin)  | [`baremetal`] |
//! | `/network`  | Neutron v2.0 subset        | [`network`]  |
//! | `/console`  | the console proxy (websockets, noVNC) | [`console`] |
//! | `/volume`   | Cinder v3 subset           | [`volume`]   |
//! | `/healthz`  | liveness                   | here         |
//!
//! A request passes, outermost first: the request-id layer (ids on every response, one tracing
//! span per request), the service's fault renderer ([`fault::render`]), then the service's own
//! layers (authentication, microversions) and its handler.

mod auth;
pub mod baremetal;
pub mod compute;
pub mod console;
pub mod extract;
pub mod fault;
pub mod identity;
pub mod image;
pub mod listener;
pub mod metadata;
pub mod microversion;
pub mod network;
pub mod request_id;
pub mod volume;

use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;
use axum::middleware::from_fn;
use axum::routing::get;

pub use fault::{Fault, Service};

/// Settings of the API layer.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// The base URL clients use to reach this box (`https://host:port`). When unset, links and
    /// the catalog use the `Host` header of each request, and its `X-Forwarded-Proto` for the
    /// scheme (onebox's listeners set it: `https` over TLS, removed over plain HTTP).
    pub public_url: Option<String>,
    /// The region name in the catalog.
    pub region: String,
    /// The console proxy's settings.
    pub console: console::ConsoleConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            public_url: None,
            region: "RegionOne".into(),
            console: console::ConsoleConfig::default(),
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub identity: ::identity::Identity,
    pub compute: ::compute::Compute,
    pub images: ::image::Images,
    pub baremetal: ::baremetal::Baremetal,
    pub network: ::network::Network,
    pub volumes: ::volume::Volumes,
    pub cfg: Arc<ApiConfig>,
}

impl AppState {
    /// The base URL of the box for links, without a trailing slash.
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(u) = &self.cfg.public_url {
            return u.trim_end_matches('/').to_owned();
        }
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| valid_host(h))
            .unwrap_or("localhost");
        // The listener that received the request sets this (and removes a client's).
        let scheme = match headers.get("x-forwarded-proto").map(|v| v.as_bytes()) {
            Some(b"https") => "https",
            _ => "http",
        };
        format!("{scheme}://{host}")
    }
}

/// A `Host` header fit to be echoed in links: host name or address and optional port.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
}

/// The whole API as one router.
pub fn app(state: AppState) -> Router {
    // Servers' block device mappings make and delete volumes: compute gets the volume
    // service here, where the services meet.
    state
        .compute
        .set_volume_provider(Arc::new(volume::for_compute::ComputeVolumes {
            images: state.images.clone(),
            volumes: state.volumes.clone(),
        }));
    state
        .volumes
        .set_online_extend(Arc::new(volume::for_compute::AttachedVolumes {
            compute: state.compute.clone(),
        }));
    let services = Router::new()
        .merge(identity::router(state.clone()))
        .merge(compute::router(state.clone()))
        .merge(image::router(state.clone()))
        .merge(baremetal::router(state.clone()))
        .merge(network::router(state.clone()))
        .merge(console::router(state.clone()))
        .merge(volume::router(state.clone()))
        .route("/healthz", get(healthz))
        .fallback(fault::unknown_route);
    Router::new()
        .fallback_service(tower::ServiceExt::map_request(
            services,
            normalize_identity_path,
        ))
        .layer(from_fn(|req, next| {
            fault::render(Service::Plain, req, next)
        }))
        // A panic in a handler is a bug; the client gets a plain 500 and the process lives on.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        .layer(from_fn(request_id::layer))
}

fn on_panic(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let fault = Fault::internal(&"a request handler panicked");
    fault::render_fault(Service::Plain, &fault)
}

/// Keystone ignores a trailing slash (`/v3/projects/` is `/v3/projects`); so does onebox's
/// identity service. Other services keep Nova's and Glance's exact paths.
fn normalize_identity_path(mut req: axum::extract::Request) -> axum::extract::Request {
    let path = req.uri().path();
    if path.len() > "/identity/".len() && path.starts_with("/identity/") && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let pq = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_owned(),
        };
        if let Ok(uri) = pq.parse() {
            *req.uri_mut() = uri;
        }
    }
    req
}

async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    async fn body(r: axum::response::Response) -> serde_json::Value {
        let b = axum::body::to_bytes(r.into_body(), 1 << 16)
            .await
            .expect("body");
        serde_json::from_slice(&b).expect("json")
    }

    #[tokio::test]
    async fn internal_errors_leak_nothing() {
        let f = Fault::internal(&"disk /var/lib/secret exploded");
        let r = fault::render_fault(Service::Compute, &f);
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let b = body(r).await;
        let msg = b["computeFault"]["message"].as_str().expect("message");
        assert!(!msg.contains("secret") && msg.starts_with("Unexpected API Error"));
        assert_eq!(b["computeFault"]["code"], 500);
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500() {
        let r = on_panic(Box::new("index out of bounds at src/x.rs"));
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let b = body(r).await;
        assert!(!b.to_string().contains("src/x.rs"));
    }

    #[test]
    fn fault_names_follow_nova() {
        for (code, name) in [
            (400, "badRequest"),
            (401, "unauthorized"),
            (403, "forbidden"),
            (404, "itemNotFound"),
            (405, "badMethod"),
            (406, "computeFault"),
            (409, "conflictingRequest"),
            (410, "computeFault"),
            (413, "overLimit"),
            (415, "badMediaType"),
            (429, "overLimit"),
            (500, "computeFault"),
            (501, "notImplemented"),
            (503, "serviceUnavailable"),
        ] {
            let s = StatusCode::from_u16(code).expect("status");
            assert_eq!(fault::compute_fault_name(s), name, "{code}");
        }
    }
}
