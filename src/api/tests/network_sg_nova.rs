//! Security groups through Nova: servers made in groups by name, addSecurityGroup and
//! removeSecurityGroup, a server's groups, the os-security-groups proxy, and what another
//! project's member must not do with them.

mod common;

use common::neutron as call;

use axum::http::{Method, StatusCode};
use common::{IMAGE, Resp, TestApp};
use serde_json::{Value, json};

async fn group(app: &TestApp, t: &str, name: &str) -> String {
    let r = call(
        app,
        Method::POST,
        "/security-groups",
        t,
        Some(json!({"security_group": {"name": name, "description": "d"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["security_group"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

async fn nova(app: &TestApp, m: Method, uri: &str, t: &str, v: &str, body: Option<Value>) -> Resp {
    app.call(
        m,
        &format!("/compute/v2.1{uri}"),
        &[
            ("x-auth-token", t),
            ("openstack-api-version", &format!("compute {v}")),
        ],
        body,
    )
    .await
}

async fn port_groups(app: &TestApp, t: &str, server: &str) -> Vec<String> {
    let r = call(
        app,
        Method::GET,
        &format!("/ports?device_id={server}"),
        t,
        None,
    )
    .await;
    let mut v: Vec<String> = r.body["ports"][0]["security_groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|x| x.as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

/// A token of a new user with the reader role on the server's project.
async fn reader_of(app: &TestApp, server: &str, t: &str) -> String {
    let r = nova(
        app,
        Method::GET,
        &format!("/servers/{server}"),
        t,
        "2.1",
        None,
    )
    .await;
    let project = r.body["server"]["tenant_id"]
        .as_str()
        .expect("project")
        .to_owned();
    let admin = app.admin().await;
    let h = [("x-auth-token", admin.as_str())];
    let u = app
        .call(
            Method::POST,
            "/identity/v3/users",
            &h,
            Some(json!({"user": {"name": "rita", "password": "pw-rita"}})),
        )
        .await;
    let uid = u.body["user"]["id"].as_str().expect("uid").to_owned();
    let roles = app
        .get("/identity/v3/roles?name=reader", Some(&admin))
        .await;
    let rid = roles.body["roles"][0]["id"]
        .as_str()
        .expect("rid")
        .to_owned();
    let g = app
        .call(
            Method::PUT,
            &format!("/identity/v3/projects/{project}/users/{uid}/roles/{rid}"),
            &h,
            None,
        )
        .await;
    assert_eq!(g.status, StatusCode::NO_CONTENT, "{}", g.text);
    let r = app
        .call(
            Method::GET,
            &format!("/identity/v3/projects/{project}"),
            &h,
            None,
        )
        .await;
    let name = r.body["project"]["name"].as_str().expect("name").to_owned();
    app.token("rita", "pw-rita", &name).await
}

#[tokio::test]
async fn servers_take_groups_by_name_and_add_and_remove_them() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let web = group(&app, &t, "web").await;
    let db = group(&app, &t, "db").await;
    let r = nova(
        &app,
        Method::POST,
        "/servers",
        &t,
        "2.1",
        Some(json!({"server": {"name": "s", "imageRef": IMAGE, "flavorRef": "1", "security_groups": [{"name": "web"}]}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let sid = r.body["server"]["id"].as_str().expect("id").to_owned();
    app.compute.idle().await;
    let r = nova(
        &app,
        Method::GET,
        &format!("/servers/{sid}"),
        &t,
        "2.1",
        None,
    )
    .await;
    assert_eq!(
        r.body["server"]["security_groups"],
        json!([{"name": "web"}]),
        "{}",
        r.text
    );
    assert_eq!(port_groups(&app, &t, &sid).await, vec![web.clone()]);
    let action = format!("/servers/{sid}/action");
    let r = nova(
        &app,
        Method::POST,
        &action,
        &t,
        "2.1",
        Some(json!({"addSecurityGroup": {"name": "db"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let mut both = vec![web.clone(), db.clone()];
    both.sort();
    assert_eq!(port_groups(&app, &t, &sid).await, both);
    let r = nova(
        &app,
        Method::GET,
        &format!("/servers/{sid}"),
        &t,
        "2.1",
        None,
    )
    .await;
    let mut names: Vec<&str> = r.body["server"]["security_groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|x| x["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["db", "web"], "{}", r.text);
    // By id too; twice is refused, as is an unknown group.
    let r = nova(
        &app,
        Method::POST,
        &action,
        &t,
        "2.1",
        Some(json!({"addSecurityGroup": {"name": db}})),
    )
    .await;
    common::assert_compute_fault(&r, 400, "badRequest");
    let r = nova(
        &app,
        Method::POST,
        &action,
        &t,
        "2.1",
        Some(json!({"addSecurityGroup": {"name": "nope"}})),
    )
    .await;
    common::assert_compute_fault(&r, 404, "itemNotFound");
    assert!(
        r.body["itemNotFound"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Security group nope not found for project")),
        "{}",
        r.text
    );
    // The server's groups with their rules, in Nova's shape.
    let r = nova(
        &app,
        Method::GET,
        &format!("/servers/{sid}/os-security-groups"),
        &t,
        "2.1",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let gs = r.body["security_groups"].as_array().expect("groups");
    assert_eq!(gs.len(), 2, "{}", r.text);
    for g in gs {
        for k in ["id", "name", "description", "tenant_id", "rules"] {
            assert!(g.get(k).is_some(), "{k}: {}", r.text);
        }
    }
    let r = nova(
        &app,
        Method::POST,
        &action,
        &t,
        "2.1",
        Some(json!({"removeSecurityGroup": {"name": "web"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(port_groups(&app, &t, &sid).await, vec![db.clone()]);
    let r = nova(
        &app,
        Method::POST,
        &action,
        &t,
        "2.1",
        Some(json!({"removeSecurityGroup": {"name": "web"}})),
    )
    .await;
    common::assert_compute_fault(&r, 400, "badRequest");
    // A reader of the server's project changes nothing.
    let reader = reader_of(&app, &sid, &t).await;
    let r = nova(
        &app,
        Method::POST,
        &action,
        &reader,
        "2.1",
        Some(json!({"addSecurityGroup": {"name": "web"}})),
    )
    .await;
    common::assert_compute_fault(&r, 403, "forbidden");
    assert_eq!(port_groups(&app, &t, &sid).await, vec![db.clone()]);
    // Another project's member can do none of it.
    let (_, _, b) = app.user_with_role("mallory", "member").await;
    let r = nova(
        &app,
        Method::POST,
        &action,
        &b,
        "2.1",
        Some(json!({"addSecurityGroup": {"name": "web"}})),
    )
    .await;
    common::assert_compute_fault(&r, 404, "itemNotFound");
    let bweb = group(&app, &b, "bweb").await;
    let r = nova(
        &app,
        Method::POST,
        &action,
        &t,
        "2.1",
        Some(json!({"addSecurityGroup": {"name": bweb}})),
    )
    .await;
    common::assert_compute_fault(&r, 404, "itemNotFound");
    let r = nova(
        &app,
        Method::GET,
        &format!("/servers/{sid}/os-security-groups"),
        &b,
        "2.1",
        None,
    )
    .await;
    common::assert_compute_fault(&r, 404, "itemNotFound");
}

#[tokio::test]
async fn novas_security_group_proxy_answers_up_to_2_35() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let r = nova(
        &app,
        Method::POST,
        "/os-security-groups",
        &t,
        "2.1",
        Some(json!({"security_group": {"name": "web", "description": "w"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let g = r.body["security_group"].clone();
    assert_eq!(g["name"], "web");
    assert_eq!(g["rules"], json!([]), "{}", r.text);
    let gid = g["id"].as_str().expect("id").to_owned();
    let r = nova(
        &app,
        Method::POST,
        "/os-security-group-rules",
        &t,
        "2.1",
        Some(json!({"security_group_rule": {"parent_group_id": gid, "ip_protocol": "tcp", "from_port": 22, "to_port": 22, "cidr": "10.0.0.0/8"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let x = &r.body["security_group_rule"];
    assert_eq!(x["ip_protocol"], "tcp");
    assert_eq!(x["from_port"], 22);
    assert_eq!(x["ip_range"]["cidr"], "10.0.0.0/8");
    let rid = x["id"].as_str().expect("id").to_owned();
    let r = nova(
        &app,
        Method::GET,
        &format!("/os-security-groups/{gid}"),
        &t,
        "2.1",
        None,
    )
    .await;
    assert_eq!(
        r.body["security_group"]["rules"][0]["id"],
        rid.as_str(),
        "{}",
        r.text
    );
    let r = nova(&app, Method::GET, "/os-security-groups", &t, "2.35", None).await;
    let names: Vec<&str> = r.body["security_groups"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|x| x["name"].as_str())
        .collect();
    assert!(
        names.contains(&"web") && names.contains(&"default"),
        "{}",
        r.text
    );
    let r = nova(&app, Method::GET, "/os-security-groups", &t, "2.36", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let (_, _, b) = app.user_with_role("mallory", "member").await;
    let r = nova(
        &app,
        Method::GET,
        &format!("/os-security-groups/{gid}"),
        &b,
        "2.1",
        None,
    )
    .await;
    common::assert_compute_fault(&r, 404, "itemNotFound");
    let r = nova(
        &app,
        Method::DELETE,
        &format!("/os-security-group-rules/{rid}"),
        &b,
        "2.1",
        None,
    )
    .await;
    common::assert_compute_fault(&r, 404, "itemNotFound");
    let r = nova(
        &app,
        Method::DELETE,
        &format!("/os-security-group-rules/{rid}"),
        &t,
        "2.1",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = nova(
        &app,
        Method::DELETE,
        &format!("/os-security-groups/{gid}"),
        &t,
        "2.1",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = nova(
        &app,
        Method::GET,
        &format!("/os-security-groups/{gid}"),
        &t,
        "2.1",
        None,
    )
    .await;
    common::assert_compute_fault(&r, 404, "itemNotFound");
}
