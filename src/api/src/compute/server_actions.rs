//! `POST /servers/{id}/action` and `/servers/{id}/os-instance-actions`.

use axum::Json;
use axum::extract::State;
use axum::http::{Extensions, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use compute::actions::{LockChange, PowerAction};
use serde_json::{Value, json};

use super::validate as v;
use super::views::ViewKind;
use super::{Links, request_id, views};
use crate::extract::{AnyJson, Caller, JsonBody, Path, QueryPairs};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

/// The action body has exactly one key, the action's name.
pub async fn action(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
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
        "rebuild" => return rebuild(&s, &c, ver, &l, &id, arg, &rid).await,
        "resize" => {
            v::only("resize", arg, &["flavorRef", "OS-DCF:diskConfig"])?;
            let o = v::object("resize", arg)?;
            let flavor = match v::required_in("resize", arg, o, "flavorRef")? {
                Value::Number(n) => n.to_string(),
                x => super::servers::id_from_ref(&v::string("flavorRef", x, 1, 255)?),
            };
            disk_config(o)?;
            s.compute.resize(&c, &id, &flavor, &rid).await?;
            None
        }
        "confirmResize" => {
            s.compute.confirm_resize(&c, &id, &rid).await?;
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        "revertResize" => {
            s.compute.revert_resize(&c, &id, &rid).await?;
            None
        }
        "createImage" => {
            v::only("createImage", arg, &["name", "metadata"])?;
            let o = v::object("createImage", arg)?;
            let name = v::name("name", v::required_in("createImage", arg, o, "name")?)?;
            let metadata = match o.get("metadata") {
                Some(m) => v::metadata("metadata", m)?,
                None => Default::default(),
            };
            let image = s
                .compute
                .create_image(&c, &id, name, metadata, &rid)
                .await?;
            return Ok(image_created(ver, &l, &image));
        }
        "createBackup" => {
            v::only(
                "createBackup",
                arg,
                &["name", "backup_type", "rotation", "metadata"],
            )?;
            let o = v::object("createBackup", arg)?;
            let name = v::name("name", v::required_in("createBackup", arg, o, "name")?)?;
            let backup_type = v::string(
                "backup_type",
                v::required_in("createBackup", arg, o, "backup_type")?,
                0,
                255,
            )?;
            let rotation = v::integer(
                "rotation",
                v::required_in("createBackup", arg, o, "rotation")?,
                0,
                i64::from(i32::MAX),
            )? as u32;
            let metadata = match o.get("metadata") {
                Some(m) => v::metadata("metadata", m)?,
                None => Default::default(),
            };
            let image = s
                .compute
                .create_backup(&c, &id, name, backup_type, rotation, metadata, &rid)
                .await?;
            return Ok(image_created(ver, &l, &image));
        }
        "shelve" => {
            s.compute.shelve(&c, &id, &rid).await?;
            None
        }
        "shelveOffload" => {
            s.compute.shelve_offload(&c, &id, &rid).await?;
            None
        }
        "unshelve" => {
            let (az, host) = unshelve_args(ver, arg)?;
            s.compute.unshelve(&c, &id, az, host, &rid).await?;
            None
        }
        "os-resetState" => {
            v::only("os-resetState", arg, &["state"])?;
            let o = v::object("os-resetState", arg)?;
            let st = v::required_in("os-resetState", arg, o, "state")?;
            let vm = match st.as_str() {
                Some("active") => model::compute::VmState::Active,
                Some("error") => model::compute::VmState::Error,
                _ => {
                    return Err(v::invalid(
                        "state",
                        st,
                        &format!("{} is not one of ['active', 'error']", v::py_repr(st)),
                    ));
                }
            };
            s.compute.reset_state(&c, &id, vm).await?;
            None
        }
        "forceDelete" => {
            s.compute.force_delete(&c, &id, &rid).await?;
            None
        }
        "restore" => {
            s.compute.restore(&c, &id, &rid).await?;
            None
        }
        "trigger_crash_dump" if ver.at_least(17) => {
            if !arg.is_null() {
                return Err(v::invalid(
                    "trigger_crash_dump",
                    arg,
                    &format!("{} is not of type 'null'", v::py_repr(arg)),
                ));
            }
            s.compute.trigger_crash_dump(&c, &id, &rid).await?;
            None
        }
        "rescue" => {
            let (pass, image) = rescue_args(arg)?;
            let pass = s.compute.rescue(&c, &id, pass, image, &rid).await?;
            // `enable_instance_password` is always on: the password is returned.
            return Ok(Json(json!({ "adminPass": pass })).into_response());
        }
        // Nova's unrescue takes no schema: the body's value is ignored.
        "unrescue" => {
            s.compute.unrescue(&c, &id, &rid).await?;
            None
        }
        "changePassword" => {
            v::only("changePassword", arg, &["adminPass"])?;
            let o = v::object("changePassword", arg)?;
            let pw = v::string(
                "adminPass",
                v::required_in("changePassword", arg, o, "adminPass")?,
                0,
                255,
            )?;
            s.compute.change_password(&c, &id, pw, &rid).await?;
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

/// rescue's body: null, or `adminPass` (any string) and `rescue_image_ref` (an image
/// uuid), both optional.
fn rescue_args(arg: &Value) -> Result<(Option<String>, Option<String>), Fault> {
    if arg.is_null() {
        return Ok((None, None));
    }
    v::only("rescue", arg, &["adminPass", "rescue_image_ref"])?;
    let o = v::object("rescue", arg)?;
    let pass = match o.get("adminPass") {
        None => None,
        Some(p) => Some(v::string("adminPass", p, 0, usize::MAX)?),
    };
    let image = match o.get("rescue_image_ref") {
        None => None,
        Some(r) => {
            let r = v::string("rescue_image_ref", r, 0, usize::MAX)?;
            let u = uuid::Uuid::parse_str(&r).map_err(|_| {
                v::invalid(
                    "rescue_image_ref",
                    &json!(r),
                    &format!("'{r}' is not a 'uuid'"),
                )
            })?;
            Some(u.hyphenated().to_string())
        }
    };
    Ok((pass, image))
}

/// `OS-DCF:diskConfig` is accepted (`AUTO` or `MANUAL`) and otherwise ignored: onebox's
/// backends grow the root file system as the image allows.
fn disk_config(o: &serde_json::Map<String, Value>) -> Result<(), Fault> {
    if let Some(d) = o.get("OS-DCF:diskConfig")
        && !matches!(d.as_str(), Some("AUTO" | "MANUAL"))
    {
        return Err(v::invalid(
            "OS-DCF:diskConfig",
            d,
            &format!("{} is not one of ['AUTO', 'MANUAL']", v::py_repr(d)),
        ));
    }
    Ok(())
}

/// The answer to createImage and createBackup: `Location` up to 2.44, the id from 2.45.
fn image_created(ver: ApiVersion, l: &Links, image: &str) -> Response {
    if ver.at_least(45) {
        return (StatusCode::ACCEPTED, Json(json!({ "image_id": image }))).into_response();
    }
    let mut resp = StatusCode::ACCEPTED.into_response();
    if let Ok(v) = HeaderValue::from_str(&l.href(&format!("images/{image}"))) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// unshelve's body: null, or from 2.77 `{"availability_zone": …}` and from 2.91 also
/// `host` (an availability zone of null unpins, which changes nothing on one box).
type UnshelveArgs = (Option<Option<String>>, Option<String>);

fn unshelve_args(ver: ApiVersion, arg: &Value) -> Result<UnshelveArgs, Fault> {
    if arg.is_null() {
        return Ok((None, None));
    }
    if !ver.at_least(77) {
        return Err(v::invalid(
            "unshelve",
            arg,
            &format!("{} is not of type 'null'", v::py_repr(arg)),
        ));
    }
    let mut allowed = vec!["availability_zone"];
    if ver.at_least(91) {
        allowed.push("host");
    }
    v::only("unshelve", arg, &allowed)?;
    let o = v::object("unshelve", arg)?;
    if !ver.at_least(91) && matches!(o.get("availability_zone"), Some(Value::Null)) {
        return Err(v::invalid(
            "availability_zone",
            &Value::Null,
            "None is not of type 'string'",
        ));
    }
    let az = match o.get("availability_zone") {
        None => None,
        Some(z) => Some(v::opt_string("availability_zone", Some(z), 1, 255)?),
    };
    let host = v::opt_string("host", o.get("host"), 1, 255)?;
    Ok((az, host))
}

async fn rebuild(
    s: &AppState,
    c: &identity::Context,
    ver: ApiVersion,
    l: &Links,
    id: &str,
    arg: &Value,
    rid: &str,
) -> Result<Response, Fault> {
    let mut allowed = vec![
        "imageRef",
        "name",
        "adminPass",
        "metadata",
        "OS-DCF:diskConfig",
        "accessIPv4",
        "accessIPv6",
        "preserve_ephemeral",
    ];
    if !ver.at_least(57) {
        allowed.push("personality");
    }
    if ver.at_least(19) {
        allowed.push("description");
    }
    if ver.at_least(54) {
        allowed.push("key_name");
    }
    if ver.at_least(57) {
        allowed.push("user_data");
    }
    if ver.at_least(63) {
        allowed.push("trusted_image_certificates");
    }
    if ver.at_least(90) {
        allowed.push("hostname");
    }
    v::only("rebuild", arg, &allowed)?;
    let o = v::object("rebuild", arg)?;
    let image = v::string(
        "imageRef",
        v::required_in("rebuild", arg, o, "imageRef")?,
        1,
        2048,
    )?;
    let mut req = compute::RebuildRequest {
        image_ref: super::servers::id_from_ref(&image),
        ..Default::default()
    };
    if let Some(n) = o.get("name") {
        req.name = Some(v::name("name", n)?);
    }
    req.admin_pass = v::opt_string("adminPass", o.get("adminPass"), 0, 255)?;
    if let Some(m) = o.get("metadata") {
        req.metadata = Some(v::metadata("metadata", m)?);
    }
    disk_config(o)?;
    if let Some(x) = o.get("accessIPv4") {
        req.access_ipv4 = Some(super::servers::access_ip("accessIPv4", x, false)?);
    }
    if let Some(x) = o.get("accessIPv6") {
        req.access_ipv6 = Some(super::servers::access_ip("accessIPv6", x, true)?);
    }
    if let Some(p) = o.get("preserve_ephemeral") {
        req.preserve_ephemeral = v::boolean("preserve_ephemeral", p)?;
    }
    if o.contains_key("description") {
        req.description = Some(v::opt_string("description", o.get("description"), 0, 255)?);
    }
    if o.contains_key("key_name") {
        req.key_name = Some(v::opt_string("key_name", o.get("key_name"), 1, 255)?);
    }
    if o.contains_key("user_data") {
        req.user_data = Some(match o.get("user_data") {
            None | Some(Value::Null) => None,
            Some(u) => {
                let s = v::string("user_data", u, 0, 65535)?;
                base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .map_err(|_| Fault::bad_request("User data needs to be valid base 64."))?;
                Some(s)
            }
        });
    }
    if let Some(t) = o.get("trusted_image_certificates")
        && !t.is_null()
    {
        return Err(Fault::bad_request(
            "Image certificate validation is not enabled.",
        ));
    }
    if let Some(h) = o.get("hostname") {
        req.hostname = Some(super::servers::hostname(ver, h)?);
    }
    let (server, admin_pass) = s.compute.rebuild(c, id, req, rid).await?;
    let kind = if ver.at_least(75) {
        ViewKind::Show
    } else {
        ViewKind::Update
    };
    let mut body = views::server(l, super::servers::view(ver, c, kind), &server);
    body["adminPass"] = json!(admin_pass);
    // Nova's rebuild answer names the key from 2.54 and the user data from 2.57 (in place of
    // the extended attribute).
    if ver.at_least(54) {
        body["key_name"] = json!(server.key_name);
    }
    if ver.at_least(57) {
        if let Some(o) = body.as_object_mut() {
            o.remove("OS-EXT-SRV-ATTR:user_data");
        }
        body["user_data"] = json!(server.user_data);
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "server": body }))).into_response())
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
