//! `/v2.0/routers` and `PUT /v2.0/routers/{id}/{add,remove}_router_interface`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use super::list::ListParams;
use super::{body, collection_url, created, views};
use crate::extract::{AnyJson, Caller, JsonBody, QueryPairs};
use crate::{AppState, Fault};

const CREATE: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "external_gateway_info",
    "project_id",
    "tenant_id",
    "tags",
    "availability_zone_hints",
    "distributed",
    "ha",
    "flavor_id",
];
const UPDATE: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "external_gateway_info",
    "routes",
    "distributed",
    "ha",
];

fn bad_router(m: &str) -> Fault {
    Fault::bad_request(format!("Bad router request: {m}.")).kind("BadRequest")
}

/// `external_gateway_info`: `None` absent, `Some(None)` null or `{}` (no gateway).
fn gateway(o: &Map<String, Value>) -> Result<Option<Option<::network::GatewayRequest>>, Fault> {
    let g = match o.get("external_gateway_info") {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(None)),
        Some(Value::Object(g)) if g.is_empty() => return Ok(Some(None)),
        Some(Value::Object(g)) => g,
        Some(v) => return Err(body::invalid(format!("'{v}' is not a dictionary"))),
    };
    if let Some(k) = g.keys().find(|k| {
        ![
            "network_id",
            "enable_snat",
            "external_fixed_ips",
            "qos_policy_id",
        ]
        .contains(&k.as_str())
    }) {
        return Err(body::invalid(format!(
            "Validation of dictionary's keys failed. Expected keys: {{'network_id'}} Provided keys: {{'{k}'}}"
        )));
    }
    let Some(network_id) = body::string(g, "network_id", 255)? else {
        return Err(body::invalid(
            "Validation of dictionary's keys failed. Expected keys: {'network_id'} Provided keys: set()",
        ));
    };
    let external_fixed_ips =
        body::object_list(g, "external_fixed_ips", &["subnet_id", "ip_address"])?.map(|v| {
            v.iter()
                .map(|m| ::network::FixedIpRequest {
                    subnet_id: body::member(m, "subnet_id"),
                    ip_address: body::member(m, "ip_address"),
                })
                .collect()
        });
    Ok(Some(Some(::network::GatewayRequest {
        network_id,
        enable_snat: body::boolean(g, "enable_snat")?,
        external_fixed_ips,
    })))
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    q: QueryPairs,
    h: HeaderMap,
) -> Result<Json<Value>, Fault> {
    let p = ListParams::parse(&q, views::ROUTER_ATTRS)?;
    let admin = c.is_admin();
    let items = s.network.list_routers(&c).await?;
    let items = items.iter().map(|r| views::router(r, admin)).collect();
    Ok(Json(p.respond(
        "routers",
        items,
        &collection_url(&s, &h, "routers"),
    )?))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    let p = ListParams::parse(&q, views::ROUTER_ATTRS)?;
    let r = s.network.get_router(&c, &id).await?;
    Ok(Json(
        json!({"router": p.project(views::router(&r, c.is_admin()))}),
    ))
}

pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    JsonBody(b): AnyJson,
) -> Result<(StatusCode, Json<Value>), Fault> {
    let o = body::object(&b, "router", CREATE)?;
    let req = ::network::RouterCreate {
        name: body::string(o, "name", 255)?.unwrap_or_default(),
        description: body::string(o, "description", 255)?.unwrap_or_default(),
        admin_state_up: body::boolean(o, "admin_state_up")?.unwrap_or(true),
        gateway: gateway(o)?.flatten(),
        project_id: body::project(o)?,
        tags: body::string_list(o, "tags")?.unwrap_or_default(),
    };
    let r = s.network.create_router(&c, req).await?;
    Ok(created("router", views::router(&r, c.is_admin())))
}

pub async fn update(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    JsonBody(b): AnyJson,
) -> Result<Json<Value>, Fault> {
    let o = body::object(&b, "router", UPDATE)?;
    if let Some(r) = o.get("routes")
        && r.as_array().is_none_or(|a| !a.is_empty())
    {
        return Err(body::invalid("onebox's routers have no extra routes"));
    }
    let u = ::network::RouterUpdate {
        name: body::string(o, "name", 255)?,
        description: body::string(o, "description", 255)?,
        admin_state_up: body::boolean(o, "admin_state_up")?,
        gateway: gateway(o)?,
    };
    let r = s.network.update_router(&c, &id, u).await?;
    Ok(Json(json!({"router": views::router(&r, c.is_admin())})))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Fault> {
    s.network.delete_router(&c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `subnet_id` and `port_id` of an interface body (each a UUID when given).
fn interface(b: &Value) -> Result<(Option<String>, Option<String>), Fault> {
    let o = b
        .as_object()
        .ok_or_else(|| bad_router("Either subnet_id or port_id must be specified"))?;
    let mut out = [None, None];
    for (i, k) in ["subnet_id", "port_id"].iter().enumerate() {
        match o.get(*k) {
            None | Some(Value::Null) => {}
            Some(Value::String(v)) if uuid::Uuid::parse_str(v).is_ok() => out[i] = Some(v.clone()),
            Some(v) => {
                let shown = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                return Err(bad_router(&format!("'{shown}' is not a valid UUID")));
            }
        }
    }
    let [subnet, port] = out;
    Ok((subnet, port))
}

fn interface_view(i: &::network::InterfaceInfo) -> Value {
    json!({
        "id": i.router_id,
        "project_id": i.project_id.as_str(),
        "port_id": i.port_id,
        "network_id": i.network_id,
        "subnet_id": i.subnet_id,
        "subnet_ids": [i.subnet_id],
    })
}

pub async fn add_interface(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    JsonBody(b): AnyJson,
) -> Result<Json<Value>, Fault> {
    let (subnet, port) = interface(&b)?;
    let i = s
        .network
        .add_router_interface(&c, &id, subnet, port)
        .await?;
    Ok(Json(interface_view(&i)))
}

pub async fn remove_interface(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    JsonBody(b): AnyJson,
) -> Result<Json<Value>, Fault> {
    let (subnet, port) = interface(&b)?;
    let i = s
        .network
        .remove_router_interface(&c, &id, subnet, port)
        .await?;
    Ok(Json(interface_view(&i)))
}
