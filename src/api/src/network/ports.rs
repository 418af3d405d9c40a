//! `/v2.0/ports`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use super::list::ListParams;
use super::{body, collection_url, created, views};
use crate::extract::{AnyJson, Caller, JsonBody, QueryPairs};
use crate::{AppState, Fault};

const CREATE: &[&str] = &[
    "network_id",
    "name",
    "description",
    "admin_state_up",
    "mac_address",
    "fixed_ips",
    "device_id",
    "device_owner",
    "security_groups",
    "port_security_enabled",
    "allowed_address_pairs",
    "project_id",
    "tenant_id",
    "tags",
    "binding:vnic_type",
    "binding:host_id",
    "binding:profile",
    "extra_dhcp_opts",
    "dns_name",
    "qos_policy_id",
];
const UPDATE: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "mac_address",
    "fixed_ips",
    "device_id",
    "device_owner",
    "security_groups",
    "port_security_enabled",
    "allowed_address_pairs",
    "binding:vnic_type",
    "binding:host_id",
    "binding:profile",
    "extra_dhcp_opts",
    "dns_name",
    "qos_policy_id",
];

fn host(s: &AppState) -> String {
    s.compute.config().host.clone()
}

fn fixed_ips(o: &Map<String, Value>) -> Result<Option<Vec<::network::FixedIpRequest>>, Fault> {
    Ok(
        body::object_list(o, "fixed_ips", &["subnet_id", "ip_address"])?.map(|v| {
            v.iter()
                .map(|m| ::network::FixedIpRequest {
                    subnet_id: body::member(m, "subnet_id"),
                    ip_address: body::member(m, "ip_address"),
                })
                .collect()
        }),
    )
}

/// Address pairs as asked: address and optional MAC.
type Pairs = Vec<(String, Option<String>)>;

fn pairs(o: &Map<String, Value>) -> Result<Option<Pairs>, Fault> {
    let Some(v) = body::object_list(o, "allowed_address_pairs", &["ip_address", "mac_address"])?
    else {
        return Ok(None);
    };
    v.iter()
        .map(|m| match body::member(m, "ip_address") {
            Some(ip) => Ok((ip, body::member(m, "mac_address"))),
            None => Err(body::invalid(
                "Allowed address pairs must contain ip_address",
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Binding fields only an admin (Nova's service user) sets; members may send them empty.
fn refuse_binding(c: &identity::Context, o: &Map<String, Value>) -> Result<(), Fault> {
    for k in ["binding:host_id", "binding:profile"] {
        if let Some(v) = o.get(k)
            && !c.is_admin()
            && !(v.is_null() || v == "" || v == &json!({}))
        {
            return Err(
                Fault::forbidden(format!("rule:create_port:{k} is disallowed by policy"))
                    .kind("PolicyNotAuthorized"),
            );
        }
    }
    if let Some(v) = o.get("binding:vnic_type")
        && v != "normal"
    {
        return Err(body::invalid(format!(
            "binding:vnic_type {v} is not supported"
        )));
    }
    Ok(())
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    q: QueryPairs,
    h: HeaderMap,
) -> Result<Json<Value>, Fault> {
    let p = ListParams::parse(&q, views::PORT_ATTRS)?;
    let narrow = ::network::PortQuery {
        device_id: p.single("device_id"),
        network_id: p.single("network_id"),
    };
    let host = host(&s);
    let items = s.network.list_ports(&c, narrow).await?;
    let items = items.iter().map(|x| views::port(x, &host)).collect();
    Ok(Json(p.respond(
        "ports",
        items,
        &collection_url(&s, &h, "ports"),
    )?))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    let p = ListParams::parse(&q, views::PORT_ATTRS)?;
    let x = s.network.get_port(&c, &id).await?;
    Ok(Json(json!({"port": p.project(views::port(&x, &host(&s)))})))
}

pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    JsonBody(b): AnyJson,
) -> Result<(StatusCode, Json<Value>), Fault> {
    let o = body::object(&b, "port", CREATE)?;
    refuse_binding(&c, o)?;
    let Some(network_id) = body::string(o, "network_id", 255)? else {
        return Err(Fault::bad_request(
            "Failed to parse request. Required attribute 'network_id' not specified",
        )
        .kind("HTTPBadRequest"));
    };
    let req = ::network::PortCreate {
        network_id,
        name: body::string(o, "name", 255)?.unwrap_or_default(),
        description: body::string(o, "description", 255)?.unwrap_or_default(),
        admin_state_up: body::boolean(o, "admin_state_up")?.unwrap_or(true),
        mac_address: body::string(o, "mac_address", 32)?,
        fixed_ips: fixed_ips(o)?,
        device_id: body::string(o, "device_id", 255)?.unwrap_or_default(),
        device_owner: body::string(o, "device_owner", 255)?.unwrap_or_default(),
        security_groups: body::string_list(o, "security_groups")?,
        port_security: body::boolean(o, "port_security_enabled")?,
        allowed_address_pairs: pairs(o)?.unwrap_or_default(),
        project_id: body::project(o)?,
        tags: body::string_list(o, "tags")?.unwrap_or_default(),
    };
    let x = s.network.create_port(&c, req).await?;
    Ok(created("port", views::port(&x, &host(&s))))
}

pub async fn update(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    JsonBody(b): AnyJson,
) -> Result<Json<Value>, Fault> {
    let o = body::object(&b, "port", UPDATE)?;
    refuse_binding(&c, o)?;
    let u = ::network::PortUpdate {
        name: body::string(o, "name", 255)?,
        description: body::string(o, "description", 255)?,
        admin_state_up: body::boolean(o, "admin_state_up")?,
        mac_address: body::string(o, "mac_address", 32)?,
        fixed_ips: fixed_ips(o)?,
        device_id: body::string(o, "device_id", 255)?,
        device_owner: body::string(o, "device_owner", 255)?,
        security_groups: body::string_list(o, "security_groups")?,
        port_security: body::boolean(o, "port_security_enabled")?,
        allowed_address_pairs: pairs(o)?,
    };
    let x = s.network.update_port(&c, &id, u).await?;
    Ok(Json(json!({"port": views::port(&x, &host(&s))})))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Fault> {
    s.network.delete_port(&c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
