//! Security groups as Nova shows them: a server's groups (`/servers/{id}/os-security-groups`)
//! and the deprecated proxy `/os-security-groups`, `/os-security-group-rules` (up to 2.35),
//! answered by the networking service with the caller's rights, in Nova's shapes and faults.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use model::network::{Direction, SecurityGroupRec, SgRuleRec};
use serde_json::{Map, Value, json};

use super::validate as v;
use crate::extract::{AnyJson, Caller, JsonBody, Path};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

fn proxy_allowed(ver: ApiVersion) -> Result<(), Fault> {
    if ver.at_least(36) {
        Err(Fault::not_found("The resource could not be found."))
    } else {
        Ok(())
    }
}

/// The networking service's refusals in Nova's words and codes.
fn fault(e: ::network::Error) -> Fault {
    use ::network::Error as E;
    match e {
        E::NotFound { message, .. } => Fault::not_found(message),
        E::BadRequest { message, .. } | E::Conflict { message, .. } => Fault::bad_request(message),
        E::Forbidden(m) => Fault::forbidden(m),
        E::OverQuota(_) => Fault::forbidden("Quota exceeded, too many security groups."),
        E::Store(s) => crate::fault::storage(s.conflict(), &s),
    }
}

/// A rule in Nova's shape: protocol and ports, and either a prefix or a group.
fn nova_rule(r: &SgRuleRec, groups: &[SecurityGroupRec]) -> Value {
    let proto = r.protocol.as_deref().map(str::to_ascii_lowercase);
    let (from, to) = match (proto.as_deref(), r.port_range_min, r.port_range_max) {
        (Some("tcp" | "udp"), None, None) => (json!(1), json!(65535)),
        (Some("icmp"), None, None) => (json!(-1), json!(-1)),
        (_, a, b) => (json!(a), json!(b)),
    };
    let (ip_range, group) = match &r.remote_group_id {
        Some(g) => {
            let name = groups
                .iter()
                .find(|x| &x.id == g)
                .map(|x| x.name.clone())
                .unwrap_or_default();
            (
                json!({}),
                json!({"name": name, "tenant_id": r.project_id.as_str()}),
            )
        }
        None => {
            let cidr = r
                .remote_ip_prefix
                .as_deref()
                .and_then(::network::normalize_prefix)
                .map(|(_, c)| c)
                .unwrap_or_else(|| "0.0.0.0/0".into());
            (json!({ "cidr": cidr }), json!({}))
        }
    };
    json!({
        "id": r.id,
        "parent_group_id": r.security_group_id,
        "ip_protocol": proto,
        "from_port": from,
        "to_port": to,
        "ip_range": ip_range,
        "group": group,
    })
}

/// A group in Nova's shape; Nova shows its ingress rules only.
fn nova_group(g: &SecurityGroupRec, all: &[SecurityGroupRec]) -> Value {
    json!({
        "id": g.id,
        "name": g.name,
        "description": g.description,
        "tenant_id": g.project_id.as_str(),
        "rules": g.rules.iter().filter(|r| r.direction == Direction::Ingress)
            .map(|r| nova_rule(r, all)).collect::<Vec<_>>(),
    })
}

/// `GET /servers/{id}/os-security-groups`: the groups of the server's ports.
pub async fn server_groups(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let server = s.compute.get_server(&c, &id).await?;
    let ports = s
        .network
        .list_ports(
            &c,
            ::network::PortQuery {
                device_id: Some(server.id.to_string()),
                network_id: None,
            },
        )
        .await
        .map_err(fault)?;
    let all = s.network.list_security_groups(&c).await.map_err(fault)?;
    let mut out = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for p in &ports {
        for g in &p.security_groups {
            if seen.contains(&g.as_str()) {
                continue;
            }
            seen.push(g);
            if let Some(x) = all.iter().find(|x| &x.id == g) {
                out.push(nova_group(x, &all));
            }
        }
    }
    Ok(Json(json!({ "security_groups": out })))
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
) -> Result<Json<Value>, Fault> {
    proxy_allowed(ver)?;
    let all = s.network.list_security_groups(&c).await.map_err(fault)?;
    let v: Vec<Value> = all.iter().map(|g| nova_group(g, &all)).collect();
    Ok(Json(json!({ "security_groups": v })))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    proxy_allowed(ver)?;
    let g = s.network.get_security_group(&c, &id).await.map_err(fault)?;
    let all = s.network.list_security_groups(&c).await.map_err(fault)?;
    Ok(Json(json!({ "security_group": nova_group(&g, &all) })))
}

