//! `/servers/{id}/os-interface`: a server's ports, attached and detached while it exists.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use model::network::PortRec;
use serde_json::{Value, json};

use super::validate as v;
use crate::extract::{AnyJson, Caller, JsonBody, Path};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

fn attachment(p: &PortRec, ver: ApiVersion) -> Value {
    let mut o = json!({
        "port_state": p.status,
        "fixed_ips": p.fixed_ips.iter().map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address.to_string()})).collect::<Vec<_>>(),
        "port_id": p.id,
        "net_id": p.network_id,
        "mac_addr": p.mac_address,
    });
    if ver.at_least(70) {
        o["tag"] = Value::Null;
    }
    o
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let ports = s.compute.interfaces(&c, &id).await?;
    Ok(Json(json!({
        "interfaceAttachments": ports.iter().map(|p| attachment(p, ver)).collect::<Vec<_>>()
    })))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path((id, port)): Path<(String, String)>,
) -> Result<Json<Value>, Fault> {
    let ports = s.compute.interfaces(&c, &id).await?;
    let p = ports
        .iter()
        .find(|p| p.id == port)
        .ok_or_else(|| Fault::not_found(format!("Port {port} is not attached")))?;
    Ok(Json(json!({ "interfaceAttachment": attachment(p, ver) })))
}

pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
    JsonBody(b): AnyJson,
) -> Result<Json<Value>, Fault> {
    v::only("", &b, &["interfaceAttachment"])?;
    let Some(ia) = b.get("interfaceAttachment") else {
        return Err(v::invalid(
            "",
            &b,
            "'interfaceAttachment' is a required property",
        ));
    };
    v::only(
        "interfaceAttachment",
        ia,
        &["net_id", "port_id", "fixed_ips", "tag"],
    )?;
    let o = v::object("interfaceAttachment", ia)?;
    let mut nic = compute::NicRequest::default();
    if let Some(p) = o.get("port_id").filter(|p| !p.is_null()) {
        nic.port = Some(v::string("port_id", p, 1, 255)?);
    }
    if let Some(n) = o.get("net_id").filter(|n| !n.is_null()) {
        nic.network = Some(v::string("net_id", n, 1, 255)?);
    }
    if let Some(f) = o.get("fixed_ips") {
        let list = f
            .as_array()
            .filter(|l| l.len() <= 1)
            .ok_or_else(|| v::invalid("fixed_ips", f, "is not a list of at most one item"))?;
        if let Some(item) = list.first() {
            v::only("fixed_ips", item, &["ip_address"])?;
            let ip = item
                .get("ip_address")
                .map(|x| v::string("ip_address", x, 1, 64))
                .transpose()?
                .unwrap_or_default();
            nic.fixed_ip = Some(model::network::parse_v4(&ip).ok_or_else(|| {
                v::invalid("ip_address", &json!(ip), &format!("'{ip}' is not a 'ipv4'"))
            })?);
        }
    }
    if nic.port.is_some() && (nic.network.is_some() || nic.fixed_ip.is_some()) {
        return Err(Fault::bad_request(
            "Must not input both network_id and port_id",
        ));
    }
    if nic.port.is_none() && nic.network.is_none() {
        // Nova picks the project's network when none is named.
        return Err(Fault::bad_request("Must input network_id or port_id"));
    }
    let port = s.compute.attach_interface(&c, &id, nic).await?;
    Ok(Json(
        json!({ "interfaceAttachment": attachment(&port, ver) }),
    ))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, port)): Path<(String, String)>,
) -> Result<StatusCode, Fault> {
    s.compute.detach_interface(&c, &id, &port).await?;
    Ok(StatusCode::ACCEPTED)
}
