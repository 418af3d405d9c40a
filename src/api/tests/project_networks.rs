//! A project's networks belong to it: deleting the project frees them (and their address
//! space), and a project that still has servers cannot be deleted from under them.

mod common;

use axum::http::{Method, StatusCode};
use common::{IMAGE, TestApp};
use model::ProjectId;
use serde_json::json;

async fn networks_of(app: &TestApp, project: &str) -> Vec<String> {
    let p = ProjectId::new(project);
    app.store
        .read(move |c| store::compute::project_networks(c, &p))
        .await
        .expect("networks")
        .into_iter()
        .filter(|n| n.project_id.is_some())
        .map(|n| n.cidr)
        .collect()
}

#[tokio::test]
async fn attack_deleting_a_project_with_servers_is_refused_and_frees_its_network_after() {
    let app = TestApp::new().await;
    let (_, pid, token) = app.user_with_role("tenant-net", "member").await;
    let admin = app.admin().await;
    let member = [
        ("x-auth-token", token.as_str()),
        ("openstack-api-version", "compute 2.37"),
    ];
    let r = app
        .call(
            Method::POST,
            "/compute/v2.1/servers",
            &member,
            Some(json!({"server": {"name": "s", "imageRef": IMAGE, "flavorRef": "1", "networks": "auto"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let sid = r.body["server"]["id"].as_str().expect("id").to_owned();
    app.compute.idle().await;
    let cidrs = networks_of(&app, &pid).await;
    assert_eq!(cidrs.len(), 1, "the project's network");

    // The server still lives: the project (and its network) stay.
    let project = format!("/identity/v3/projects/{pid}");
    let h = [("x-auth-token", admin.as_str())];
    let r = app.call(Method::DELETE, &project, &h, None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(app.get(&project, Some(&admin)).await.status, StatusCode::OK);
    assert_eq!(networks_of(&app, &pid).await, cidrs);

    // Server gone, project deleted: its network and address space are free.
    let r = app
        .call(
            Method::DELETE,
            &format!("/compute/v2.1/servers/{sid}"),
            &member,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    app.compute.idle().await;
    let r = app.call(Method::DELETE, &project, &h, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert!(networks_of(&app, &pid).await.is_empty());
    let all = app
        .store
        .read(store::compute::network_cidrs)
        .await
        .expect("cidrs");
    assert!(!all.contains(&cidrs[0]), "{all:?}");
}
