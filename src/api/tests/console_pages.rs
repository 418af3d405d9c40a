//! The serial console's browser page (`/console/serial/xterm.html`): served only for a token
//! that opens a serial console, with xterm.js joined from the package's modules, and what a
//! member must not get from it.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{Api, TestApp};
use serde_json::json;
use tower::ServiceExt;

/// A stand-in of the package's layout: `lib/xterm.js` requiring a module of a subdirectory,
/// a test module that must not be served, and the style sheet.
fn xterm_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("dir");
    let lib = d.path().join("lib");
    std::fs::create_dir_all(lib.join("public")).expect("lib");
    std::fs::write(
        lib.join("xterm.js"),
        "var T = require(\"./public/Terminal\");\nmodule.exports = T.Terminal;\n//# sourceMappingURL=xterm.js.map\n",
    )
    .expect("xterm.js");
    std::fs::write(
        lib.join("public/Terminal.js"),
        "exports.Terminal = function Terminal() { return require('../common/ids').first; };\n",
    )
    .expect("Terminal.js");
    std::fs::create_dir_all(lib.join("common")).expect("common");
    std::fs::write(lib.join("common/ids.js"), "exports.first = 'ids-module';\n").expect("ids");
    std::fs::write(lib.join("public/Terminal.test.js"), "throw 'tests';\n").expect("test");
    std::fs::write(lib.join("xterm.css"), ".xterm { color: white; }\n").expect("css");
    d
}

fn with_xterm(app: &TestApp, dir: &std::path::Path) -> Router {
    let mut state = app.state.clone();
    let mut cfg = (*state.cfg).clone();
    cfg.console.xterm_dir = dir.to_path_buf();
    state.cfg = Arc::new(cfg);
    api::app(state)
}

