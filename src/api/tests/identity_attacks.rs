//! Attacks on identity, tried as a stranger or a project member would try them through the
//! API: stretching a token's life, outliving a revocation, locking someone else out,
//! guessing a password with a stolen token, and wearing the box out with logins and tokens.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{ADMIN_PW, DEMO_PW, Resp, TestApp, assert_identity_error};
use serde_json::{Value, json};
use tower::ServiceExt;

const GENERIC_401: &str = "The request you have made requires authentication.";

/// A token made from `token` with the `token` method, scoped to the demo project.
async fn from_token(app: &TestApp, token: &str) -> Resp {
    app.call(
        Method::POST,
        "/identity/v3/auth/tokens",
        &[],
        Some(json!({"auth": {
            "identity": {"methods": ["token"], "token": {"id": token}},
            "scope": {"project": {"name": "demo", "domain": {"id": "default"}}}
        }})),
    )
    .await
}

fn subject(r: &Resp) -> String {
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.header("x-subject-token").expect("token").to_owned()
}

/// Validates `token` as the admin: its body, or the status when it is not valid.
async fn validate(app: &TestApp, admin: &str, token: &str) -> Result<Value, StatusCode> {
    let r = app
        .call(
            Method::GET,
            "/identity/v3/auth/tokens",
            &[("x-auth-token", admin), ("x-subject-token", token)],
            None,
        )
        .await;
    if r.status == StatusCode::OK {
        Ok(r.body)
    } else {
        Err(r.status)
    }
}

async fn user_id(app: &TestApp, name: &str) -> String {
    let admin = app.admin().await;
    let r = app
        .get(&format!("/identity/v3/users?name={name}"), Some(&admin))
        .await;
    r.body["users"][0]["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn attack_token_reauth_does_not_extend_life() {
    let app = TestApp::new().await;
    let parent = app.login("demo", DEMO_PW, Some("demo")).await;
    let parent_tok = subject(&parent);
    let parent_exp = parent.body["token"]["expires_at"].clone();
    // Token times are whole seconds: wait past one so a fresh lifetime would show.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let child = from_token(&app, &parent_tok).await;
    let child_tok = subject(&child);
    assert_eq!(
        child.body["token"]["expires_at"], parent_exp,
        "{}",
        child.text
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let grandchild = from_token(&app, &child_tok).await;
    subject(&grandchild);
    assert_eq!(grandchild.body["token"]["expires_at"], parent_exp);
    // The audit chain is Keystone's: own id, then the chain's first id.
    let chain = parent.body["token"]["audit_ids"][0].clone();
    assert_eq!(grandchild.body["token"]["audit_ids"][1], chain);
    assert_eq!(
        grandchild.body["token"]["methods"],
        json!(["password", "token"])
    );
}

#[tokio::test]
async fn attack_revoking_a_parent_token_kills_its_children() {
    let app = TestApp::new().await;
    let admin = app.admin().await;
    let parent = subject(&app.login("demo", DEMO_PW, Some("demo")).await);
    let child = subject(&from_token(&app, &parent).await);
    let grandchild = subject(&from_token(&app, &child).await);
    let sibling = app.demo().await;
    let r = app
        .call(
            Method::DELETE,
            "/identity/v3/auth/tokens",
            &[("x-auth-token", &parent), ("x-subject-token", &parent)],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    for t in [&parent, &child, &grandchild] {
        assert_eq!(
            validate(&app, &admin, t).await.err(),
            Some(StatusCode::NOT_FOUND)
        );
        assert_identity_error(&app.get("/compute/v2.1/servers", Some(t)).await, 401);
    }
    // A dead parent makes no new children; an unrelated token of the user lives on.
    assert_identity_error(&from_token(&app, &parent).await, 404);
    assert!(validate(&app, &admin, &sibling).await.is_ok());
}

#[tokio::test]
async fn attack_stranger_cannot_lock_the_owner_out_and_learns_no_user_id() {
    // The test config locks after 3 failures.
    let app = TestApp::new().await;
    let demo_id = user_id(&app, "demo").await;
    let stranger = "203.0.113.7";
    for _ in 0..10 {
        let r = app.login_from(stranger, "demo", "guess", None).await;
        assert_identity_error(&r, 401);
        assert_eq!(r.body["error"]["message"], GENERIC_401, "{}", r.text);
        assert!(!r.text.contains(&demo_id), "{}", r.text);
    }
    // Even the right password is refused from the stranger's address now, with the same
    // words, so the refusal says neither "locked" nor whose account it is.
    let r = app.login_from(stranger, "demo", DEMO_PW, None).await;
    assert_identity_error(&r, 401);
    assert_eq!(r.body["error"]["message"], GENERIC_401, "{}", r.text);
    assert!(!r.text.contains(&demo_id), "{}", r.text);
    // A name that does not exist gets exactly the same answers.
    for _ in 0..4 {
        let r = app.login_from(stranger, "nobody", "guess", None).await;
        assert_eq!(r.body["error"]["message"], GENERIC_401, "{}", r.text);
    }
    // The owner, from their own address, logs in at once.
    let r = app
        .login_from("198.51.100.9", "demo", DEMO_PW, Some("demo"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn attack_change_password_brute_force_is_locked() {
    let app = TestApp::new().await;
    let demo_id = user_id(&app, "demo").await;
    // A stolen token: the thief wants the password behind it.
    let token = app.demo().await;
    let thief = "203.0.113.66";
    let change = |original: &'static str| {
        let (app, token, uri) = (
            &app,
            token.clone(),
            format!("/identity/v3/users/{demo_id}/password"),
        );
        async move {
            app.call_from(
                thief,
                Method::POST,
                &uri,
                &[("x-auth-token", &token)],
                Some(json!({"user": {"original_password": original, "password": "stolen-new"}})),
            )
            .await
        }
    };
    for _ in 0..3 {
        let r = change("guess").await;
        assert_identity_error(&r, 401);
    }
    // Locked: even the right original password is refused, and nothing changes.
    let r = change(DEMO_PW).await;
    assert_identity_error(&r, 401);
    assert_eq!(r.body["error"]["message"], GENERIC_401);
    let r = app
        .login_from("198.51.100.9", "demo", DEMO_PW, Some("demo"))
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "password unchanged: {}",
        r.text
    );
    // The lock is temporary (1 s in the test config).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = change(DEMO_PW).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_concurrent_logins_past_the_hash_queue_get_503() {
    let mut cfg = common::fast_config();
    cfg.limits.hash_queue = 0;
    let app = TestApp::with_config(cfg).await;
    let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "demo", "domain": {"id": "default"}, "password": DEMO_PW}}}}});
    let mut calls = Vec::new();
    for _ in 0..24 {
        let (router, body) = (app.app.clone(), body.to_string());
        calls.push(tokio::spawn(async move {
            let req = Request::builder()
                .method(Method::POST)
                .uri("/identity/v3/auth/tokens")
                .header("content-type", "application/json")
                .body(Body::from(body))
                .expect("request");
            let resp = router.oneshot(req).await.expect("infallible");
            let status = resp.status();
            let retry = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .expect("body");
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (status, retry, body)
        }));
    }
    let (mut ok, mut busy) = (0, 0);
    for c in calls {
        let (status, retry, body) = c.await.expect("join");
        match status {
            StatusCode::CREATED => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                busy += 1;
                let secs: u64 = retry.expect("Retry-After").parse().expect("seconds");
                assert!(secs >= 1);
                assert_eq!(body["error"]["code"], 503, "{body}");
                assert_eq!(body["error"]["title"], "Service Unavailable");
                assert!(body["error"]["message"].is_string());
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(ok >= 1, "some logins get through");
    assert!(busy >= 1, "a full queue refuses ({ok} got through)");
    // Once the flood is over, logins work again.
    assert_eq!(
        app.login("demo", DEMO_PW, None).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn attack_token_requests_past_the_rate_get_429() {
    let mut cfg = common::fast_config();
    cfg.limits.auth_per_sec = 0.5;
    cfg.limits.auth_burst = 3;
    let app = TestApp::with_config(cfg).await;
    let flood = "203.0.113.99";
    for _ in 0..3 {
        let r = app.login_from(flood, "demo", DEMO_PW, None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    // Over the burst: refused before any password is looked at, even a malformed request.
    for body in [
        json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "demo", "domain": {"id": "default"}, "password": DEMO_PW}}}}}),
        json!({"garbage": true}),
    ] {
        let r = app
            .call_from(
                flood,
                Method::POST,
                "/identity/v3/auth/tokens",
                &[],
                Some(body),
            )
            .await;
        assert_identity_error(&r, 429);
        assert_eq!(r.body["error"]["title"], "Too Many Requests");
        let secs: u64 = r
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .expect("secs");
        assert!((1..=2).contains(&secs), "{secs}");
    }
    // Other addresses are not held back.
    let r = app
        .login_from("198.51.100.1", "admin", ADMIN_PW, None)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