fn body_object<'a>(b: &'a Value, key: &str) -> Result<&'a Map<String, Value>, Fault> {
    b.get(key)
        .and_then(Value::as_object)
        .ok_or_else(|| Fault::bad_request(format!("'{key}' is a required property")))
}

pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    JsonBody(b): AnyJson,
) -> Result<Json<Value>, Fault> {
    proxy_allowed(ver)?;
    let o = body_object(&b, "security_group")?;
    let field = |k: &str| -> Result<String, Fault> {
        match o.get(k) {
            Some(x) => v::string(k, x, 0, 255),
            None => Err(Fault::bad_request(format!("'{k}' is a required property"))),
        }
    };
    let req = ::network::SecurityGroupCreate {
        name: field("name")?,
        description: field("description")?,
        stateful: true,
        project_id: None,
        tags: Vec::new(),
    };
    let g = s
        .network
        .create_security_group(&c, req)
        .await
        .map_err(fault)?;
    let all = s.network.list_security_groups(&c).await.map_err(fault)?;
    Ok(Json(json!({ "security_group": nova_group(&g, &all) })))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
) -> Result<Response, Fault> {
    proxy_allowed(ver)?;
    s.network
        .delete_security_group(&c, &id)
        .await
        .map_err(fault)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// A port or ICMP bound as text; Nova's -1 (any ICMP type or code) is none.
fn bound(o: &Map<String, Value>, k: &str) -> Option<String> {
    match o.get(k) {
        None | Some(Value::Null) => None,
        Some(Value::String(x)) if x == "-1" => None,
        Some(Value::Number(n)) if n.as_i64() == Some(-1) => None,
        Some(Value::String(x)) => Some(x.clone()),
        Some(x) => Some(x.to_string()),
    }
}

pub async fn create_rule(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    JsonBody(b): AnyJson,
) -> Result<Json<Value>, Fault> {
    proxy_allowed(ver)?;
    let o = body_object(&b, "security_group_rule")?;
    let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
    let Some(parent) = o.get("parent_group_id").map(|x| match x {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }) else {
        return Err(Fault::bad_request(
            "'parent_group_id' is a required property",
        ));
    };
    let cidr = text("cidr").filter(|x| !x.is_empty());
    let ethertype = match &cidr {
        Some(x) if x.contains(':') => "IPv6",
        _ => "IPv4",
    };
    let req = ::network::RuleCreate {
        security_group_id: parent,
        direction: "ingress".into(),
        ethertype: Some(ethertype.into()),
        protocol: text("ip_protocol").map(|p| p.to_ascii_lowercase()),
        port_range_min: bound(o, "from_port"),
        port_range_max: bound(o, "to_port"),
        remote_ip_prefix: cidr,
        remote_group_id: text("group_id").filter(|x| !x.is_empty()),
        description: String::new(),
    };
    let (r, _) = s.network.create_rule(&c, req).await.map_err(fault)?;
    let all = s.network.list_security_groups(&c).await.map_err(fault)?;
    Ok(Json(json!({ "security_group_rule": nova_rule(&r, &all) })))
}

pub async fn delete_rule(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
) -> Result<Response, Fault> {
    proxy_allowed(ver)?;
    s.network.delete_rule(&c, &id).await.map_err(|e| match e {
        ::network::Error::NotFound { .. } => {
            Fault::not_found(format!("Security group rule {id} could not be found."))
        }
        other => fault(other),
    })?;
    Ok(StatusCode::ACCEPTED.into_response())
}
