//! The console proxy: interactive consoles over websockets on the one listener.
//!
//! | path                          | what                                                  |
//! |-------------------------------|-------------------------------------------------------|
//! | `/console/serial?token=…`     | the serial console, bytes both ways (Nova's serial proxy) |
//! | `/console/vnc/websockify?token=…` | RFB to the guest's VNC server (Nova's noVNC proxy) |
//! | `/console/vnc/…`              | noVNC's pages (Debian's `novnc`), e.g. `vnc_lite.html` |
//! | `/console/serial/xterm.html?token=…` | the serial console in a browser ([`xterm`]) |
//!
//! The token in the URL is the only credential ([`compute::Compute::open_console`]): it names
//! one server and one console kind. A browser's `Origin` must name this host (or one of
//! [`ConsoleConfig::allowed_origins`]), as Nova's proxy checks; a client that sends no
//! `Origin` (not a browser) is let through. Closing the websocket ends the session, never the
//! guest.

use std::path::PathBuf;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use compute::consoles::{ConsoleSession, OpenError};
use driver::{ConsoleEndpoint, ConsoleKind};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::AppState;

pub mod xterm;

/// Settings of the console proxy.
#[derive(Clone, Debug)]
pub struct ConsoleConfig {
    /// Origins a browser may open consoles from besides this host's own (host names, as
    /// `[console] allowed_origins`).
    pub allowed_origins: Vec<String>,
    /// Where noVNC's files are (Debian's `novnc` package).
    pub novnc_dir: PathBuf,
    /// Where xterm.js's package is (Debian's `node-xterm`: its `lib/` holds the modules).
    pub xterm_dir: PathBuf,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            novnc_dir: PathBuf::from("/usr/share/novnc"),
            xterm_dir: PathBuf::from("/usr/share/nodejs/xterm"),
        }
    }
}

pub fn router(state: AppState) -> Router {
    let novnc = tower_http::services::ServeDir::new(&state.cfg.console.novnc_dir);
    Router::new()
        .route("/console/serial", get(serial))
        .route("/console/serial/xterm.html", get(xterm::page))
        .route("/console/serial/xterm/xterm.js", get(xterm::bundle))
        .route("/console/serial/xterm/xterm.css", get(xterm::xterm_style))
        .route("/console/serial/xterm/console.js", get(xterm::script))
        .route("/console/serial/xterm/console.css", get(xterm::style))
        .route("/console/vnc/websockify", get(vnc))
        .nest_service("/console/vnc", novnc)
        .with_state(state)
}

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

async fn serial(
    State(s): State<AppState>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    open(s, q, headers, ws, ConsoleKind::Serial).await
}

async fn vnc(
    State(s): State<AppState>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    open(s, q, headers, ws, ConsoleKind::Vnc).await
}

pub(crate) fn refuse(status: StatusCode, message: &str) -> Response {
    (status, format!("{message}\n")).into_response()
}

async fn open(
    s: AppState,
    q: TokenQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    kind: ConsoleKind,
) -> Response {
    let Ok(ws) = ws else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "A console is reached over a websocket.",
        );
    };
    if !origin_allowed(&headers, &s.cfg.console.allowed_origins) {
        tracing::warn!(
            kind = kind.as_str(),
            "console refused: Origin is not this host"
        );
        return refuse(
            StatusCode::FORBIDDEN,
            "The Origin of this request is not allowed.",
        );
    }
    let Some(token) = q.token.filter(|t| !t.is_empty() && t.len() <= 128) else {
        return refuse(StatusCode::UNAUTHORIZED, "A console token is required.");
    };
    let session = match s.compute.open_console(&token, kind).await {
        Ok(session) => session,
        Err(e) => {
            let status = match e {
                OpenError::Invalid => StatusCode::UNAUTHORIZED,
                OpenError::Busy | OpenError::NotRunning => StatusCode::CONFLICT,
            };
            return refuse(status, &e.to_string());
        }
    };
    let ConsoleEndpoint::Unix(path) = &session.endpoint;
    let stream = match tokio::net::UnixStream::connect(path).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::warn!(server_id = %session.server_id, error = %e, "console endpoint unreachable");
            return refuse(StatusCode::CONFLICT, "The console is not reachable.");
        }
    };
    tracing::info!(server_id = %session.server_id, kind = kind.as_str(), "console session opened");
    // noVNC asks for the `binary` subprotocol; a serial client may ask for none.
    ws.protocols(["binary"])
        .on_upgrade(move |socket| relay(socket, stream, session))
}

/// Relays bytes both ways until either side closes.
async fn relay(mut socket: WebSocket, mut stream: tokio::net::UnixStream, session: ConsoleSession) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            msg = socket.recv() => {
                let data = match msg {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Text(t))) => bytes::Bytes::copy_from_slice(t.as_bytes()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                };
                if stream.write_all(&data).await.is_err() {
                    break;
                }
            }
            n = stream.read(&mut buf) => {
                match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let out = bytes::Bytes::copy_from_slice(&buf[..n]);
                        if socket.send(Message::Binary(out)).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
    tracing::info!(server_id = %session.server_id, kind = session.kind.as_str(), "console session closed");
}

/// A browser's `Origin` must name the host the request was sent to, or an allowed one; a
/// request without `Origin` is not from a browser page and passes.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    if scheme != "http" && scheme != "https" {
        return false;
    }
    let origin_host = host_only(rest);
    let expected = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(host_only);
    expected.is_some_and(|h| h.eq_ignore_ascii_case(origin_host))
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin_host))
}

/// `host[:port]` or `[v6]:port` without the port.
fn host_only(authority: &str) -> &str {
    let authority = authority.trim_end_matches('/');
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    authority.split(':').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert("host", host.parse().expect("host"));
        if let Some(o) = origin {
            m.insert("origin", o.parse().expect("origin"));
        }
        m
    }

    #[test]
    fn origins_must_name_this_host() {
        assert!(origin_allowed(&h("box:8774", None), &[]));
        assert!(origin_allowed(
            &h("box:8774", Some("https://box:8774")),
            &[]
        ));
        assert!(origin_allowed(&h("box:8774", Some("http://BOX")), &[]));
        assert!(origin_allowed(&h("[::1]:80", Some("http://[::1]:80")), &[]));
        assert!(!origin_allowed(
            &h("box:8774", Some("https://evil.example")),
            &[]
        ));
        assert!(!origin_allowed(
            &h("box", Some("https://box.evil.example")),
            &[]
        ));
        assert!(!origin_allowed(&h("box", Some("file://box")), &[]));
        assert!(!origin_allowed(&h("box", Some("null")), &[]));
        assert!(origin_allowed(
            &h("box", Some("https://dash.example")),
            &["dash.example".into()]
        ));
    }
}
