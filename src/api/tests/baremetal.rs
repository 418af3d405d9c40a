//! The Bare Metal API (Ironic v1 subset) in process: versions, node CRUD and JSON patch,
//! password masking, provision verbs, maintenance, errors in Ironic's format, admin only.

mod common;

use axum::http::Method;
use common::TestApp;
use serde_json::{Value, json};

const V: (&str, &str) = ("x-openstack-ironic-api-version", "1.80");

async fn call(app: &TestApp, m: Method, uri: &str, tok: &str, body: Option<Value>) -> common::Resp {
    app.call(m, uri, &[("x-auth-token", tok), V], body).await
}

fn ironic_error(r: &common::Resp) -> String {
    let outer: Value = serde_json::from_str(&r.text).expect("json error body");
    let inner: Value =
        serde_json::from_str(outer["error_message"].as_str().expect("error_message"))
            .expect("inner json");
    assert!(inner.get("faultcode").is_some(), "{inner}");
    inner["faultstring"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn version_discovery_and_negotiation() {
    let app = TestApp::new().await;
    let r = app.get("/baremetal/", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["versions"][0]["id"], "v1");
    assert_eq!(r.body["default_version"]["min_version"], "1.1");
    assert_eq!(
        r.header("x-openstack-ironic-api-minimum-version"),
        Some("1.1")
    );
    assert_eq!(
        r.header("x-openstack-ironic-api-maximum-version"),
        Some("1.99")
    );
    let r = app.get("/baremetal/v1/", None).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body["nodes"][0]["href"]
            .as_str()
            .unwrap_or("")
            .ends_with("/baremetal/v1/nodes/")
    );
    let tok = app.admin().await;
    let r = app
        .call(
            Method::GET,
            "/baremetal/v1/nodes",
            &[
                ("x-auth-token", &tok),
                ("x-openstack-ironic-api-version", "1.500"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 406);
    assert!(ironic_error(&r).contains("1.500"));
    assert_eq!(
        r.header("x-openstack-ironic-api-maximum-version"),
        Some("1.99")
    );
    let r = app
        .call(
            Method::GET,
            "/baremetal/v1/nodes",
            &[
                ("x-auth-token", &tok),
                ("x-openstack-ironic-api-version", "latest"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-openstack-ironic-api-version"), Some("1.99"));
}

#[tokio::test]
async fn nodes_are_admin_only() {
    let app = TestApp::new().await;
    let r = app.get("/baremetal/v1/nodes", None).await;
    assert_eq!(r.status, 401);
    let demo = app.demo().await;
    let r = call(&app, Method::GET, "/baremetal/v1/nodes", &demo, None).await;
    assert_eq!(r.status, 403);
    ironic_error(&r);
}

#[tokio::test]
async fn node_lifecycle_without_a_bmc() {
    let app = TestApp::new().await;
    let tok = app.admin().await;
    // A port where nothing listens: manage must fail verification, quickly and clearly.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("port");
    let r = call(&app, Method::POST, "/baremetal/v1/nodes", &tok, Some(json!({
        "name": "rack1-node1",
        "driver": "ipmi",
        "driver_info": {"ipmi_address": "127.0.0.1", "ipmi_port": port.to_string(), "ipmi_username": "admin", "ipmi_password": "s3cret"},
        "resource_class": "baremetal.small",
        "properties": {"cpus": 4, "memory_mb": 8192, "local_gb": 100},
    }))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let uuid = r.body["uuid"].as_str().expect("uuid").to_string();
    assert_eq!(r.body["provision_state"], "enroll");
    assert_eq!(r.body["driver_info"]["ipmi_password"], "******");
    assert!(!r.text.contains("s3cret"));
    assert_eq!(r.body["properties"]["cpus"], 4);

    let r = call(&app, Method::GET, "/baremetal/v1/nodes", &tok, None).await;
    assert_eq!(r.body["nodes"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.body["nodes"][0]["name"], "rack1-node1");
    assert!(r.body["nodes"][0].get("driver_info").is_none());
    let r = call(
        &app,
        Method::GET,
        "/baremetal/v1/nodes?fields=uuid,provision_state",
        &tok,
        None,
    )
    .await;
    assert_eq!(r.body["nodes"][0].as_object().map(|o| o.len()), Some(2));
    let r = call(&app, Method::GET, "/baremetal/v1/nodes/detail", &tok, None).await;
    assert_eq!(r.body["nodes"][0]["driver_info"]["ipmi_password"], "******");

    let r = call(
        &app,
        Method::PATCH,
        "/baremetal/v1/nodes/rack1-node1",
        &tok,
        Some(json!([
            {"op": "add", "path": "/properties/cpu_arch", "value": "x86_64"},
            {"op": "replace", "path": "/driver_info/ipmi_password", "value": "n3w"},
            {"op": "add", "path": "/extra/rack", "value": "r1"},
        ])),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["properties"]["cpu_arch"], "x86_64");
    assert_eq!(r.body["driver_info"]["ipmi_password"], "******");
    assert!(!r.text.contains("n3w"));
    let r = call(
        &app,
        Method::PATCH,
        &format!("/baremetal/v1/nodes/{uuid}"),
        &tok,
        Some(json!([
            {"op": "replace", "path": "/provision_state", "value": "active"},
        ])),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(ironic_error(&r).contains("provision_state"));

    // manage: verification fails within the IPMI timeout, the node stays enroll with last_error.
    let t = std::time::Instant::now();
    let r = call(
        &app,
        Method::PUT,
        &format!("/baremetal/v1/nodes/{uuid}/states/provision"),
        &tok,
        Some(json!({"target": "manage"})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        t.elapsed()
    );
    let r = call(
        &app,
        Method::GET,
        &format!("/baremetal/v1/nodes/{uuid}"),
        &tok,
        None,
    )
    .await;
    assert_eq!(r.body["provision_state"], "enroll");
    assert!(
        r.body["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("unreachable"),
        "{}",
        r.body["last_error"]
    );
    assert!(r.body["target_provision_state"].is_null());
    // provide from enroll is refused in Ironic's words.
    let r = call(
        &app,
        Method::PUT,
        &format!("/baremetal/v1/nodes/{uuid}/states/provision"),
        &tok,
        Some(json!({"target": "provide"})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(ironic_error(&r).contains("while it is in state \"enroll\""));

    // Power with an unreachable BMC: accepted, and last_error says what happened.
    let r = call(
        &app,
        Method::PUT,
        &format!("/baremetal/v1/nodes/{uuid}/states/power"),
        &tok,
        Some(json!({"target": "power on"})),
    )
    .await;
    assert_eq!(r.status, 202);
    let r = call(
        &app,
        Method::GET,
        &format!("/baremetal/v1/nodes/{uuid}/states"),
        &tok,
        None,
    )
    .await;
    assert!(
        r.body["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("power on"),
        "{}",
        r.body
    );
    assert!(r.body["target_power_state"].is_null());

    let r = call(
        &app,
        Method::PUT,
        &format!("/baremetal/v1/nodes/{uuid}/maintenance"),
        &tok,
        Some(json!({"reason": "disk swap"})),
    )
    .await;
    assert_eq!(r.status, 202);
    let r = call(
        &app,
        Method::GET,
        &format!("/baremetal/v1/nodes/{uuid}"),
        &tok,
        None,
    )
    .await;
    assert_eq!(r.body["maintenance"], true);
    assert_eq!(r.body["maintenance_reason"], "disk swap");
    let r = call(
        &app,
        Method::DELETE,
        &format!("/baremetal/v1/nodes/{uuid}/maintenance"),
        &tok,
        None,
    )
    .await;
    assert_eq!(r.status, 202);

    let r = call(
        &app,
        Method::POST,
        "/baremetal/v1/nodes",
        &tok,
        Some(json!({"driver": "redfish"})),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = call(
        &app,
        Method::POST,
        "/baremetal/v1/nodes",
        &tok,
        Some(json!({"name": "rack1-node1", "driver": "ipmi"})),
    )
    .await;
    assert_eq!(r.status, 409);

    let r = call(
        &app,
        Method::DELETE,
        &format!("/baremetal/v1/nodes/{uuid}"),
        &tok,
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    let r = call(
        &app,
        Method::GET,
        &format!("/baremetal/v1/nodes/{uuid}"),
        &tok,
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(ironic_error(&r).contains(&uuid));
}

#[tokio::test]
async fn the_catalog_lists_baremetal() {
    let app = TestApp::new().await;
    let r = app.login("admin", common::ADMIN_PW, Some("admin")).await;
    let cat = r.body["token"]["catalog"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let bm = cat
        .iter()
        .find(|s| s["type"] == "baremetal")
        .expect("baremetal in the catalog");
    assert!(
        bm["endpoints"][0]["url"]
            .as_str()
            .unwrap_or("")
            .ends_with("/baremetal")
    );
}
