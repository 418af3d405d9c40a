//! The one switch that loosens a container's confinement, the flavor extra spec
//! `onebox:userns=false`, is an admin's: a project member can neither set it on a flavor
//! nor make a flavor of their own to carry it.

mod common;

use axum::http::{Method, StatusCode};
use common::TestApp;
use serde_json::{Value, json};

async fn call(
    app: &TestApp,
    token: &str,
    m: Method,
    path: &str,
    body: Option<Value>,
) -> common::Resp {
    app.call(
        m,
        &format!("/compute/v2.1{path}"),
        &[("x-auth-token", token)],
        body,
    )
    .await
}

#[tokio::test]
async fn attack_a_member_cannot_opt_a_flavor_out_of_user_namespaces() {
    let app = TestApp::new().await;
    let member = app.demo().await;
    let admin = app.admin().await;
    // container::USERNS_EXTRA_SPEC
    let spec = "onebox:userns";
    let tries = [
        (
            Method::POST,
            "/flavors/1/os-extra_specs".to_owned(),
            Some(json!({"extra_specs": {spec: "false"}})),
        ),
        (
            Method::PUT,
            format!("/flavors/1/os-extra_specs/{spec}"),
            Some(json!({spec: "false"})),
        ),
        (
            Method::POST,
            "/flavors".to_owned(),
            Some(json!({"flavor": {"name": "mine", "ram": 64, "vcpus": 1, "disk": 1}})),
        ),
    ];
    for (m, path, body) in tries {
        let r = call(&app, &member, m.clone(), &path, body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{m} {path}: {}", r.text);
    }
    let specs = call(&app, &admin, Method::GET, "/flavors/1/os-extra_specs", None).await;
    assert_eq!(specs.status, StatusCode::OK, "{}", specs.text);
    assert!(
        specs.body["extra_specs"].get(spec).is_none(),
        "{}",
        specs.text
    );
    // The admin can.
    let r = call(
        &app,
        &admin,
        Method::POST,
        "/flavors/1/os-extra_specs",
        Some(json!({"extra_specs": {spec: "false"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}
