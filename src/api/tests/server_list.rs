//! Listing servers and flavors through the API: every exact filter and a sample of sort keys
//! reach the store and select what they name (the store alone knows their columns).

mod common;

use axum::http::{Method, StatusCode};
use common::{IMAGE, TestApp, assert_compute_fault};
use serde_json::{Value, json};

async fn call(app: &TestApp, token: &str, version: &str, m: Method, path: &str) -> common::Resp {
    call_with(app, token, version, m, path, None).await
}

async fn call_with(
    app: &TestApp,
    token: &str,
    version: &str,
    m: Method,
    path: &str,
    body: Option<Value>,
) -> common::Resp {
    app.call(
        m,
        &format!("/compute/v2.1{path}"),
        &[
            ("x-auth-token", token),
            ("openstack-api-version", &format!("compute {version}")),
        ],
        body,
    )
    .await
}

/// The names a listing returns, in its order.
async fn names(app: &TestApp, token: &str, version: &str, query: &str) -> Vec<String> {
    let r = call(
        app,
        token,
        version,
        Method::GET,
        &format!("/servers?{query}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text);
    r.body["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|s| s["name"].as_str().expect("name").to_owned())
        .collect()
}

/// Creates a server and returns the create's answer.
async fn create(app: &TestApp, token: &str, server: Value) -> Value {
    let r = call_with(
        app,
        token,
        "2.100",
        Method::POST,
        "/servers",
        Some(json!({ "server": server })),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    r.body
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn exact_filters_select_what_they_name() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let base = |name: &str, flavor: &str| json!({"name": name, "imageRef": IMAGE, "flavorRef": flavor, "networks": "auto"});
    let a = create(&app, &t, base("alpha", "1")).await["server"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let b = create(&app, &t, base("bravo", "1")).await["server"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut charlie = base("charlie", "2");
    charlie["return_reservation_id"] = json!(true);
    charlie["config_drive"] = json!(true);
    let reservation = create(&app, &t, charlie).await["reservation_id"]
        .as_str()
        .expect("reservation id")
        .to_owned();
    app.compute.idle().await;
    let act = |id: String, body: Value| {
        let t = t.clone();
        let app = &app;
        async move {
            let r = call_with(
                app,
                &t,
                "2.73",
                Method::POST,
                &format!("/servers/{id}/action"),
                Some(body),
            )
            .await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        }
    };
    act(a.clone(), json!({"lock": {"locked_reason": "audit"}})).await;
    act(b.clone(), json!({"os-stop": null})).await;
    app.compute.idle().await;

    let v = "2.100";
    let all = ["alpha", "bravo", "charlie"];
    assert_eq!(names(&app, &t, v, "locked=true").await, ["alpha"]);
    assert_eq!(
        sorted(names(&app, &t, v, "locked=false").await),
        ["bravo", "charlie"]
    );
    assert_eq!(names(&app, &t, v, "flavor=2").await, ["charlie"]);
    assert_eq!(
        sorted(names(&app, &t, v, "flavor=http://x/flavors/1").await),
        ["alpha", "bravo"]
    );
    assert_eq!(
        sorted(names(&app, &t, v, &format!("image={IMAGE}")).await),
        all
    );
    assert!(names(&app, &t, v, "image=nothing").await.is_empty());
    assert_eq!(
        names(&app, &t, v, &format!("reservation_id={reservation}")).await,
        ["charlie"]
    );
    assert_eq!(names(&app, &t, v, "vm_state=stopped").await, ["bravo"]);
    assert!(names(&app, &t, v, "task_state=spawning").await.is_empty());
    assert_eq!(names(&app, &t, v, "power_state=shutdown").await, ["bravo"]);
    assert_eq!(names(&app, &t, v, "power_state=4").await, ["bravo"]);
    assert_eq!(
        sorted(names(&app, &t, v, "power_state=running").await),
        ["alpha", "charlie"]
    );
    assert_eq!(names(&app, &t, v, "config_drive=true").await, ["charlie"]);
    assert_eq!(
        sorted(names(&app, &t, v, "availability_zone=nova").await),
        all
    );
    let r = call(&app, &t, v, Method::GET, &format!("/servers/{a}")).await;
    let user = r.body["server"]["user_id"]
        .as_str()
        .expect("user")
        .to_owned();
    assert_eq!(
        sorted(names(&app, &t, v, &format!("user_id={user}")).await),
        all
    );
    assert!(names(&app, &t, v, "user_id=someone-else").await.is_empty());
    // Before 2.38 a status Nova does not know matches nothing; from 2.38 it is refused.
    assert!(names(&app, &t, "2.37", "status=BOGUS").await.is_empty());
    assert_compute_fault(
        &call(&app, &t, "2.38", Method::GET, "/servers?status=BOGUS").await,
        400,
        "badRequest",
    );
    // `locked` is no filter before 2.73: everything is listed.
    assert_eq!(sorted(names(&app, &t, "2.72", "locked=true").await), all);
}

#[tokio::test]
async fn sort_keys_order_the_listing() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    for (name, flavor) in [("bravo", "2"), ("alpha", "1"), ("charlie", "3")] {
        create(
            &app,
            &t,
            json!({"name": name, "imageRef": IMAGE, "flavorRef": flavor, "networks": "auto"}),
        )
        .await;
    }
    app.compute.idle().await;
    let v = "2.100";
    assert_eq!(
        names(&app, &t, v, "sort_key=display_name&sort_dir=desc").await,
        ["charlie", "bravo", "alpha"]
    );
    assert_eq!(
        names(&app, &t, v, "sort_key=instance_type_id&sort_dir=asc").await,
        ["alpha", "bravo", "charlie"]
    );
    // A key onebox keeps no value for lists in the order the servers were made.
    assert_eq!(
        names(&app, &t, v, "sort_key=kernel_id&sort_dir=asc").await,
        ["bravo", "alpha", "charlie"]
    );
    // Two keys: the second breaks the first's ties.
    assert_eq!(
        names(
            &app,
            &t,
            v,
            "sort_key=vm_state&sort_dir=asc&sort_key=display_name&sort_dir=asc"
        )
        .await,
        ["alpha", "bravo", "charlie"]
    );
    // A column name is no sort key.
    assert_compute_fault(
        &call(&app, &t, v, Method::GET, "/servers?sort_key=flavorid").await,
        400,
        "badRequest",
    );
    // Flavors: Nova's key names, mapped to onebox's columns.
    let r = call(
        &app,
        &t,
        v,
        Method::GET,
        "/flavors/detail?sort_key=memory_mb&sort_dir=desc",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let ram: Vec<i64> = r.body["flavors"]
        .as_array()
        .expect("flavors")
        .iter()
        .map(|f| f["ram"].as_i64().expect("ram"))
        .collect();
    let mut want = ram.clone();
    want.sort_by(|a, b| b.cmp(a));
    assert_eq!(ram, want);
    assert!(ram.len() > 2);
    assert_compute_fault(
        &call(&app, &t, v, Method::GET, "/flavors?sort_key=ram_mb").await,
        400,
        "badRequest",
    );
}

#[tokio::test]
async fn a_multiple_create_numbers_its_servers_and_fits_the_quota() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let admin = app.admin().await;
    let one = create(
        &app,
        &t,
        json!({"name": "solo", "imageRef": IMAGE, "flavorRef": "1", "networks": "auto"}),
    )
    .await;
    let id = one["server"]["id"].as_str().expect("id");
    let r = call(&app, &t, "2.100", Method::GET, &format!("/servers/{id}")).await;
    // One server: the hostname is the name made a hostname, unnumbered.
    assert_eq!(r.body["server"]["OS-EXT-SRV-ATTR:hostname"], "solo");
    let project = r.body["server"]["tenant_id"]
        .as_str()
        .expect("project")
        .to_owned();
    let r = call_with(
        &app,
        &admin,
        "2.100",
        Method::PUT,
        &format!("/os-quota-sets/{project}"),
        Some(json!({"quota_set": {"instances": 3}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Room for two more: max_count 5 makes two, numbered, in one reservation.
    let made = create(
        &app,
        &t,
        json!({"name": "Web Node", "imageRef": IMAGE, "flavorRef": "1", "networks": "auto",
               "min_count": 1, "max_count": 5, "return_reservation_id": true}),
    )
    .await;
    let reservation = made["reservation_id"].as_str().expect("reservation");
    app.compute.idle().await;
    let r = call(
        &app,
        &admin,
        "2.100",
        Method::GET,
        &format!("/servers/detail?all_tenants=1&reservation_id={reservation}&sort_key=display_name&sort_dir=asc"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let servers = r.body["servers"].as_array().expect("servers");
    let seen: Vec<(String, String, i64)> = servers
        .iter()
        .map(|s| {
            (
                s["name"].as_str().expect("name").to_owned(),
                s["OS-EXT-SRV-ATTR:hostname"]
                    .as_str()
                    .expect("hostname")
                    .to_owned(),
                s["OS-EXT-SRV-ATTR:launch_index"].as_i64().expect("index"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("Web Node-1".to_owned(), "web-node-1".to_owned(), 0),
            ("Web Node-2".to_owned(), "web-node-2".to_owned(), 1),
        ]
    );
    // The quota is full: a create that needs two is refused, naming the resource.
    let r = call_with(
        &app,
        &t,
        "2.100",
        Method::POST,
        "/servers",
        Some(
            json!({"server": {"name": "more", "imageRef": IMAGE, "flavorRef": "1",
                               "networks": "auto", "min_count": 2}}),
        ),
    )
    .await;
    assert_compute_fault(&r, 403, "forbidden");
    assert!(
        r.text.contains(
            "Quota exceeded for instances: Requested 2, but already used 3 of 3 instances"
        ),
        "{}",
        r.text
    );
}
