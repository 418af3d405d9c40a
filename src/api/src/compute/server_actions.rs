//! `POST /servers/{id}/action` and `/servers/{id}/os-instance-actions`.

use axum::Json;
use axum::extract::State;
use axum::http::{Extensions, StatusCode};
use axum::response::{IntoResponse, Response};
use compute::actions::{LockChange, PowerAction};
use serde_json::{Value, json};

use super::validate as v;
use super::{Links, request_id, views};
use crate::extract::{AnyJson, Caller, JsonBody, Path, QueryPairs};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

/// The action body has exactly one key, the action's name.
pub async fn action(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    ext: Extensions,
    Path(id): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Response, Fault> {
    let root = v::root(&body)?;
    if root.len() != 1 {
        return Err(Fault::bad_request(
            "Malformed request body: exactly one action is expected",
        ));
    }
    let (name, arg) = root
        .iter()
        .next()
        .ok_or_else(|| Fault::bad_request("Malformed request body"))?;
    let rid = request_id(&ext);
    let power = |a: PowerAction| Some(a);
    let act = match name.as_str() {
        "reboot" => {
            v::only("reboot", arg, &["type"])?;
            let o = v::object("reboot", arg)?;
            let t = v::required_in("reboot", arg, o, "type")?;
            match t.as_str().map(str::to_ascii_uppercase).as_deref() {
                Some("SOFT") => power(PowerAction::RebootSoft),
                Some("HARD") => power(PowerAction::RebootHard),
                _ => {
                    return Err(v::invalid(
                        "type",
                        t,
                        &format!(
                            "{} is not one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']",
                            v::py_repr(t)
                        ),
                    ));
                }
            }
        }
        "os-stop" => power(PowerAction::Stop),
        "os-start" => power(PowerAction::Start),
        "pause" => power(PowerAction::Pause),
        "unpause" => power(PowerAction::Unpause),
        "suspend" => power(PowerAction::Suspend),
        "resume" => power(PowerAction::Resume),
        "lock" => {
            let reason = if ver.at_least(73) && !arg.is_null() {
                v::only("lock", arg, &["locked_reason"])?;
                let o = v::object("lock", arg)?;
                v::opt_string("locked_reason", o.get("locked_reason"), 0, 255)?
            } else {
                None
            };
            s.compute
                .set_lock(&c, &id, LockChange::Lock { reason }, &rid)
                .await?;
            None
        }
        "os-getConsoleOutput" => {
            v::only("os-getConsoleOutput", arg, &["length"])?;
            let o = v::object("os-getConsoleOutput", arg)?;
            let lines = match o.get("length") {
                None | Some(Value::Null) => None,
                Some(l) => {
                    let n = v::integer("length", l, -1, i64::from(i32::MAX))?;
                    (n >= 0).then_some(n as usize)
                }
            };
            let output = s.compute.console_output(&c, &id, lines).await?;
            return Ok(Json(json!({ "output": output })).into_response());
        }
        "unlock" => {
            s.compute
                .set_lock(&c, &id, LockChange::Unlock, &rid)
                .await?;
            None
        }
        other => {
            return Err(Fault::bad_request(format!(
                "There is no such action: {other}"
            )));
        }
    };
    if let Some(a) = act {
        s.compute.power_action(&c, &id, a, &rid).await?;
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

fn action_view(ver: ApiVersion, a: &store::compute::InstanceAction) -> Value {
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
            .map(|t| super::servers::parse_time("changes-since", t))
            .transpose()?;
        let before = q
            .get("changes-before")
            .map(|t| super::servers::parse_time("changes-before", t))
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
                    if admin {
                        ev["traceback"] = Value::Null;
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
