//! Types, limits, quota sets, availability zones, services and extensions.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use model::volume::{DEFAULT_TYPE_NAME, VolumeType};
use serde_json::{Map, Value, json};

use super::parse_bool;
use crate::extract::{AnyJson, Caller, JsonBody, Path, QueryPairs};
use crate::{AppState, Fault};

fn type_view(t: &VolumeType) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "is_public": t.is_public,
        "description": t.description,
        "extra_specs": {},
        "os-volume-type-access:is_public": t.is_public,
    })
}

pub async fn types(State(s): State<AppState>, Caller(_c): Caller) -> Result<Json<Value>, Fault> {
    let types = s.volumes.types().await?;
    Ok(Json(
        json!({"volume_types": types.iter().map(type_view).collect::<Vec<_>>()}),
    ))
}

pub async fn default_type(
    State(s): State<AppState>,
    Caller(_c): Caller,
) -> Result<Json<Value>, Fault> {
    let t = s.volumes.default_type().await?;
    Ok(Json(json!({"volume_type": type_view(&t)})))
}

pub async fn type_show(
    State(s): State<AppState>,
    Caller(_c): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let types = s.volumes.types().await?;
    let t = types
        .iter()
        .find(|t| t.id == id || (id == DEFAULT_TYPE_NAME && t.name == id))
        .ok_or_else(|| Fault::not_found(format!("Volume type {id} could not be found.")))?;
    Ok(Json(json!({"volume_type": type_view(t)})))
}

/// Only the default type is offered; an admin's new types are not (yet) served.
pub async fn type_create(Caller(c): Caller, JsonBody(_b): AnyJson) -> Fault {
    if c.is_admin() {
        Fault::bad_request("Invalid input received: onebox offers only the default volume type.")
    } else {
        Fault::forbidden("Policy doesn't allow volume_extension:type_create to be performed.")
    }
}

fn limit_of(l: &[(&str, i64)], k: &str) -> i64 {
    l.iter().find(|(n, _)| *n == k).map_or(-1, |(_, v)| *v)
}

pub async fn limits(State(s): State<AppState>, Caller(c): Caller) -> Result<Json<Value>, Fault> {
    let project = c
        .project_id
        .clone()
        .ok_or_else(|| Fault::forbidden("A project-scoped token is required."))?;
    let l = s.volumes.limits(&c, project.as_str()).await?;
    let u = s.volumes.usage(&c, project.as_str()).await?;
    Ok(Json(json!({"limits": {"rate": [], "absolute": {
        "maxTotalVolumes": limit_of(&l, "volumes"),
        "maxTotalSnapshots": limit_of(&l, "snapshots"),
        "maxTotalVolumeGigabytes": limit_of(&l, "gigabytes"),
        "maxTotalBackups": limit_of(&l, "backups"),
        "maxTotalBackupGigabytes": limit_of(&l, "backup_gigabytes"),
        "totalVolumesUsed": u.volumes,
        "totalGigabytesUsed": u.gigabytes,
        "totalSnapshotsUsed": u.snapshots,
        "totalBackupsUsed": 0,
        "totalBackupGigabytesUsed": 0,
    }}})))
}

/// The quota set: each resource, then the per-type keys of the default type.
fn quota_set(
    project: &str,
    l: &[(&str, i64)],
    usage: Option<&model::volume::VolumeUsage>,
) -> Value {
    let mut m = Map::new();
    let entry = |limit: i64, used: i64| match usage {
        Some(_) => json!({"limit": limit, "in_use": used, "reserved": 0}),
        None => json!(limit),
    };
    for k in [
        "volumes",
        "per_volume_gigabytes",
        "snapshots",
        "gigabytes",
        "backups",
        "backup_gigabytes",
    ] {
        let used = match (usage, k) {
            (Some(u), "volumes") => u.volumes,
            (Some(u), "snapshots") => u.snapshots,
            (Some(u), "gigabytes") => u.gigabytes,
            _ => 0,
        };
        m.insert(k.into(), entry(limit_of(l, k), used));
    }
    for (k, used) in [
        ("volumes", usage.map_or(0, |u| u.volumes)),
        ("gigabytes", usage.map_or(0, |u| u.gigabytes)),
        ("snapshots", usage.map_or(0, |u| u.snapshots)),
    ] {
        m.insert(format!("{k}_{DEFAULT_TYPE_NAME}"), entry(-1, used));
    }
    m.insert("groups".into(), entry(limit_of(l, "groups"), 0));
    m.insert("id".into(), json!(project));
    Value::Object(m)
}

pub async fn quota_show(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(project): Path<String>,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    let l = s.volumes.limits(&c, &project).await?;
    let usage = match q.get("usage").and_then(parse_bool) {
        Some(true) => Some(s.volumes.usage(&c, &project).await?),
        _ => None,
    };
    Ok(Json(
        json!({"quota_set": quota_set(&project, &l, usage.as_ref())}),
    ))
}

pub async fn quota_defaults(
    State(s): State<AppState>,
    Caller(_c): Caller,
    Path(project): Path<String>,
) -> Json<Value> {
    Json(json!({"quota_set": quota_set(&project, &s.volumes.quota_defaults(), None)}))
}

pub async fn quota_update(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(project): Path<String>,
    JsonBody(b): AnyJson,
) -> Result<Json<Value>, Fault> {
    let o = b
        .get("quota_set")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            Fault::bad_request("Missing required element 'quota_set' in request body.")
        })?;
    let mut asked = Vec::new();
    for (k, v) in o {
        if k == "id" || k == "tenant_id" || k.contains("___") {
            continue;
        }
        let n = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            Fault::bad_request(format!(
                "Invalid input for field/attribute {k}. Value: {v}. {v} is not of type 'integer'"
            ))
        })?;
        asked.push((k.clone(), n));
    }
    let l = s.volumes.set_quota(&c, &project, asked).await?;
    let mut set = quota_set(&project, &l, None);
    if let Some(m) = set.as_object_mut() {
        m.remove("id");
    }
    Ok(Json(json!({"quota_set": set})))
}

pub async fn quota_reset(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(project): Path<String>,
) -> Result<StatusCode, Fault> {
    s.volumes.reset_quota(&c, &project).await?;
    Ok(StatusCode::OK)
}

pub async fn zones(Caller(_c): Caller) -> Json<Value> {
    Json(json!({"availabilityZoneInfo": [
        {"zoneName": volume::ZONE, "zoneState": {"available": true}}
    ]}))
}

pub async fn services(Caller(c): Caller) -> Result<Json<Value>, Fault> {
    if !c.is_admin() {
        return Err(Fault::forbidden(
            "Policy doesn't allow volume_extension:services:index to be performed.",
        ));
    }
    let now = chrono::Utc::now();
    let t = super::views::time(&now);
    Ok(Json(json!({"services": [
        {"binary": "cinder-scheduler", "host": "onebox", "zone": volume::ZONE, "status": "enabled", "state": "up", "updated_at": t, "disabled_reason": null},
        {"binary": "cinder-volume", "host": "onebox@file", "zone": volume::ZONE, "status": "enabled", "state": "up", "updated_at": t, "disabled_reason": null},
    ]})))
}

pub async fn extensions(Caller(_c): Caller) -> Json<Value> {
    Json(json!({"extensions": []}))
}
