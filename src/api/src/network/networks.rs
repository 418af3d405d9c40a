//! `/v2.0/networks`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::list::ListParams;
use super::{body, collection_url, created, views};
use crate::extract::{AnyJson, Caller, JsonBody, QueryPairs};
use crate::{AppState, Fault};

const CREATE: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "shared",
    "router:external",
    "mtu",
    "port_security_enabled",
    "project_id",
    "tenant_id",
    "tags",
    "availability_zone_hints",
    "is_default",
    "provider:network_type",
    "provider:physical_network",
    "provider:segmentation_id",
    "dns_domain",
    "vlan_transparent",
];
const UPDATE: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "shared",
    "router:external",
    "mtu",
    "port_security_enabled",
    "is_default",
    "dns_domain",
];

fn mtu(o: &serde_json::Map<String, Value>) -> Result<Option<u32>, Fault> {
    match body::integer(o, "mtu")? {
        Some(Some(m)) if (0..=u32::MAX as i64).contains(&m) => Ok(Some(m as u32)),
        Some(Some(m)) => Err(body::invalid(format!("MTU {m} is not valid"))),
        _ => Ok(None),
    }
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    q: QueryPairs,
    h: HeaderMap,
) -> Result<Json<Value>, Fault> {
    let p = ListParams::parse(&q, views::NETWORK_ATTRS)?;
    let admin = c.is_admin();
    let items = s.network.list_networks(&c).await?;
    let items = items.iter().map(|n| views::network(n, admin)).collect();
    Ok(Json(p.respond(
        "networks",
        items,
        &collection_url(&s, &h, "networks"),
    )?))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    let p = ListParams::parse(&q, views::NETWORK_ATTRS)?;
    let n = s.network.get_network(&c, &id).await?;
    Ok(Json(
        serde_json::json!({"network": p.project(views::network(&n, c.is_admin()))}),
    ))
}

pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    JsonBody(b): AnyJson,
) -> Result<(StatusCode, Json<Value>), Fault> {
    if b.get("networks").is_some() {
        return Err(
            Fault::bad_request("Bulk creation is not supported by onebox").kind("HTTPBadRequest"),
        );
    }
    let o = body::object(&b, "network", CREATE)?;
    let req = ::network::NetworkCreate {
        name: body::string(o, "name", 255)?.unwrap_or_default(),
        description: body::string(o, "description", 255)?.unwrap_or_default(),
        admin_state_up: body::boolean(o, "admin_state_up")?.unwrap_or(true),
        shared: body::boolean(o, "shared")?.unwrap_or(false),
        external: body::boolean(o, "router:external")?.unwrap_or(false),
        mtu: mtu(o)?,
        port_security: body::boolean(o, "port_security_enabled")?.unwrap_or(true),
        project_id: body::project(o)?,
        tags: body::string_list(o, "tags")?.unwrap_or_default(),
    };
    let n = s.network.create_network(&c, req).await?;
    Ok(created("network", views::network(&n, c.is_admin())))
}

pub async fn update(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    JsonBody(b): AnyJson,
) -> Result<Json<Value>, Fault> {
    let o = body::object(&b, "network", UPDATE)?;
    let u = ::network::NetworkUpdate {
        name: body::string(o, "name", 255)?,
        description: body::string(o, "description", 255)?,
        admin_state_up: body::boolean(o, "admin_state_up")?,
        shared: body::boolean(o, "shared")?,
        external: body::boolean(o, "router:external")?,
        mtu: mtu(o)?,
        port_security: body::boolean(o, "port_security_enabled")?,
    };
    let n = s.network.update_network(&c, &id, u).await?;
    Ok(Json(
        serde_json::json!({"network": views::network(&n, c.is_admin())}),
    ))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Fault> {
    s.network.delete_network(&c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
