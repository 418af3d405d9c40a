//! `/os-server-groups`: groups with an affinity policy; a server joins one at create time
//! through the `group` scheduler hint.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use compute::groups::{NewGroup, POLICIES};
use model::operator::ServerGroup;
use serde_json::{Value, json};

use super::validate as v;
use crate::extract::{AnyJson, Caller, JsonBody, Path, QueryPairs};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

fn view(ver: ApiVersion, g: &ServerGroup) -> Value {
    let mut o = json!({
        "id": g.id,
        "name": g.name,
        "members": g.members,
    });
    if ver.at_least(64) {
        o["policy"] = json!(g.policy);
        o["rules"] = match g.max_server_per_host {
            Some(n) => json!({"max_server_per_host": n}),
            None => json!({}),
        };
    } else {
        o["policies"] = json!([g.policy]);
        o["metadata"] = json!({});
    }
    if ver.at_least(13) {
        o["project_id"] = json!(g.project_id);
        o["user_id"] = json!(g.user_id);
    }
    o
}

/// The policies a microversion accepts: the soft ones from 2.15, in the order of Nova's
/// schema (its messages list them so).
fn allowed_policies(ver: ApiVersion) -> Vec<&'static str> {
    let order = [
        "anti-affinity",
        "affinity",
        "soft-anti-affinity",
        "soft-affinity",
    ];
    debug_assert!(POLICIES.iter().all(|p| order.contains(p)));
    order
        .into_iter()
        .filter(|p| ver.at_least(15) || !p.starts_with("soft"))
        .collect()
}

fn enum_error(field: &str, value: &Value, allowed: &[&str]) -> Fault {
    let list = allowed
        .iter()
        .map(|p| format!("'{p}'"))
        .collect::<Vec<_>>()
        .join(", ");
    v::invalid(
        field,
        value,
        &format!("{} is not one of [{list}]", v::py_repr(value)),
    )
}

pub fn parse_create(ver: ApiVersion, body: &Value) -> Result<NewGroup, Fault> {
    let root = v::root(body)?;
    v::only("", body, &["server_group"])?;
    let g = v::required(root, "server_group")?;
    let o = v::object("server_group", g)?;
    let name = v::name("name", v::required_in("server_group", g, o, "name")?)?;
    let allowed = allowed_policies(ver);
    if ver.at_least(64) {
        // jsonschema's order: the required key before the unexpected ones.
        let p = v::required_in("server_group", g, o, "policy")?;
        v::only("server_group", g, &["name", "policy", "rules"])?;
        let policy = match p.as_str() {
            Some(s) if allowed.contains(&s) => s.to_owned(),
            _ => return Err(enum_error("policy", p, &allowed)),
        };
        let mut max = None;
        if let Some(rules) = o.get("rules") {
            v::only("rules", rules, &["max_server_per_host"])?;
            let r = v::object("rules", rules)?;
            if let Some(m) = r.get("max_server_per_host") {
                if policy != "anti-affinity" {
                    return Err(Fault::bad_request(
                        "Only anti-affinity policy supports rules.",
                    ));
                }
                max = Some(v::integer(
                    "max_server_per_host",
                    m,
                    1,
                    i64::from(i32::MAX),
                )?);
            }
        }
        Ok(NewGroup {
            name,
            policy,
            max_server_per_host: max,
        })
    } else {
        let p = v::required_in("server_group", g, o, "policies")?;
        v::only("server_group", g, &["name", "policies"])?;
        let list = p.as_array().ok_or_else(|| {
            v::invalid(
                "policies",
                p,
                &format!("{} is not of type 'array'", v::py_repr(p)),
            )
        })?;
        if list.len() != 1 {
            let why = if list.is_empty() {
                format!("{} is too short", v::py_repr(p))
            } else {
                format!("{} is too long", v::py_repr(p))
            };
            return Err(v::invalid("policies", p, &why));
        }
        let policy = match list[0].as_str() {
            Some(s) if allowed.contains(&s) => s.to_owned(),
            _ => return Err(enum_error("policies[0]", &list[0], &allowed)),
        };
        Ok(NewGroup {
            name,
            policy,
            max_server_per_host: None,
        })
    }
}

pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    let g = parse_create(ver, &body)?;
    let g = s.compute.create_group(&c, g).await?;
    Ok(Json(json!({"server_group": view(ver, &g)})))
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    if ver.at_least(75) {
        v::query_only(&q.0, &["all_projects", "limit", "offset"])?;
    }
    let all = q
        .get("all_projects")
        .is_some_and(|a| v::query_bool(a).unwrap_or(false));
    let number = |name: &str| -> Result<Option<usize>, Fault> {
        match q.get(name) {
            None => Ok(None),
            Some(x) => x.parse::<usize>().map(Some).map_err(|_| {
                Fault::bad_request(format!(
                    "Invalid input for query parameters {name}. Value: {x}. '{x}' does not match '^[0-9]*$'"
                ))
            }),
        }
    };
    let offset = number("offset")?.unwrap_or(0);
    let max = s.compute.config().max_limit;
    let limit = number("limit")?.unwrap_or(max).min(max);
    let groups = s.compute.list_groups(&c, all).await?;
    let items: Vec<Value> = groups
        .iter()
        .skip(offset)
        .take(limit)
        .map(|g| view(ver, g))
        .collect();
    Ok(Json(json!({"server_groups": items})))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let g = s.compute.get_group(&c, &id).await?;
    Ok(Json(json!({"server_group": view(ver, &g)})))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<Response, Fault> {
    s.compute.delete_group(&c, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
