//! `/os-quota-sets`, `/os-quota-class-sets` and `/limits`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use compute::quotas::QuotaReport;
use model::ProjectId;
use model::compute::QUOTA_DEFAULTS;
use serde_json::{Map, Value, json};

use super::validate as v;
use crate::extract::{AnyJson, Caller, JsonBody, Path, QueryPairs};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

/// The quota resources shown at a microversion: network ones go at 2.36, file injection at
/// 2.57.
fn shown(ver: ApiVersion, resource: &str) -> bool {
    match resource {
        "fixed_ips" | "floating_ips" | "security_groups" | "security_group_rules" => {
            !ver.at_least(36)
        }
        "injected_files" | "injected_file_content_bytes" | "injected_file_path_bytes" => {
            !ver.at_least(57)
        }
        _ => true,
    }
}

fn used(r: &QuotaReport, resource: &str) -> i64 {
    match resource {
        "instances" => r.usage.instances,
        "cores" => r.usage.cores,
        "ram" => r.usage.ram,
        "key_pairs" => r.usage.key_pairs,
        "server_groups" => r.usage.server_groups,
        _ => 0,
    }
}

fn quota_set(ver: ApiVersion, project: &str, r: &QuotaReport, detail: bool) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(project));
    for (res, limit) in &r.limits {
        if !shown(ver, res) {
            continue;
        }
        let val = if detail {
            json!({"in_use": used(r, res), "limit": limit, "reserved": 0})
        } else {
            json!(limit)
        };
        m.insert((*res).into(), val);
    }
    json!({ "quota_set": m })
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(project): Path<String>,
) -> Result<Json<Value>, Fault> {
    let r = s
        .compute
        .quotas(&c, &ProjectId::new(project.clone()))
        .await?;
    Ok(Json(quota_set(ver, &project, &r, false)))
}

pub async fn detail(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(project): Path<String>,
) -> Result<Json<Value>, Fault> {
    if !c.is_admin() && !c.in_project(&ProjectId::new(project.clone())) {
        return Err(Fault::forbidden(
            "Policy doesn't allow os_compute_api:os-quota-sets:detail to be performed.",
        ));
    }
    let r = s
        .compute
        .quotas(&c, &ProjectId::new(project.clone()))
        .await?;
    Ok(Json(quota_set(ver, &project, &r, true)))
}

/// The defaults: the `default` quota class's limits.
pub async fn defaults(
    State(s): State<AppState>,
    Caller(_): Caller,
    ver: ApiVersion,
    Path(project): Path<String>,
) -> Result<Json<Value>, Fault> {
    let r = QuotaReport {
        limits: s.compute.quota_defaults().await?,
        usage: Default::default(),
    };
    Ok(Json(quota_set(ver, &project, &r, false)))
}

/// The resources a quota class shows at a microversion: the server group ones from 2.50,
/// which drops the network ones; 2.57 drops file injection.
fn class_shows(ver: ApiVersion, resource: &str) -> bool {
    match resource {
        "server_groups" | "server_group_members" => ver.at_least(50),
        "fixed_ips" | "floating_ips" | "security_groups" | "security_group_rules" => {
            !ver.at_least(50)
        }
        "injected_files" | "injected_file_content_bytes" | "injected_file_path_bytes" => {
            !ver.at_least(57)
        }
        _ => true,
    }
}

/// The resources a quota class update takes at a microversion (the server group ones at
/// every version).
fn class_takes(ver: ApiVersion, resource: &str) -> bool {
    matches!(resource, "server_groups" | "server_group_members") || class_shows(ver, resource)
}

fn quota_class_set(
    ver: ApiVersion,
    id: Option<&str>,
    limits: &std::collections::BTreeMap<&'static str, i64>,
) -> Value {
    let mut m = Map::new();
    if let Some(id) = id {
        m.insert("id".into(), json!(id));
    }
    for (res, limit) in limits {
        if class_shows(ver, res) {
            m.insert((*res).into(), json!(limit));
        }
    }
    json!({ "quota_class_set": m })
}

/// `GET /os-quota-class-sets/{class}` (admin).
pub async fn class_show(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(class): Path<String>,
) -> Result<Json<Value>, Fault> {
    let limits = s.compute.quota_class(&c, &class).await?;
    Ok(Json(quota_class_set(ver, Some(&class), &limits)))
}

