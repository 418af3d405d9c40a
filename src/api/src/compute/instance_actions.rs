//! `/servers/{id}/os-instance-actions`: the record of what was done to a server, by whom,
//! and (for one action) its events.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::validate as v;
use super::{Links, views};
use crate::extract::{Caller, Path, QueryPairs};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

fn action_view(ver: ApiVersion, a: &model::compute::InstanceAction) -> Value {
    let mut o = json!({
        "action": a.action,
        "instance_uuid": a.server_id,
        "message": a.message,
        "project_id": a.project_id,
        "request_id": a.request_id,
        "start_time": views::naive_time(a.start_time),
        "user_id": a.user_id,
    });
    if ver.at_least(58) {
        o["updated_at"] = json!(views::naive_time(a.updated_at));
    }
    o
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    q: QueryPairs,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let (server, mut actions) = s.compute.instance_actions(&c, &id).await?;
    if server.deleted && !ver.at_least(21) {
        return Err(Fault::not_found(format!(
            "Instance {id} could not be found."
        )));
    }
    let mut body = json!({});
    if ver.at_least(58) {
        let mut allowed = vec!["limit", "marker", "changes-since"];
        if ver.at_least(66) {
            allowed.push("changes-before");
        }
        v::query_only(&q.0, &allowed)?;
        let since = q
            .get("changes-since")
            .map(|t| v::parse_time("changes-since", t))
            .transpose()?;
        let before = q
            .get("changes-before")
            .map(|t| v::parse_time("changes-before", t))
            .transpose()?;
        if let (Some(a), Some(b)) = (since, before)
            && a > b
        {
            return Err(Fault::bad_request(
                "The value of changes-since must be less than or equal to changes-before.",
            ));
        }
        if let Some(t) = since {
            actions.retain(|a| a.updated_at >= t);
        }
        if let Some(t) = before {
            actions.retain(|a| a.updated_at <= t);
        }
        let (limit, marker) = v::paging(&q)?;
        if let Some(m) = marker {
            let pos = actions
                .iter()
                .position(|a| a.request_id == m)
                .ok_or_else(|| Fault::bad_request(format!("Marker {m} could not be found.")))?;
            actions.drain(..=pos);
        }
        let max = s.compute.config().max_limit;
        let limit = limit.unwrap_or(max).min(max);
        if actions.len() > limit {
            actions.truncate(limit);
        }
        if actions.len() == limit
            && limit > 0
            && let Some(last) = actions.last()
        {
            body["links"] = l.next(
                &format!("servers/{id}/os-instance-actions"),
                &q.0,
                &last.request_id,
            );
        }
    }
    body["instanceActions"] = json!(
        actions
            .iter()
            .map(|a| action_view(ver, a))
            .collect::<Vec<_>>()
    );
    Ok(Json(body))
}

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path((id, request)): Path<(String, String)>,
) -> Result<Json<Value>, Fault> {
    let (server, a, events) = s.compute.instance_action(&c, &id, &request).await?;
    if server.deleted && !ver.at_least(21) {
        return Err(Fault::not_found(format!(
            "Instance {id} could not be found."
        )));
    }
    let admin = c.is_admin();
    let mut o = action_view(ver, &a);
    if admin || ver.at_least(51) {
        let host_id = views::host_id(&server);
        o["events"] = json!(
            events
                .iter()
                .map(|e| {
                    let mut ev = json!({
                        "event": e.event,
                        "start_time": views::naive_time(e.start_time),
                        "finish_time": e.finish_time.map(views::naive_time),
                        "result": e.result,
                    });
                    // The backend's error, paths and all, is for admins only.
                    if admin {
                        ev["traceback"] = match e.result.as_deref() {
                            Some("Error") => json!(e.details),
                            _ => Value::Null,
                        };
                    }
                    if ver.at_least(62) {
                        ev["hostId"] = json!(host_id);
                        if admin {
                            ev["host"] = json!(e.host);
                        }
                    }
                    if ver.at_least(84) && admin {
                        ev["details"] = json!(e.details);
                    }
                    ev
                })
                .collect::<Vec<_>>()
        );
    }
    Ok(Json(json!({ "instanceAction": o })))
}
