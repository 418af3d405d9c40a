//! `/os-networks` (up to 2.35): Nova's read-only proxy of the networking service's networks.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::extract::{Caller, Path};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

fn gone(ver: ApiVersion) -> Result<(), Fault> {
    if ver.at_least(36) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    Ok(())
}

/// Nova's network view: the id and label; the nova-network fields it no longer knows.
fn view(id: &str, label: &str) -> Value {
    let mut o = json!({"id": id, "label": label});
    for k in [
        "bridge",
        "bridge_interface",
        "broadcast",
        "cidr",
        "cidr_v6",
        "created_at",
        "deleted",
        "deleted_at",
        "dhcp_server",
        "dhcp_start",
        "dns1",
        "dns2",
        "enable_dhcp",
        "gateway",
        "gateway_v6",
        "host",
        "injected",
        "mtu",
        "multi_host",
        "netmask",
        "netmask_v6",
        "priority",
        "project_id",
        "rxtx_base",
        "share_address",
        "updated_at",
        "vlan",
        "vpn_private_address",
        "vpn_public_address",
        "vpn_public_port",
    ] {
        o[k] = Value::Null;
    }
    o
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
) -> Result<Json<Value>, Fault> {
    gone(ver)?;
    let nets = s.network.list_networks(&c).await?;
    Ok(Json(json!({
        "networks": nets.iter().map(|n| view(&n.id, &n.name)).collect::<Vec<_>>()
    })))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    gone(ver)?;
    let n = s
        .network
        .get_network(&c, &id)
        .await
        .map_err(|_| Fault::not_found(format!("Network {id} could not be found.")))?;
    Ok(Json(json!({ "network": view(&n.id, &n.name) })))
}