/// `PUT /os-quota-class-sets/{class}` (admin). Only the class `default` is used: its limits
/// are those of every project without its own.
pub async fn class_update(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(class): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    let root = v::root(&body)?;
    let qv = v::required(root, "quota_class_set")?;
    v::only("", &body, &["quota_class_set"])?;
    let allowed: Vec<&str> = QUOTA_DEFAULTS
        .iter()
        .map(|(r, _)| *r)
        .filter(|r| class_takes(ver, r))
        .collect();
    v::only("quota_class_set", qv, &allowed)?;
    let o = v::object("quota_class_set", qv)?;
    let mut values = Vec::new();
    for (k, val) in o {
        let Some(res) = compute::servers::quota_resource(k) else {
            continue;
        };
        values.push((res, v::quota_limit(k, val)?));
    }
    let limits = s.compute.update_quota_class(&c, &class, values).await?;
    Ok(Json(quota_class_set(ver, None, &limits)))
}

pub async fn update(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(project): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    let root = v::root(&body)?;
    let qv = v::required(root, "quota_set")?;
    v::only("", &body, &["quota_set"])?;
    let mut allowed: Vec<&str> = QUOTA_DEFAULTS
        .iter()
        .map(|(r, _)| *r)
        .filter(|r| shown(ver, r))
        .collect();
    allowed.push("force");
    v::only("quota_set", qv, &allowed)?;
    let o = v::object("quota_set", qv)?;
    let force = match o.get("force") {
        Some(f) => v::boolean("force", f)?,
        None => false,
    };
    let mut values = Vec::new();
    for (k, val) in o {
        if k == "force" {
            continue;
        }
        let Some(res) = compute::servers::quota_resource(k) else {
            continue;
        };
        values.push((res, v::quota_limit(k, val)?));
    }
    let r = s
        .compute
        .update_quotas(&c, &ProjectId::new(project.clone()), values, force)
        .await?;
    let mut out = quota_set(ver, &project, &r, false);
    if let Some(m) = out["quota_set"].as_object_mut() {
        m.remove("id");
    }
    Ok(Json(out))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(project): Path<String>,
) -> Result<StatusCode, Fault> {
    s.compute
        .delete_quotas(&c, &ProjectId::new(project))
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// `GET /limits`: absolute limits with usage; `tenant_id` (admin) names another project.
pub async fn limits(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    if ver.at_least(75) {
        v::query_only(&q.0, &["tenant_id", "reserved"])?;
    }
    let project = match q.get("tenant_id") {
        Some(t) if c.is_admin() => ProjectId::new(t),
        // Naming a project, even one's own, is an admin's (`os_compute_api:limits:other_project`).
        Some(_) => {
            return Err(Fault::forbidden(
                "Policy doesn't allow os_compute_api:limits:other_project to be performed.",
            ));
        }
        _ => c
            .project_id
            .clone()
            .ok_or_else(|| Fault::forbidden("A project-scoped token is required."))?,
    };
    let r = s.compute.absolute_limits(&c, &project).await?;
    let l = |k: &str| r.limits.get(k).copied().unwrap_or(-1);
    let mut a = Map::new();
    let mut put = |k: &str, v: i64| {
        a.insert(k.into(), json!(v));
    };
    put("maxServerMeta", l("metadata_items"));
    put("maxTotalCores", l("cores"));
    put("maxTotalInstances", l("instances"));
    put("maxTotalKeypairs", l("key_pairs"));
    put("maxTotalRAMSize", l("ram"));
    put("maxServerGroups", l("server_groups"));
    put("maxServerGroupMembers", l("server_group_members"));
    put("totalCoresUsed", r.usage.cores);
    put("totalInstancesUsed", r.usage.instances);
    put("totalRAMUsed", r.usage.ram);
    put("totalServerGroupsUsed", r.usage.server_groups);
    if !ver.at_least(39) {
        put("maxImageMeta", l("metadata_items"));
    }
    if !ver.at_least(57) {
        put("maxPersonality", l("injected_files"));
        put("maxPersonalitySize", l("injected_file_content_bytes"));
    }
    if !ver.at_least(36) {
        put("maxSecurityGroups", l("security_groups"));
        put("maxSecurityGroupRules", l("security_group_rules"));
        put("maxTotalFloatingIps", l("floating_ips"));
        put("totalFloatingIpsUsed", 0);
        put("totalSecurityGroupsUsed", 0);
    }
    Ok(Json(json!({"limits": {"rate": [], "absolute": a}})))
}
