//! `/os-hosts` (until 2.42): the box's host for each enabled service, its resources; an
//! admin's only.

mod common;

use axum::http::Method;
use common::{Api, TestApp, assert_compute_fault};

#[tokio::test]
async fn admins_list_the_box_and_its_resources_until_2_42() {
    let app = TestApp::new().await;
    let a = Api {
        app: &app,
        token: app.admin().await,
        version: "2.42".into(),
    };
    let r = a.call(Method::GET, "/os-hosts", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let hosts = r.body["hosts"].as_array().expect("hosts").clone();
    let services: Vec<&str> = hosts.iter().filter_map(|h| h["service"].as_str()).collect();
    assert!(services.contains(&"compute"), "{hosts:?}");
    let host = hosts[0]["host_name"].as_str().expect("host").to_owned();
    assert!(hosts.iter().all(|h| h["host_name"] == host.as_str()));
    // The compute host is in its zone; the other services in `internal`.
    let r = a.call(Method::GET, "/os-hosts?zone=internal", None).await;
    assert!(
        r.body["hosts"]
            .as_array()
            .expect("hosts")
            .iter()
            .all(|h| h["service"] != "compute")
    );
    let r = a
        .call(Method::GET, &format!("/os-hosts/{host}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let projects: Vec<&str> = r.body["host"]
        .as_array()
        .expect("host")
        .iter()
        .filter_map(|e| e["resource"]["project"].as_str())
        .collect();
    assert_eq!(projects, ["(total)", "(used_now)", "(used_max)"]);
    assert!(r.body["host"][0]["resource"]["cpu"].as_u64().expect("cpu") > 0);
    let r = a.call(Method::GET, "/os-hosts/elsewhere", None).await;
    assert_compute_fault(&r, 404, "itemNotFound");
    // Removed at 2.43.
    let r = a.at("2.43").call(Method::GET, "/os-hosts", None).await;
    assert_compute_fault(&r, 404, "itemNotFound");
}

#[tokio::test]
async fn attack_members_see_no_hosts() {
    let app = TestApp::new().await;
    let m = Api {
        app: &app,
        token: app.demo().await,
        version: "2.1".into(),
    };
    for path in ["/os-hosts", "/os-hosts/anything"] {
        let r = m.call(Method::GET, path, None).await;
        assert_compute_fault(&r, 403, "forbidden");
        assert!(!r.text.contains("cpu"), "{}", r.text);
    }
}
