//! `/os-services`: the services of the box (admin only). The compute service can be
//! disabled (new servers then find no valid host) or forced down.

use axum::Json;
use axum::extract::State;
use model::operator::{SERVICES, ServiceRow};
use serde_json::{Value, json};

use super::validate as v;
use super::views::naive_time;
use crate::extract::{AnyJson, Caller, JsonBody, Path, QueryPairs};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

/// A service as os-services shows it; `host_zone` is the zone of the compute host.
fn view(s: &AppState, ver: ApiVersion, r: &ServiceRow, host_zone: &str) -> Value {
    let cfg = s.compute.config();
    let zone = if r.binary == "nova-compute" {
        host_zone
    } else {
        "internal"
    };
    let mut o = json!({
        "id": if ver.at_least(53) { json!(r.id) } else { json!(r.seq) },
        "binary": r.binary,
        "host": cfg.host,
        "zone": zone,
        "status": if r.disabled { "disabled" } else { "enabled" },
        "state": if r.forced_down { "down" } else { "up" },
        // The services run inside this process: they are as fresh as the request.
        "updated_at": naive_time(chrono::Utc::now()),
        "disabled_reason": r.disabled_reason,
    });
    if ver.at_least(11) {
        o["forced_down"] = json!(r.forced_down);
    }
    o
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    if ver.at_least(75) {
        v::query_only(&q.0, &["binary", "host"])?;
    }
    let rows = s.compute.services(&c).await?;
    let zone = s.compute.host_zone().await?;
    let host = &s.compute.config().host;
    let items: Vec<Value> = rows
        .iter()
        .filter(|r| q.get("binary").is_none_or(|b| b == r.binary))
        .filter(|_| q.get("host").is_none_or(|h| h == host))
        .map(|r| view(&s, ver, r, &zone))
        .collect();
    Ok(Json(json!({"services": items})))
}

/// Changing a service is for admins; Nova names the update policy when it refuses.
fn may_update(c: &identity::Context) -> Result<(), Fault> {
    if c.is_admin() {
        Ok(())
    } else {
        Err(Fault::forbidden(
            "Policy doesn't allow os_compute_api:os-services:update to be performed.",
        ))
    }
}

/// `PUT /os-services/{id}`: from 2.53 `{id}` is a service UUID and the body says what to
/// change; before, `{id}` is one of the actions `enable`, `disable`, `disable-log-reason`
/// and (2.11+) `force-down`, with the service named by `host` and `binary` in the body.
pub async fn update(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    if ver.at_least(53) {
        return update_by_id(s, c, ver, id, body).await;
    }
    let action = id.as_str();
    let fields: &[&str] = match action {
        "enable" | "disable" => &["host", "binary"],
        "disable-log-reason" => &["host", "binary", "disabled_reason"],
        "force-down" if ver.at_least(11) => &["host", "binary", "forced_down"],
        _ => return Err(Fault::not_found("The resource could not be found.")),
    };
    // Policy before the body, as Nova checks them.
    may_update(&c)?;
    v::only("", &body, fields)?;
    let root = v::root(&body)?;
    let host = v::string("host", v::required(root, "host")?, 1, 255)?;
    let binary = v::string("binary", v::required(root, "binary")?, 1, 255)?;
    if action == "disable-log-reason" && !root.contains_key("disabled_reason") {
        return Err(Fault::bad_request("Missing disabled reason field"));
    }
    if host != s.compute.config().host {
        return Err(Fault::not_found(format!(
            "Host '{host}' is not mapped to any cell"
        )));
    }
    if !SERVICES.contains(&binary.as_str()) {
        return Err(Fault::not_found(format!(
            "Service {binary} on host {host} could not be found."
        )));
    }
    let mut out = json!({"host": host, "binary": binary});
    match action {
        "enable" => {
            s.compute
                .update_service(&c, &binary, Some(false), Some(None), None)
                .await?;
            out["status"] = json!("enabled");
        }
        "disable" => {
            s.compute
                .update_service(&c, &binary, Some(true), None, None)
                .await?;
            out["status"] = json!("disabled");
        }
        "disable-log-reason" => {
            let reason = match root.get("disabled_reason") {
                Some(r) => v::string("disabled_reason", r, 1, 255)?,
                None => return Err(Fault::bad_request("Missing disabled reason field")),
            };
            s.compute
                .update_service(&c, &binary, Some(true), Some(Some(reason.clone())), None)
                .await?;
            out["status"] = json!("disabled");
            out["disabled_reason"] = json!(reason);
        }
        _ => {
            let f = match root.get("forced_down") {
                Some(f) => v::boolean("forced_down", f)?,
                None => return Err(Fault::bad_request("Missing forced_down field")),
            };
            s.compute
                .update_service(&c, &binary, None, None, Some(f))
                .await?;
            out["forced_down"] = json!(f);
        }
    }
    Ok(Json(json!({"service": out})))
}

