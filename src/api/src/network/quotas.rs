//! `/v2.0/quotas`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::body;
use crate::extract::{AnyJson, Caller, JsonBody};
use crate::{AppState, Fault};

fn limits(v: Vec<(&'static str, i64)>) -> Value {
    let mut m: Map<String, Value> = v
        .into_iter()
        .map(|(k, l)| (k.to_owned(), json!(l)))
        .collect();
    // Resources Neutron counts that onebox does not offer: never limited.
    m.insert("subnetpool".into(), json!(-1));
    m.insert("rbac_policy".into(), json!(-1));
    Value::Object(m)
}

/// Projects with limits of their own (an admin's view); a member sees its own.
pub async fn list(State(s): State<AppState>, Caller(c): Caller) -> Result<Json<Value>, Fault> {
    let mut out = Vec::new();
    if let Some(p) = &c.project_id {
        let mut q = limits(s.network.quota(&c, p.as_str()).await?);
        q["project_id"] = json!(p.as_str());
        q["tenant_id"] = json!(p.as_str());
        out.push(q);
    }
    Ok(Json(json!({ "quotas": out })))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(project): Path<String>,
) -> Result<Json<Value>, Fault> {
    Ok(Json(
        json!({ "quota": limits(s.network.quota(&c, &project).await?) }),
    ))
}

pub async fn details(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(project): Path<String>,
) -> Result<Json<Value>, Fault> {
    let mut m = Map::new();
    for (k, limit, used) in s.network.quota_details(&c, &project).await? {
        m.insert(
            k.into(),
            json!({"limit": limit, "used": used, "reserved": 0}),
        );
    }
    for k in ["subnetpool", "rbac_policy"] {
        m.insert(k.into(), json!({"limit": -1, "used": 0, "reserved": 0}));
    }
    Ok(Json(json!({ "quota": m })))
}

pub async fn defaults(State(s): State<AppState>, Caller(_c): Caller) -> Json<Value> {
    Json(json!({ "quota": limits(s.network.quota_defaults()) }))
}

pub async fn update(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(project): Path<String>,
    JsonBody(b): AnyJson,
) -> Result<Json<Value>, Fault> {
    let o = b.get("quota").and_then(Value::as_object).ok_or_else(|| {
        Fault::bad_request("Unable to find 'quota' in request body").kind("HTTPBadRequest")
    })?;
    let mut asked = Vec::new();
    for (k, v) in o {
        if k == "subnetpool" || k == "rbac_policy" {
            continue;
        }
        let n = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| body::invalid(format!("'{v}' is not an integer")))?;
        asked.push((k.clone(), n));
    }
    Ok(Json(
        json!({ "quota": limits(s.network.set_quota(&c, &project, asked).await?) }),
    ))
}

pub async fn reset(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(project): Path<String>,
) -> Result<StatusCode, Fault> {
    s.network.reset_quota(&c, &project).await?;
    Ok(StatusCode::NO_CONTENT)
}