struct Got {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn get(app: &Router, uri: &str) -> Got {
    let r = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
        .await
        .expect("answer");
    let status = r.status();
    let headers = r.headers().clone();
    let body = axum::body::to_bytes(r.into_body(), 1 << 24)
        .await
        .expect("body");
    Got {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn server(api: &Api<'_>, name: &str) -> String {
    common::server_without_network(api, name).await
}

/// The token of a console URL of `kind` ("serial" or "novnc"), or the fault's status.
async fn token(api: &Api<'_>, id: &str, protocol: &str, kind: &str) -> Result<String, u16> {
    let r = api
        .call(
            Method::POST,
            &format!("/servers/{id}/remote-consoles"),
            Some(json!({"remote_console": {"protocol": protocol, "type": kind}})),
        )
        .await;
    if r.status != StatusCode::OK {
        return Err(r.status.as_u16());
    }
    let url = r.body["remote_console"]["url"].as_str().expect("url");
    Ok(url
        .rsplit("token")
        .next()
        .expect("token")
        .trim_start_matches('=')
        .trim_start_matches("%3D")
        .to_owned())
}

fn demo_api(app: &TestApp, token: String) -> Api<'_> {
    Api {
        app,
        token,
        version: "2.6".into(),
    }
}

#[tokio::test]
async fn the_serial_page_opens_with_a_serial_token_and_serves_the_systems_xterm() {
    let app = TestApp::new().await;
    let dir = xterm_dir();
    let router = with_xterm(&app, dir.path());
    let demo = demo_api(&app, app.demo().await);
    let id = server(&demo, "web").await;
    let t = token(&demo, &id, "serial", "serial").await.expect("token");

    let page = get(&router, &format!("/console/serial/xterm.html?token={t}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("xterm/xterm.js") && page.body.contains("xterm/console.js"));
    // The page names no token: the script reads it from the address and then drops it.
    assert!(!page.body.contains(&t));
    let h = |n: &str| {
        page.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    assert!(h("content-type").starts_with("text/html"));
    assert_eq!(h("cache-control"), "no-store");
    assert_eq!(h("referrer-policy"), "no-referrer");
    assert!(h("content-security-policy").contains("frame-ancestors 'none'"));
    assert!(h("content-security-policy").contains("script-src 'self'"));

    // xterm.js: every module but the tests, under its path, and the loader exporting it.
    let js = get(&router, "/console/serial/xterm/xterm.js").await;
    assert_eq!(js.status, StatusCode::OK, "{}", js.body);
    assert!(js.body.contains("defs[\"xterm\"]"));
    assert!(js.body.contains("defs[\"public/Terminal\"]"));
    assert!(js.body.contains("defs[\"common/ids\"]"));
    assert!(!js.body.contains("Terminal.test") && !js.body.contains("throw 'tests'"));
    assert!(!js.body.contains("sourceMappingURL"));
    assert!(js.body.contains("window.OneboxXterm = load('xterm');"));
    let css = get(&router, "/console/serial/xterm/xterm.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.body.contains(".xterm"));
    let own = get(&router, "/console/serial/xterm/console.js").await;
    assert!(own.body.contains("/console/serial?token="), "{}", own.body);
    assert_eq!(
        get(&router, "/console/serial/xterm/console.css")
            .await
            .status,
        StatusCode::OK
    );

    // The page is served again while the token lives; it does not use the token up.
    let again = get(&router, &format!("/console/serial/xterm.html?token={t}")).await;
    assert_eq!(again.status, StatusCode::OK);

    // Without the package, xterm.js is a 404 (the log says why).
    let bare = tempfile::tempdir().expect("dir");
    let without = with_xterm(&app, bare.path());
    let js = get(&without, "/console/serial/xterm/xterm.js").await;
    assert_eq!(js.status, StatusCode::NOT_FOUND);
    assert!(!js.body.contains("defs["), "{}", js.body);
}

#[tokio::test]
async fn attack_the_serial_page_is_nothing_without_a_serial_token_of_ones_own() {
    let app = TestApp::with_compute(compute::ComputeConfig {
        console_token_ttl_secs: 1,
        ..Default::default()
    })
    .await;
    let dir = xterm_dir();
    let router = with_xterm(&app, dir.path());
    let demo = demo_api(&app, app.demo().await);
    let id = server(&demo, "victim").await;

    let refused = |g: &Got| {
        g.status == StatusCode::UNAUTHORIZED
            && !g.body.contains("<html")
            && !g.body.contains("<script")
    };
    // No token, an empty one, a made-up one, one far too long.
    for uri in [
        "/console/serial/xterm.html".to_owned(),
        "/console/serial/xterm.html?token=".to_owned(),
        format!("/console/serial/xterm.html?token={}", uuid::Uuid::new_v4()),
        format!("/console/serial/xterm.html?token={}", "a".repeat(4096)),
    ] {
        let g = get(&router, &uri).await;
        assert!(refused(&g), "{uri}: {} {}", g.status, g.body);
    }
    // What is sent is never sent back.
    let g = get(
        &router,
        "/console/serial/xterm.html?token=%3Cscript%3Ealert(1)%3C/script%3E",
    )
    .await;
    assert!(refused(&g) && !g.body.contains("alert"), "{}", g.body);

    // Another project's member gets no token for the server, so no page.
    let (_, _, t) = app.user_with_role("mallory", "member").await;
    let mallory = demo_api(&app, t);
    assert_eq!(token(&mallory, &id, "serial", "serial").await, Err(404));
    // A token of the VNC console does not open the serial console's page.
    let vnc = token(&demo, &id, "vnc", "novnc").await.expect("vnc token");
    let g = get(&router, &format!("/console/serial/xterm.html?token={vnc}")).await;
    assert!(refused(&g), "{} {}", g.status, g.body);
    // A serial token stops opening the page when it expires.
    let serial = token(&demo, &id, "serial", "serial").await.expect("token");
    let uri = format!("/console/serial/xterm.html?token={serial}");
    assert_eq!(get(&router, &uri).await.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let g = get(&router, &uri).await;
    assert!(refused(&g), "{} {}", g.status, g.body);
}
