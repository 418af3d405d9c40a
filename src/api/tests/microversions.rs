//! Microversions 2.101 to 2.104 on real servers, and `OS-DCF:diskConfig` through rebuild and
//! resize: what the API-only Nova of the conformance suite cannot show (it has no servers).
//! Each expectation follows Nova 34's code: `volume_attachments.py` (2.101), `servers.py`
//! `update` (2.104), `compute/api.py` `rebuild` and `resize` (the disk config).

mod common;

use axum::http::{Method, StatusCode};
use common::{Api, IMAGE, TestApp, assert_compute_fault};
use serde_json::{Value, json};

fn api<'a>(app: &'a TestApp, token: String, version: &str) -> Api<'a> {
    Api {
        app,
        token,
        version: version.into(),
    }
}

async fn create(a: &Api<'_>, extra: Value) -> (String, Value) {
    let mut server = json!({"name": "s", "imageRef": IMAGE, "flavorRef": "1", "networks": "none"});
    for (k, v) in extra.as_object().into_iter().flatten() {
        server[k] = v.clone();
    }
    let r = a
        .call(Method::POST, "/servers", Some(json!({ "server": server })))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    a.app.compute.idle().await;
    let id = r.body["server"]["id"].as_str().expect("id").to_owned();
    (id, r.body["server"].clone())
}

