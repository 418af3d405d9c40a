//! `/v2.0/floatingips`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::list::ListParams;
use super::{body, collection_url, created, views};
use crate::extract::{AnyJson, Caller, JsonBody, QueryPairs};
use crate::{AppState, Fault};

const CREATE: &[&str] = &[
    "floating_network_id",
    "floating_ip_address",
    "port_id",
    "fixed_ip_address",
    "description",
    "project_id",
    "tenant_id",
    "tags",
    "subnet_id",
    "dns_name",
    "dns_domain",
    "qos_policy_id",
];
const UPDATE: &[&str] = &[
    "port_id",
    "fixed_ip_address",
    "description",
    "floating_ip_address",
];

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    q: QueryPairs,
    h: HeaderMap,
) -> Result<Json<Value>, Fault> {
    let p = ListParams::parse(&q, views::FLOATINGIP_ATTRS)?;
    let items = s.network.list_floating_ips(&c).await?;
    let items = items.iter().map(views::floating_ip).collect();
    Ok(Json(p.respond(
        "floatingips",
        items,
        &collection_url(&s, &h, "floatingips"),
    )?))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    let p = ListParams::parse(&q, views::FLOATINGIP_ATTRS)?;
    let f = s.network.get_floating_ip(&c, &id).await?;
    Ok(Json(
        json!({"floatingip": p.project(views::floating_ip(&f))}),
    ))
}

pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    JsonBody(b): AnyJson,
) -> Result<(StatusCode, Json<Value>), Fault> {
    let o = body::object(&b, "floatingip", CREATE)?;
    let Some(floating_network_id) = body::string(o, "floating_network_id", 255)? else {
        return Err(Fault::bad_request(
            "Failed to parse request. Required attribute 'floating_network_id' not specified",
        )
        .kind("HTTPBadRequest"));
    };
    let req = ::network::FloatingIpCreate {
        floating_network_id,
        floating_ip_address: body::string(o, "floating_ip_address", 64)?,
        port_id: body::nullable_string(o, "port_id", 255)?.flatten(),
        fixed_ip_address: body::string(o, "fixed_ip_address", 64)?,
        description: body::string(o, "description", 255)?.unwrap_or_default(),
        project_id: body::project(o)?,
        tags: body::string_list(o, "tags")?.unwrap_or_default(),
    };
    let f = s.network.create_floating_ip(&c, req).await?;
    Ok(created("floatingip", views::floating_ip(&f)))
}

pub async fn update(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    JsonBody(b): AnyJson,
) -> Result<Json<Value>, Fault> {
    let o = body::object(&b, "floatingip", UPDATE)?;
    if o.contains_key("floating_ip_address") {
        return Err(
            Fault::bad_request("Cannot update read-only attribute floating_ip_address")
                .kind("HTTPBadRequest"),
        );
    }
    let u = ::network::FloatingIpUpdate {
        port_id: body::nullable_string(o, "port_id", 255)?,
        fixed_ip_address: body::string(o, "fixed_ip_address", 64)?,
        description: body::string(o, "description", 255)?,
    };
    let f = s.network.update_floating_ip(&c, &id, u).await?;
    Ok(Json(json!({"floatingip": views::floating_ip(&f)})))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Fault> {
    s.network.delete_floating_ip(&c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