async fn update_by_id(
    s: AppState,
    c: identity::Context,
    ver: ApiVersion,
    id: String,
    body: Value,
) -> Result<Json<Value>, Fault> {
    may_update(&c)?;
    let rows = s.compute.services(&c).await?;
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(Fault::bad_request(format!("Invalid uuid {id}")));
    }
    let row = rows
        .iter()
        .find(|r| r.id == id)
        .ok_or_else(|| Fault::not_found(format!("Service {id} could not be found.")))?;
    v::only("", &body, &["status", "disabled_reason", "forced_down"])?;
    let root = v::root(&body)?;
    let status = match root.get("status") {
        None => None,
        Some(Value::String(st)) if st == "enabled" => Some(false),
        Some(Value::String(st)) if st == "disabled" => Some(true),
        Some(other) => {
            return Err(v::invalid(
                "status",
                other,
                &format!(
                    "{} is not one of ['enabled', 'disabled']",
                    v::py_repr(other)
                ),
            ));
        }
    };
    let reason = match root.get("disabled_reason") {
        None => None,
        Some(r) => Some(v::string("disabled_reason", r, 1, 255)?),
    };
    let forced = match root.get("forced_down") {
        None => None,
        Some(f) => Some(v::boolean("forced_down", f)?),
    };
    if reason.is_some() && status != Some(true) {
        return Err(Fault::bad_request(
            "Specifying 'disabled_reason' with status 'enabled' is invalid.",
        ));
    }
    if status.is_none() && forced.is_none() {
        return Err(Fault::bad_request(
            "No updates were requested. Fields 'status' or 'forced_down' should be specified.",
        ));
    }
    if row.binary != "nova-compute" {
        return Err(Fault::bad_request(format!(
            "Updating a {} service is not supported. Only nova-compute services can be updated.",
            row.binary
        )));
    }
    // Enabling clears the reason; disabling without one keeps none.
    let reason_change = match status {
        Some(false) => Some(None),
        Some(true) => Some(reason),
        None => None,
    };
    let r = s
        .compute
        .update_service(&c, &row.binary, status, reason_change, forced)
        .await?;
    let zone = s.compute.host_zone().await?;
    Ok(Json(json!({"service": view(&s, ver, &r, &zone)})))
}

/// `DELETE /os-services/{id}`: the box's services are the process itself, so an existing
/// one is never deleted (409); an unknown one gets Nova's 404, a malformed id its 400.
pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    if !c.is_admin() {
        return Err(Fault::forbidden(
            "Policy doesn't allow os_compute_api:os-services:delete to be performed.",
        ));
    }
    if ver.at_least(53) {
        if uuid::Uuid::parse_str(&id).is_err() {
            return Err(Fault::bad_request(format!("Invalid uuid {id}")));
        }
    } else if id.parse::<i64>().is_err() {
        return Err(Fault::bad_request(
            "Invalid input received: id must be an integer",
        ));
    }
    let rows = s.compute.services(&c).await?;
    let found = rows.iter().any(|r| {
        if ver.at_least(53) {
            r.id.eq_ignore_ascii_case(&id)
        } else {
            r.seq.to_string() == id
        }
    });
    if found {
        return Err(Fault::conflict(format!(
            "Service {id} is part of this host and cannot be deleted."
        )));
    }
    Err(Fault::not_found(format!("Service {id} not found.")))
}
