//! The Compute API on the fake driver: server lifecycle, project isolation, quotas under
//! concurrency, and a table of malformed bodies that must never reach a 500 or write anything.

mod common;

use common::Api;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{IMAGE, TestApp, assert_compute_fault};
use serde_json::{Value, json};

impl Api<'_> {
    async fn raw(&self, m: Method, path: &str, body: &[u8]) -> common::Resp {
        self.app
            .call_raw(
                m,
                &format!("/compute/v2.1{path}"),
                &[
                    ("x-auth-token", &self.token),
                    (
                        "openstack-api-version",
                        &format!("compute {}", self.version),
                    ),
                ],
                Some(body.to_vec()),
            )
            .await
    }

    async fn create(&self, name: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/servers",
                Some(json!({"server": {"name": name, "imageRef": IMAGE, "flavorRef": "1", "networks": "auto"}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        r.body["server"]["id"].as_str().expect("id").to_owned()
    }
}

async fn api<'a>(app: &'a TestApp, token: String) -> Api<'a> {
    Api {
        app,
        token,
        version: "2.100".into(),
    }
}

#[tokio::test]
async fn a_server_goes_from_build_to_active_and_is_deleted() {
    let app = TestApp::new().await;
    app.driver.set_delay(Duration::from_millis(300));
    let a = api(&app, app.demo().await).await;
    let id = a.create("web").await;
    let r = a.call(Method::GET, &format!("/servers/{id}"), None).await;
    assert_eq!(r.body["server"]["status"], "BUILD");
    assert_eq!(r.body["server"]["OS-EXT-STS:vm_state"], "building");
    app.compute.idle().await;
    let r = a.call(Method::GET, &format!("/servers/{id}"), None).await;
    let s = &r.body["server"];
    assert_eq!(s["status"], "ACTIVE", "{}", r.text);
    assert_eq!(s["OS-EXT-STS:power_state"], 1);
    assert_eq!(s["addresses"]["private"][0]["addr"], "10.1.0.10");
    assert_eq!(s["addresses"]["private"][0]["OS-EXT-IPS:type"], "fixed");
    assert!(s["OS-SRV-USG:launched_at"].is_string());
    // The backend really holds it.
    let known = driver::ComputeDriver::list_instances(app.driver.as_ref()).expect("list");
    assert_eq!(known.len(), 1);
    // A second server gets the next address.
    let id2 = a.create("db").await;
    app.compute.idle().await;
    let r = a
        .call(Method::GET, &format!("/servers/{id2}/ips/private"), None)
        .await;
    assert_eq!(r.body["private"][0]["addr"], "10.1.0.11");

    let r = a
        .call(Method::DELETE, &format!("/servers/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.compute.idle().await;
    let r = a.call(Method::GET, &format!("/servers/{id}"), None).await;
    assert_compute_fault(&r, 404, "itemNotFound");
    assert_eq!(
        driver::ComputeDriver::list_instances(app.driver.as_ref())
            .expect("list")
            .len(),
        1
    );
    // Deleted servers show up again through changes-since, as DELETED.
    let r = a
        .call(
            Method::GET,
            "/servers/detail?changes-since=2000-01-01T00:00:00Z",
            None,
        )
        .await;
    let statuses: Vec<&str> = r.body["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|s| s["status"].as_str().expect("status"))
        .collect();
    assert!(
        statuses.contains(&"DELETED") && statuses.contains(&"ACTIVE"),
        "{statuses:?}"
    );
    // Its address is free again.
    let id3 = a.create("cache").await;
    app.compute.idle().await;
    let r = a
        .call(Method::GET, &format!("/servers/{id3}/ips"), None)
        .await;
    assert_eq!(r.body["addresses"]["private"][0]["addr"], "10.1.0.10");
}

#[tokio::test]
async fn a_failed_build_ends_in_error_with_a_fault() {
    let app = TestApp::new().await;
    app.driver.set_failing(driver::Operation::Spawn, true);
    let a = api(&app, app.demo().await).await;
    let id = a.create("doomed").await;
    app.compute.idle().await;
    let r = a.call(Method::GET, &format!("/servers/{id}"), None).await;
    let s = &r.body["server"];
    assert_eq!(s["status"], "ERROR");
    assert_eq!(s["fault"]["code"], 500);
    assert!(
        s["fault"]["message"]
            .as_str()
            .expect("message")
            .contains("Build of instance")
    );
    // A server in ERROR can still be deleted.
    let r = a
        .call(Method::DELETE, &format!("/servers/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.compute.idle().await;
    assert_compute_fault(
        &a.call(Method::GET, &format!("/servers/{id}"), None).await,
        404,
        "itemNotFound",
    );
}

#[tokio::test]
async fn deleting_while_building_leaves_nothing_behind() {
    let app = TestApp::new().await;
    app.driver.set_delay(Duration::from_millis(200));
    let a = api(&app, app.demo().await).await;
    let id = a.create("short-lived").await;
    let r = a
        .call(Method::DELETE, &format!("/servers/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.compute.idle().await;
    assert!(
        driver::ComputeDriver::list_instances(app.driver.as_ref())
            .expect("list")
            .is_empty()
    );
    assert_compute_fault(
        &a.call(Method::GET, &format!("/servers/{id}"), None).await,
        404,
        "itemNotFound",
    );
}

#[tokio::test]
async fn projects_are_isolated() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await).await;
    let id = a.create("secret").await;
    let kp = a
        .call(
            Method::POST,
            "/os-keypairs",
            Some(json!({"keypair": {"name": "mine", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf7Wq3ad5G3+1dEnTHy1RdQjpLSFajmyRzkd5HMIbhW test"}})),
        )
        .await;
    assert_eq!(kp.status, StatusCode::CREATED, "{}", kp.text);
    let (_, _, other) = app.user_with_role("bob", "member").await;
    let b = api(&app, other).await;
    app.compute.idle().await;
    // Bob cannot see, touch or guess demo's server.
    for (m, path, body) in [
        (Method::GET, format!("/servers/{id}"), None),
        (
            Method::PUT,
            format!("/servers/{id}"),
            Some(json!({"server": {"name": "x"}})),
        ),
        (Method::DELETE, format!("/servers/{id}"), None),
        (Method::GET, format!("/servers/{id}/metadata"), None),
        (Method::PUT, format!("/servers/{id}/tags/x"), None),
        (Method::GET, format!("/servers/{id}/ips"), None),
    ] {
        let r = b.call(m, &path, body).await;
        assert_compute_fault(&r, 404, "itemNotFound");
    }
    let list = b.call(Method::GET, "/servers", None).await;
    assert_eq!(list.body["servers"], json!([]));
    // Keypairs are per user.
    assert_compute_fault(
        &b.call(Method::GET, "/os-keypairs/mine", None).await,
        404,
        "itemNotFound",
    );
    let r = b
        .call(Method::GET, "/os-keypairs?user_id=someone-else", None)
        .await;
    assert_compute_fault(&r, 403, "forbidden");
    // A private flavor shared with no one is invisible to him.
    let admin = api(&app, app.admin().await).await;
    let r = admin
        .call(
            Method::POST,
            "/flavors",
            Some(json!({"flavor": {"name": "hidden", "ram": 64, "vcpus": 1, "disk": 1, "id": "hid", "os-flavor-access:is_public": false}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_compute_fault(
        &b.call(Method::GET, "/flavors/hid", None).await,
        404,
        "itemNotFound",
    );
    let names: Vec<Value> = b.call(Method::GET, "/flavors", None).await.body["flavors"]
        .as_array()
        .expect("flavors")
        .iter()
        .map(|f| f["name"].clone())
        .collect();
    assert!(!names.contains(&json!("hidden")));
    // Non-admins cannot list every project.
    assert_compute_fault(
        &b.call(Method::GET, "/servers?all_tenants=1", None).await,
        403,
        "forbidden",
    );
    // The admin can.
    let all = admin
        .call(Method::GET, "/servers?all_tenants=1", None)
        .await;
    assert_eq!(all.body["servers"].as_array().map(Vec::len), Some(1));
    // Demo's server is untouched.
    let r = a.call(Method::GET, &format!("/servers/{id}"), None).await;
    assert_eq!(r.body["server"]["name"], "secret");
}

#[tokio::test]
async fn readers_cannot_write() {
    let app = TestApp::new().await;
    let (_, project, reader) = app.user_with_role("rita", "reader").await;
    let (member_uid, _, _) = app.user_with_role("rita-member", "member").await;
    let _ = (project, member_uid);
    let r = api(&app, reader).await;
    let cases = [
        (
            Method::POST,
            "/servers",
            json!({"server": {"name": "x", "imageRef": IMAGE, "flavorRef": "1", "networks": "auto"}}),
        ),
        (
            Method::POST,
            "/flavors",
            json!({"flavor": {"name": "x", "ram": 1, "vcpus": 1, "disk": 1}}),
        ),
    ];
    for (m, path, body) in cases {
        let resp = r.call(m, path, Some(body)).await;
        assert_compute_fault(&resp, 403, "forbidden");
    }
    let list = r.call(Method::GET, "/servers", None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["servers"], json!([]));
}

#[tokio::test]
async fn concurrent_creates_respect_the_quota_exactly() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await).await;
    let body = json!({"server": {"name": "burst", "imageRef": IMAGE, "flavorRef": "42", "networks": "auto"}});
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (h, b, t) = (app.app.clone(), body.clone(), a.token.clone());
        tasks.push(tokio::spawn(async move {
            let req = axum::http::Request::builder()
                .method(Method::POST)
                .uri("/compute/v2.1/servers")
                .header("x-auth-token", t)
                .header("content-type", "application/json")
                .header("openstack-api-version", "compute 2.100")
                .body(axum::body::Body::from(b.to_string()))
                .expect("request");
            tower::ServiceExt::oneshot(h, req)
                .await
                .expect("call")
                .status()
        }));
    }
    let mut created = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.expect("join") {
            StatusCode::ACCEPTED => created += 1,
            StatusCode::FORBIDDEN => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((created, refused), (10, 40));
    app.compute.idle().await;
    let r = a.call(Method::GET, "/servers", None).await;
    assert_eq!(r.body["servers"].as_array().map(Vec::len), Some(10));
    let l = a.call(Method::GET, "/limits", None).await;
    assert_eq!(l.body["limits"]["absolute"]["totalInstancesUsed"], 10);
    // One more is refused with Nova's message.
    let r = a.call(Method::POST, "/servers", Some(body)).await;
    assert_compute_fault(&r, 403, "forbidden");
    assert!(
        r.text.contains("Quota exceeded for instances"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn quota_updates_are_admin_only_and_checked_against_usage() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await).await;
    let admin = api(&app, app.admin().await).await;
    a.create("one").await;
    a.create("two").await;
    app.compute.idle().await;
    let demo_project = app
        .identity
        .validate(&a.token)
        .await
        .expect("validate")
        .expect("live")
        .project
        .expect("project")
        .0
        .id;
    let path = format!("/os-quota-sets/{demo_project}");
    let r = a
        .call(
            Method::PUT,
            &path,
            Some(json!({"quota_set": {"instances": 50}})),
        )
        .await;
    assert_compute_fault(&r, 403, "forbidden");
    let r = admin
        .call(
            Method::PUT,
            &path,
            Some(json!({"quota_set": {"instances": 1}})),
        )
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    let r = admin
        .call(
            Method::PUT,
            &path,
            Some(json!({"quota_set": {"instances": 1, "force": true}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["quota_set"]["instances"], 1);
    let d = a.call(Method::GET, &format!("{path}/detail"), None).await;
    assert_eq!(
        d.body["quota_set"]["instances"],
        json!({"in_use": 2, "limit": 1, "reserved": 0})
    );
    let r = a.call(Method::POST, "/servers", Some(json!({"server": {"name": "x", "imageRef": IMAGE, "flavorRef": "1", "networks": "auto"}}))).await;
    assert_compute_fault(&r, 403, "forbidden");
    assert_eq!(
        admin.call(Method::DELETE, &path, None).await.status,
        StatusCode::ACCEPTED
    );
    let s = a.call(Method::GET, &path, None).await;
    assert_eq!(s.body["quota_set"]["instances"], 10);
}

#[tokio::test]
async fn listing_filters_sorts_and_pages() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await).await;
    for n in ["alpha", "beta", "gamma", "alphabet"] {
        a.create(n).await;
    }
    app.compute.idle().await;
    let names = |r: &common::Resp| -> Vec<String> {
        r.body["servers"]
            .as_array()
            .expect("servers")
            .iter()
            .map(|s| s["name"].as_str().expect("name").to_owned())
            .collect()
    };
    // Nova's name filter is an unanchored regex.
    let r = a
        .call(
            Method::GET,
            "/servers?name=alph&sort_key=display_name&sort_dir=asc",
            None,
        )
        .await;
    assert_eq!(names(&r), ["alpha", "alphabet"]);
    let r = a.call(Method::GET, "/servers?name=^b", None).await;
    assert_eq!(names(&r), ["beta"]);
    // Paging with a next link that carries the query.
    let r = a
        .call(
            Method::GET,
            "/servers?limit=2&sort_key=display_name&sort_dir=asc",
            None,
        )
        .await;
    assert_eq!(names(&r), ["alpha", "alphabet"]);
    let next = r.body["servers_links"][0]["href"]
        .as_str()
        .expect("next")
        .to_owned();
    assert!(
        next.contains("limit=2") && next.contains("marker="),
        "{next}"
    );
    let path = next.split("/compute/v2.1").nth(1).expect("path").to_owned();
    let r2 = a.call(Method::GET, &path, None).await;
    assert_eq!(names(&r2), ["beta", "gamma"]);
    assert_compute_fault(
        &a.call(Method::GET, "/servers?marker=nope", None).await,
        400,
        "badRequest",
    );
    // Status filters: ACTIVE matches, a bogus one is refused from 2.38.
    let r = a.call(Method::GET, "/servers?status=ACTIVE", None).await;
    assert_eq!(names(&r).len(), 4);
    assert_compute_fault(
        &a.call(Method::GET, "/servers?status=BOGUS", None).await,
        400,
        "badRequest",
    );
    // Unknown query parameters are refused from 2.75.
    assert_compute_fault(
        &a.call(Method::GET, "/servers?foo=1", None).await,
        400,
        "badRequest",
    );
    // Tags.
    let ids: Vec<String> = a
        .call(Method::GET, "/servers?name=^gamma$", None)
        .await
        .body["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect();
    let r = a
        .call(Method::PUT, &format!("/servers/{}/tags/blue", ids[0]), None)
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = a.call(Method::GET, "/servers?tags=blue", None).await;
    assert_eq!(names(&r), ["gamma"]);
    let r = a.call(Method::GET, "/servers?not-tags=blue", None).await;
    assert_eq!(names(&r).len(), 3);
    // The default order (newest first) pages in SQL; it must agree with the same order asked
    // for explicitly, and its marker must be a server.
    let fast = a.call(Method::GET, "/servers", None).await;
    let slow = a
        .call(
            Method::GET,
            "/servers?sort_key=created_at&sort_dir=desc",
            None,
        )
        .await;
    assert_eq!(names(&fast), names(&slow));
    let first = a.call(Method::GET, "/servers?limit=3", None).await;
    let next = first.body["servers_links"][0]["href"]
        .as_str()
        .expect("next")
        .to_owned();
    let path = next.split("/compute/v2.1").nth(1).expect("path").to_owned();
    let rest = a.call(Method::GET, &path, None).await;
    let mut paged = names(&first);
    paged.extend(names(&rest));
    assert_eq!(paged, names(&fast));
    assert_compute_fault(
        &a.call(
            Method::GET,
            "/servers?marker=00000000-0000-0000-0000-000000000000",
            None,
        )
        .await,
        400,
        "badRequest",
    );
    // A name lookup by path is a 404, as clients expect before they search.
    assert_compute_fault(
        &a.call(Method::GET, "/servers/alpha", None).await,
        404,
        "itemNotFound",
    );
}

#[tokio::test]
async fn malformed_bodies_never_500_and_write_nothing() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await).await;
    let admin = api(&app, app.admin().await).await;
    let server = a.create("target").await;
    app.compute.idle().await;
    let s = format!("/servers/{server}");
    let bodies: Vec<(&Api, Method, String, &[u8])> = vec![
        (&a, Method::POST, "/servers".into(), b"{\"server\":"),
        (&a, Method::POST, "/servers".into(), b"[]"),
        (&a, Method::POST, "/servers".into(), b""),
        (&a, Method::POST, "/servers".into(), b"{}"),
        (&a, Method::POST, "/servers".into(), b"{\"server\": {}}"),
        (&a, Method::POST, "/servers".into(), b"{\"server\": {\"name\": 1, \"flavorRef\": \"1\", \"imageRef\": \"x\", \"networks\": \"auto\"}}"),
        (&a, Method::POST, "/servers".into(), b"{\"server\": {\"name\": \"x\", \"flavorRef\": \"1\", \"imageRef\": \"x\"}}"),
        (&a, Method::POST, "/servers".into(), b"{\"server\": {\"name\": \"x\", \"flavorRef\": \"999\", \"imageRef\": \"70a599e0-31e7-49b7-b260-868f441e862b\", \"networks\": \"auto\"}}"),
        (&a, Method::POST, "/servers".into(), b"{\"server\": {\"name\": \"x\", \"flavorRef\": \"1\", \"imageRef\": \"00000000-0000-0000-0000-000000000000\", \"networks\": \"auto\"}}"),
        (&a, Method::POST, "/servers".into(), b"{\"server\": {\"name\": \"x\", \"flavorRef\": \"1\", \"imageRef\": \"70a599e0-31e7-49b7-b260-868f441e862b\", \"networks\": \"sideways\"}}"),
        (&a, Method::POST, "/servers".into(), b"{\"server\": {\"name\": \"x\", \"flavorRef\": \"1\", \"imageRef\": \"70a599e0-31e7-49b7-b260-868f441e862b\", \"networks\": \"auto\", \"bogus\": 1}}"),
        (&a, Method::POST, "/servers".into(), b"{\"server\": {\"name\": \"x\", \"flavorRef\": \"1\", \"imageRef\": \"70a599e0-31e7-49b7-b260-868f441e862b\", \"networks\": \"auto\", \"min_count\": 3, \"max_count\": 2}}"),
        (&a, Method::POST, "/servers".into(), b"{\"server\": {\"name\": \"x\", \"flavorRef\": \"1\", \"imageRef\": \"70a599e0-31e7-49b7-b260-868f441e862b\", \"networks\": \"auto\", \"user_data\": \"%%%\"}}"),
        (&a, Method::POST, "/servers".into(), b"{\"server\": {\"name\": \"x\", \"flavorRef\": \"1\", \"imageRef\": \"70a599e0-31e7-49b7-b260-868f441e862b\", \"networks\": \"auto\", \"key_name\": \"missing\"}}"),
        (&a, Method::POST, "/servers".into(), b"{\"server\": {\"name\": \"x\", \"flavorRef\": \"1\", \"imageRef\": \"70a599e0-31e7-49b7-b260-868f441e862b\", \"networks\": [{\"uuid\": \"not-a-uuid\"}]}}"),
        (&a, Method::POST, "/servers".into(), b"{\"server\": {\"name\": \"x\", \"flavorRef\": \"1\", \"imageRef\": \"70a599e0-31e7-49b7-b260-868f441e862b\", \"networks\": \"auto\", \"metadata\": {\"k\": 1}}}"),
        (&a, Method::POST, "/servers".into(), b"{\"server\": {\"name\": \"x\", \"flavorRef\": \"1\", \"imageRef\": \"70a599e0-31e7-49b7-b260-868f441e862b\", \"networks\": \"auto\", \"tags\": [\"a/b\"]}}"),
        (&a, Method::POST, "/servers".into(), b"{\"server\": {\"name\": \"x\", \"flavorRef\": \"1\", \"imageRef\": \"70a599e0-31e7-49b7-b260-868f441e862b\", \"networks\": \"auto\", \"availability_zone\": \"mars\"}}"),
        (&a, Method::PUT, s.clone(), b"{\"server\": {\"name\": \"\"}}"),
        (&a, Method::PUT, s.clone(), b"{\"server\": {\"flavorRef\": \"2\"}}"),
        (&a, Method::PUT, s.clone(), b"{\"server\": {\"accessIPv4\": \"999.1.1.1\"}}"),
        (&a, Method::PUT, format!("{s}/metadata"), b"{\"metadata\": [1]}"),
        (&a, Method::POST, format!("{s}/metadata"), b"{\"meta\": {}}"),
        (&a, Method::PUT, format!("{s}/metadata/k"), b"{\"meta\": {\"other\": \"v\"}}"),
        (&a, Method::PUT, format!("{s}/tags"), b"{\"tags\": \"notalist\"}"),
        (&a, Method::POST, "/os-keypairs".into(), b"{\"keypair\": {\"name\": 1}}"),
        (&a, Method::POST, "/os-keypairs".into(), b"{\"keypair\": {\"name\": \"k\", \"public_key\": \"ssh-rsa garbage\"}}"),
        (&a, Method::POST, "/os-keypairs".into(), b"{\"keypair\": {\"name\": \"k\", \"type\": \"pgp\"}}"),
        (&a, Method::POST, "/os-keypairs".into(), b"{\"keypair\": {\"name\": \"bad/name\"}}"),
        (&admin, Method::POST, "/flavors".into(), b"{\"flavor\": {\"name\": \"f\", \"ram\": -1, \"vcpus\": 1, \"disk\": 1}}"),
        (&admin, Method::POST, "/flavors".into(), b"{\"flavor\": {\"name\": \"f\", \"ram\": \"lots\", \"vcpus\": 1, \"disk\": 1}}"),
        (&admin, Method::POST, "/flavors".into(), b"{\"flavor\": {\"name\": \"f\", \"vcpus\": 1, \"disk\": 1}}"),
        (&admin, Method::POST, "/flavors".into(), b"{\"flavor\": {\"name\": \"m1.tiny\", \"ram\": 1, \"vcpus\": 1, \"disk\": 1}}"),
        (&admin, Method::POST, "/flavors/1/os-extra_specs".into(), b"{\"extra_specs\": {\"k\": [1]}}"),
        (&admin, Method::POST, "/flavors/1/action".into(), b"{\"addTenantAccess\": {}}"),
        (&admin, Method::POST, "/flavors/1/action".into(), b"{\"frobnicate\": {}}"),
        (&admin, Method::PUT, "/os-quota-sets/x".into(), b"{\"quota_set\": {\"instances\": \"many\"}}"),
        (&admin, Method::PUT, "/os-quota-sets/x".into(), b"{\"quota_set\": {\"bogus\": 1}}"),
    ];
    for (who, m, path, body) in bodies {
        let r = who.raw(m.clone(), &path, body).await;
        assert!(
            r.status.is_client_error(),
            "{m} {path} {} -> {} {}",
            String::from_utf8_lossy(body),
            r.status,
            r.text
        );
        let name = api::fault::compute_fault_name(r.status);
        assert!(r.body.get(name).is_some(), "{m} {path}: {}", r.text);
    }
    app.compute.idle().await;
    // Nothing was written: one server, its name and metadata unchanged, no keypairs, the
    // flavors as they were.
    let list = a.call(Method::GET, "/servers/detail", None).await;
    let servers = list.body["servers"].as_array().expect("servers");
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["name"], "target");
    assert_eq!(servers[0]["metadata"], json!({}));
    assert_eq!(servers[0]["tags"], json!([]));
    assert_eq!(
        a.call(Method::GET, "/os-keypairs", None).await.body["keypairs"],
        json!([])
    );
    let flavors = admin
        .call(Method::GET, "/flavors?is_public=none", None)
        .await;
    assert_eq!(flavors.body["flavors"].as_array().map(Vec::len), Some(7));
    let specs = admin
        .call(Method::GET, "/flavors/1/os-extra_specs", None)
        .await;
    assert_eq!(specs.body["extra_specs"], json!({}));
}

#[tokio::test]
async fn removed_apis_are_gone_and_unknown_ones_missing() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await).await;
    assert_compute_fault(
        &a.call(Method::GET, "/os-cells", None).await,
        410,
        "computeFault",
    );
    assert_compute_fault(
        &a.call(Method::GET, "/os-fping", None).await,
        410,
        "computeFault",
    );
    // An unknown URL is webob's plain 404 (Nova's router), not a fault.
    let r = a.call(Method::GET, "/os-nothing", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text.starts_with("404 Not Found\n\n"), "{}", r.text);
    // Tags did not exist before 2.26: a fault, as for any method of another microversion.
    let old = Api {
        app: &app,
        token: a.token.clone(),
        version: "2.25".into(),
    };
    let id = a.create("t").await;
    app.compute.idle().await;
    assert_compute_fault(
        &old.call(Method::GET, &format!("/servers/{id}/tags"), None)
            .await,
        404,
        "itemNotFound",
    );
}

#[tokio::test]
async fn power_actions_follow_novas_state_table_and_are_recorded() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await).await;
    let id = a.create("act").await;
    let act = |body: Value| {
        let a = &a;
        let id = id.clone();
        async move {
            a.call(Method::POST, &format!("/servers/{id}/action"), Some(body))
                .await
        }
    };
    // Not booted yet: nothing but delete and hard reboot rules apply; stop is refused.
    app.driver.set_delay(Duration::from_millis(200));
    let r = act(json!({"os-stop": null})).await;
    assert_compute_fault(&r, 409, "conflictingRequest");
    app.compute.idle().await;
    app.driver.set_delay(Duration::from_millis(0));
    assert_eq!(
        act(json!({"os-stop": null})).await.status,
        StatusCode::ACCEPTED
    );
    app.compute.idle().await;
    assert_eq!(status_of(&a, &id).await, "SHUTOFF");
    // Stopping a stopped server is out of place, in Nova's words.
    let r = act(json!({"os-stop": null})).await;
    assert_compute_fault(&r, 409, "conflictingRequest");
    assert!(
        r.text.contains("while it is in vm_state stopped"),
        "{}",
        r.text
    );
    assert_eq!(
        act(json!({"os-start": null})).await.status,
        StatusCode::ACCEPTED
    );
    app.compute.idle().await;
    assert_eq!(status_of(&a, &id).await, "ACTIVE");
    assert_eq!(
        act(json!({"reboot": {"type": "HARD"}})).await.status,
        StatusCode::ACCEPTED
    );
    app.compute.idle().await;
    assert_eq!(
        act(json!({"pause": null})).await.status,
        StatusCode::ACCEPTED
    );
    app.compute.idle().await;
    assert_eq!(status_of(&a, &id).await, "PAUSED");
    assert_compute_fault(
        &act(json!({"suspend": null})).await,
        409,
        "conflictingRequest",
    );
    assert_eq!(
        act(json!({"unpause": null})).await.status,
        StatusCode::ACCEPTED
    );
    app.compute.idle().await;
    assert_eq!(
        act(json!({"suspend": null})).await.status,
        StatusCode::ACCEPTED
    );
    app.compute.idle().await;
    assert_eq!(status_of(&a, &id).await, "SUSPENDED");
    assert_eq!(
        act(json!({"resume": null})).await.status,
        StatusCode::ACCEPTED
    );
    app.compute.idle().await;
    // The backend agrees.
    let sid = model::compute::ServerId::parse(&id).expect("id");
    assert_eq!(
        driver::ComputeDriver::get_info(app.driver.as_ref(), &sid)
            .expect("info")
            .power_state,
        model::compute::PowerState::Running
    );
    // Locked by its owner: the owner's actions stop, with a reason shown from 2.73.
    assert_eq!(
        act(json!({"lock": {"locked_reason": "maintenance"}}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let r = a.call(Method::GET, &format!("/servers/{id}"), None).await;
    assert_eq!(r.body["server"]["locked"], true);
    assert_eq!(r.body["server"]["locked_reason"], "maintenance");
    assert_compute_fault(
        &act(json!({"os-stop": null})).await,
        409,
        "conflictingRequest",
    );
    assert_compute_fault(
        &a.call(Method::DELETE, &format!("/servers/{id}"), None)
            .await,
        409,
        "conflictingRequest",
    );
    assert_eq!(
        act(json!({"unlock": null})).await.status,
        StatusCode::ACCEPTED
    );
    // Bad actions.
    assert_compute_fault(&act(json!({"explode": null})).await, 400, "badRequest");
    assert_compute_fault(
        &act(json!({"reboot": {"type": "GENTLE"}})).await,
        400,
        "badRequest",
    );
    assert_compute_fault(
        &act(json!({"pause": null, "unpause": null})).await,
        400,
        "badRequest",
    );
    // Every action is recorded, newest first, with its events.
    let r = a
        .call(
            Method::GET,
            &format!("/servers/{id}/os-instance-actions"),
            None,
        )
        .await;
    let names: Vec<&str> = r.body["instanceActions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|x| x["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        names,
        [
            "unlock", "lock", "resume", "suspend", "unpause", "pause", "reboot", "start", "stop",
            "create"
        ]
    );
    let rid = r.body["instanceActions"][8]["request_id"]
        .as_str()
        .expect("rid")
        .to_owned();
    let one = a
        .call(
            Method::GET,
            &format!("/servers/{id}/os-instance-actions/{rid}"),
            None,
        )
        .await;
    let ev = &one.body["instanceAction"]["events"][0];
    assert_eq!(ev["event"], "compute_stop_instance");
    assert_eq!(ev["result"], "Success");
    assert!(ev.get("traceback").is_none(), "traceback is admin-only");
}

async fn status_of(a: &Api<'_>, id: &str) -> String {
    let r = a.call(Method::GET, &format!("/servers/{id}"), None).await;
    r.body["server"]["status"]
        .as_str()
        .expect("status")
        .to_owned()
}

#[tokio::test]
async fn power_sync_follows_what_the_guest_did() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await).await;
    let id = a.create("inside").await;
    app.compute.idle().await;
    let sid = model::compute::ServerId::from_stored(id.clone());
    // Shut down from inside the guest: SHUTOFF after the next sync.
    assert!(
        app.driver
            .set_power(&sid, model::compute::PowerState::Shutdown)
    );
    assert_eq!(app.compute.sync_power_states().await.expect("sync"), 1);
    assert_eq!(status_of(&a, &id).await, "SHUTOFF");
    let r = a.call(Method::GET, &format!("/servers/{id}"), None).await;
    assert_eq!(r.body["server"]["OS-EXT-STS:power_state"], 4);
    // A stopped server the backend runs again is powered off: STOPPED is what was asked.
    assert!(
        app.driver
            .set_power(&sid, model::compute::PowerState::Running)
    );
    app.compute.sync_power_states().await.expect("sync");
    assert_eq!(
        driver::ComputeDriver::get_info(app.driver.as_ref(), &sid)
            .expect("info")
            .power_state,
        model::compute::PowerState::Shutdown
    );
    assert_eq!(status_of(&a, &id).await, "SHUTOFF");
    // Nothing to change: nothing changes.
    assert_eq!(app.compute.sync_power_states().await.expect("sync"), 0);
}

#[tokio::test]
async fn a_backend_event_syncs_the_server_without_waiting_for_the_periodic_sync() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await).await;
    let id = a.create("evented").await;
    app.compute.idle().await;
    // The periodic sync would not come for an hour: only the event can move the server.
    let sync = app
        .compute
        .spawn_power_sync(std::time::Duration::from_secs(3600));
    let sid = model::compute::ServerId::from_stored(id.clone());
    assert!(
        app.driver
            .set_power(&sid, model::compute::PowerState::Shutdown)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while status_of(&a, &id).await != "SHUTOFF" {
        assert!(
            std::time::Instant::now() < deadline,
            "the event did not sync the server"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Starting it again raises no event of its own that could undo the start.
    let r = a
        .call(
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(json!({"os-start": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    app.compute.idle().await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(status_of(&a, &id).await, "ACTIVE");
    sync.abort();
}

#[tokio::test]
async fn a_crash_is_shutoff_with_power_state_crashed_and_an_instance_action() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await).await;
    let id = a.create("crashing").await;
    app.compute.idle().await;
    let sid = model::compute::ServerId::from_stored(id.clone());
    // What the container backend reports when the OOM killer ended init.
    assert!(
        app.driver
            .set_power(&sid, model::compute::PowerState::Crashed)
    );
    assert_eq!(app.compute.sync_power_states().await.expect("sync"), 1);
    assert_eq!(status_of(&a, &id).await, "SHUTOFF");
    let r = a.call(Method::GET, &format!("/servers/{id}"), None).await;
    assert_eq!(r.body["server"]["OS-EXT-STS:power_state"], 6, "CRASHED");
    let r = a
        .call(
            Method::GET,
            &format!("/servers/{id}/os-instance-actions"),
            None,
        )
        .await;
    let newest = &r.body["instanceActions"][0];
    assert_eq!(newest["action"], "stop");
    assert_eq!(newest["message"], "Error");
    let rid = newest["request_id"].as_str().expect("rid").to_owned();
    let one = a
        .call(
            Method::GET,
            &format!("/servers/{id}/os-instance-actions/{rid}"),
            None,
        )
        .await;
    let ev = &one.body["instanceAction"]["events"][0];
    assert_eq!(ev["event"], "compute_power_state_sync");
    assert_eq!(ev["result"], "Error");
}

#[tokio::test]
async fn the_backend_follows_flavor_and_image() {
    use compute::servers::BACKEND_SPEC;
    use model::compute::Backend;
    let app = TestApp::new().await;
    let admin = api(&app, app.admin().await).await;
    let flavor = |specs: &[(&str, &str)]| {
        let mut f = model::compute::Flavor {
            id: model::compute::FlavorId("x".into()),
            name: "x".into(),
            vcpus: 1,
            ram_mb: 64,
            disk_gb: 1,
            ephemeral_gb: 0,
            swap_mb: 0,
            rxtx_factor: 1.0,
            is_public: true,
            disabled: false,
            description: None,
            extra_specs: Default::default(),
        };
        for (k, v) in specs {
            f.extra_specs.insert((*k).into(), (*v).into());
        }
        f
    };
    let image = |props: &[(&str, &str)]| compute::ImageInfo {
        id: IMAGE.into(),
        name: "i".into(),
        min_disk_gb: 0,
        min_ram_mb: 0,
        size_bytes: 0,
        virtual_size_bytes: None,
        properties: props
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    let pick = compute::Compute::select_backend;
    let disk = image(&[]);
    let rootfs = image(&[("hypervisor_type", "lxc")]);
    assert_eq!(pick(&flavor(&[]), Some(&disk)).expect("vm"), Backend::Vm);
    assert_eq!(
        pick(&flavor(&[]), Some(&rootfs)).expect("container"),
        Backend::Container
    );
    assert_eq!(
        pick(
            &flavor(&[("resources:CUSTOM_BAREMETAL_SMALL", "1")]),
            Some(&disk)
        )
        .expect("baremetal"),
        Backend::BareMetal
    );
    assert_eq!(
        pick(&flavor(&[(BACKEND_SPEC, "container")]), Some(&rootfs)).expect("forced"),
        Backend::Container
    );
    assert!(pick(&flavor(&[(BACKEND_SPEC, "container")]), Some(&disk)).is_err());
    assert!(pick(&flavor(&[(BACKEND_SPEC, "vm")]), Some(&rootfs)).is_err());
    assert!(pick(&flavor(&[(BACKEND_SPEC, "warp")]), Some(&disk)).is_err());

    // Through the API: a flavor naming a bad backend is refused at create, with Nova's fault.
    let r = admin
        .call(
            Method::POST,
            "/flavors/1/os-extra_specs",
            Some(json!({"extra_specs": {BACKEND_SPEC: "container"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = admin
        .call(
            Method::POST,
            "/servers",
            Some(json!({"server": {"name": "c", "imageRef": IMAGE, "flavorRef": "1", "networks": "none"}})),
        )
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    assert!(r.text.contains("container root filesystem"), "{}", r.text);
}
