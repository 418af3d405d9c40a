//! The service catalog: what every project-scoped token lists, and the read-only
//! `/v3/services`, `/v3/endpoints` and `/v3/regions` views of it.
//!
//! The catalog is not stored: it follows from the box's own base URL, so it is always right
//! for the address clients reach the box at.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::extract::Caller;
use crate::{AppState, Fault};

/// One service of the box.
struct ServiceDef {
    id: &'static str,
    kind: &'static str,
    name: &'static str,
    /// Path of its endpoint under the base URL.
    path: &'static str,
}

const SERVICES: &[ServiceDef] = &[
    ServiceDef {
        id: "5c2a7f3b0e6d4d1f9a8b7c6d5e4f3a21",
        kind: "identity",
        name: "keystone",
        path: "/identity",
    },
    ServiceDef {
        id: "9d1e4b6a2c3f4e5d8b7a6c5d4e3f2a10",
        kind: "compute",
        name: "nova",
        path: "/compute/v2.1",
    },
    ServiceDef {
        id: "3e8f1a2b4c5d4e6f9a0b1c2d3e4f5a67",
        kind: "image",
        name: "glance",
        path: "/image",
    },
    ServiceDef {
        id: "4f6a8c0e2b4d4f6a8c0e2b4d6f8a0c25",
        kind: "network",
        name: "neutron",
        path: "/network",
    },
    ServiceDef {
        id: "2a6c8e0b4d6f4a8c0e2b4d6f8a0c2e47",
        kind: "block-storage",
        name: "cinder",
        path: "/volume/v3",
    },
    ServiceDef {
        id: "6e8a0c2e4b6d4f8a0c2e4b6d8f0a2c59",
        kind: "volumev3",
        name: "cinderv3",
        path: "/volume/v3",
    },
    ServiceDef {
        id: "7b4c2e9d1a3f4b6c8d0e2f4a6b8c0d13",
        kind: "baremetal",
        name: "ironic",
        path: "/baremetal",
    },
];

const INTERFACES: [&str; 3] = ["public", "internal", "admin"];

fn endpoint_id(svc: &ServiceDef, interface: &str) -> String {
    // Stable per service and interface: the service id with the interface's index in front.
    let i = INTERFACES.iter().position(|x| *x == interface).unwrap_or(0);
    format!("{i}{}", &svc.id[1..])
}

fn endpoint(state: &AppState, base: &str, svc: &ServiceDef, interface: &str) -> Value {
    json!({
        "id": endpoint_id(svc, interface),
        "interface": interface,
        "region": state.cfg.region,
        "region_id": state.cfg.region,
        "url": format!("{base}{}", svc.path),
    })
}

/// The catalog as it appears in a token and in `GET /v3/auth/catalog`.
pub fn catalog(state: &AppState, base: &str) -> Value {
    Value::Array(
        SERVICES
            .iter()
            .map(|svc| {
                json!({
                    "id": svc.id,
                    "type": svc.kind,
                    "name": svc.name,
                    "endpoints": INTERFACES.iter().map(|i| endpoint(state, base, svc, i)).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

fn service_view(base: &str, svc: &ServiceDef) -> Value {
    json!({
        "id": svc.id,
        "type": svc.kind,
        "name": svc.name,
        "enabled": true,
        "description": "",
        "links": {"self": format!("{base}/identity/v3/services/{}", svc.id)},
    })
}

fn endpoint_view(state: &AppState, base: &str, svc: &ServiceDef, interface: &str) -> Value {
    let mut v = endpoint(state, base, svc, interface);
    let id = v["id"].as_str().unwrap_or_default().to_owned();
    v["service_id"] = json!(svc.id);
    v["enabled"] = json!(true);
    v["links"] = json!({"self": format!("{base}/identity/v3/endpoints/{id}")});
    v
}

pub async fn list_services(
    State(s): State<AppState>,
    Caller(_): Caller,
    h: HeaderMap,
) -> Json<Value> {
    let base = s.base_url(&h);
    let items: Vec<Value> = SERVICES
        .iter()
        .map(|svc| service_view(&base, svc))
        .collect();
    Json(super::views::collection(
        "services",
        format!("{base}/identity/v3/services"),
        items,
    ))
}

pub async fn show_service(
    State(s): State<AppState>,
    Caller(_): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let base = s.base_url(&h);
    SERVICES
        .iter()
        .find(|svc| svc.id == id)
        .map(|svc| Json(json!({"service": service_view(&base, svc)})))
        .ok_or_else(|| Fault::not_found(format!("Could not find service: {id}.")))
}

fn all_endpoints(state: &AppState, base: &str) -> Vec<Value> {
    SERVICES
        .iter()
        .flat_map(|svc| INTERFACES.iter().map(move |i| (svc, *i)))
        .map(|(svc, i)| endpoint_view(state, base, svc, i))
        .collect()
}

pub async fn list_endpoints(
    State(s): State<AppState>,
    Caller(_): Caller,
    h: HeaderMap,
) -> Json<Value> {
    let base = s.base_url(&h);
    Json(super::views::collection(
        "endpoints",
        format!("{base}/identity/v3/endpoints"),
        all_endpoints(&s, &base),
    ))
}

pub async fn show_endpoint(
    State(s): State<AppState>,
    Caller(_): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let base = s.base_url(&h);
    all_endpoints(&s, &base)
        .into_iter()
        .find(|e| e["id"] == id.as_str())
        .map(|e| Json(json!({"endpoint": e})))
        .ok_or_else(|| Fault::not_found(format!("Could not find endpoint: {id}.")))
}

fn region_view(state: &AppState, base: &str) -> Value {
    json!({
        "id": state.cfg.region,
        "description": "",
        "parent_region_id": null,
        "links": {"self": format!("{base}/identity/v3/regions/{}", state.cfg.region)},
    })
}

pub async fn list_regions(
    State(s): State<AppState>,
    Caller(_): Caller,
    h: HeaderMap,
) -> Json<Value> {
    let base = s.base_url(&h);
    Json(super::views::collection(
        "regions",
        format!("{base}/identity/v3/regions"),
        vec![region_view(&s, &base)],
    ))
}

pub async fn show_region(
    State(s): State<AppState>,
    Caller(_): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    if id != s.cfg.region {
        return Err(Fault::not_found(format!("Could not find region: {id}.")));
    }
    Ok(Json(json!({"region": region_view(&s, &s.base_url(&h))})))
}
