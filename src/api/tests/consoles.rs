//! Interactive consoles on the fake driver: Nova's console URL APIs with their faults, the
//! websocket proxy relaying both ways, and what a member must not be able to do with them.

mod common;

use std::net::SocketAddr;

use axum::http::{Method, StatusCode};
use common::{Api, TestApp, assert_compute_fault};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

async fn server(api: &Api<'_>, name: &str) -> String {
    common::server_without_network(api, name).await
}

async fn console(api: &Api<'_>, id: &str, protocol: &str, kind: &str) -> common::Resp {
    api.call(
        Method::POST,
        &format!("/servers/{id}/remote-consoles"),
        Some(json!({"remote_console": {"protocol": protocol, "type": kind}})),
    )
    .await
}

/// The API on a real loopback socket (websockets need a real connection).
async fn listen(app: &TestApp) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(api::listener::serve(
        l,
        app.app.clone(),
        api::listener::ListenerLimits::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `url` (as the API gave it, for http://onebox.test) on `addr`, with an `Origin`.
async fn open(addr: SocketAddr, url: &str, origin: Option<&str>) -> Result<Ws, u16> {
    let path = url
        .split_once("onebox.test")
        .map(|(_, p)| p)
        .expect("a URL of this box");
    let mut req = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("request");
    req.headers_mut()
        .insert("host", "onebox.test".parse().expect("host"));
    if let Some(o) = origin {
        req.headers_mut()
            .insert("origin", o.parse().expect("origin"));
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("websocket: {e}"),
    }
}

async fn echo(ws: &mut Ws, text: &str) -> String {
    ws.send(Message::Binary(text.as_bytes().to_vec().into()))
        .await
        .expect("send");
    let mut got = Vec::new();
    while got.len() < text.len() {
        match tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
            .await
            .expect("an answer in time")
        {
            Some(Ok(Message::Binary(b))) => got.extend_from_slice(&b),
            other => panic!("unexpected {other:?}"),
        }
    }
    String::from_utf8(got).expect("utf-8")
}

fn token_of(url: &str) -> String {
    url.rsplit("token").next().expect("token")[..]
        .trim_start_matches('=')
        .trim_start_matches("%3D")
        .to_owned()
}

#[tokio::test]
async fn a_serial_console_url_relays_both_ways_through_the_proxy() {
    let app = TestApp::new().await;
    let demo = Api {
        app: &app,
        token: app.demo().await,
        version: "2.6".into(),
    };
    let id = server(&demo, "c1").await;
    let r = console(&demo, &id, "serial", "serial").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let rc = &r.body["remote_console"];
    assert_eq!(rc["protocol"], "serial");
    assert_eq!(rc["type"], "serial");
    let url = rc["url"].as_str().expect("url");
    assert!(
        url.starts_with("ws://onebox.test/console/serial?token="),
        "{url}"
    );
    let (addr, _stop) = listen(&app).await;
    let mut ws = open(addr, url, None).await.expect("open");
    assert_eq!(echo(&mut ws, "uname -a\n").await, "uname -a\n");

    // One session at a time: a second connection is refused while the first is open.
    assert_eq!(
        open(addr, url, Some("http://onebox.test")).await.err(),
        Some(409)
    );
    ws.close(None).await.expect("close");
    drop(ws);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // The token stays good until it expires: the session can be opened again, from this
    // host's own pages.
    let mut ws = open(addr, url, Some("http://onebox.test:8774"))
        .await
        .expect("reopen");
    assert_eq!(echo(&mut ws, "again").await, "again");

    // The VNC console the same way, through noVNC's websocket path.
    let r = console(&demo, &id, "vnc", "novnc").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let url = r.body["remote_console"]["url"].as_str().expect("url");
    assert!(
        url.starts_with("http://onebox.test/console/vnc/vnc_lite.html?path=console%2Fvnc%2Fwebsockify%3Ftoken%3D"),
        "{url}"
    );
    let ws_url = format!(
        "http://onebox.test/console/vnc/websockify?token={}",
        token_of(url)
    );
    let mut ws = open(addr, &ws_url, None).await.expect("vnc");
    assert_eq!(echo(&mut ws, "RFB 003.008\n").await, "RFB 003.008\n");
    // A VNC token does not open the serial console.
    let wrong = format!("http://onebox.test/console/serial?token={}", token_of(url));
    assert_eq!(open(addr, &wrong, None).await.err(), Some(401));
}

#[tokio::test]
async fn attack_console_tokens_grant_nothing_else() {
    let app = TestApp::new().await;
    let demo = Api {
        app: &app,
        token: app.demo().await,
        version: "2.6".into(),
    };
    let id = server(&demo, "mine").await;
    let other = server(&demo, "other").await;
    let (addr, _stop) = listen(&app).await;

    // Another project's member cannot get a URL for the server (it does not exist for it).
    let (_, _, t) = app.user_with_role("mallory", "member").await;
    let mallory = Api {
        app: &app,
        token: t,
        version: "2.6".into(),
    };
    let r = console(&mallory, &id, "serial", "serial").await;
    assert_compute_fault(&r, 404, "itemNotFound");
    // A reader of the project may not open one either.
    let (_, _, reader) = app.user_with_role("peek", "reader").await;
    let r = console(
        &Api {
            app: &app,
            token: reader,
            version: "2.6".into(),
        },
        &id,
        "serial",
        "serial",
    )
    .await;
    assert_eq!(r.status.as_u16(), 404, "{}", r.text);

    let r = console(&demo, &id, "serial", "serial").await;
    let url = r.body["remote_console"]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    // A guessed or tampered token, no token, a page of another site.
    let forged = format!(
        "http://onebox.test/console/serial?token={}",
        uuid::Uuid::new_v4()
    );
    assert_eq!(open(addr, &forged, None).await.err(), Some(401));
    assert_eq!(
        open(addr, "http://onebox.test/console/serial", None)
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        open(addr, &url, Some("https://evil.example")).await.err(),
        Some(403)
    );
    // A token names one server: the other server's console needs its own.
    let r = console(&demo, &other, "serial", "serial").await;
    let other_url = r.body["remote_console"]["url"].as_str().expect("url");
    assert_ne!(token_of(other_url), token_of(&url));

    // The token's holder is not an admin: it cannot read what a token grants.
    let r = demo
        .at("2.31")
        .call(
            Method::GET,
            &format!("/os-console-auth-tokens/{}", token_of(&url)),
            None,
        )
        .await;
    assert_compute_fault(&r, 403, "forbidden");

    // Once the server is deleted its tokens open nothing.
    let r = demo
        .call(Method::DELETE, &format!("/servers/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    app.compute.idle().await;
    assert_eq!(open(addr, &url, None).await.err(), Some(409));
}

#[tokio::test]
async fn an_expired_token_opens_nothing() {
    let app = TestApp::with_compute(compute::ComputeConfig {
        console_token_ttl_secs: 1,
        ..Default::default()
    })
    .await;
    let demo = Api {
        app: &app,
        token: app.demo().await,
        version: "2.6".into(),
    };
    let id = server(&demo, "c1").await;
    let r = console(&demo, &id, "serial", "serial").await;
    let url = r.body["remote_console"]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let (addr, _stop) = listen(&app).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(open(addr, &url, None).await.err(), Some(401));
}

#[tokio::test]
async fn console_url_requests_are_answered_as_nova_answers_them() {
    let app = TestApp::new().await;
    let demo = Api {
        app: &app,
        token: app.demo().await,
        version: "2.6".into(),
    };
    let id = server(&demo, "c1").await;
    let cases: &[(Value, u16, &str)] = &[
        (
            json!({"remote_console": {"protocol": "telnet", "type": "serial"}}),
            400,
            "Invalid input for field/attribute protocol. Value: telnet. 'telnet' is not one of ['vnc', 'spice', 'serial', 'rdp']",
        ),
        (
            json!({"remote_console": {"protocol": "vnc"}}),
            400,
            "Invalid input for field/attribute remote_console. Value: {'protocol': 'vnc'}. 'type' is a required property",
        ),
        (
            json!({"remote_console": {"protocol": "vnc", "type": "xvpvnc"}}),
            400,
            "Invalid console type xvpvnc",
        ),
        (
            json!({"remote_console": {"protocol": "spice", "type": "spice-html5"}}),
            400,
            "Unavailable console type spice-html5.",
        ),
        (
            json!({"remote_console": {"protocol": "rdp", "type": "rdp-html5"}}),
            400,
            "Unavailable console type rdp.",
        ),
        (
            json!({"remote_console": {"protocol": "mks", "type": "webmks"}}),
            400,
            "Invalid input for field/attribute protocol. Value: mks. 'mks' is not one of ['vnc', 'spice', 'serial', 'rdp']",
        ),
        (json!({}), 400, "'remote_console' is a required property"),
    ];
    for (body, status, message) in cases {
        let r = demo
            .call(
                Method::POST,
                &format!("/servers/{id}/remote-consoles"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status.as_u16(), *status, "{body}: {}", r.text);
        assert_eq!(r.body["badRequest"]["message"], *message, "{body}");
    }
    // mks is a protocol from 2.8: known, but not served.
    let r = console(&demo.at("2.8"), &id, "mks", "webmks").await;
    assert_eq!(
        r.body["badRequest"]["message"],
        "Unavailable console type webmks."
    );
    // Before 2.6 the route is not there; the old actions are, until 2.5.
    let r = console(&demo.at("2.5"), &id, "serial", "serial").await;
    assert_compute_fault(&r, 404, "itemNotFound");
    let old = demo.at("2.1");
    let r = old
        .call(
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(json!({"os-getSerialConsole": {"type": "serial"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["console"]["type"], "serial");
    assert!(
        r.body["console"]["url"]
            .as_str()
            .expect("url")
            .starts_with("ws://")
    );
    let r = old
        .call(
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(json!({"os-getVNCConsole": {"type": "novnc"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["console"]["type"], "novnc");
    let r = demo
        .call(
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(json!({"os-getVNCConsole": {"type": "novnc"}})),
        )
        .await;
    assert_compute_fault(&r, 404, "itemNotFound");

    // A stopped server has no console to offer.
    let r = demo
        .call(
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(json!({"os-stop": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    app.compute.idle().await;
    let r = console(&demo, &id, "serial", "serial").await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    assert_eq!(
        r.body["badRequest"]["message"],
        "Unavailable console type serial."
    );

    // A backend without consoles: 501.
    app.driver.set_unsupported(driver::Operation::Console, true);
    let r = demo
        .call(
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(json!({"os-start": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    app.compute.idle().await;
    let r = console(&demo, &id, "serial", "serial").await;
    assert_compute_fault(&r, 501, "notImplemented");
}

#[tokio::test]
async fn admins_read_what_a_console_token_grants() {
    let app = TestApp::new().await;
    let demo = Api {
        app: &app,
        token: app.demo().await,
        version: "2.6".into(),
    };
    let id = server(&demo, "c1").await;
    let r = console(&demo, &id, "serial", "serial").await;
    let token = token_of(r.body["remote_console"]["url"].as_str().expect("url"));
    let admin = Api {
        app: &app,
        token: app.admin().await,
        version: "2.31".into(),
    };
    let r = admin
        .call(
            Method::GET,
            &format!("/os-console-auth-tokens/{token}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["console"]["instance_uuid"], id.as_str());
    assert!(r.body["console"]["port"].is_i64());
    let r = admin
        .call(
            Method::GET,
            &format!("/os-console-auth-tokens/{}", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_compute_fault(&r, 404, "itemNotFound");
    let r = admin
        .at("2.30")
        .call(
            Method::GET,
            &format!("/os-console-auth-tokens/{token}"),
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
}
