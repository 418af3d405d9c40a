//! `/v2.0/security-groups` and `/v2.0/security-group-rules`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

use super::list::ListParams;
use super::{body, collection_url, created, views};
use crate::extract::{AnyJson, Caller, JsonBody, QueryPairs};
use crate::{AppState, Fault};

const CREATE: &[&str] = &[
    "name",
    "description",
    "stateful",
    "project_id",
    "tenant_id",
    "tags",
];
const UPDATE: &[&str] = &["name", "description", "stateful"];
const RULE_CREATE: &[&str] = &[
    "security_group_id",
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_group_id",
    "remote_address_group_id",
    "description",
    "project_id",
    "tenant_id",
];

fn bulk_refused(b: &Value, key: &str) -> Result<(), Fault> {
    if b.get(key).is_some() {
        return Err(
            Fault::bad_request("Bulk creation is not supported by onebox").kind("HTTPBadRequest"),
        );
    }
    Ok(())
}

fn required(attr: &str) -> Fault {
    Fault::bad_request(format!(
        "Failed to parse request. Required attribute '{attr}' not specified"
    ))
    .kind("HTTPBadRequest")
}

/// A port bound as the text given (`null`: none); its meaning is checked by the service.
fn port_text(o: &Map<String, Value>, attr: &str) -> Option<String> {
    match o.get(attr) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => Some(v.to_string()),
    }
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    q: QueryPairs,
    h: HeaderMap,
) -> Result<Json<Value>, Fault> {
    let p = ListParams::parse(&q, views::SG_ATTRS)?;
    let items = s.network.list_security_groups(&c).await?;
    let items = items.iter().map(views::security_group).collect();
    Ok(Json(p.respond(
        "security_groups",
        items,
        &collection_url(&s, &h, "security-groups"),
    )?))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    let p = ListParams::parse(&q, views::SG_ATTRS)?;
    let g = s.network.get_security_group(&c, &id).await?;
    Ok(Json(
        json!({"security_group": p.project(views::security_group(&g))}),
    ))
}

pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    JsonBody(b): AnyJson,
) -> Result<(StatusCode, Json<Value>), Fault> {
    bulk_refused(&b, "security_groups")?;
    let o = body::object(&b, "security_group", CREATE)?;
    let req = ::network::SecurityGroupCreate {
        name: body::string(o, "name", 255)?.unwrap_or_default(),
        description: body::string(o, "description", 255)?.unwrap_or_default(),
        stateful: body::boolean(o, "stateful")?.unwrap_or(true),
        project_id: body::project(o)?,
        tags: body::string_list(o, "tags")?.unwrap_or_default(),
    };
    let g = s.network.create_security_group(&c, req).await?;
    Ok(created("security_group", views::security_group(&g)))
}

pub async fn update(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    JsonBody(b): AnyJson,
) -> Result<Json<Value>, Fault> {
    let o = body::object(&b, "security_group", UPDATE)?;
    let u = ::network::SecurityGroupUpdate {
        name: body::string(o, "name", 255)?,
        description: body::string(o, "description", 255)?,
        stateful: body::boolean(o, "stateful")?,
    };
    let g = s.network.update_security_group(&c, &id, u).await?;
    Ok(Json(json!({"security_group": views::security_group(&g)})))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Fault> {
    s.network.delete_security_group(&c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_rules(
    State(s): State<AppState>,
    Caller(c): Caller,
    q: QueryPairs,
    h: HeaderMap,
) -> Result<Json<Value>, Fault> {
    let p = ListParams::parse(&q, views::RULE_ATTRS)?;
    let items = s.network.list_rules(&c).await?;
    let items = items.iter().map(|(r, d)| views::rule(r, *d)).collect();
    Ok(Json(p.respond(
        "security_group_rules",
        items,
        &collection_url(&s, &h, "security-group-rules"),
    )?))
}

pub async fn show_rule(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    let p = ListParams::parse(&q, views::RULE_ATTRS)?;
    let (r, d) = s.network.get_rule(&c, &id).await?;
    Ok(Json(
        json!({"security_group_rule": p.project(views::rule(&r, d))}),
    ))
}

pub async fn create_rule(
    State(s): State<AppState>,
    Caller(c): Caller,
    JsonBody(b): AnyJson,
) -> Result<(StatusCode, Json<Value>), Fault> {
    bulk_refused(&b, "security_group_rules")?;
    let o = body::object(&b, "security_group_rule", RULE_CREATE)?;
    let Some(group) = body::string(o, "security_group_id", 255)? else {
        return Err(required("security_group_id"));
    };
    let Some(direction) = body::string(o, "direction", 255)? else {
        return Err(required("direction"));
    };
    if o.get("remote_address_group_id")
        .is_some_and(|v| !v.is_null())
    {
        return Err(body::invalid("address groups are not supported by onebox"));
    }
    // A project other than the group's is not honoured: a rule belongs to its group's
    // project; only its syntax is checked.
    body::project(o)?;
    let req = ::network::RuleCreate {
        security_group_id: group,
        direction,
        ethertype: body::string(o, "ethertype", 40)?,
        protocol: body::nullable_string(o, "protocol", 40)?.flatten(),
        port_range_min: port_text(o, "port_range_min"),
        port_range_max: port_text(o, "port_range_max"),
        remote_ip_prefix: body::nullable_string(o, "remote_ip_prefix", 255)?.flatten(),
        remote_group_id: body::nullable_string(o, "remote_group_id", 255)?.flatten(),
        description: body::string(o, "description", 255)?.unwrap_or_default(),
    };
    let (r, d) = s.network.create_rule(&c, req).await?;
    Ok(created("security_group_rule", views::rule(&r, d)))
}

pub async fn delete_rule(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Fault> {
    s.network.delete_rule(&c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