#[tokio::test]
async fn attack_live_tokens_per_user_are_capped_oldest_first() {
    let mut cfg = common::fast_config();
    cfg.limits.max_tokens_per_user = 3;
    let app = TestApp::with_config(cfg).await;
    let admin = app.admin().await;
    let mut tokens = Vec::new();
    for _ in 0..6 {
        tokens.push(app.demo().await);
    }
    for (i, t) in tokens.iter().enumerate() {
        let valid = validate(&app, &admin, t).await.is_ok();
        assert_eq!(valid, i >= 3, "token {i}");
    }
    let demo = model::UserId::new(user_id(&app, "demo").await);
    let (live, rows) = app
        .store
        .read(move |c| {
            let now = chrono::Utc::now();
            Ok((
                store::identity::live_token_count(c, &demo, now)?,
                store::identity::token_rows(c)?,
            ))
        })
        .await
        .expect("count");
    assert_eq!(live, 3);
    // The evicted ones are gone from the database, not only refused (3 demo, admin's 2).
    assert_eq!(rows, 5);
}

#[tokio::test]
async fn attack_expired_tokens_are_gone_from_the_database() {
    let mut cfg = common::fast_config();
    cfg.token_ttl = Duration::from_secs(1);
    let app = TestApp::with_config(cfg).await;
    let rows = || async {
        app.store
            .read(store::identity::token_rows)
            .await
            .expect("rows")
    };
    app.demo().await;
    app.admin().await;
    assert_eq!(rows().await, 2);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Issuing a token drops the user's dead ones.
    app.demo().await;
    assert_eq!(rows().await, 2);
    // The periodic purge drops every dead one.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app.identity.purge_expired().await.expect("purge"), 2);
    assert_eq!(rows().await, 0);
}
