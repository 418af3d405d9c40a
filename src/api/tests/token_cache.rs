//! Validated tokens are answered from memory, and the memory is never stale: every change
//! that takes a token's rights away is refused on the very next request, the cache warm.

mod common;

use axum::http::{Method, StatusCode};
use common::{TestApp, assert_identity_error};
use serde_json::json;

/// A request any member may make; answers 200 while the token is good.
const PROBE: &str = "/compute/v2.1/os-keypairs";

/// Uses `token` twice and checks the second use was a cache hit.
async fn warm(app: &TestApp, token: &str) {
    let r = app.get(PROBE, Some(token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let before = app.identity.token_cache_stats().hits;
    let r = app.get(PROBE, Some(token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        app.identity.token_cache_stats().hits > before,
        "a repeated validation is answered from memory"
    );
}

async fn admin_call(app: &TestApp, method: Method, uri: &str, body: Option<serde_json::Value>) {
    let admin = app.admin().await;
    let r = app
        .call(method, uri, &[("x-auth-token", admin.as_str())], body)
        .await;
    assert!(r.status.is_success(), "{uri}: {}", r.text);
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once() {
    let app = TestApp::new().await;
    let (_, _, t) = app.user_with_role("rev", "member").await;
    warm(&app, &t).await;
    let r = app
        .call(
            Method::DELETE,
            "/identity/v3/auth/tokens",
            &[
                ("x-auth-token", t.as_str()),
                ("x-subject-token", t.as_str()),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_identity_error(&app.get(PROBE, Some(&t)).await, 401);
}

#[tokio::test]
async fn a_password_change_is_refused_at_once() {
    let app = TestApp::new().await;
    let (uid, _, t) = app.user_with_role("pwc", "member").await;
    warm(&app, &t).await;
    admin_call(
        &app,
        Method::PATCH,
        &format!("/identity/v3/users/{uid}"),
        Some(json!({"user": {"password": "another-pw"}})),
    )
    .await;
    assert_identity_error(&app.get(PROBE, Some(&t)).await, 401);
}

#[tokio::test]
async fn a_removed_role_is_refused_at_once() {
    let app = TestApp::new().await;
    let (uid, pid, t) = app.user_with_role("rol", "member").await;
    warm(&app, &t).await;
    let admin = app.admin().await;
    let roles = app
        .get("/identity/v3/roles?name=member", Some(&admin))
        .await;
    let rid = roles.body["roles"][0]["id"]
        .as_str()
        .expect("rid")
        .to_owned();
    admin_call(
        &app,
        Method::DELETE,
        &format!("/identity/v3/projects/{pid}/users/{uid}/roles/{rid}"),
        None,
    )
    .await;
    assert_identity_error(&app.get(PROBE, Some(&t)).await, 401);
}

#[tokio::test]
async fn a_role_lowered_to_reader_is_refused_writes_at_once() {
    let app = TestApp::new().await;
    let (uid, pid, t) = app.user_with_role("low", "member").await;
    // The token may also read: give it reader besides member, then take member away.
    let admin = app.admin().await;
    let id_of = |name: &'static str| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let r = app
                .get(&format!("/identity/v3/roles?name={name}"), Some(&admin))
                .await;
            r.body["roles"][0]["id"].as_str().expect("rid").to_owned()
        }
    };
    let (member, reader) = (id_of("member").await, id_of("reader").await);
    admin_call(
        &app,
        Method::PUT,
        &format!("/identity/v3/projects/{pid}/users/{uid}/roles/{reader}"),
        None,
    )
    .await;
    warm(&app, &t).await;
    assert_eq!(create_network(&app, &t).await.status, StatusCode::CREATED);
    admin_call(
        &app,
        Method::DELETE,
        &format!("/identity/v3/projects/{pid}/users/{uid}/roles/{member}"),
        None,
    )
    .await;
    let r = create_network(&app, &t).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(app.get(PROBE, Some(&t)).await.status, StatusCode::OK);
}

/// A write only a member may make (a reader may not).
async fn create_network(app: &TestApp, token: &str) -> common::Resp {
    app.call(
        Method::POST,
        "/network/v2.0/networks",
        &[("x-auth-token", token)],
        Some(json!({"network": {"name": "n"}})),
    )
    .await
}

#[tokio::test]
async fn a_disabled_user_is_refused_at_once() {
    let app = TestApp::new().await;
    let (uid, _, t) = app.user_with_role("dis", "member").await;
    warm(&app, &t).await;
    admin_call(
        &app,
        Method::PATCH,
        &format!("/identity/v3/users/{uid}"),
        Some(json!({"user": {"enabled": false}})),
    )
    .await;
    assert_identity_error(&app.get(PROBE, Some(&t)).await, 401);
}

#[tokio::test]
async fn a_disabled_or_deleted_project_is_refused_at_once() {
    let app = TestApp::new().await;
    let (_, pid, t) = app.user_with_role("dpr", "member").await;
    warm(&app, &t).await;
    admin_call(
        &app,
        Method::PATCH,
        &format!("/identity/v3/projects/{pid}"),
        Some(json!({"project": {"enabled": false}})),
    )
    .await;
    assert_identity_error(&app.get(PROBE, Some(&t)).await, 401);

    let (_, pid, t) = app.user_with_role("del", "member").await;
    warm(&app, &t).await;
    admin_call(
        &app,
        Method::DELETE,
        &format!("/identity/v3/projects/{pid}"),
        None,
    )
    .await;
    assert_identity_error(&app.get(PROBE, Some(&t)).await, 401);
}

#[tokio::test]
async fn an_expired_token_is_refused_from_memory_too() {
    let mut cfg = common::fast_config();
    cfg.token_ttl = std::time::Duration::from_secs(2);
    let app = TestApp::with_config(cfg).await;
    let (_, _, t) = app.user_with_role("exp", "member").await;
    warm(&app, &t).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_identity_error(&app.get(PROBE, Some(&t)).await, 401);
}
