//! `/os-hosts` (up to 2.42, removed at 2.43): the deprecated listing of the hosts the
//! services run on, and one host's resources. Admin only; on a one-host box the list names
//! the box for each service that is enabled.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::extract::{Caller, Path, QueryPairs};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

/// Served until 2.42; an admin's (`os_compute_api:os-hosts:<rule>`).
fn may(c: &identity::Context, ver: ApiVersion, rule: &str) -> Result<(), Fault> {
    if ver.at_least(43) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    if !c.is_admin() {
        return Err(Fault::forbidden(format!(
            "Policy doesn't allow os_compute_api:os-hosts:{rule} to be performed."
        )));
    }
    Ok(())
}

/// `GET /os-hosts[?zone=]`: a host entry per enabled service, with its topic and zone.
pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    may(&c, ver, "list")?;
    let rows = s.compute.services(&c).await?;
    let zone = s.compute.host_zone().await?;
    let host = &s.compute.config().host;
    let hosts: Vec<Value> = rows
        .iter()
        .filter(|r| !r.disabled)
        .map(|r| {
            let z = if r.binary == "nova-compute" {
                zone.as_str()
            } else {
                "internal"
            };
            (r, z)
        })
        .filter(|(_, z)| {
            q.get("zone")
                .is_none_or(|want| want.is_empty() || want == *z)
        })
        .map(|(r, z)| {
            json!({
                "host_name": host,
                "service": r.binary.trim_start_matches("nova-"),
                "zone": z,
            })
        })
        .collect();
    Ok(Json(json!({ "hosts": hosts })))
}

/// `GET /os-hosts/{host}`: the box's totals, what is used now and what its servers' flavors
/// add up to.
pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    may(&c, ver, "show")?;
    if id != s.compute.config().host {
        return Err(Fault::not_found(format!(
            "Host '{id}' is not mapped to any cell"
        )));
    }
    let h = s
        .compute
        .hypervisor(&c, "os_compute_api:os-hosts:show")
        .await?;
    let entry = |project: &str, cpu: u64, mem: u64, disk: u64| {
        json!({"resource": {
            "host": id, "project": project, "cpu": cpu, "memory_mb": mem, "disk_gb": disk,
        }})
    };
    Ok(Json(json!({"host": [
        entry(
            "(total)",
            u64::from(h.resources.vcpus),
            h.resources.memory_mb,
            h.resources.local_gb,
        ),
        entry("(used_now)", h.vcpus_used, h.memory_mb_used, h.local_gb_used),
        entry("(used_max)", h.vcpus_used, h.memory_mb_used, h.local_gb_used),
    ]})))
}
