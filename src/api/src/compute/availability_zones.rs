//! `/os-availability-zone`: the box is one zone, holding its one compute host.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::views::naive_time;
use crate::extract::Caller;
use crate::{AppState, Fault};

pub async fn list(State(s): State<AppState>, Caller(_): Caller) -> Json<Value> {
    let zone = &s.compute.config().availability_zone;
    Json(json!({"availabilityZoneInfo": [{
        "zoneName": zone,
        "zoneState": {"available": true},
        "hosts": null,
    }]}))
}

/// With the services of each zone (admin): the API-side services in `internal`, the compute
/// service of the box in its zone, as Nova lists them.
pub async fn detail(State(s): State<AppState>, Caller(c): Caller) -> Result<Json<Value>, Fault> {
    if !c.is_admin() {
        return Err(Fault::forbidden(
            "Policy doesn't allow os_compute_api:os-availability-zone:detail to be performed.",
        ));
    }
    let cfg = s.compute.config();
    let now = naive_time(chrono::Utc::now());
    let svc = json!({"active": true, "available": true, "updated_at": now});
    Ok(Json(json!({"availabilityZoneInfo": [
        {
            "zoneName": "internal",
            "zoneState": {"available": true},
            "hosts": {
                cfg.host.clone(): {
                    "nova-conductor": svc.clone(),
                    "nova-scheduler": svc.clone(),
                }
            },
        },
        {
            "zoneName": cfg.availability_zone,
            "zoneState": {"available": true},
            "hosts": { cfg.host.clone(): { "nova-compute": svc } },
        },
    ]})))
}
