//! `POST /servers/{id}/action`: the body is parsed into a [`ServerAction`] (one variant per
//! Nova action, with its arguments checked), then [`run`] hands it to compute with an
//! exhaustive `match`. An action this API does not know is refused by the parser.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{Extensions, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use compute::RebuildRequest;
use compute::actions::{LockChange, PowerAction};
use model::compute::VmState;
use serde_json::{Map, Value, json};

use super::servers::{access_ip, hostname, id_from_ref, user_data, view};
use super::validate as v;
use super::views::ViewKind;
use super::{Links, request_id, views};
use crate::extract::{AnyJson, Caller, JsonBody, Path};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

/// A server action with its parsed arguments, named as Nova's API reference names them.
#[derive(Debug)]
pub(super) enum ServerAction {
    /// `reboot`: `HARD` when `hard`, else `SOFT`.
    Reboot {
        hard: bool,
    },
    /// `os-stop`
    Stop,
    /// `os-start`
    Start,
    Pause,
    Unpause,
    Suspend,
    Resume,
    /// `lock`, with a reason from 2.73.
    Lock {
        reason: Option<String>,
    },
    Unlock,
    /// `os-getConsoleOutput`: the last `lines` lines, or all of it.
    ConsoleOutput {
        lines: Option<usize>,
    },
    Rebuild(Box<RebuildRequest>),
    Resize {
        flavor: String,
        /// `OS-DCF:diskConfig`: `Some(true)` for `AUTO`.
        auto_disk_config: Option<bool>,
    },
    ConfirmResize,
    RevertResize,
    CreateImage {
        name: String,
        metadata: BTreeMap<String, String>,
    },
    CreateBackup {
        name: String,
        backup_type: String,
        rotation: u32,
        metadata: BTreeMap<String, String>,
    },
    Shelve,
    ShelveOffload,
    /// `unshelve`: an availability zone (`Some(None)` unpins) and a host, from 2.77/2.91.
    Unshelve {
        availability_zone: Option<Option<String>>,
        host: Option<String>,
    },
    /// `os-resetState` to `active` or `error`.
    ResetState(VmState),
    ForceDelete,
    Restore,
    /// `trigger_crash_dump`, from 2.17.
    TriggerCrashDump,
    Rescue {
        admin_pass: Option<String>,
        image: Option<String>,
    },
    Unrescue,
    /// `changePassword`
    ChangePassword(String),
    /// `addSecurityGroup`: a group's name or id.
    AddSecurityGroup(String),
    /// `removeSecurityGroup`: a group's name or id.
    RemoveSecurityGroup(String),
}

impl ServerAction {
    /// An action body: exactly one key, the action's name, whose value holds its arguments.
    pub(super) fn parse(ver: ApiVersion, body: &Value) -> Result<Self, Fault> {
        let root = v::root(body)?;
        if root.len() != 1 {
            return Err(Fault::bad_request(
                "Malformed request body: exactly one action is expected",
            ));
        }
        let (name, arg) = root
            .iter()
            .next()
            .ok_or_else(|| Fault::bad_request("Malformed request body"))?;
        Self::parse_named(ver, name, arg)
    }

