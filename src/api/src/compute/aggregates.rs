//! `GET /os-aggregates` (admin): one box has no host aggregates, so the list is empty.
//! Clients read it to show a hypervisor's aggregates (`openstack hypervisor show`).

use axum::Json;
use serde_json::{Value, json};

use crate::Fault;
use crate::extract::Caller;

pub async fn list(Caller(c): Caller) -> Result<Json<Value>, Fault> {
    if !c.is_admin() {
        return Err(Fault::forbidden(
            "Policy doesn't allow os_compute_api:os-aggregates:index to be performed.",
        ));
    }
    Ok(Json(json!({"aggregates": []})))
}