async fn show(a: &Api<'_>, id: &str) -> Value {
    let r = a.call(Method::GET, &format!("/servers/{id}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["server"].clone()
}

async fn act(a: &Api<'_>, id: &str, body: Value) {
    let r = a
        .call(Method::POST, &format!("/servers/{id}/action"), Some(body))
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    a.app.compute.idle().await;
}

async fn pin(a: &Api<'_>, id: &str, zone: Value) -> common::Resp {
    a.call(
        Method::PUT,
        &format!("/servers/{id}"),
        Some(json!({"server": {"pinned_availability_zone": zone}})),
    )
    .await
}

async fn volume(app: &TestApp, token: &str) -> String {
    let h = [
        ("x-auth-token", token),
        ("openstack-api-version", "volume 3.70"),
    ];
    let r = app
        .call(
            Method::POST,
            "/volume/v3/volumes",
            &h,
            Some(json!({"volume": {"size": 1}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["volume"]["id"].as_str().expect("id").to_owned();
    for _ in 0..400 {
        let r = app
            .call(Method::GET, &format!("/volume/v3/volumes/{id}"), &h, None)
            .await;
        if r.body["volume"]["status"] == "available" {
            return id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("volume {id} never became available");
}

#[tokio::test]
async fn an_attach_answers_202_without_a_body_from_2_101() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let old = api(&app, t.clone(), "2.100");
    let new = api(&app, t.clone(), "2.101");
    let (id, _) = create(&old, json!({})).await;
    let (v1, v2) = (volume(&app, &t).await, volume(&app, &t).await);
    let path = format!("/servers/{id}/os-volume_attachments");
    // 2.100: the attachment, the volume id as `id`, and no 2.89 attachment ids.
    let r = old
        .call(
            Method::POST,
            &path,
            Some(json!({"volumeAttachment": {"volumeId": v1}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let att = &r.body["volumeAttachment"];
    assert_eq!(att["id"], v1.as_str());
    assert_eq!(att["volumeId"], v1.as_str());
    assert_eq!(att["serverId"], id.as_str());
    assert_eq!(att["delete_on_termination"], false);
    assert!(att.get("attachment_id").is_none(), "{att}");
    // 2.101: 202 and nothing else; the volume is attached all the same.
    let r = new
        .call(
            Method::POST,
            &path,
            Some(json!({"volumeAttachment": {"volumeId": v2, "tag": "data"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(r.text.is_empty(), "{}", r.text);
    let r = new.call(Method::GET, &path, None).await;
    let mut attached: Vec<&str> = r.body["volumeAttachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .filter_map(|a| a["volumeId"].as_str())
        .collect();
    attached.sort_unstable();
    let mut want = vec![v1.as_str(), v2.as_str()];
    want.sort_unstable();
    assert_eq!(attached, want);
    // The refusals stay as they were: the same volume twice.
    let r = new
        .call(
            Method::POST,
            &path,
            Some(json!({"volumeAttachment": {"volumeId": v2}})),
        )
        .await;
    assert!(r.status.is_client_error(), "{}", r.text);
}

#[tokio::test]
async fn pinning_follows_novas_transitions_from_2_104() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let a = api(&app, t.clone(), "2.104");
    let (id, _) = create(&a, json!({})).await;
    assert_eq!(show(&a, &id).await["pinned_availability_zone"], Value::Null);
    // Before 2.104 the field is unknown.
    let r = pin(&api(&app, t.clone(), "2.103"), &id, json!("nova")).await;
    assert_compute_fault(&r, 400, "badRequest");
    // Unpinned: only the server's own zone.
    let r = pin(&a, &id, json!("elsewhere")).await;
    assert_compute_fault(&r, 409, "conflictingRequest");
    assert_eq!(
        r.body["conflictingRequest"]["message"],
        "Server can only be pinned to its current availability zone 'nova', but 'elsewhere' was requested."
    );
    let r = pin(&a, &id, json!("nova")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["server"]["pinned_availability_zone"], "nova");
    assert_eq!(show(&a, &id).await["pinned_availability_zone"], "nova");
    // Pinned: the same zone again changes nothing; another one needs an unpin first.
    let r = pin(&a, &id, json!("nova")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = pin(&a, &id, json!("elsewhere")).await;
    assert_compute_fault(&r, 409, "conflictingRequest");
    assert_eq!(
        r.body["conflictingRequest"]["message"],
        "Cannot change pinned availability zone directly. Unpin first by setting pinned_availability_zone to null."
    );
    let r = pin(&a, &id, Value::Null).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["server"]["pinned_availability_zone"], Value::Null);
    // Unpinning an unpinned server is no error either.
    let r = pin(&a, &id, Value::Null).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A create that names a zone pins the server to it (`az:host` names the zone too).
    let (id2, _) = create(&a, json!({"availability_zone": "nova"})).await;
    assert_eq!(show(&a, &id2).await["pinned_availability_zone"], "nova");
    let old = api(&app, t, "2.96");
    assert_eq!(show(&old, &id2).await["pinned_availability_zone"], "nova");
}

#[tokio::test]
async fn attack_another_project_can_neither_pin_nor_reach_servers_through_the_old_alias() {
    let app = TestApp::new().await;
    let owner = api(&app, app.demo().await, "2.104");
    let (_, _, other) = app.user_with_role("neighbour", "member").await;
    let other = api(&app, other, "2.104");
    let (id, _) = create(&owner, json!({})).await;
    let r = pin(&other, &id, json!("nova")).await;
    assert_compute_fault(&r, 404, "itemNotFound");
    assert_eq!(
        show(&owner, &id).await["pinned_availability_zone"],
        Value::Null
    );
    // /os-volumes_boot is /servers under another name until 2.103: the same scoping.
    let alias = other.at("2.102");
    let r = alias.call(Method::GET, "/os-volumes_boot", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["servers"], json!([]));
    for (m, path, body) in [
        (Method::GET, format!("/os-volumes_boot/{id}"), None),
        (
            Method::PUT,
            format!("/os-volumes_boot/{id}"),
            Some(json!({"server": {"name": "mine"}})),
        ),
        (Method::DELETE, format!("/os-volumes_boot/{id}"), None),
        (
            Method::POST,
            format!("/os-volumes_boot/{id}/action"),
            Some(json!({"os-stop": null})),
        ),
    ] {
        let r = alias.call(m.clone(), &path, body).await;
        assert_compute_fault(&r, 404, "itemNotFound");
    }
    let s = show(&owner, &id).await;
    assert_eq!(
        (s["name"].as_str(), s["status"].as_str()),
        (Some("s"), Some("ACTIVE"))
    );
}

#[tokio::test]
async fn the_old_alias_serves_servers_until_2_103() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await, "2.102");
    let (id, _) = create(&a, json!({})).await;
    let r = a.call(Method::GET, "/os-volumes_boot", None).await;
    assert_eq!(r.body["servers"][0]["id"], id.as_str(), "{}", r.text);
    let r = a.call(Method::GET, "/os-volumes_boot/detail", None).await;
    assert_eq!(r.body["servers"][0]["status"], "ACTIVE", "{}", r.text);
    let r = a
        .call(Method::GET, &format!("/os-volumes_boot/{id}"), None)
        .await;
    assert_eq!(r.body["server"]["id"], id.as_str(), "{}", r.text);
    let r = a
        .call(
            Method::PUT,
            &format!("/os-volumes_boot/{id}"),
            Some(json!({"server": {"name": "renamed"}})),
        )
        .await;
    assert_eq!(r.body["server"]["name"], "renamed", "{}", r.text);
    let r = a
        .call(
            Method::POST,
            &format!("/os-volumes_boot/{id}/action"),
            Some(json!({"os-stop": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    app.compute.idle().await;
    assert_eq!(show(&a, &id).await["status"], "SHUTOFF");
    let gone = a.at("2.103");
    for path in [
        "/os-volumes_boot".to_owned(),
        "/os-volumes_boot/detail".to_owned(),
        format!("/os-volumes_boot/{id}"),
    ] {
        let r = gone.call(Method::GET, &path, None).await;
        assert_compute_fault(&r, 404, "itemNotFound");
    }
    let r = gone
        .call(Method::DELETE, &format!("/os-volumes_boot/{id}"), None)
        .await;
    assert_compute_fault(&r, 404, "itemNotFound");
    assert_eq!(show(&a, &id).await["name"], "renamed");
}

#[tokio::test]
async fn disk_config_survives_rebuild_and_resize_as_in_nova() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await, "2.104");
    // Created MANUAL: rebuilds and resizes that omit it keep MANUAL.
    let (id, made) = create(&a, json!({"OS-DCF:diskConfig": "MANUAL"})).await;
    assert_eq!(made["OS-DCF:diskConfig"], "MANUAL");
    assert_eq!(show(&a, &id).await["OS-DCF:diskConfig"], "MANUAL");
    act(&a, &id, json!({"rebuild": {"imageRef": IMAGE}})).await;
    assert_eq!(show(&a, &id).await["OS-DCF:diskConfig"], "MANUAL");
    act(&a, &id, json!({"resize": {"flavorRef": "2"}})).await;
    assert_eq!(show(&a, &id).await["OS-DCF:diskConfig"], "MANUAL");
    act(&a, &id, json!({"confirmResize": null})).await;
    assert_eq!(show(&a, &id).await["OS-DCF:diskConfig"], "MANUAL");
    // Created AUTO: shown AUTO, and a rebuild carrying MANUAL makes it MANUAL for good.
    let (id, made) = create(&a, json!({"OS-DCF:diskConfig": "AUTO"})).await;
    assert_eq!(made["OS-DCF:diskConfig"], "AUTO");
    assert_eq!(show(&a, &id).await["OS-DCF:diskConfig"], "AUTO");
    let r = a
        .call(
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(json!({"rebuild": {"imageRef": IMAGE, "OS-DCF:diskConfig": "MANUAL"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["server"]["OS-DCF:diskConfig"], "MANUAL");
    app.compute.idle().await;
    act(&a, &id, json!({"resize": {"flavorRef": "2"}})).await;
    act(&a, &id, json!({"revertResize": null})).await;
    assert_eq!(show(&a, &id).await["OS-DCF:diskConfig"], "MANUAL");
    // A resize carrying AUTO sets it; one that omits it is MANUAL again, as Nova's is.
    act(
        &a,
        &id,
        json!({"resize": {"flavorRef": "2", "OS-DCF:diskConfig": "AUTO"}}),
    )
    .await;
    assert_eq!(show(&a, &id).await["OS-DCF:diskConfig"], "AUTO");
    act(&a, &id, json!({"confirmResize": null})).await;
    act(&a, &id, json!({"resize": {"flavorRef": "3"}})).await;
    assert_eq!(show(&a, &id).await["OS-DCF:diskConfig"], "MANUAL");
    // A rebuild that omits it takes the image's property (none here: MANUAL); an update may
    // set it.
    let r = a
        .call(
            Method::PUT,
            &format!("/servers/{id}"),
            Some(json!({"server": {"OS-DCF:diskConfig": "AUTO"}})),
        )
        .await;
    assert_eq!(r.body["server"]["OS-DCF:diskConfig"], "AUTO", "{}", r.text);
    let list = a.call(Method::GET, "/servers/detail", None).await;
    let listed = list.body["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .find(|s| s["id"] == id.as_str())
        .expect("listed")
        .clone();
    assert_eq!(listed["OS-DCF:diskConfig"], "AUTO");
}