    /// The action `name` with its argument `arg`.
    fn parse_named(ver: ApiVersion, name: &str, arg: &Value) -> Result<Self, Fault> {
        Ok(match name {
            "reboot" => reboot_args(arg)?,
            "os-stop" => Self::Stop,
            "os-start" => Self::Start,
            "pause" => Self::Pause,
            "unpause" => Self::Unpause,
            "suspend" => Self::Suspend,
            "resume" => Self::Resume,
            "lock" => lock_args(ver, arg)?,
            "unlock" => Self::Unlock,
            "os-getConsoleOutput" => console_output_args(arg)?,
            "rebuild" => Self::Rebuild(Box::new(rebuild_args(ver, arg)?)),
            "resize" => resize_args(arg)?,
            "confirmResize" => Self::ConfirmResize,
            "revertResize" => Self::RevertResize,
            "createImage" => create_image_args(arg)?,
            "createBackup" => create_backup_args(arg)?,
            "shelve" => Self::Shelve,
            "shelveOffload" => Self::ShelveOffload,
            "unshelve" => unshelve_args(ver, arg)?,
            "os-resetState" => reset_state_args(arg)?,
            "forceDelete" => Self::ForceDelete,
            "restore" => Self::Restore,
            "trigger_crash_dump" if ver.at_least(17) => {
                if !arg.is_null() {
                    return Err(v::invalid(
                        "trigger_crash_dump",
                        arg,
                        &format!("{} is not of type 'null'", v::py_repr(arg)),
                    ));
                }
                Self::TriggerCrashDump
            }
            "rescue" => rescue_args(arg)?,
            // Nova's unrescue takes no schema: the body's value is ignored.
            "unrescue" => Self::Unrescue,
            "changePassword" => change_password_args(arg)?,
            "addSecurityGroup" => Self::AddSecurityGroup(group_name(name, arg)?),
            "removeSecurityGroup" => Self::RemoveSecurityGroup(group_name(name, arg)?),
            // nova-network's reset, removed: 410 whatever the server or the body.
            "resetNetwork" => return Err(super::versions::gone_fault()),
            other => {
                return Err(Fault::bad_request(format!(
                    "There is no such action: {other}"
                )));
            }
        })
    }
}

