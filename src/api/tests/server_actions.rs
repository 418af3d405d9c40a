//! Server actions on the fake driver: rebuild, resize with confirm and revert, snapshots and
//! backups, shelving, soft delete with restore, reset state, password, crash dump, rescue and
//! unrescue; the table of every (status, action) pair; and what a driver failing mid-action
//! leaves behind.

mod common;

use common::Api;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{IMAGE, TestApp, assert_compute_fault};
use driver::Operation;
use model::compute::ServerId;
use serde_json::{Value, json};

impl Api<'_> {
    async fn create_from(&self, name: &str, image: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/servers",
                Some(json!({"server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": "auto"}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        let id = r.body["server"]["id"].as_str().expect("id").to_owned();
        self.app.compute.idle().await;
        id
    }

    async fn create(&self, name: &str) -> String {
        self.create_from(name, IMAGE).await
    }

    async fn act(&self, id: &str, body: Value) -> common::Resp {
        self.call(Method::POST, &format!("/servers/{id}/action"), Some(body))
            .await
    }

    /// Acts, expects `status`, and waits for the background work.
    async fn act_ok(&self, id: &str, body: Value, status: u16) -> common::Resp {
        let r = self.act(id, body.clone()).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.text);
        self.app.compute.idle().await;
        r
    }

    async fn server(&self, id: &str) -> Value {
        let r = self
            .call(Method::GET, &format!("/servers/{id}"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["server"].clone()
    }

    async fn status(&self, id: &str) -> String {
        self.server(id).await["status"]
            .as_str()
            .expect("status")
            .to_owned()
    }

    /// The events of the newest instance action named `action`.
    async fn events(&self, id: &str, action: &str) -> Vec<Value> {
        let list = self
            .call(
                Method::GET,
                &format!("/servers/{id}/os-instance-actions"),
                None,
            )
            .await;
        let req = list.body["instanceActions"]
            .as_array()
            .expect("actions")
            .iter()
            .find(|a| a["action"] == action)
            .unwrap_or_else(|| panic!("no {action} action: {}", list.text))["request_id"]
            .as_str()
            .expect("request id")
            .to_owned();
        let r = self
            .call(
                Method::GET,
                &format!("/servers/{id}/os-instance-actions/{req}"),
                None,
            )
            .await;
        r.body["instanceAction"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

async fn api(app: &TestApp, token: String) -> Api<'_> {
    Api {
        app,
        token,
        version: "2.100".into(),
    }
}

fn sid(id: &str) -> ServerId {
    ServerId::parse(id).expect("server id")
}

#[tokio::test]
async fn rebuild_changes_what_it_names_and_answers_with_the_server() {
    let app = TestApp::new().await;
    app.driver.set_delay(Duration::from_millis(100));
    let a = api(&app, app.demo().await).await;
    let id = a.create("old").await;
    let r = a
        .act(
            &id,
            json!({"rebuild": {"imageRef": IMAGE, "name": "new", "adminPass": "s3cret",
                "metadata": {"k": "v"}, "description": "rebuilt", "hostname": "fresh",
                "user_data": "ZWNobyBoaQ==", "preserve_ephemeral": false}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let body = &r.body["server"];
    assert_eq!(body["adminPass"], "s3cret");
    assert_eq!(body["status"], "REBUILD");
    assert_eq!(body["name"], "new");
    assert_eq!(body["metadata"]["k"], "v");
    app.compute.idle().await;
    let s = a.server(&id).await;
    assert_eq!(s["status"], "ACTIVE");
    assert_eq!(s["description"], "rebuilt");
    assert_eq!(s["OS-EXT-SRV-ATTR:hostname"], "fresh");
    let spec = app.driver.spec_of(&sid(&id)).expect("spec");
    assert_eq!(spec.name, "new");
    assert_eq!(spec.admin_pass.as_deref(), Some("s3cret"));
    let events = a.events(&id, "rebuild").await;
    assert_eq!(events[0]["event"], "compute_rebuild_instance");
    assert_eq!(events[0]["result"], "Success");
    // An unknown image, and fields beyond the request's microversion, are refused.
    let r = a
        .act(
            &id,
            json!({"rebuild": {"imageRef": "b6ba2ee0-1111-4b0c-8d7e-5b4c9e1b0b0b"}}),
        )
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    let r = a
        .at("2.18")
        .act(
            &id,
            json!({"rebuild": {"imageRef": IMAGE, "description": "x"}}),
        )
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    // Before 2.75 the answer is the reduced view.
    let r = a
        .at("2.74")
        .act_ok(&id, json!({"rebuild": {"imageRef": IMAGE}}), 202)
        .await;
    assert!(r.body["server"].get("OS-EXT-STS:vm_state").is_none());
    assert!(r.body["server"]["adminPass"].is_string());
    // A stopped server is rebuilt and stays stopped.
    a.act_ok(&id, json!({"os-stop": null}), 202).await;
    a.act_ok(&id, json!({"rebuild": {"imageRef": IMAGE}}), 202)
        .await;
    assert_eq!(a.status(&id).await, "SHUTOFF");
}

#[tokio::test]
async fn resize_waits_for_confirmation_and_revert_restores_the_old_flavor() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await).await;
    let id = a.create("grow").await;
    // Same flavor and a smaller disk are refused at once.
    assert_compute_fault(
        &a.act(&id, json!({"resize": {"flavorRef": "1"}})).await,
        400,
        "badRequest",
    );
    app.driver.set_delay(Duration::from_millis(100));
    let r = a
        .act(
            &id,
            json!({"resize": {"flavorRef": "2", "OS-DCF:diskConfig": "AUTO"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(a.status(&id).await, "RESIZE");
    app.compute.idle().await;
    app.driver.set_delay(Duration::from_millis(0));
    let s = a.server(&id).await;
    assert_eq!(s["status"], "VERIFY_RESIZE");
    assert_eq!(s["OS-EXT-STS:vm_state"], "resized");
    assert_eq!(s["flavor"]["original_name"], "m1.small");
    assert_eq!(app.driver.spec_of(&sid(&id)).expect("spec").ram_mb, 2048);
    let events: Vec<String> = a
        .events(&id, "resize")
        .await
        .iter()
        .map(|e| e["event"].as_str().unwrap_or_default().to_owned())
        .collect();
    for e in [
        "compute_prep_resize",
        "compute_resize_instance",
        "compute_finish_resize",
    ] {
        assert!(events.contains(&e.to_owned()), "{events:?}");
    }
    // While it waits, the larger flavor counts against the quota.
    let limits = a.call(Method::GET, "/limits", None).await;
    assert_eq!(limits.body["limits"]["absolute"]["totalRAMUsed"], 2048);
    // Smaller disk than the current flavor's is refused.
    a.act_ok(&id, json!({"confirmResize": null}), 204).await;
    assert_eq!(a.status(&id).await, "ACTIVE");
    assert_compute_fault(
        &a.act(&id, json!({"resize": {"flavorRef": "1"}})).await,
        400,
        "badRequest",
    );
    // Resize to medium, then revert: back to small, in the backend too.
    a.act_ok(&id, json!({"resize": {"flavorRef": "3"}}), 202)
        .await;
    assert_eq!(a.status(&id).await, "VERIFY_RESIZE");
    a.act_ok(&id, json!({"revertResize": null}), 202).await;
    let s = a.server(&id).await;
    assert_eq!(s["status"], "ACTIVE");
    assert_eq!(s["flavor"]["original_name"], "m1.small");
    assert_eq!(app.driver.spec_of(&sid(&id)).expect("spec").ram_mb, 2048);
    let limits = a.call(Method::GET, "/limits", None).await;
    assert_eq!(limits.body["limits"]["absolute"]["totalRAMUsed"], 2048);
    assert_eq!(limits.body["limits"]["absolute"]["totalCoresUsed"], 1);
    // A stopped server is resized and stays stopped once confirmed.
    a.act_ok(&id, json!({"os-stop": null}), 202).await;
    a.act_ok(&id, json!({"resize": {"flavorRef": "3"}}), 202)
        .await;
    assert_eq!(a.status(&id).await, "VERIFY_RESIZE");
    a.act_ok(&id, json!({"confirmResize": null}), 204).await;
    assert_eq!(a.status(&id).await, "SHUTOFF");
}

#[tokio::test]
async fn a_restart_rolls_back_a_resize_it_interrupted() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await).await;
    let id = a.create("interrupted").await;
    app.compute.idle().await;
    // What a crash in the middle of a resize leaves: the backend already on the new flavor,
    // the database still on the old one, in task state resize_finish.
    let mut bigger = app.driver.spec_of(&sid(&id)).expect("spec");
    let small = bigger.ram_mb;
    bigger.ram_mb = 2048;
    bigger.flavor_name = "m1.small".into();
    driver::ComputeDriver::resize(app.driver.as_ref(), &bigger).expect("resize");
    let s2 = sid(&id);
    app.store
        .write(move |tx| {
            store::compute::transition(
                tx,
                &s2,
                None,
                model::compute::VmState::Active,
                Some(model::compute::TaskState::ResizeFinish),
                None,
            )
        })
        .await
        .expect("mid-resize");
    assert_eq!(a.status(&id).await, "RESIZE");

    let report = app
        .compute
        .reconcile(compute::reconcile::OrphanPolicy::Report)
        .await
        .expect("reconcile");
    assert_eq!(report.tasks_rolled_back, 1);
    let s = a.server(&id).await;
    assert_eq!(s["status"], "ACTIVE");
    assert!(s["OS-EXT-STS:task_state"].is_null());
    assert_eq!(s["flavor"]["original_name"], "m1.tiny");
    assert!(s.get("fault").is_none(), "{s}");
    assert_eq!(
        app.driver.spec_of(&sid(&id)).expect("spec").ram_mb,
        small,
        "the backend is back on the old flavor"
    );
    // Nothing of the resize is left to confirm or revert.
    assert_compute_fault(
        &a.act(&id, json!({"confirmResize": null})).await,
        409,
        "conflictingRequest",
    );
}

#[tokio::test]
async fn resize_up_is_held_to_the_cores_and_ram_quotas() {
    let app = TestApp::new().await;
    let admin = api(&app, app.admin().await).await;
    let a = api(&app, app.demo().await).await;
    let id = a.create("q").await;
    let project = a.server(&id).await["tenant_id"]
        .as_str()
        .expect("project")
        .to_owned();
    let r = admin
        .call(
            Method::PUT,
            &format!("/os-quota-sets/{project}"),
            Some(json!({"quota_set": {"cores": 1}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = a.act(&id, json!({"resize": {"flavorRef": "3"}})).await;
    assert_compute_fault(&r, 403, "forbidden");
    assert!(r.text.contains("Quota exceeded for cores"), "{}", r.text);
    assert_eq!(a.status(&id).await, "ACTIVE");
    // Same cores, more RAM: within the quota.
    a.act_ok(&id, json!({"resize": {"flavorRef": "2"}}), 202)
        .await;
    assert_eq!(a.status(&id).await, "VERIFY_RESIZE");
}

#[tokio::test]
async fn resizes_are_confirmed_after_the_window() {
    let app = TestApp::with_compute(compute::ComputeConfig {
        resize_confirm_window_secs: 1,
        ..Default::default()
    })
    .await;
    let a = api(&app, app.demo().await).await;
    let id = a.create("auto").await;
    a.act_ok(&id, json!({"resize": {"flavorRef": "2"}}), 202)
        .await;
    assert_eq!(app.compute.run_periodic_tasks().await, 0);
    assert_eq!(a.status(&id).await, "VERIFY_RESIZE");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.compute.run_periodic_tasks().await, 1);
    app.compute.idle().await;
    let s = a.server(&id).await;
    assert_eq!(s["status"], "ACTIVE");
    assert_eq!(s["flavor"]["original_name"], "m1.small");
}

#[tokio::test]
async fn create_image_and_backups_with_rotation() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await).await;
    let id = a.create("snap").await;
    app.driver.set_delay(Duration::from_millis(100));
    let r = a
        .act(
            &id,
            json!({"createImage": {"name": "img", "metadata": {"m": "1"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let image = r.body["image_id"].as_str().expect("image_id").to_owned();
    // The image exists at once, queued; the server shows the snapshot task.
    let snaps = app.standin.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].id, image);
    assert_eq!(snaps[0].status, "queued");
    let task = a.server(&id).await["OS-EXT-STS:task_state"].clone();
    assert!(
        task.as_str().is_some_and(|t| t.starts_with("image_")),
        "{task}"
    );
    app.compute.idle().await;
    app.driver.set_delay(Duration::from_millis(0));
    let s = a.server(&id).await;
    assert_eq!(s["status"], "ACTIVE");
    assert_eq!(s["OS-EXT-STS:task_state"], Value::Null);
    let snap = &app.standin.snapshots()[0];
    assert_eq!(snap.status, "active");
    assert!(!snap.data.is_empty());
    let p = &snap.image.properties;
    assert_eq!(p["image_type"], "snapshot");
    assert_eq!(p["instance_uuid"], id);
    assert_eq!(p["base_image_ref"], IMAGE);
    assert_eq!(p["m"], "1");
    assert_eq!(a.events(&id, "createImage").await[0]["result"], "Success");
    // Before 2.45: no body, a Location header.
    let r = a
        .at("2.44")
        .act(&id, json!({"createImage": {"name": "old-style"}}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(r.header("location").is_some_and(|l| l.contains("/images/")));
    app.compute.idle().await;
    // Backups: rotation keeps the newest two of a type.
    let mut made = Vec::new();
    for _ in 0..3 {
        let r = a
            .act_ok(
                &id,
                json!({"createBackup": {"name": "b", "backup_type": "daily", "rotation": 2}}),
                202,
            )
            .await;
        made.push(r.body["image_id"].as_str().expect("id").to_owned());
    }
    let backups: Vec<String> = app
        .standin
        .snapshots()
        .into_iter()
        .filter(|s| s.image.properties.get("image_type").map(String::as_str) == Some("backup"))
        .map(|s| s.id)
        .collect();
    assert_eq!(backups, made[1..].to_vec());
    assert_compute_fault(
        &a.act(
            &id,
            json!({"createBackup": {"name": "b", "backup_type": "daily"}}),
        )
        .await,
        400,
        "badRequest",
    );
}

#[tokio::test]
async fn a_snapshot_goes_through_the_image_service_and_its_quota() {
    let app = TestApp::with_glance(10 << 20).await;
    let token = app.demo().await;
    let a = api(&app, token.clone()).await;
    // An image in Glance to boot from.
    let glance = |m: Method, path: String, body: Option<Value>| {
        let token = token.clone();
        let app = &app;
        async move {
            app.call(
                m,
                &format!("/image/v2{path}"),
                &[("x-auth-token", &token)],
                body,
            )
            .await
        }
    };
    let r = glance(
        Method::POST,
        "/images".into(),
        Some(
            json!({"name": "base", "disk_format": "raw", "container_format": "bare", "hw_disk_bus": "virtio"}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let base = r.body["id"].as_str().expect("id").to_owned();
    let r = app
        .call_raw(
            Method::PUT,
            &format!("/image/v2/images/{base}/file"),
            &[
                ("x-auth-token", &token),
                ("content-type", "application/octet-stream"),
            ],
            Some(vec![7u8; 1 << 20]),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let id = a.create_from("g", &base).await;
    assert_eq!(a.status(&id).await, "ACTIVE");
    // The image is in Glance, queued, before the snapshot is taken.
    app.driver.set_delay(Duration::from_millis(200));
    let r = a
        .act(&id, json!({"createImage": {"name": "from-server"}}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let snap = r.body["image_id"].as_str().expect("id").to_owned();
    let img = glance(Method::GET, format!("/images/{snap}"), None).await;
    assert_eq!(img.body["status"], "queued", "{}", img.text);
    app.compute.idle().await;
    app.driver.set_delay(Duration::from_millis(0));
    let img = glance(Method::GET, format!("/images/{snap}"), None).await;
    assert_eq!(img.status, StatusCode::OK, "{}", img.text);
    assert_eq!(img.body["status"], "active");
    assert_eq!(img.body["size"], 1 << 20);
    assert_eq!(img.body["image_type"], "snapshot");
    assert_eq!(img.body["instance_uuid"], id);
    assert_eq!(img.body["base_image_ref"], base);
    assert_eq!(img.body["visibility"], "private");
    // It inherits the base image's properties, as in Nova.
    assert_eq!(img.body["hw_disk_bus"], "virtio", "{}", img.text);
    // The next snapshots pass the 10 MiB quota: the image is removed, the server unharmed.
    let mut refused = None;
    for _ in 0..12 {
        let r = a
            .act_ok(&id, json!({"createImage": {"name": "more"}}), 202)
            .await;
        let i = r.body["image_id"].as_str().expect("id").to_owned();
        if glance(Method::GET, format!("/images/{i}"), None)
            .await
            .status
            == StatusCode::NOT_FOUND
        {
            refused = Some(i);
            break;
        }
    }
    assert!(refused.is_some(), "the quota never refused a snapshot");
    let s = a.server(&id).await;
    assert_eq!(s["status"], "ACTIVE");
    assert_eq!(s["OS-EXT-STS:task_state"], Value::Null);
    let ev = a.events(&id, "createImage").await;
    assert_eq!(ev[0]["result"], "Error");
    // Shelving with the quota full fails the same way: the server keeps running.
    a.act_ok(&id, json!({"shelve": null}), 202).await;
    assert_eq!(a.status(&id).await, "ACTIVE");
    // With room again, shelve and unshelve through Glance: the shelved image appears, then
    // goes.
    let list = glance(Method::GET, "/images?name=more".into(), None).await;
    for i in list.body["images"].as_array().expect("images") {
        let r = glance(
            Method::DELETE,
            format!("/images/{}", i["id"].as_str().expect("id")),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    }
    a.act_ok(&id, json!({"shelve": null}), 202).await;
    assert_eq!(a.status(&id).await, "SHELVED_OFFLOADED");
    let list = glance(Method::GET, "/images?name=g-shelved".into(), None).await;
    let shelved = list.body["images"].as_array().expect("images");
    assert_eq!(shelved.len(), 1, "{}", list.text);
    assert_eq!(shelved[0]["status"], "active");
    a.act_ok(&id, json!({"unshelve": null}), 202).await;
    assert_eq!(a.status(&id).await, "ACTIVE");
    let list = glance(Method::GET, "/images?name=g-shelved".into(), None).await;
    assert_eq!(list.body["images"], json!([]), "{}", list.text);
}

#[tokio::test]
async fn shelve_offload_and_unshelve() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await).await;
    let id = a.create("sh").await;
    app.driver.set_delay(Duration::from_millis(100));
    let r = a.act(&id, json!({"shelve": null})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(a.server(&id).await["OS-EXT-STS:task_state"], "shelving");
    app.compute.idle().await;
    app.driver.set_delay(Duration::from_millis(0));
    // shelved_offload_time is 0: offloaded at once, the backend instance gone.
    let s = a.server(&id).await;
    assert_eq!(s["status"], "SHELVED_OFFLOADED");
    assert_eq!(s["OS-EXT-STS:power_state"], 0);
    assert!(driver::ComputeDriver::get_info(app.driver.as_ref(), &sid(&id)).is_err());
    let snaps = app.standin.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].image.name, "sh-shelved");
    assert_eq!(snaps[0].status, "active");
    let events: Vec<Value> = a.events(&id, "shelve").await;
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "compute_shelve_offload_instance"),
        "{events:?}"
    );
    // Unshelve elsewhere is refused; here it spawns from the shelved image and drops it.
    assert_compute_fault(
        &a.at("2.77")
            .act(&id, json!({"unshelve": {"availability_zone": "elsewhere"}}))
            .await,
        400,
        "badRequest",
    );
    assert_compute_fault(
        &a.at("2.91")
            .act(&id, json!({"unshelve": {"host": "box"}}))
            .await,
        403,
        "forbidden",
    );
    a.act_ok(&id, json!({"unshelve": {"availability_zone": "nova"}}), 202)
        .await;
    assert_eq!(a.status(&id).await, "ACTIVE");
    assert!(app.standin.snapshots().is_empty());
    assert!(driver::ComputeDriver::get_info(app.driver.as_ref(), &sid(&id)).is_ok());
    // Deleting a shelved server deletes its image too.
    a.act_ok(&id, json!({"shelve": null}), 202).await;
    assert_eq!(app.standin.snapshots().len(), 1);
    let r = a
        .call(Method::DELETE, &format!("/servers/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    app.compute.idle().await;
    assert!(app.standin.snapshots().is_empty());
}

#[tokio::test]
async fn shelved_servers_wait_for_the_offload_time() {
    let app = TestApp::with_compute(compute::ComputeConfig {
        shelved_offload_time: 1,
        ..Default::default()
    })
    .await;
    let a = api(&app, app.demo().await).await;
    let id = a.create("wait").await;
    a.act_ok(&id, json!({"shelve": null}), 202).await;
    assert_eq!(a.status(&id).await, "SHELVED");
    assert_eq!(app.compute.run_periodic_tasks().await, 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.compute.run_periodic_tasks().await, 1);
    app.compute.idle().await;
    assert_eq!(a.status(&id).await, "SHELVED_OFFLOADED");
    // Unshelving a shelved (not offloaded) server powers it on again.
    let id2 = a.create("wait2").await;
    a.act_ok(&id2, json!({"shelve": null}), 202).await;
    // A zone is for offloaded servers only.
    assert_compute_fault(
        &a.at("2.77")
            .act(&id2, json!({"unshelve": {"availability_zone": "nova"}}))
            .await,
        409,
        "conflictingRequest",
    );
    a.act_ok(&id2, json!({"unshelve": null}), 202).await;
    assert_eq!(a.status(&id2).await, "ACTIVE");
    // shelveOffload does it now.
    a.act_ok(&id2, json!({"shelve": null}), 202).await;
    a.act_ok(&id2, json!({"shelveOffload": null}), 202).await;
    assert_eq!(a.status(&id2).await, "SHELVED_OFFLOADED");
}

#[tokio::test]
async fn soft_delete_restore_and_force_delete() {
    let app = TestApp::with_compute(compute::ComputeConfig {
        reclaim_instance_interval: 1,
        ..Default::default()
    })
    .await;
    let a = api(&app, app.demo().await).await;
    let id = a.create("soft").await;
    let r = a
        .call(Method::DELETE, &format!("/servers/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    app.compute.idle().await;
    assert_eq!(a.status(&id).await, "SOFT_DELETED");
    a.act_ok(&id, json!({"restore": null}), 202).await;
    assert_eq!(a.status(&id).await, "ACTIVE");
    assert_compute_fault(
        &a.act(&id, json!({"restore": null})).await,
        409,
        "conflictingRequest",
    );
    a.call(Method::DELETE, &format!("/servers/{id}"), None)
        .await;
    app.compute.idle().await;
    assert_eq!(a.status(&id).await, "SOFT_DELETED");
    a.act_ok(&id, json!({"forceDelete": null}), 202).await;
    let r = a.call(Method::GET, &format!("/servers/{id}"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The periodic task reclaims soft-deleted servers once the interval has passed.
    let id = a.create("reclaimed").await;
    a.call(Method::DELETE, &format!("/servers/{id}"), None)
        .await;
    app.compute.idle().await;
    assert_eq!(a.status(&id).await, "SOFT_DELETED");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.compute.run_periodic_tasks().await, 1);
    app.compute.idle().await;
    let r = a.call(Method::GET, &format!("/servers/{id}"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn reset_state_password_and_crash_dump() {
    let app = TestApp::new().await;
    let admin = api(&app, app.admin().await).await;
    let a = api(&app, app.demo().await).await;
    let id = a.create("misc").await;
    assert_compute_fault(
        &a.act(&id, json!({"os-resetState": {"state": "error"}}))
            .await,
        403,
        "forbidden",
    );
    assert_compute_fault(
        &admin
            .act(&id, json!({"os-resetState": {"state": "stopped"}}))
            .await,
        400,
        "badRequest",
    );
    admin
        .act_ok(&id, json!({"os-resetState": {"state": "error"}}), 202)
        .await;
    assert_eq!(a.status(&id).await, "ERROR");
    admin
        .act_ok(&id, json!({"os-resetState": {"state": "active"}}), 202)
        .await;
    assert_eq!(a.status(&id).await, "ACTIVE");
    a.act_ok(&id, json!({"changePassword": {"adminPass": "n3w"}}), 202)
        .await;
    assert_eq!(app.driver.password_of(&sid(&id)).as_deref(), Some("n3w"));
    assert_eq!(a.status(&id).await, "ACTIVE");
    assert_compute_fault(
        &a.at("2.16")
            .act(&id, json!({"trigger_crash_dump": null}))
            .await,
        400,
        "badRequest",
    );
    a.at("2.17")
        .act_ok(&id, json!({"trigger_crash_dump": null}), 202)
        .await;
    assert_eq!(
        a.events(&id, "trigger_crash_dump").await[0]["result"],
        "Success"
    );
}

#[tokio::test]
async fn a_backend_without_an_operation_gets_novas_fault() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await).await;
    let id = a.create("gap").await;
    app.driver.set_failing(Operation::SetAdminPassword, false);
    // The fake supports everything; a driver answering NotSupported mid-call is mapped too.
    app.driver
        .set_unsupported(Operation::SetAdminPassword, true);
    let r = a
        .act(&id, json!({"changePassword": {"adminPass": "x"}}))
        .await;
    assert_compute_fault(&r, 501, "notImplemented");
    assert!(
        r.text.contains("Unable to set password on instance"),
        "{}",
        r.text
    );
    assert_eq!(a.status(&id).await, "ACTIVE");
    app.driver
        .set_unsupported(Operation::TriggerCrashDump, true);
    let r = a.act(&id, json!({"trigger_crash_dump": null})).await;
    assert_compute_fault(&r, 400, "badRequest");
    assert!(
        r.text.contains("Triggering crash dump is not supported"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn rescue_boots_the_rescue_image_and_unrescue_returns() {
    let app = TestApp::new().await;
    let admin = api(&app, app.admin().await).await;
    let a = api(&app, app.demo().await).await;
    let id = a.create("resc").await;

    // Nova's sample: the password given comes back in a 200.
    let r = a
        .act(&id, json!({"rescue": {"adminPass": "MySecretPass"}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body, json!({"adminPass": "MySecretPass"}));
    app.compute.idle().await;
    let s = a.server(&id).await;
    assert_eq!(s["status"], "RESCUE");
    assert_eq!(s["OS-EXT-STS:vm_state"], "rescued");
    assert_eq!(s["OS-EXT-STS:task_state"], Value::Null);
    assert_eq!(s["OS-EXT-STS:power_state"], 1);
    // The server's own image rescues it when no rescue_image_ref is given.
    let (img, pass) = app.driver.rescue_of(&sid(&id)).expect("rescued");
    assert_eq!(
        (img.image_id.as_str(), pass.as_str()),
        (IMAGE, "MySecretPass")
    );
    let events = a.events(&id, "rescue").await;
    assert_eq!(events[0]["event"], "compute_rescue_instance");
    assert_eq!(events[0]["result"], "Success");

    // Rescued: another rescue, a reboot, a stop are Nova's 409s; delete is not refused.
    for (body, name) in [
        (json!({"rescue": null}), "rescue"),
        (json!({"reboot": {"type": "HARD"}}), "reboot"),
        (json!({"os-stop": null}), "stop"),
    ] {
        let r = a.act(&id, body).await;
        assert_compute_fault(&r, 409, "conflictingRequest");
        assert!(
            r.text.contains(&format!(
                "Cannot '{name}' instance {id} while it is in vm_state rescued"
            )),
            "{}",
            r.text
        );
    }

    // Unrescue: 202 without a body, ACTIVE again, the rescue gone from the backend.
    let r = a.act_ok(&id, json!({"unrescue": null}), 202).await;
    assert!(r.text.is_empty(), "{}", r.text);
    let s = a.server(&id).await;
    assert_eq!(s["status"], "ACTIVE");
    assert_eq!(s["OS-EXT-STS:power_state"], 1);
    assert!(app.driver.rescue_of(&sid(&id)).is_none());
    let events = a.events(&id, "unrescue").await;
    assert_eq!(events[0]["event"], "compute_unrescue_instance");
    assert_eq!(events[0]["result"], "Success");
    let r = a.act(&id, json!({"unrescue": null})).await;
    assert_compute_fault(&r, 409, "conflictingRequest");
    assert!(
        r.text.contains(&format!(
            "Cannot 'unrescue' instance {id} while it is in vm_state active"
        )),
        "{}",
        r.text
    );

    // `{"rescue": null}` generates a password; a stopped server is rescued too and comes
    // back ACTIVE, as in Nova.
    a.act_ok(&id, json!({"os-stop": null}), 202).await;
    let r = a.act_ok(&id, json!({"rescue": null}), 200).await;
    let generated = r.body["adminPass"].as_str().expect("adminPass").to_owned();
    assert!(generated.len() >= 8, "{generated}");
    assert_eq!(
        app.driver.rescue_of(&sid(&id)).expect("rescued").1,
        generated
    );
    assert_eq!(a.status(&id).await, "RESCUE");
    a.act_ok(&id, json!({"unrescue": null}), 202).await;
    assert_eq!(a.status(&id).await, "ACTIVE");

    // Another image the caller may boot rescues it when named.
    let r = a
        .act_ok(&id, json!({"createImage": {"name": "rescuer"}}), 202)
        .await;
    let other = r.body["image_id"].as_str().expect("image_id").to_owned();
    a.act_ok(&id, json!({"rescue": {"rescue_image_ref": other}}), 200)
        .await;
    assert_eq!(
        app.driver.rescue_of(&sid(&id)).expect("rescued").0.image_id,
        other
    );
    a.act_ok(&id, json!({"unrescue": null}), 202).await;

    // Bad requests leave the server alone.
    let missing = "6f1a5a6e-0000-4000-8000-00000000dead";
    for (body, text) in [
        (
            json!({"rescue": {"rescue_image_ref": missing}}),
            format!("Requested rescue image '{missing}' is not supported"),
        ),
        (
            json!({"rescue": {"rescue_image_ref": "cirros"}}),
            "'cirros' is not a 'uuid'".to_owned(),
        ),
        (
            json!({"rescue": {"adminPass": "x", "image": IMAGE}}),
            "Additional properties are not allowed".to_owned(),
        ),
        (
            json!({"rescue": {"adminPass": 5}}),
            "is not of type 'string'".to_owned(),
        ),
    ] {
        let r = a.act(&id, body.clone()).await;
        assert_compute_fault(&r, 400, "badRequest");
        assert!(r.text.contains(&text), "{body}: {}", r.text);
        app.compute.idle().await;
        assert_eq!(a.status(&id).await, "ACTIVE", "{body}");
    }

    // A lock stops the owner's rescue and unrescue, not the admin's.
    admin.act_ok(&id, json!({"lock": null}), 202).await;
    let r = a.act(&id, json!({"rescue": null})).await;
    assert_compute_fault(&r, 409, "conflictingRequest");
    assert!(r.text.contains("is locked"), "{}", r.text);
    admin.act_ok(&id, json!({"rescue": null}), 200).await;
    assert_eq!(a.status(&id).await, "RESCUE");
    let r = a.act(&id, json!({"unrescue": null})).await;
    assert_compute_fault(&r, 409, "conflictingRequest");
    admin.act_ok(&id, json!({"unlock": null}), 202).await;

    // A rescued server can be deleted, and the backend's instance goes with it.
    let r = a
        .call(Method::DELETE, &format!("/servers/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    app.compute.idle().await;
    assert!(app.driver.spec_of(&sid(&id)).is_none());

    // A backend without a rescue mode refuses before anything changes.
    let id = a.create("norescue").await;
    app.driver.set_unsupported(Operation::Rescue, true);
    let r = a.act(&id, json!({"rescue": null})).await;
    app.driver.set_unsupported(Operation::Rescue, false);
    assert_compute_fault(&r, 400, "badRequest");
    assert!(r.text.contains("cannot be rescued"), "{}", r.text);
    app.compute.idle().await;
    assert_eq!(a.status(&id).await, "ACTIVE");
}

#[tokio::test]
async fn a_restart_mid_rescue_leaves_error_and_a_new_rescue_recovers() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await).await;
    for (task, vm) in [
        (
            model::compute::TaskState::Rescuing,
            model::compute::VmState::Active,
        ),
        (
            model::compute::TaskState::Unrescuing,
            model::compute::VmState::Rescued,
        ),
    ] {
        let id = a.create("cut").await;
        if vm == model::compute::VmState::Rescued {
            a.act_ok(&id, json!({"rescue": null}), 200).await;
        }
        let s2 = sid(&id);
        app.store
            .write(move |tx| store::compute::transition(tx, &s2, None, vm, Some(task), None))
            .await
            .expect("mid-task");
        app.compute
            .reconcile(compute::reconcile::OrphanPolicy::Report)
            .await
            .expect("reconcile");
        let s = a.server(&id).await;
        assert_eq!(s["status"], "ERROR", "{task:?}");
        assert_eq!(s["OS-EXT-STS:task_state"], Value::Null);
        assert!(
            s["fault"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(task.as_str())),
            "{s}"
        );
        // From ERROR: rescue (legal there), then unrescue, and the server runs again.
        a.act_ok(&id, json!({"rescue": null}), 200).await;
        assert_eq!(a.status(&id).await, "RESCUE");
        a.act_ok(&id, json!({"unrescue": null}), 202).await;
        assert_eq!(a.status(&id).await, "ACTIVE");
    }
}

/// How to bring a fresh server to a status, and what each action's request is.
async fn bring_to(a: &Api<'_>, admin: &Api<'_>, id: &str, status: &str) {
    match status {
        "ACTIVE" => {}
        "SHUTOFF" => {
            a.act_ok(id, json!({"os-stop": null}), 202).await;
        }
        "PAUSED" => {
            a.act_ok(id, json!({"pause": null}), 202).await;
        }
        "SUSPENDED" => {
            a.act_ok(id, json!({"suspend": null}), 202).await;
        }
        "ERROR" => {
            admin
                .act_ok(id, json!({"os-resetState": {"state": "error"}}), 202)
                .await;
        }
        "VERIFY_RESIZE" => {
            a.act_ok(id, json!({"resize": {"flavorRef": "2"}}), 202)
                .await;
        }
        "SHELVED" => {
            a.act_ok(id, json!({"shelve": null}), 202).await;
        }
        "SHELVED_OFFLOADED" => {
            a.act_ok(id, json!({"shelve": null}), 202).await;
            a.act_ok(id, json!({"shelveOffload": null}), 202).await;
        }
        "RESCUE" => {
            a.act_ok(id, json!({"rescue": null}), 200).await;
        }
        "SOFT_DELETED" => {
            let r = a
                .call(Method::DELETE, &format!("/servers/{id}"), None)
                .await;
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
            a.app.compute.idle().await;
        }
        other => panic!("no way to {other}"),
    }
    assert_eq!(a.status(id).await, status, "setting up {status}");
}

#[tokio::test]
async fn every_action_in_every_status_follows_novas_table() {
    use compute::actions::{Action, PowerAction as P};
    let app = TestApp::with_compute(compute::ComputeConfig {
        reclaim_instance_interval: 3600,
        shelved_offload_time: -1,
        ..Default::default()
    })
    .await;
    let admin = api(&app, app.admin().await).await;
    let a = api(&app, app.demo().await).await;
    let probe = a.create("probe").await;
    let project = a.server(&probe).await["tenant_id"]
        .as_str()
        .expect("project")
        .to_owned();
    let r = admin
        .call(
            Method::PUT,
            &format!("/os-quota-sets/{project}"),
            Some(json!({"quota_set": {"instances": -1, "cores": -1, "ram": -1}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let statuses = [
        "ACTIVE",
        "SHUTOFF",
        "PAUSED",
        "SUSPENDED",
        "ERROR",
        "VERIFY_RESIZE",
        "SHELVED",
        "SHELVED_OFFLOADED",
        "SOFT_DELETED",
        "RESCUE",
    ];
    let mut checked = 0;
    for status in statuses {
        for &action in Action::ALL {
            let (body, ok_code) = match action {
                Action::Power(P::RebootSoft) => (json!({"reboot": {"type": "SOFT"}}), 202),
                Action::Power(P::RebootHard) => (json!({"reboot": {"type": "HARD"}}), 202),
                Action::Power(P::Stop) => (json!({"os-stop": null}), 202),
                Action::Power(P::Start) => (json!({"os-start": null}), 202),
                Action::Power(P::Pause) => (json!({"pause": null}), 202),
                Action::Power(P::Unpause) => (json!({"unpause": null}), 202),
                Action::Power(P::Suspend) => (json!({"suspend": null}), 202),
                Action::Power(P::Resume) => (json!({"resume": null}), 202),
                Action::Rebuild => (json!({"rebuild": {"imageRef": IMAGE}}), 202),
                Action::Resize => (json!({"resize": {"flavorRef": "3"}}), 202),
                Action::ConfirmResize => (json!({"confirmResize": null}), 204),
                Action::RevertResize => (json!({"revertResize": null}), 202),
                Action::CreateImage => (json!({"createImage": {"name": "t"}}), 202),
                Action::CreateBackup => (
                    json!({"createBackup": {"name": "t", "backup_type": "daily", "rotation": 5}}),
                    202,
                ),
                Action::Shelve => (json!({"shelve": null}), 202),
                Action::ShelveOffload => (json!({"shelveOffload": null}), 202),
                Action::Unshelve => (json!({"unshelve": null}), 202),
                Action::Restore => (json!({"restore": null}), 202),
                Action::ChangePassword => (json!({"changePassword": {"adminPass": "p"}}), 202),
                Action::TriggerCrashDump => (json!({"trigger_crash_dump": null}), 202),
                Action::Rescue => (json!({"rescue": {"adminPass": "p"}}), 200),
                Action::Unrescue => (json!({"unrescue": null}), 202),
                Action::AttachInterface
                | Action::DetachInterface
                | Action::AttachVolume
                | Action::DetachVolume => {
                    unreachable!("interfaces and volumes are not server actions")
                }
            };
            let vm = match status {
                "ACTIVE" => "active",
                "SHUTOFF" => "stopped",
                "PAUSED" => "paused",
                "SUSPENDED" => "suspended",
                "ERROR" => "error",
                "VERIFY_RESIZE" => "resized",
                "SHELVED" => "shelved",
                "SHELVED_OFFLOADED" => "shelved_offloaded",
                "RESCUE" => "rescued",
                _ => "soft-delete",
            };
            let legal = {
                use Action as A;
                match action {
                    A::Power(P::RebootSoft) => vm == "active",
                    A::Power(P::RebootHard) => {
                        matches!(vm, "active" | "stopped" | "paused" | "suspended" | "error")
                    }
                    A::Power(P::Stop) => matches!(vm, "active" | "error"),
                    A::Power(P::Start) => vm == "stopped",
                    A::Power(P::Pause) | A::Power(P::Suspend) | A::ChangePassword => vm == "active",
                    A::Power(P::Unpause) => vm == "paused",
                    A::Power(P::Resume) => vm == "suspended",
                    A::Rebuild => matches!(vm, "active" | "stopped" | "error"),
                    A::Resize => matches!(vm, "active" | "stopped"),
                    A::ConfirmResize | A::RevertResize => vm == "resized",
                    A::CreateImage | A::CreateBackup | A::Shelve => {
                        matches!(vm, "active" | "stopped" | "paused" | "suspended")
                    }
                    A::ShelveOffload => vm == "shelved",
                    A::Unshelve => matches!(vm, "shelved" | "shelved_offloaded"),
                    A::Restore => vm == "soft-delete",
                    A::TriggerCrashDump => {
                        matches!(vm, "active" | "paused" | "rescued" | "resized" | "error")
                    }
                    A::Rescue => matches!(vm, "active" | "stopped" | "error"),
                    A::Unrescue => vm == "rescued",
                    A::AttachInterface | A::DetachInterface | A::AttachVolume | A::DetachVolume => {
                        unreachable!("not in Action::ALL")
                    }
                }
            };
            let expected_end = match action {
                _ if !legal => status,
                Action::Power(P::Stop) => "SHUTOFF",
                Action::Power(P::Pause) => "PAUSED",
                Action::Power(P::Suspend) => "SUSPENDED",
                Action::Rebuild if status == "SHUTOFF" => "SHUTOFF",
                Action::Resize => "VERIFY_RESIZE",
                Action::ConfirmResize | Action::RevertResize => "ACTIVE",
                Action::CreateImage | Action::CreateBackup | Action::TriggerCrashDump => status,
                Action::Shelve => "SHELVED",
                Action::ShelveOffload => "SHELVED_OFFLOADED",
                Action::Rescue => "RESCUE",
                _ => "ACTIVE",
            };
            let id = a.create("t").await;
            bring_to(&a, &admin, &id, status).await;
            let before = a.server(&id).await;
            let snaps = app.standin.snapshots().len();
            let r = a.act(&id, body.clone()).await;
            app.compute.idle().await;
            let after = a.server(&id).await;
            if legal {
                assert_eq!(r.status.as_u16(), ok_code, "{status} {body}: {}", r.text);
                assert_eq!(after["status"], expected_end, "{status} {body}");
                assert_eq!(
                    after["OS-EXT-STS:task_state"],
                    Value::Null,
                    "{status} {body}"
                );
            } else {
                assert_compute_fault(&r, 409, "conflictingRequest");
                assert!(
                    r.text.contains(&format!("Cannot '{}'", action.nova_name())),
                    "{status} {body}: {}",
                    r.text
                );
                for k in [
                    "status",
                    "OS-EXT-STS:vm_state",
                    "OS-EXT-STS:task_state",
                    "flavor",
                    "updated",
                ] {
                    assert_eq!(before[k], after[k], "{status} {body} changed {k}");
                }
                assert_eq!(app.standin.snapshots().len(), snaps, "{status} {body}");
            }
            checked += 1;
            let r = admin.act(&id, json!({"forceDelete": null})).await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
            app.compute.idle().await;
        }
    }
    assert_eq!(checked, statuses.len() * Action::ALL.len());
}

#[tokio::test]
async fn a_driver_failing_mid_action_leaves_the_server_where_nova_would() {
    let app = TestApp::with_compute(compute::ComputeConfig {
        reclaim_instance_interval: 3600,
        ..Default::default()
    })
    .await;
    let admin = api(&app, app.admin().await).await;
    let a = api(&app, app.demo().await).await;
    let d = &app.driver;
    let settled = |s: &Value| {
        assert_eq!(s["OS-EXT-STS:task_state"], Value::Null, "stuck: {s}");
    };

    // Rebuild: the guest is in doubt, ERROR with a fault.
    let id = a.create("rb").await;
    d.set_failing(Operation::Rebuild, true);
    a.act_ok(&id, json!({"rebuild": {"imageRef": IMAGE}}), 202)
        .await;
    d.set_failing(Operation::Rebuild, false);
    let s = a.server(&id).await;
    settled(&s);
    assert_eq!(s["status"], "ERROR");
    assert!(
        s["fault"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Rebuild")),
        "{s}"
    );
    assert_eq!(a.events(&id, "rebuild").await[0]["result"], "Error");
    // ERROR allows another rebuild, which brings it back.
    a.act_ok(&id, json!({"rebuild": {"imageRef": IMAGE}}), 202)
        .await;
    assert_eq!(a.status(&id).await, "ACTIVE");

    // Resize finishing fails: ERROR with a fault, the quota back to the old flavor.
    let id = a.create("rs").await;
    d.set_failing(Operation::Resize, true);
    a.act_ok(&id, json!({"resize": {"flavorRef": "2"}}), 202)
        .await;
    d.set_failing(Operation::Resize, false);
    let s = a.server(&id).await;
    settled(&s);
    assert_eq!(s["status"], "ERROR");
    assert_eq!(s["flavor"]["original_name"], "m1.tiny");
    assert!(
        s["fault"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Resize")),
        "{s}"
    );
    let events = a.events(&id, "resize").await;
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "compute_finish_resize" && e["result"] == "Error"),
        "{events:?}"
    );

    // Confirm and revert failing: ERROR too (Nova cannot tell what the backend kept).
    for (op, body) in [
        (Operation::ConfirmResize, json!({"confirmResize": null})),
        (Operation::RevertResize, json!({"revertResize": null})),
    ] {
        let id = a.create("cr").await;
        a.act_ok(&id, json!({"resize": {"flavorRef": "2"}}), 202)
            .await;
        d.set_failing(op, true);
        let r = a.act(&id, body.clone()).await;
        assert!(r.status.is_success(), "{}", r.text);
        app.compute.idle().await;
        d.set_failing(op, false);
        let s = a.server(&id).await;
        settled(&s);
        assert_eq!(s["status"], "ERROR", "{body}");
    }

    // A snapshot failing: the image is deleted, the server back as it was.
    let id = a.create("sn").await;
    a.act_ok(&id, json!({"pause": null}), 202).await;
    d.set_failing(Operation::Snapshot, true);
    a.act_ok(&id, json!({"createImage": {"name": "x"}}), 202)
        .await;
    let s = a.server(&id).await;
    settled(&s);
    assert_eq!(s["status"], "PAUSED");
    assert!(app.standin.snapshots().is_empty());
    assert_eq!(a.events(&id, "createImage").await[0]["result"], "Error");
    // Shelving with a failing snapshot: running again, no image left.
    let id = a.create("shf").await;
    a.act_ok(&id, json!({"shelve": null}), 202).await;
    d.set_failing(Operation::Snapshot, false);
    let s = a.server(&id).await;
    settled(&s);
    assert_eq!(s["status"], "ACTIVE");
    assert!(app.standin.snapshots().is_empty());

    // Unshelve failing to spawn: back to SHELVED_OFFLOADED, the image kept.
    let id = a.create("us").await;
    a.act_ok(&id, json!({"shelve": null}), 202).await;
    assert_eq!(a.status(&id).await, "SHELVED_OFFLOADED");
    d.set_failing(Operation::Spawn, true);
    a.act_ok(&id, json!({"unshelve": null}), 202).await;
    d.set_failing(Operation::Spawn, false);
    let s = a.server(&id).await;
    settled(&s);
    assert_eq!(s["status"], "SHELVED_OFFLOADED");
    assert_eq!(app.standin.snapshots().len(), 1);
    a.act_ok(&id, json!({"unshelve": null}), 202).await;
    assert_eq!(a.status(&id).await, "ACTIVE");

    // Rescue and unrescue failing: the guest is in doubt, ERROR with a fault, as Nova
    // leaves it; a rescue from ERROR and an unrescue bring the server back.
    let id = a.create("rsc").await;
    d.set_failing(Operation::Rescue, true);
    a.act_ok(&id, json!({"rescue": null}), 200).await;
    d.set_failing(Operation::Rescue, false);
    let s = a.server(&id).await;
    settled(&s);
    assert_eq!(s["status"], "ERROR");
    assert!(
        s["fault"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot be rescued")),
        "{s}"
    );
    assert_eq!(a.events(&id, "rescue").await[0]["result"], "Error");
    a.act_ok(&id, json!({"rescue": null}), 200).await;
    assert_eq!(a.status(&id).await, "RESCUE");
    d.set_failing(Operation::Unrescue, true);
    a.act_ok(&id, json!({"unrescue": null}), 202).await;
    d.set_failing(Operation::Unrescue, false);
    let s = a.server(&id).await;
    settled(&s);
    assert_eq!(s["status"], "ERROR");
    assert_eq!(a.events(&id, "unrescue").await[0]["result"], "Error");
    a.act_ok(&id, json!({"rescue": null}), 200).await;
    a.act_ok(&id, json!({"unrescue": null}), 202).await;
    assert_eq!(a.status(&id).await, "ACTIVE");

    // Power actions and restore roll back; a failing password change answers 409.
    let id = a.create("pw").await;
    d.set_failing(Operation::Pause, true);
    a.act_ok(&id, json!({"pause": null}), 202).await;
    d.set_failing(Operation::Pause, false);
    assert_eq!(a.status(&id).await, "ACTIVE");
    d.set_failing(Operation::SetAdminPassword, true);
    let r = a
        .act(&id, json!({"changePassword": {"adminPass": "x"}}))
        .await;
    d.set_failing(Operation::SetAdminPassword, false);
    assert_compute_fault(&r, 409, "conflictingRequest");
    settled(&a.server(&id).await);
    a.call(Method::DELETE, &format!("/servers/{id}"), None)
        .await;
    app.compute.idle().await;
    assert_eq!(a.status(&id).await, "SOFT_DELETED");
    d.set_failing(Operation::PowerOn, true);
    a.act_ok(&id, json!({"restore": null}), 202).await;
    d.set_failing(Operation::PowerOn, false);
    let s = a.server(&id).await;
    settled(&s);
    assert_eq!(s["status"], "SOFT_DELETED");
    let _ = admin;
}

#[tokio::test]
async fn create_image_from_a_stopped_paused_or_suspended_server_keeps_its_state() {
    let app = TestApp::new().await;
    let a = api(&app, app.demo().await).await;
    for (n, (action, status)) in [
        ("os-stop", "SHUTOFF"),
        ("pause", "PAUSED"),
        ("suspend", "SUSPENDED"),
    ]
    .into_iter()
    .enumerate()
    {
        let id = a.create(&format!("snap-{status}")).await;
        a.act_ok(&id, json!({ action: null }), 202).await;
        app.compute.idle().await;
        assert_eq!(a.server(&id).await["status"], status);
        let r = a
            .act_ok(
                &id,
                json!({"createImage": {"name": format!("from-{status}")}}),
                202,
            )
            .await;
        let image = r.body["image_id"].as_str().expect("image_id").to_owned();
        app.compute.idle().await;
        let s = a.server(&id).await;
        assert_eq!(s["status"], status, "{s}");
        assert_eq!(s["OS-EXT-STS:task_state"], Value::Null);
        let snaps = app.standin.snapshots();
        assert_eq!(snaps.len(), n + 1);
        let snap = snaps.iter().find(|i| i.id == image).expect("snapshot");
        assert_eq!(snap.status, "active", "{status}");
    }
}
