//! Console URLs: `POST /servers/{id}/remote-consoles` (2.6+), the older actions
//! `os-getVNCConsole`, `os-getSerialConsole` and `os-getSPICEConsole` (until 2.5), and
//! `GET /os-console-auth-tokens/{token}` (admins, 2.31+). The URLs point at this listener's
//! console proxy ([`crate::console`]).

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use driver::ConsoleKind;
use serde_json::{Map, Value, json};

use super::validate as v;
use crate::extract::{AnyJson, Caller, JsonBody, Path};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

/// What a request asks for once its schema passed: the protocol and type as sent.
struct Asked {
    protocol: String,
    console_type: String,
}

fn one_of(field: &str, value: &Value, allowed: &[&str]) -> Result<String, Fault> {
    let list = allowed
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(", ");
    match value.as_str() {
        Some(s) if allowed.contains(&s) => Ok(s.to_owned()),
        Some(_) => Err(v::invalid(
            field,
            value,
            &format!("{} is not one of [{list}]", v::py_repr(value)),
        )),
        None => Err(v::invalid(
            field,
            value,
            &format!("{} is not of type 'string'", v::py_repr(value)),
        )),
    }
}

/// `remote_console`'s schema at `ver`, checked in jsonschema's order.
fn parse_create(ver: ApiVersion, body: &Value) -> Result<Asked, Fault> {
    let root = v::root(body)?;
    let mut protocols = vec!["vnc", "spice", "serial", "rdp"];
    let mut types = vec!["novnc", "xvpvnc", "spice-html5", "serial", "rdp-html5"];
    if ver.at_least(8) {
        protocols.push("mks");
        types.push("webmks");
    }
    if ver.at_least(99) {
        types.push("spice-direct");
    }
    let rc = root.get("remote_console");
    if let Some(rc) = rc {
        let o: &Map<String, Value> = v::object("remote_console", rc)?;
        if let Some(p) = o.get("protocol") {
            one_of("protocol", p, &protocols)?;
        }
        if let Some(t) = o.get("type") {
            one_of("type", t, &types)?;
        }
        v::required_in("remote_console", rc, o, "protocol")?;
        v::required_in("remote_console", rc, o, "type")?;
        v::only("remote_console", rc, &["protocol", "type"])?;
    }
    let rc = v::required(root, "remote_console")?;
    v::only("", body, &["remote_console"])?;
    Ok(Asked {
        protocol: rc["protocol"].as_str().unwrap_or_default().to_owned(),
        console_type: rc["type"].as_str().unwrap_or_default().to_owned(),
    })
}

/// Which console a protocol and type name, as Nova's handlers decide: an unserved protocol
/// is unavailable (400), a VNC console must be `novnc`.
fn console_of(asked: &Asked) -> Result<ConsoleKind, Fault> {
    match asked.protocol.as_str() {
        "rdp" => Err(Fault::bad_request(format!(
            "Unavailable console type {}.",
            asked.protocol
        ))),
        "vnc" if asked.console_type == "novnc" => Ok(ConsoleKind::Vnc),
        "vnc" => Err(Fault::bad_request(format!(
            "Invalid console type {}",
            asked.console_type
        ))),
        "serial" => Ok(ConsoleKind::Serial),
        _ => Err(Fault::bad_request(format!(
            "Unavailable console type {}.",
            asked.console_type
        ))),
    }
}

/// The URL a client opens: the serial console's websocket, or noVNC's page with the path of
/// the VNC websocket (noVNC joins it to the page's own host).
fn url(base: &str, kind: ConsoleKind, token: &str) -> String {
    match kind {
        ConsoleKind::Serial => {
            let ws = if let Some(rest) = base.strip_prefix("https://") {
                format!("wss://{rest}")
            } else {
                format!("ws://{}", base.trim_start_matches("http://"))
            };
            format!("{ws}/console/serial?token={token}")
        }
        ConsoleKind::Vnc => format!(
            "{base}/console/vnc/vnc_lite.html?path=console%2Fvnc%2Fwebsockify%3Ftoken%3D{token}"
        ),
    }
}

pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Response, Fault> {
    if !ver.at_least(6) {
        return Err(Fault::not_found("The resource could not be found."));
    }
    let asked = parse_create(ver, &body)?;
    // Nova finds the server before it looks at the protocol.
    s.compute.get_server(&c, &id).await?;
    let kind = console_of(&asked)?;
    let token = s.compute.remote_console(&c, &id, kind).await?;
    Ok(Json(json!({"remote_console": {
        "protocol": asked.protocol,
        "type": asked.console_type,
        "url": url(&s.base_url(&headers), kind, &token),
    }}))
    .into_response())
}

/// The actions of before 2.6: `{"os-getVNCConsole": {"type": "novnc"}}` and the like;
/// `None` when `body` is no such action.
pub async fn legacy_action(
    s: &AppState,
    c: &identity::Context,
    ver: ApiVersion,
    base: &str,
    id: &str,
    body: &Value,
) -> Option<Result<Response, Fault>> {
    let root = body.as_object().filter(|r| r.len() == 1)?;
    let (name, arg) = root.iter().next()?;
    let (types, protocol): (&[&str], &str) = match name.as_str() {
        "os-getVNCConsole" => (&["novnc", "xvpvnc"], "vnc"),
        "os-getSerialConsole" => (&["serial"], "serial"),
        "os-getSPICEConsole" => (&["spice-html5"], "spice"),
        _ => return None,
    };
    Some(
        async {
            if ver.at_least(6) {
                return Err(Fault::not_found("The resource could not be found."));
            }
            let o = v::object(name, arg)?;
            if let Some(t) = o.get("type") {
                one_of("type", t, types)?;
            }
            let t = v::required_in(name, arg, o, "type")?;
            v::only(name, arg, &["type"])?;
            let asked = Asked {
                protocol: protocol.to_owned(),
                console_type: t.as_str().unwrap_or_default().to_owned(),
            };
            s.compute.get_server(c, id).await?;
            let kind = console_of(&asked)?;
            let token = s.compute.remote_console(c, id, kind).await?;
            Ok(Json(json!({"console": {
                "type": asked.console_type,
                "url": url(base, kind, &token),
            }}))
            .into_response())
        }
        .await,
    )
}

/// `GET /os-console-auth-tokens/{token}`: what a token grants (admins; 400 before 2.31, when
/// only RDP tokens were shown).
pub async fn show_token(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(token): Path<String>,
) -> Result<Response, Fault> {
    if !ver.at_least(31) {
        return Err(Fault::bad_request(
            "The server could not comply with the request since it is either malformed or otherwise incorrect.",
        ));
    }
    let grant = s.compute.console_auth_token(&c, &token).await?;
    Ok(Json(json!({"console": {
        "instance_uuid": grant.server_id.to_string(),
        "host": s.compute.console_host(),
        // The console is a Unix socket of this host: no port.
        "port": 0,
        "internal_access_path": null,
    }}))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_point_at_the_proxy() {
        assert_eq!(
            url("https://box:8774", ConsoleKind::Serial, "t1"),
            "wss://box:8774/console/serial?token=t1"
        );
        assert_eq!(
            url("http://box", ConsoleKind::Serial, "t1"),
            "ws://box/console/serial?token=t1"
        );
        assert_eq!(
            url("http://box", ConsoleKind::Vnc, "t1"),
            "http://box/console/vnc/vnc_lite.html?path=console%2Fvnc%2Fwebsockify%3Ftoken%3Dt1"
        );
    }
}
