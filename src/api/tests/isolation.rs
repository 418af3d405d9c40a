//! Tenant isolation in compute, tried as a project member would: flooding the task runner,
//! racing a lock, paging with another project's marker, reading a driver failure's details.
//! Each `attack_*` test fails on a box without the defence it names.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{IMAGE, TestApp};
use serde_json::{Value, json};

struct Api<'a> {
    app: &'a TestApp,
    token: String,
}

impl Api<'_> {
    async fn call(&self, m: Method, path: &str, body: Option<Value>) -> common::Resp {
        self.app
            .call(
                m,
                &format!("/compute/v2.1{path}"),
                &[
                    ("x-auth-token", &self.token),
                    ("openstack-api-version", "compute 2.100"),
                ],
                body,
            )
            .await
    }

    /// Creates a server and waits until its build has finished.
    async fn create(&self, name: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/servers",
                Some(json!({"server": {"name": name, "imageRef": IMAGE, "flavorRef": "1", "networks": "auto"}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        let id = r.body["server"]["id"].as_str().expect("id").to_owned();
        self.app.compute.idle().await;
        id
    }

    async fn act(&self, id: &str, body: Value) -> common::Resp {
        self.call(Method::POST, &format!("/servers/{id}/action"), Some(body))
            .await
    }

    async fn server(&self, id: &str) -> Value {
        let r = self
            .call(Method::GET, &format!("/servers/{id}"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["server"].clone()
    }
}

async fn api(app: &TestApp, token: String) -> Api<'_> {
    Api { app, token }
}

/// A box with two task slots, a member of `demo` and a member of another project.
async fn two_tenants(app: &TestApp) -> (Api<'_>, Api<'_>) {
    let demo = api(app, app.demo().await).await;
    let (_, _, token) = app.user_with_role("rival", "member").await;
    (demo, api(app, token).await)
}

fn two_slots() -> compute::ComputeConfig {
    compute::ComputeConfig {
        task_concurrency: 2,
        ..Default::default()
    }
}

/// Each driver call takes this long while a test floods the runner.
const STEP: Duration = Duration::from_millis(150);

/// When each of a server's `action`s finished, from the database.
async fn finished(app: &TestApp, id: &str, action: &str) -> Vec<chrono::DateTime<chrono::Utc>> {
    let sid = model::compute::ServerId::parse(id).expect("id");
    let all = app
        .store
        .read(move |c| store::compute::list_actions(c, &sid))
        .await
        .expect("actions");
    all.into_iter()
        .filter(|a| a.action == action)
        .map(|a| a.finish_time.expect("finished"))
        .collect()
}

/// How many of the flood's reboots on `flooded` finished while the victim's stop, asked for
/// at `asked`, waited and ran; and how many there were.
async fn ran_before_the_victim(
    app: &TestApp,
    flooded: &[String],
    victim: &str,
    asked: chrono::DateTime<chrono::Utc>,
) -> (usize, usize) {
    let stop = finished(app, victim, "stop").await;
    assert_eq!(stop.len(), 1, "{stop:?}");
    let mut before = 0;
    let mut total = 0;
    for id in flooded {
        let reboots = finished(app, id, "reboot").await;
        total += reboots.len();
        before += reboots
            .iter()
            .filter(|t| **t > asked && **t < stop[0])
            .count();
    }
    (before, total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attack_flooding_one_server_with_actions_does_not_starve_another_project() {
    let app = TestApp::with_compute(two_slots()).await;
    let (demo, rival) = two_tenants(&app).await;
    let mine = demo.create("flood").await;
    let theirs = rival.create("victim").await;
    app.driver.set_delay(STEP);
    // A hard reboot is accepted while one is under way (as in Nova): each queues a task.
    for _ in 0..16 {
        let r = demo.act(&mine, json!({"reboot": {"type": "HARD"}})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    }
    let asked = chrono::Utc::now();
    let r = rival.act(&theirs, json!({"os-stop": null})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    app.compute.idle().await;
    app.driver.set_delay(Duration::ZERO);
    assert_eq!(rival.server(&theirs).await["status"], "SHUTOFF");
    // The flood holds one slot at most; the other project's stop takes the other at once
    // (beside at most the one reboot holding the flood's slot) instead of queueing behind
    // sixteen reboots.
    let (before, total) = ran_before_the_victim(&app, &[mine], &theirs, asked).await;
    assert_eq!(total, 16);
    assert!(
        before <= 2,
        "{before} of the flood's {total} reboots ran before the other project's stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attack_one_project_acting_on_many_servers_cannot_hold_every_slot() {
    let app = TestApp::with_compute(two_slots()).await;
    let (demo, rival) = two_tenants(&app).await;
    let mut mine = Vec::new();
    for i in 0..8 {
        mine.push(demo.create(&format!("many-{i}")).await);
    }
    let theirs = rival.create("victim").await;
    app.driver.set_delay(STEP * 2);
    for _ in 0..3 {
        for id in &mine {
            let r = demo.act(id, json!({"reboot": {"type": "HARD"}})).await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        }
    }
    let asked = chrono::Utc::now();
    let r = rival.act(&theirs, json!({"os-stop": null})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    app.compute.idle().await;
    app.driver.set_delay(Duration::ZERO);
    assert_eq!(rival.server(&theirs).await["status"], "SHUTOFF");
    // With two slots a project's tasks hold one: the other project's stop runs at once,
    // beside at most the one reboot holding the flood's slot (without the project's share
    // it would wait for the flood's servers queued before it, two at a time).
    let (before, total) = ran_before_the_victim(&app, &mine, &theirs, asked).await;
    assert_eq!(total, 24);
    assert!(
        before <= 2,
        "{before} of the flood's {total} reboots ran before the other project's stop"
    );
}

#[tokio::test]
async fn attack_another_projects_server_is_no_listing_marker() {
    let app = TestApp::new().await;
    let (demo, rival) = two_tenants(&app).await;
    let _older = demo.create("older").await;
    let theirs = rival.create("theirs").await;
    let _newer = demo.create("newer").await;
    // The rival's server as a marker: Nova's 400, as for an id that does not exist, in the
    // default order and in any other.
    for path in [
        format!("/servers?marker={theirs}"),
        format!("/servers/detail?marker={theirs}&limit=1"),
        format!("/servers?marker={theirs}&sort_key=display_name"),
    ] {
        let r = demo.call(Method::GET, &path, None).await;
        common::assert_compute_fault(&r, 400, "badRequest");
        assert_eq!(
            r.body["badRequest"]["message"],
            format!("marker [{theirs}] not found"),
            "{path}"
        );
    }
    // The same 400 as for an id nobody has.
    let none = "00000000-0000-4000-8000-000000000000";
    let r = demo
        .call(Method::GET, &format!("/servers?marker={none}"), None)
        .await;
    common::assert_compute_fault(&r, 400, "badRequest");
    // The owner pages with it; an admin listing every project does too.
    let r = rival
        .call(Method::GET, &format!("/servers?marker={theirs}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let admin = api(&app, app.admin().await).await;
    let r = admin
        .call(
            Method::GET,
            &format!("/servers?all_tenants=1&marker={theirs}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.body["servers"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
}

/// Glance answers 400 for a marker the caller cannot see; so do both image listings here
/// (a guard: the image service resolves markers among the images visible to the caller).
#[tokio::test]
async fn another_projects_private_image_is_no_image_marker() {
    let app = TestApp::new().await;
    let (demo, rival) = two_tenants(&app).await;
    let made = app
        .call(
            Method::POST,
            "/image/v2/images",
            &[("x-auth-token", rival.token.as_str())],
            Some(json!({"name": "private", "visibility": "private"})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let id = made.body["id"].as_str().expect("id").to_owned();
    let r = app
        .get(
            &format!("/image/v2/images?marker={id}"),
            Some(demo.token.as_str()),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(!r.text.contains("private"), "{}", r.text);
    // Nova's image proxy (gone after 2.35) answers as Glance does.
    let r = app
        .call(
            Method::GET,
            &format!("/compute/v2.1/images?marker={id}"),
            &[
                ("x-auth-token", demo.token.as_str()),
                ("openstack-api-version", "compute 2.35"),
            ],
            None,
        )
        .await;
    common::assert_compute_fault(&r, 400, "badRequest");
    // Its owner pages with it.
    let r = app
        .get(
            &format!("/image/v2/images?marker={id}"),
            Some(rival.token.as_str()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// What a real backend's error can carry: a tool's stderr naming the host's paths.
const HOST_DETAIL: &str =
    "qemu-img: Could not open '/var/lib/onebox/instances/base/7a1c.qcow2': Permission denied";

/// The events of a server's instance action named `action`, as `who` reads them.
async fn events(who: &Api<'_>, id: &str, action: &str) -> Vec<Value> {
    let r = who
        .call(
            Method::GET,
            &format!("/servers/{id}/os-instance-actions"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let rid = r.body["instanceActions"]
        .as_array()
        .expect("actions")
        .iter()
        .find(|a| a["action"] == action)
        .and_then(|a| a["request_id"].as_str())
        .unwrap_or_else(|| panic!("no {action} in {}", r.text))
        .to_owned();
    let r = who
        .call(
            Method::GET,
            &format!("/servers/{id}/os-instance-actions/{rid}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.body["instanceAction"]["events"]
            .as_array()
            .is_some_and(|e| !e.is_empty()),
        "{}",
        r.text
    );
    r.body["instanceAction"]["events"]
        .as_array()
        .expect("events")
        .clone()
}

#[tokio::test]
async fn attack_a_driver_failure_shows_a_member_no_host_path() {
    let app = TestApp::new().await;
    let demo = api(&app, app.demo().await).await;
    let admin = api(&app, app.admin().await).await;
    app.driver.set_failure_detail(Some(HOST_DETAIL));

    // A build failing on the backend.
    app.driver.set_failing(driver::Operation::Spawn, true);
    let built = demo.create("doomed").await;
    app.driver.set_failing(driver::Operation::Spawn, false);
    // A reboot failing (ERROR with a fault) and a rebuild failing (ERROR with a fault).
    let rebooted = demo.create("reboot").await;
    let rebuilt = demo.create("rebuild").await;
    app.driver.set_failing(driver::Operation::Reboot, true);
    app.driver.set_failing(driver::Operation::Rebuild, true);
    let r = demo
        .act(&rebooted, json!({"reboot": {"type": "HARD"}}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = demo
        .act(&rebuilt, json!({"rebuild": {"imageRef": IMAGE}}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    app.compute.idle().await;

    for (id, action, what) in [
        (&built, "create", "Build of instance"),
        (&rebooted, "reboot", "Action reboot on instance"),
        (&rebuilt, "rebuild", "Rebuild of instance"),
    ] {
        // The member: the server in ERROR with a fault saying what failed, no path, no
        // stderr, no details; events without the backend's words.
        let r = demo
            .call(Method::GET, &format!("/servers/{id}"), None)
            .await;
        let s = &r.body["server"];
        assert_eq!(s["status"], "ERROR", "{}", r.text);
        let message = s["fault"]["message"].as_str().expect("fault message");
        assert!(message.contains(what), "{message}");
        assert!(s["fault"].get("details").is_none(), "{}", r.text);
        assert!(!r.text.contains("/var/lib/onebox"), "{}", r.text);
        assert!(!r.text.contains("qemu-img"), "{}", r.text);
        let r = demo.call(Method::GET, "/servers/detail", None).await;
        assert!(!r.text.contains("/var/lib/onebox"), "{}", r.text);
        let evs = events(&demo, id, action).await;
        let text = serde_json::to_string(&evs).expect("json");
        assert!(!text.contains("/var/lib/onebox"), "{text}");

        // The admin: the whole message in the fault and in the failed event.
        let r = admin
            .call(Method::GET, &format!("/servers/{id}"), None)
            .await;
        let full = r.body["server"]["fault"]["message"].as_str().expect("msg");
        assert!(full.contains(HOST_DETAIL), "{}", r.text);
        let evs = events(&admin, id, action).await;
        let failed = evs
            .iter()
            .find(|e| e["result"] == "Error")
            .unwrap_or_else(|| panic!("no failed event in {evs:?}"));
        assert!(
            failed["details"]
                .as_str()
                .is_some_and(|d| d.contains(HOST_DETAIL)),
            "{failed}"
        );
        assert!(
            failed["traceback"]
                .as_str()
                .is_some_and(|d| d.contains(HOST_DETAIL)),
            "{failed}"
        );
    }

    // A password the backend fails to set: Nova's generic reason, not the backend's.
    let pw = demo.create("pw").await;
    app.driver
        .set_failing(driver::Operation::SetAdminPassword, true);
    let r = demo
        .act(&pw, json!({"changePassword": {"adminPass": "s3cret-Pass"}}))
        .await;
    common::assert_compute_fault(&r, 409, "conflictingRequest");
    assert!(!r.text.contains("/var/lib/onebox"), "{}", r.text);
    assert!(!r.text.contains("qemu-img"), "{}", r.text);
    app.driver
        .set_failing(driver::Operation::SetAdminPassword, false);
}

/// Holds the database's writer until the returned sender is used (or dropped): requests
/// sent meanwhile all wait on it, and then run as close together as the box allows.
fn hold_the_writer(app: &TestApp) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let store = app.store.clone();
    tokio::spawn(async move {
        let _ = store
            .write(move |_| {
                let _ = held_tx.send(());
                let _ = rx.recv();
                Ok(())
            })
            .await;
    });
    held_rx.recv().expect("the writer is held");
    tx
}

/// The server's instance actions in the order they committed: (name, id).
async fn committed(app: &TestApp, id: &str) -> Vec<(String, i64)> {
    let sid = model::compute::ServerId::parse(id).expect("id");
    let mut all = app
        .store
        .read(move |c| store::compute::list_actions(c, &sid))
        .await
        .expect("actions");
    all.sort_by_key(|a| a.id);
    all.into_iter().map(|a| (a.action, a.id)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attack_an_action_racing_an_admin_lock_never_starts_on_the_locked_server() {
    let app = TestApp::new().await;
    let demo = api(&app, app.demo().await).await;
    let admin = api(&app, app.admin().await).await;
    let id = demo.create("raced").await;
    for round in 0..25 {
        let release = hold_the_writer(&app);
        let (lock, stop, ()) = tokio::join!(
            admin.act(&id, json!({"lock": null})),
            demo.act(&id, json!({"os-stop": null})),
            async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                let _ = release.send(());
            }
        );
        app.compute.idle().await;
        assert_eq!(lock.status, StatusCode::ACCEPTED, "{}", lock.text);
        let order = committed(&app, &id).await;
        let at = |name: &str| order.iter().rev().find(|(n, _)| n == name).map(|(_, i)| *i);
        if stop.status == StatusCode::ACCEPTED {
            // The stop was decided before the lock committed, or it would have been refused.
            assert!(
                at("stop") < at("lock"),
                "round {round}: a member's stop started after the admin's lock: {order:?}"
            );
        } else {
            common::assert_compute_fault(&stop, 409, "conflictingRequest");
        }
        // Back to an unlocked, running server.
        let r = admin.act(&id, json!({"unlock": null})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        if demo.server(&id).await["status"] == "SHUTOFF" {
            let r = demo.act(&id, json!({"os-start": null})).await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
            app.compute.idle().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attack_an_owners_unlock_racing_an_admin_lock_never_undoes_it() {
    let app = TestApp::new().await;
    let demo = api(&app, app.demo().await).await;
    let admin = api(&app, app.admin().await).await;
    let id = demo.create("raced").await;
    for round in 0..25 {
        let r = demo.act(&id, json!({"lock": null})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        let release = hold_the_writer(&app);
        let (lock, unlock, ()) = tokio::join!(
            admin.act(&id, json!({"lock": {"locked_reason": "investigating"}})),
            demo.act(&id, json!({"unlock": null})),
            async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                let _ = release.send(());
            }
        );
        assert_eq!(lock.status, StatusCode::ACCEPTED, "{}", lock.text);
        assert!(
            unlock.status == StatusCode::ACCEPTED || unlock.status == StatusCode::FORBIDDEN,
            "{}",
            unlock.text
        );
        // Whichever came first, the admin's lock stands.
        let s = admin.server(&id).await;
        assert_eq!(
            s["locked"], true,
            "round {round}: the admin's lock was undone: {s}"
        );
        assert_eq!(s["locked_reason"], "investigating", "round {round}: {s}");
        let r = admin.act(&id, json!({"unlock": null})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    }
}

#[tokio::test]
async fn attack_an_owner_cannot_take_over_an_admins_lock() {
    let app = TestApp::new().await;
    let demo = api(&app, app.demo().await).await;
    let admin = api(&app, app.admin().await).await;
    let id = demo.create("held").await;
    let r = admin
        .act(&id, json!({"lock": {"locked_reason": "abuse"}}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    // Locking again as the owner changes nothing (Nova's rule), so the unlock that would
    // follow is still the admin's to give.
    let r = demo.act(&id, json!({"lock": null})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = demo.act(&id, json!({"unlock": null})).await;
    common::assert_compute_fault(&r, 403, "forbidden");
    let s = admin.server(&id).await;
    assert_eq!(s["locked"], true, "{s}");
    assert_eq!(s["locked_reason"], "abuse", "{s}");
    let r = demo.act(&id, json!({"os-stop": null})).await;
    common::assert_compute_fault(&r, 409, "conflictingRequest");
}
