//! `/servers/{id}/ips`: a server's addresses by network.

use axum::Json;
use axum::extract::State;
use model::compute::Server;
use serde_json::{Map, Value, json};

use super::servers::server;
use crate::extract::{Caller, Path};
use crate::{AppState, Fault};

fn ip_list(sv: &Server) -> Value {
    // The ips API shows addresses without the OS-EXT-IPS keys.
    let mut m = Map::new();
    for a in &sv.addresses {
        let list = m
            .entry(a.network.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(v) = list {
            v.push(json!({"addr": a.addr, "version": a.version}));
        }
    }
    Value::Object(m)
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let sv = server(&s, &c, &id).await?;
    Ok(Json(json!({"addresses": ip_list(&sv)})))
}

pub async fn network(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, network)): Path<(String, String)>,
) -> Result<Json<Value>, Fault> {
    let sv = server(&s, &c, &id).await?;
    let all = ip_list(&sv);
    let list = all.get(&network).ok_or_else(|| {
        Fault::not_found("There are no fixed IP addresses assigned to this network.")
    })?;
    Ok(Json(json!({ network: list })))
}