pub async fn action(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    ext: Extensions,
    Path(id): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Response, Fault> {
    if let Some(answer) =
        super::remote_consoles::legacy_action(&s, &c, ver, l.base(), &id, &body).await
    {
        return answer;
    }
    let act = ServerAction::parse(ver, &body)?;
    let rid = request_id(&ext);
    run(&s, &c, ver, &l, &id, act, &rid).await
}

/// Carries out a parsed action and builds its answer: 202 with no body unless the action
/// has something to say.
async fn run(
    s: &AppState,
    c: &identity::Context,
    ver: ApiVersion,
    l: &Links,
    id: &str,
    act: ServerAction,
    rid: &str,
) -> Result<Response, Fault> {
    let compute = &s.compute;
    let power = |a: PowerAction| compute.power_action(c, id, a, rid);
    match act {
        ServerAction::Reboot { hard: true } => power(PowerAction::RebootHard).await?,
        ServerAction::Reboot { hard: false } => power(PowerAction::RebootSoft).await?,
        ServerAction::Stop => power(PowerAction::Stop).await?,
        ServerAction::Start => power(PowerAction::Start).await?,
        ServerAction::Pause => power(PowerAction::Pause).await?,
        ServerAction::Unpause => power(PowerAction::Unpause).await?,
        ServerAction::Suspend => power(PowerAction::Suspend).await?,
        ServerAction::Resume => power(PowerAction::Resume).await?,
        ServerAction::Lock { reason } => {
            compute
                .set_lock(c, id, LockChange::Lock { reason }, rid)
                .await?
        }
        ServerAction::Unlock => compute.set_lock(c, id, LockChange::Unlock, rid).await?,
        ServerAction::ConsoleOutput { lines } => {
            let output = compute.console_output(c, id, lines).await?;
            return Ok(Json(json!({ "output": output })).into_response());
        }
        ServerAction::Rebuild(req) => {
            let (server, admin_pass) = compute.rebuild(c, id, *req, rid).await?;
            return Ok(rebuilt(ver, c, l, &server, &admin_pass));
        }
        ServerAction::Resize {
            flavor,
            auto_disk_config,
        } => {
            compute
                .resize(c, id, &flavor, auto_disk_config, rid)
                .await?
        }
        ServerAction::ConfirmResize => {
            compute.confirm_resize(c, id, rid).await?;
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        ServerAction::RevertResize => compute.revert_resize(c, id, rid).await?,
        ServerAction::CreateImage { name, metadata } => {
            let image = compute.create_image(c, id, name, metadata, rid).await?;
            return Ok(image_created(ver, l, &image));
        }
        ServerAction::CreateBackup {
            name,
            backup_type,
            rotation,
            metadata,
        } => {
            let image = compute
                .create_backup(c, id, name, backup_type, rotation, metadata, rid)
                .await?;
            return Ok(image_created(ver, l, &image));
        }
        ServerAction::Shelve => compute.shelve(c, id, rid).await?,
        ServerAction::ShelveOffload => compute.shelve_offload(c, id, rid).await?,
        ServerAction::Unshelve {
            availability_zone,
            host,
        } => {
            compute
                .unshelve(c, id, availability_zone, host, rid)
                .await?
        }
        ServerAction::ResetState(vm) => compute.reset_state(c, id, vm).await?,
        ServerAction::ForceDelete => compute.force_delete(c, id, rid).await?,
        ServerAction::Restore => compute.restore(c, id, rid).await?,
        ServerAction::TriggerCrashDump => compute.trigger_crash_dump(c, id, rid).await?,
        ServerAction::Rescue { admin_pass, image } => {
            let pass = compute.rescue(c, id, admin_pass, image, rid).await?;
            // `enable_instance_password` is always on: the password is returned.
            return Ok(Json(json!({ "adminPass": pass })).into_response());
        }
        ServerAction::Unrescue => compute.unrescue(c, id, rid).await?,
        ServerAction::ChangePassword(pw) => compute.change_password(c, id, pw, rid).await?,
        ServerAction::AddSecurityGroup(g) => compute.add_security_group(c, id, &g).await?,
        ServerAction::RemoveSecurityGroup(g) => compute.remove_security_group(c, id, &g).await?,
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

// ---- arguments -----------------------------------------------------------------------------

/// reboot's body: `{"type": "SOFT" | "HARD"}`, in any case.
fn reboot_args(arg: &Value) -> Result<ServerAction, Fault> {
    v::only("reboot", arg, &["type"])?;
    let o = v::object("reboot", arg)?;
    let t = v::required_in("reboot", arg, o, "type")?;
    match t.as_str().map(str::to_ascii_uppercase).as_deref() {
        Some("SOFT") => Ok(ServerAction::Reboot { hard: false }),
        Some("HARD") => Ok(ServerAction::Reboot { hard: true }),
        _ => Err(v::invalid(
            "type",
            t,
            &format!(
                "{} is not one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']",
                v::py_repr(t)
            ),
        )),
    }
}

/// addSecurityGroup's and removeSecurityGroup's body: `{"name": …}`.
fn group_name(action: &str, arg: &Value) -> Result<String, Fault> {
    v::only(action, arg, &["name"])?;
    let o = v::object(action, arg)?;
    v::string("name", v::required_in(action, arg, o, "name")?, 1, 255)
}

/// lock's body: ignored before 2.73; from 2.73 null or `{"locked_reason": …}`.
fn lock_args(ver: ApiVersion, arg: &Value) -> Result<ServerAction, Fault> {
    let reason = if ver.at_least(73) && !arg.is_null() {
        v::only("lock", arg, &["locked_reason"])?;
        let o = v::object("lock", arg)?;
        v::opt_string("locked_reason", o.get("locked_reason"), 0, 255)?
    } else {
        None
    };
    Ok(ServerAction::Lock { reason })
}

/// os-getConsoleOutput's body: `length`, a number of lines of any size (more lines than the
/// log has is all of it), as a JSON integer (at least -1) or a string of digits; -1 (or null)
/// means all of it, as does a negative string.
fn console_output_args(arg: &Value) -> Result<ServerAction, Fault> {
    v::only("os-getConsoleOutput", arg, &["length"])?;
    let o = v::object("os-getConsoleOutput", arg)?;
    let lines = match o.get("length") {
        None | Some(Value::Null) => None,
        Some(l) => console_length(l)?,
    };
    Ok(ServerAction::ConsoleOutput { lines })
}

/// Nova's schema for `length`: `integer`, `string` or `null`; strings match `'^-?[0-9]+$'`;
/// numbers are at least -1; no maximum.
fn console_length(l: &Value) -> Result<Option<usize>, Fault> {
    let bad_type = || {
        v::invalid(
            "length",
            l,
            &format!(
                "{} is not of type 'integer', 'string', 'null'",
                v::py_repr(l)
            ),
        )
    };
    let lines = |digits: &str| digits.parse::<usize>().unwrap_or(usize::MAX);
    match l {
        Value::Number(n) => {
            if n.is_f64() {
                return Err(bad_type());
            }
            if let Some(i) = n.as_i64()
                && i < -1
            {
                return Err(v::invalid(
                    "length",
                    l,
                    &format!("{i} is less than the minimum of -1"),
                ));
            }
            let t = n.to_string();
            Ok(t.strip_prefix('-').is_none().then(|| lines(&t)))
        }
        Value::String(s) => {
            let (neg, digits) = match s.strip_prefix('-') {
                Some(d) => (true, d),
                None => (false, s.as_str()),
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(v::invalid(
                    "length",
                    l,
                    &format!("{} does not match '^-?[0-9]+$'", v::py_repr(l)),
                ));
            }
            Ok((!neg).then(|| lines(digits)))
        }
        _ => Err(bad_type()),
    }
}

/// resize's body: `flavorRef` (an id or a URL) and an optional `OS-DCF:diskConfig`.
fn resize_args(arg: &Value) -> Result<ServerAction, Fault> {
    v::only("resize", arg, &["flavorRef", "OS-DCF:diskConfig"])?;
    let o = v::object("resize", arg)?;
    let flavor = match v::required_in("resize", arg, o, "flavorRef")? {
        Value::Number(n) => n.to_string(),
        x => id_from_ref(&v::string("flavorRef", x, 1, 255)?),
    };
    let auto_disk_config = disk_config(o)?;
    Ok(ServerAction::Resize {
        flavor,
        auto_disk_config,
    })
}

/// An image's `metadata`, empty when absent.
fn image_metadata(o: &Map<String, Value>) -> Result<BTreeMap<String, String>, Fault> {
    match o.get("metadata") {
        Some(m) => v::metadata("metadata", m),
        None => Ok(BTreeMap::new()),
    }
}

/// createImage's body: `name` and optional `metadata`.
fn create_image_args(arg: &Value) -> Result<ServerAction, Fault> {
    v::only("createImage", arg, &["name", "metadata"])?;
    let o = v::object("createImage", arg)?;
    let name = v::name("name", v::required_in("createImage", arg, o, "name")?)?;
    let metadata = image_metadata(o)?;
    Ok(ServerAction::CreateImage { name, metadata })
}

/// createBackup's body: `name`, `backup_type`, `rotation` and optional `metadata`.
fn create_backup_args(arg: &Value) -> Result<ServerAction, Fault> {
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
    let metadata = image_metadata(o)?;
    Ok(ServerAction::CreateBackup {
        name,
        backup_type,
        rotation,
        metadata,
    })
}

/// os-resetState's body: `{"state": "active" | "error"}`.
fn reset_state_args(arg: &Value) -> Result<ServerAction, Fault> {
    v::only("os-resetState", arg, &["state"])?;
    let o = v::object("os-resetState", arg)?;
    let st = v::required_in("os-resetState", arg, o, "state")?;
    match st.as_str() {
        Some("active") => Ok(ServerAction::ResetState(VmState::Active)),
        Some("error") => Ok(ServerAction::ResetState(VmState::Error)),
        _ => Err(v::invalid(
            "state",
            st,
            &format!("{} is not one of ['active', 'error']", v::py_repr(st)),
        )),
    }
}

/// changePassword's body: `{"adminPass": …}`.
fn change_password_args(arg: &Value) -> Result<ServerAction, Fault> {
    v::only("changePassword", arg, &["adminPass"])?;
    let o = v::object("changePassword", arg)?;
    let pw = v::string(
        "adminPass",
        v::required_in("changePassword", arg, o, "adminPass")?,
        0,
        255,
    )?;
    Ok(ServerAction::ChangePassword(pw))
}

/// rescue's body: null, or `adminPass` (any string) and `rescue_image_ref` (an image
/// uuid), both optional.
fn rescue_args(arg: &Value) -> Result<ServerAction, Fault> {
    if arg.is_null() {
        return Ok(ServerAction::Rescue {
            admin_pass: None,
            image: None,
        });
    }
    v::only("rescue", arg, &["adminPass", "rescue_image_ref"])?;
    let o = v::object("rescue", arg)?;
    let admin_pass = match o.get("adminPass") {
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
    Ok(ServerAction::Rescue { admin_pass, image })
}

/// `OS-DCF:diskConfig` of a create, update, rebuild or resize: `Some(true)` for `AUTO`,
/// `Some(false)` for `MANUAL`, `None` when absent. The server shows it; onebox's backends
/// grow the root file system as the image allows either way.
pub(super) fn disk_config(o: &Map<String, Value>) -> Result<Option<bool>, Fault> {
    match o.get("OS-DCF:diskConfig") {
        None => Ok(None),
        Some(d) => match d.as_str() {
            Some("AUTO") => Ok(Some(true)),
            Some("MANUAL") => Ok(Some(false)),
            _ => Err(v::invalid(
                "OS-DCF:diskConfig",
                d,
                &format!("{} is not one of ['AUTO', 'MANUAL']", v::py_repr(d)),
            )),
        },
    }
}

/// unshelve's body: null, or from 2.77 `{"availability_zone": …}` and from 2.91 also
/// `host` (an availability zone of null unpins, which changes nothing on one box).
fn unshelve_args(ver: ApiVersion, arg: &Value) -> Result<ServerAction, Fault> {
    if arg.is_null() {
        return Ok(ServerAction::Unshelve {
            availability_zone: None,
            host: None,
        });
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
    let availability_zone = match o.get("availability_zone") {
        None => None,
        Some(z) => Some(v::opt_string("availability_zone", Some(z), 1, 255)?),
    };
    let host = v::opt_string("host", o.get("host"), 1, 255)?;
    Ok(ServerAction::Unshelve {
        availability_zone,
        host,
    })
}

/// The fields rebuild's body may hold at this microversion.
fn rebuild_fields(ver: ApiVersion) -> Vec<&'static str> {
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
    allowed
}

/// rebuild's body: `imageRef` and what else the server takes anew.
fn rebuild_args(ver: ApiVersion, arg: &Value) -> Result<RebuildRequest, Fault> {
    v::only("rebuild", arg, &rebuild_fields(ver))?;
    let o = v::object("rebuild", arg)?;
    // Nova's schema: a string in the `uuid` format.
    let image_v = v::required_in("rebuild", arg, o, "imageRef")?;
    let image = v::string("imageRef", image_v, 0, usize::MAX)?;
    let image = super::servers::image_uuid(&image).ok_or_else(|| {
        v::invalid(
            "imageRef",
            image_v,
            &format!("{} is not a 'uuid'", v::py_repr(image_v)),
        )
    })?;
    let mut req = RebuildRequest {
        image_ref: image,
        ..Default::default()
    };
    if let Some(n) = o.get("name") {
        req.name = Some(v::name("name", n)?);
    }
    req.admin_pass = v::opt_string("adminPass", o.get("adminPass"), 0, 255)?;
    if let Some(m) = o.get("metadata") {
        req.metadata = Some(v::metadata("metadata", m)?);
    }
    req.auto_disk_config = disk_config(o)?;
    if let Some(x) = o.get("accessIPv4") {
        req.access_ipv4 = Some(access_ip("accessIPv4", x, false)?);
    }
    if let Some(x) = o.get("accessIPv6") {
        req.access_ipv6 = Some(access_ip("accessIPv6", x, true)?);
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
            Some(u) => Some(user_data(u)?),
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
        req.hostname = Some(hostname(ver, h)?);
    }
    Ok(req)
}

// ---- answers -------------------------------------------------------------------------------

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

/// The answer to rebuild: the server, with its new password.
fn rebuilt(
    ver: ApiVersion,
    c: &identity::Context,
    l: &Links,
    server: &model::compute::Server,
    admin_pass: &str,
) -> Response {
    let kind = if ver.at_least(75) {
        ViewKind::Show
    } else {
        ViewKind::Update
    };
    let mut body = views::server(l, view(ver, c, kind), server);
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
    (StatusCode::ACCEPTED, Json(json!({ "server": body }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::microversion::ApiVersion;

    fn parse(minor: u32, body: Value) -> Result<ServerAction, Fault> {
        ServerAction::parse(ApiVersion::new(2, minor), &body)
    }

    fn refused(minor: u32, body: Value) -> Fault {
        match parse(minor, body) {
            Ok(a) => panic!("parsed as {a:?}"),
            Err(f) => f,
        }
    }

    #[test]
    fn unknown_actions_are_refused_by_the_parser() {
        let f = refused(1, json!({"os-migrateLive": {"host": null}}));
        assert_eq!(f.status, StatusCode::BAD_REQUEST);
        assert_eq!(f.message, "There is no such action: os-migrateLive");
        // trigger_crash_dump exists from 2.17 only.
        let f = refused(16, json!({"trigger_crash_dump": null}));
        assert_eq!(f.message, "There is no such action: trigger_crash_dump");
        assert!(matches!(
            parse(17, json!({"trigger_crash_dump": null})),
            Ok(ServerAction::TriggerCrashDump)
        ));
    }

    #[test]
    fn a_body_names_exactly_one_action() {
        let f = refused(1, json!({"pause": null, "unpause": null}));
        assert_eq!(
            f.message,
            "Malformed request body: exactly one action is expected"
        );
        assert_eq!(refused(1, json!({})).status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn arguments_are_parsed_with_the_action() {
        assert!(matches!(
            parse(1, json!({"reboot": {"type": "hard"}})),
            Ok(ServerAction::Reboot { hard: true })
        ));
        assert!(
            refused(1, json!({"reboot": {"type": "warm"}}))
                .message
                .contains("is not one of ['HARD'")
        );
        match parse(1, json!({"resize": {"flavorRef": "http://x/flavors/42"}})) {
            Ok(ServerAction::Resize { flavor, .. }) => assert_eq!(flavor, "42"),
            other => panic!("{other:?}"),
        }
        // The reason is read from 2.73; before, the body's value is ignored.
        match parse(73, json!({"lock": {"locked_reason": "audit"}})) {
            Ok(ServerAction::Lock { reason }) => assert_eq!(reason.as_deref(), Some("audit")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(72, json!({"lock": {"locked_reason": "audit"}})),
            Ok(ServerAction::Lock { reason: None })
        ));
        // Console output: any size, -1 and null for all of it, strings of digits.
        for (length, want) in [
            (json!(-1), None),
            (json!(null), None),
            (json!("-1"), None),
            (json!(5), Some(5)),
            (json!("7"), Some(7)),
            (json!(4_294_967_296u64), Some(4_294_967_296usize)),
            (json!(u64::MAX), Some(usize::MAX)),
            (json!("99999999999999999999999"), Some(usize::MAX)),
        ] {
            match parse(1, json!({"os-getConsoleOutput": {"length": length}})) {
                Ok(ServerAction::ConsoleOutput { lines }) => assert_eq!(lines, want, "{length}"),
                other => panic!("{length}: {other:?}"),
            }
        }
        for (length, why) in [
            (json!(-2), "-2 is less than the minimum of -1"),
            (json!("ten"), "'ten' does not match '^-?[0-9]+$'"),
            (json!(1.5), "1.5 is not of type 'integer', 'string', 'null'"),
        ] {
            let f = refused(1, json!({"os-getConsoleOutput": {"length": length}}));
            assert!(f.message.ends_with(why), "{}", f.message);
        }
        assert!(matches!(
            parse(1, json!({"os-resetState": {"state": "error"}})),
            Ok(ServerAction::ResetState(VmState::Error))
        ));
        // unshelve takes arguments from 2.77 only.
        assert!(
            refused(76, json!({"unshelve": {"availability_zone": "nova"}}))
                .message
                .contains("is not of type 'null'")
        );
    }
}
