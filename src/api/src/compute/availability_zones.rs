//! `/os-availability-zone`: the box is one zone, holding its one compute host: the zone of
//! the host's aggregates (os-aggregates), else the configured one. The zone is
//! available while its compute service is enabled, as Nova lists a zone whose every compute
//! service is disabled among the unavailable ones.

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use super::views::naive_time;
use crate::extract::Caller;
use crate::{AppState, Fault};

pub async fn list(State(s): State<AppState>, Caller(_): Caller) -> Result<Json<Value>, Fault> {
    let zone = s.compute.host_zone().await?;
    let services = s.compute.service_states().await?;
    let available = services
        .iter()
        .any(|r| r.binary == "nova-compute" && !r.disabled);
    Ok(Json(json!({"availabilityZoneInfo": [{
        "zoneName": zone,
        "zoneState": {"available": available},
        "hosts": null,
    }]})))
}

/// With the services of each zone (admin): the API-side services in `internal`, the compute
/// service of the box in its zone, as Nova lists them. `active` is a service's enabled flag
/// and `available` whether it is up.
pub async fn detail(State(s): State<AppState>, Caller(c): Caller) -> Result<Json<Value>, Fault> {
    if !c.is_admin() {
        return Err(Fault::forbidden(
            "Policy doesn't allow os_compute_api:os-availability-zone:detail to be performed.",
        ));
    }
    let cfg = s.compute.config();
    let zone = s.compute.host_zone().await?;
    let now = naive_time(chrono::Utc::now());
    let services = s.compute.service_states().await?;
    let mut internal = Map::new();
    let mut compute = Map::new();
    let mut zone_available = false;
    for r in &services {
        let entry = json!({"active": !r.disabled, "available": !r.forced_down, "updated_at": now});
        if r.binary == "nova-compute" {
            zone_available |= !r.disabled;
            compute.insert(r.binary.clone(), entry);
        } else {
            internal.insert(r.binary.clone(), entry);
        }
    }
    Ok(Json(json!({"availabilityZoneInfo": [
        {
            "zoneName": "internal",
            "zoneState": {"available": true},
            "hosts": { cfg.host.clone(): internal },
        },
        {
            "zoneName": zone,
            "zoneState": {"available": zone_available},
            "hosts": { cfg.host.clone(): compute },
        },
    ]})))
}
