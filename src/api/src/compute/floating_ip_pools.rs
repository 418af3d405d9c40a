//! The deprecated `os-floating-ip-pools` proxy (up to 2.35): the external networks the
//! caller sees, by name, as Nova lists them from Neutron.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::extract::Caller;
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
) -> Result<Json<Value>, Fault> {
    if ver.at_least(36) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    let nets = s.network.list_networks(&c).await?;
    let pools: Vec<Value> = nets
        .iter()
        .filter(|n| n.external)
        .map(|n| json!({"name": n.name}))
        .collect();
    Ok(Json(json!({ "floating_ip_pools": pools })))
}
