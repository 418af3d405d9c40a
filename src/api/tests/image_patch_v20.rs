//! Glance's older JSON-patch media type, `application/openstack-images-v2.0-json-patch`:
//! the operation is the member's key (`{"replace": "/name", "value": …}`), and `add` of
//! something the image already has is a conflict.

mod common;

use axum::http::{Method, StatusCode};
use common::{Resp, TestApp};
use serde_json::{Value, json};

const PATCH_20: &str = "application/openstack-images-v2.0-json-patch";

async fn patch(app: &TestApp, token: &str, id: &str, ops: Value) -> Resp {
    app.call_raw(
        Method::PATCH,
        &format!("/image/v2/images/{id}"),
        &[("x-auth-token", token), ("content-type", PATCH_20)],
        Some(ops.to_string().into_bytes()),
    )
    .await
}

#[tokio::test]
async fn v2_0_patches_name_the_operation_as_the_key() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let r = app
        .call(
            Method::POST,
            "/image/v2/images",
            &[("x-auth-token", t.as_str())],
            Some(json!({"name": "old", "disk_format": "raw", "container_format": "bare", "k0": "v0"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_owned();

    let r = patch(
        &app,
        &t,
        &id,
        json!([
            {"replace": "/name", "value": "new"},
            {"add": "/k1", "value": "v1"},
            {"remove": "/k0"},
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["name"], "new");
    assert_eq!(r.body["k1"], "v1");
    assert!(r.body.get("k0").is_none());

    // add of what the image has: a property, or a core attribute.
    for ops in [
        json!([{"add": "/k1", "value": "again"}]),
        json!([{"add": "/name", "value": "again"}]),
    ] {
        let r = patch(&app, &t, &id, ops).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    }
    // Not one operation member, or two: refused, nothing changes.
    for ops in [
        json!([{"op": "replace", "path": "/name", "value": "x"}]),
        json!([{"replace": "/name", "add": "/k2", "value": "x"}]),
    ] {
        let r = patch(&app, &t, &id, ops).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        assert!(
            r.text.contains("Operation objects must contain"),
            "{}",
            r.text
        );
    }
    let r = app.get(&format!("/image/v2/images/{id}"), Some(&t)).await;
    assert_eq!(r.body["name"], "new");
    assert_eq!(r.body["k1"], "v1");
    assert!(r.body.get("k2").is_none());
}

#[tokio::test]
async fn attack_v2_0_patches_reach_no_other_projects_image() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let r = app
        .call(
            Method::POST,
            "/image/v2/images",
            &[("x-auth-token", t.as_str())],
            Some(json!({"name": "mine", "disk_format": "raw", "container_format": "bare", "secret": "s"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_owned();
    let (_, _, other) = app.user_with_role("eve", "member").await;
    // The other project's add of an existing property answers as for an unknown image: it
    // learns neither that the image exists nor which properties it has.
    for ops in [
        json!([{"add": "/secret", "value": "x"}]),
        json!([{"replace": "/name", "value": "x"}]),
    ] {
        let r = patch(&app, &other, &id, ops).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    }
    let r = app.get(&format!("/image/v2/images/{id}"), Some(&t)).await;
    assert_eq!(r.body["name"], "mine");
    assert_eq!(r.body["secret"], "s");
}
