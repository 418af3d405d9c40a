//! The Block Storage API (Cinder v3): versions, the volume life cycle on the file backend,
//! snapshots, volumes from images and snapshots, quotas and limits, Cinder's faults, and
//! what a member of another project must not do.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{Resp, TestApp};
use serde_json::{Value, json};

/// A request to `/volume/v3{path}` with `token` at microversion `3.mv`.
async fn cinder(app: &TestApp, token: &str, m: Method, path: &str, body: Option<Value>) -> Resp {
    let h = [
        ("x-auth-token", token),
        ("openstack-api-version", "volume 3.70"),
    ];
    app.call(m, &format!("/volume/v3{path}"), &h, body).await
}

fn fault(r: &Resp, status: u16, name: &str) {
    common::assert_compute_fault(r, status, name);
}

/// Polls a volume until its status leaves the transitional ones; returns its last view.
async fn settle(app: &TestApp, token: &str, id: &str) -> Value {
    for _ in 0..400 {
        let r = cinder(app, token, Method::GET, &format!("/volumes/{id}"), None).await;
        if r.status == StatusCode::NOT_FOUND {
            return Value::Null;
        }
        let st = r.body["volume"]["status"].as_str().unwrap_or("").to_owned();
        if !["creating", "downloading", "deleting", "extending"].contains(&st.as_str()) {
            return r.body["volume"].clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("volume {id} never settled");
}

async fn create(app: &TestApp, token: &str, body: Value) -> String {
    let r = cinder(
        app,
        token,
        Method::POST,
        "/volumes",
        Some(json!({ "volume": body })),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["volume"]["status"], "creating");
    let id = r.body["volume"]["id"].as_str().expect("id").to_owned();
    let v = settle(app, token, &id).await;
    assert_eq!(v["status"], "available", "{v}");
    id
}

fn file_of(app: &TestApp, id: &str) -> std::path::PathBuf {
    app.data_dir
        .path()
        .join("volumes")
        .join(format!("{id}.raw"))
}

#[tokio::test]
async fn versions_catalog_and_microversions() {
    let app = TestApp::new().await;
    let r = app.get("/volume/", None).await;
    assert_eq!(r.status, StatusCode::MULTIPLE_CHOICES, "{}", r.text);
    assert_eq!(r.body["versions"][0]["id"], "v3.0");
    assert_eq!(r.body["versions"][0]["min_version"], "3.0");
    assert_eq!(r.body["versions"][0]["version"], "3.71");
    let r = app.get("/volume/v3/", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let login = app.login("demo", common::DEMO_PW, Some("demo")).await;
    let types: Vec<&str> = login.body["token"]["catalog"]
        .as_array()
        .expect("catalog")
        .iter()
        .filter_map(|s| s["type"].as_str())
        .collect();
    assert!(
        types.contains(&"block-storage") && types.contains(&"volumev3"),
        "{types:?}"
    );
    let t = app.demo().await;
    let h = [
        ("x-auth-token", t.as_str()),
        ("openstack-api-version", "volume 3.99"),
    ];
    let r = app.call(Method::GET, "/volume/v3/volumes", &h, None).await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{}", r.text);
    let h = [
        ("x-auth-token", t.as_str()),
        ("openstack-api-version", "volume 3.50"),
    ];
    let r = app.call(Method::GET, "/volume/v3/volumes", &h, None).await;
    assert_eq!(r.header("openstack-api-version"), Some("volume 3.50"));
    // No token: Keystone's 401.
    let r = app.get("/volume/v3/volumes", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_volume_life_cycle_on_the_file_backend() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let admin = app.admin().await;
    let r = cinder(&app, &t, Method::GET, "/types/default", None).await;
    assert_eq!(r.body["volume_type"]["name"], "__DEFAULT__", "{}", r.text);
    let id = create(
        &app,
        &t,
        json!({"size": 1, "name": "vol1", "description": "first", "metadata": {"a": "1"}}),
    )
    .await;
    let f = file_of(&app, &id);
    assert_eq!(std::fs::metadata(&f).expect("file").len(), 1 << 30);
    let r = cinder(&app, &t, Method::GET, &format!("/volumes/{id}"), None).await;
    let v = &r.body["volume"];
    assert_eq!(v["bootable"], "false");
    assert_eq!(v["volume_type"], "__DEFAULT__");
    assert_eq!(v["metadata"]["a"], "1");
    assert_eq!(v["attachments"], json!([]));
    assert!(
        v.get("os-vol-host-attr:host").is_none(),
        "members see no host"
    );
    assert!(
        !r.text.contains("/volumes/") || !r.text.contains(".raw"),
        "no path"
    );
    let r = cinder(
        &app,
        &admin,
        Method::GET,
        "/volumes/detail?all_tenants=1",
        None,
    )
    .await;
    let mine = r.body["volumes"]
        .as_array()
        .expect("list")
        .iter()
        .find(|x| x["id"] == id.as_str())
        .expect("admin sees it")
        .clone();
    assert_eq!(mine["os-vol-host-attr:host"], "onebox@file#file");
    // The project id in the URL, and a foreign one.
    let pid = r.body["volumes"][0]["os-vol-tenant-attr:tenant_id"]
        .as_str()
        .expect("p")
        .to_owned();
    let r = cinder(&app, &t, Method::GET, &format!("/{pid}/volumes"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["volumes"][0]["name"], "vol1");
    let r = cinder(
        &app,
        &t,
        Method::GET,
        "/0123456789abcdef0123456789abcdef/volumes",
        None,
    )
    .await;
    fault(&r, 400, "badRequest");
    assert_eq!(r.body["badRequest"]["message"], "Malformed request url");
    // Update, metadata.
    let r = cinder(
        &app,
        &t,
        Method::PUT,
        &format!("/volumes/{id}"),
        Some(json!({"volume": {"name": "renamed"}})),
    )
    .await;
    assert_eq!(r.body["volume"]["name"], "renamed", "{}", r.text);
    let r = cinder(
        &app,
        &t,
        Method::POST,
        &format!("/volumes/{id}/metadata"),
        Some(json!({"metadata": {"b": "2"}})),
    )
    .await;
    assert_eq!(
        r.body["metadata"],
        json!({"a": "1", "b": "2"}),
        "{}",
        r.text
    );
    let r = cinder(
        &app,
        &t,
        Method::DELETE,
        &format!("/volumes/{id}/metadata/a"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = cinder(
        &app,
        &t,
        Method::GET,
        "/volumes/detail?metadata=%7B%27b%27%3A+%272%27%7D",
        None,
    )
    .await;
    assert_eq!(
        r.body["volumes"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
    let r = cinder(&app, &t, Method::GET, "/volumes?name=nope", None).await;
    assert_eq!(r.body["volumes"], json!([]));
    // Actions.
    let act = |b: Value| {
        let (app, t, id) = (&app, t.clone(), id.clone());
        async move {
            cinder(
                app,
                &t,
                Method::POST,
                &format!("/volumes/{id}/action"),
                Some(b),
            )
            .await
        }
    };
    let r = act(json!({"os-extend": {"new_size": 2}})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let v = settle(&app, &t, &id).await;
    assert_eq!(
        (v["size"].as_u64(), v["status"].as_str()),
        (Some(2), Some("available"))
    );
    assert_eq!(std::fs::metadata(&f).expect("file").len(), 2 << 30);
    let r = act(json!({"os-extend": {"new_size": 1}})).await;
    fault(&r, 400, "badRequest");
    let r = act(json!({"os-set_bootable": {"bootable": true}})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = act(json!({"os-update_readonly_flag": {"readonly": true}})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = cinder(&app, &t, Method::GET, &format!("/volumes/{id}"), None).await;
    assert_eq!(r.body["volume"]["bootable"], "true");
    let r = act(json!({"os-frobnicate": {}})).await;
    fault(&r, 400, "badRequest");
    // Every transition is recorded.
    let hist = app
        .state
        .volumes
        .history(&admin_ctx(&app).await, &id)
        .await
        .expect("history");
    assert_eq!(hist, ["creating", "available", "extending", "available"]);
    // Usage, limits, quota set.
    let r = cinder(&app, &t, Method::GET, "/limits", None).await;
    assert_eq!(
        r.body["limits"]["absolute"]["totalGigabytesUsed"], 2,
        "{}",
        r.text
    );
    assert_eq!(r.body["limits"]["absolute"]["maxTotalVolumes"], 10);
    let r = cinder(
        &app,
        &t,
        Method::GET,
        &format!("/os-quota-sets/{pid}?usage=True"),
        None,
    )
    .await;
    assert_eq!(r.body["quota_set"]["volumes"]["in_use"], 1, "{}", r.text);
    assert_eq!(r.body["quota_set"]["gigabytes___DEFAULT__"]["limit"], -1);
    let r = cinder(&app, &t, Method::GET, "/os-availability-zone", None).await;
    assert_eq!(r.body["availabilityZoneInfo"][0]["zoneName"], "nova");
    // Delete.
    let r = cinder(&app, &t, Method::DELETE, &format!("/volumes/{id}"), None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(settle(&app, &t, &id).await.is_null());
    assert!(!f.exists());
    let r = cinder(&app, &t, Method::GET, &format!("/volumes/{id}"), None).await;
    fault(&r, 404, "itemNotFound");
    assert_eq!(
        r.body["itemNotFound"]["message"],
        format!("Volume {id} could not be found.")
    );
}

async fn admin_ctx(app: &TestApp) -> model::Context {
    let t = app.admin().await;
    app.identity
        .validate(&t)
        .await
        .expect("validate")
        .expect("token")
        .context()
}

#[tokio::test]
async fn cinder_validation_and_faults() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let post = |b: Value| {
        let (app, t) = (&app, t.clone());
        async move {
            cinder(
                app,
                &t,
                Method::POST,
                "/volumes",
                Some(json!({ "volume": b })),
            )
            .await
        }
    };
    let r = post(json!({"size": 0})).await;
    fault(&r, 400, "badRequest");
    assert_eq!(
        r.body["badRequest"]["message"],
        "Invalid input for field/attribute size. Value: 0. 0 is less than the minimum of 1"
    );
    let r = post(json!({"size": "big"})).await;
    assert_eq!(
        r.body["badRequest"]["message"],
        "Invalid input for field/attribute size. Value: big. 'big' does not match '^[0-9]+$'"
    );
    let r = post(json!({"size": 1, "volume_type": "nope"})).await;
    fault(&r, 404, "itemNotFound");
    assert_eq!(
        r.body["itemNotFound"]["message"],
        "Volume type with name nope could not be found."
    );
    let r = post(json!({"size": 1, "availability_zone": "elsewhere"})).await;
    fault(&r, 400, "badRequest");
    let r = post(json!({"size": 5000})).await;
    fault(&r, 413, "overLimit");
    assert_eq!(r.body["overLimit"]["retryAfter"], "0");
    assert!(
        r.body["overLimit"]["message"]
            .as_str()
            .expect("m")
            .starts_with("VolumeSizeExceedsAvailableQuota: ")
    );
    let r = cinder(
        &app,
        &t,
        Method::POST,
        "/types",
        Some(json!({"volume_type": {"name": "gold"}})),
    )
    .await;
    fault(&r, 403, "forbidden");
    let r = cinder(
        &app,
        &t,
        Method::GET,
        "/volumes/00000000-0000-0000-0000-000000000000",
        None,
    )
    .await;
    fault(&r, 404, "itemNotFound");
    let h = [
        ("x-auth-token", t.as_str()),
        ("content-type", "application/json"),
    ];
    let r = app
        .call_raw(
            Method::POST,
            "/volume/v3/volumes",
            &h,
            Some(b"{nope".to_vec()),
        )
        .await;
    fault(&r, 400, "badRequest");
    // Nothing was written by any of them.
    let r = cinder(&app, &t, Method::GET, "/volumes", None).await;
    assert_eq!(r.body["volumes"], json!([]), "{}", r.text);
}

#[tokio::test]
async fn snapshots_and_volumes_from_snapshots_volumes_and_images() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    // An image with a marker, uploaded by the project.
    let h = [("x-auth-token", t.as_str())];
    let r = app
        .call(
            Method::POST,
            "/image/v2/images",
            &h,
            Some(json!({"name": "marked", "disk_format": "raw", "container_format": "bare"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let image = r.body["id"].as_str().expect("id").to_owned();
    let mut data = vec![0u8; 1 << 20];
    data[..6].copy_from_slice(b"marker");
    let r = app
        .call_raw(
            Method::PUT,
            &format!("/image/v2/images/{image}/file"),
            &[
                ("x-auth-token", t.as_str()),
                ("content-type", "application/octet-stream"),
            ],
            Some(data),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let from_image = create(&app, &t, json!({"size": 1, "imageRef": image})).await;
    let r = cinder(
        &app,
        &t,
        Method::GET,
        &format!("/volumes/{from_image}"),
        None,
    )
    .await;
    assert_eq!(r.body["volume"]["bootable"], "true");
    assert_eq!(
        r.body["volume"]["volume_image_metadata"]["image_id"],
        image.as_str()
    );
    assert_eq!(
        r.body["volume"]["volume_image_metadata"]["image_name"],
        "marked"
    );
    let bytes = std::fs::read(file_of(&app, &from_image)).expect("read");
    assert_eq!(&bytes[..6], b"marker");
    // A snapshot, a volume from it, a copy of the volume.
    let r = cinder(
        &app,
        &t,
        Method::POST,
        "/snapshots",
        Some(json!({"snapshot": {"volume_id": from_image, "name": "snap1"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["snapshot"]["status"], "creating");
    let snap = r.body["snapshot"]["id"].as_str().expect("id").to_owned();
    let mut st = String::new();
    for _ in 0..400 {
        let r = cinder(&app, &t, Method::GET, &format!("/snapshots/{snap}"), None).await;
        st = r.body["snapshot"]["status"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if st != "creating" {
            assert_eq!(
                r.body["snapshot"]["os-extended-snapshot-attributes:progress"],
                "100%"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(st, "available");
    let from_snap = create(&app, &t, json!({"snapshot_id": snap, "name": "restored"})).await;
    let copy = create(&app, &t, json!({"source_volid": from_image, "size": 2})).await;
    for v in [&from_snap, &copy] {
        assert_eq!(
            &std::fs::read(file_of(&app, v)).expect("read")[..6],
            b"marker"
        );
    }
    let r = cinder(&app, &t, Method::GET, "/snapshots/detail", None).await;
    assert_eq!(
        r.body["snapshots"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
    // A volume with a snapshot is not deleted, unless in cascade.
    let r = cinder(
        &app,
        &t,
        Method::DELETE,
        &format!("/volumes/{from_image}"),
        None,
    )
    .await;
    fault(&r, 400, "badRequest");
    assert!(
        r.body["badRequest"]["message"]
            .as_str()
            .expect("m")
            .contains("have snapshots")
    );
    let r = cinder(
        &app,
        &t,
        Method::DELETE,
        &format!("/volumes/{from_image}?cascade=true"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(settle(&app, &t, &from_image).await.is_null());
    let r = cinder(&app, &t, Method::GET, &format!("/snapshots/{snap}"), None).await;
    fault(&r, 404, "itemNotFound");
    let left: Vec<_> = std::fs::read_dir(app.data_dir.path().join("volumes/snapshots"))
        .expect("dir")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn attack_another_project_cannot_reach_a_volume_or_exceed_its_quota() {
    let app = TestApp::new().await;
    let a = app.demo().await;
    let (_, pb, b) = app.user_with_role("intruder", "member").await;
    let (_, _, reader) = app.user_with_role("peeker", "reader").await;
    let id = create(&app, &a, json!({"size": 1, "name": "secret"})).await;
    // A private image of project A.
    let h = [("x-auth-token", a.as_str())];
    let r = app
        .call(
            Method::POST,
            "/image/v2/images",
            &h,
            Some(json!({"name": "private", "disk_format": "raw", "container_format": "bare"})),
        )
        .await;
    let image = r.body["id"].as_str().expect("id").to_owned();
    let r = app
        .call_raw(
            Method::PUT,
            &format!("/image/v2/images/{image}/file"),
            &[
                ("x-auth-token", a.as_str()),
                ("content-type", "application/octet-stream"),
            ],
            Some(vec![1u8; 4096]),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    // Project B sees nothing of it, and gets the 404 of an unknown volume for every verb.
    for path in [
        "/volumes",
        "/volumes/detail",
        "/volumes/detail?all_tenants=1",
    ] {
        let r = cinder(&app, &b, Method::GET, path, None).await;
        assert_eq!(r.body["volumes"], json!([]), "{path}: {}", r.text);
    }
    let unknown = cinder(
        &app,
        &b,
        Method::GET,
        "/volumes/00000000-0000-0000-0000-000000000000",
        None,
    )
    .await;
    for (m, path, body) in [
        (Method::GET, format!("/volumes/{id}"), None),
        (
            Method::PUT,
            format!("/volumes/{id}"),
            Some(json!({"volume": {"name": "mine"}})),
        ),
        (Method::DELETE, format!("/volumes/{id}"), None),
        (Method::GET, format!("/volumes/{id}/metadata"), None),
        (
            Method::POST,
            format!("/volumes/{id}/metadata"),
            Some(json!({"metadata": {"x": "y"}})),
        ),
        (
            Method::POST,
            format!("/volumes/{id}/action"),
            Some(json!({"os-extend": {"new_size": 5}})),
        ),
        (
            Method::POST,
            format!("/volumes/{id}/action"),
            Some(json!({"os-set_bootable": {"bootable": true}})),
        ),
        (
            Method::POST,
            format!("/volumes/{id}/action"),
            Some(json!({"os-reset_status": {"status": "error"}})),
        ),
        (
            Method::POST,
            "/snapshots".to_owned(),
            Some(json!({"snapshot": {"volume_id": id}})),
        ),
    ] {
        let r = cinder(&app, &b, m.clone(), &path, body).await;
        fault(&r, 404, "itemNotFound");
        if path == format!("/volumes/{id}") && m == Method::GET {
            assert_eq!(
                r.body["itemNotFound"]["message"]
                    .as_str()
                    .map(|s| s.replace(&id, "X")),
                unknown.body["itemNotFound"]["message"]
                    .as_str()
                    .map(|s| s.replace("00000000-0000-0000-0000-000000000000", "X")),
            );
        }
    }
    // Nor copy it, nor read A's private image through a volume.
    let r = cinder(
        &app,
        &b,
        Method::POST,
        "/volumes",
        Some(json!({"volume": {"source_volid": id}})),
    )
    .await;
    fault(&r, 404, "itemNotFound");
    let r = cinder(
        &app,
        &b,
        Method::POST,
        "/volumes",
        Some(json!({"volume": {"size": 1, "imageRef": image}})),
    )
    .await;
    fault(&r, 404, "itemNotFound");
    // A's volume is untouched.
    let r = cinder(&app, &a, Method::GET, &format!("/volumes/{id}"), None).await;
    assert_eq!(
        (
            r.body["volume"]["name"].as_str(),
            r.body["volume"]["size"].as_u64(),
            r.body["volume"]["status"].as_str()
        ),
        (Some("secret"), Some(1), Some("available"))
    );
    // Admin-only actions, on one's own volume: 403.
    for body in [
        json!({"os-reset_status": {"status": "error"}}),
        json!({"os-force_delete": {}}),
    ] {
        let r = cinder(
            &app,
            &a,
            Method::POST,
            &format!("/volumes/{id}/action"),
            Some(body),
        )
        .await;
        fault(&r, 403, "forbidden");
    }
    // A reader of its own project cannot write.
    let r = cinder(
        &app,
        &reader,
        Method::POST,
        "/volumes",
        Some(json!({"volume": {"size": 1}})),
    )
    .await;
    fault(&r, 403, "forbidden");
    // Quotas: a member cannot raise its own, and cannot exceed what the admin set.
    let r = cinder(
        &app,
        &b,
        Method::PUT,
        &format!("/os-quota-sets/{pb}"),
        Some(json!({"quota_set": {"gigabytes": 100000}})),
    )
    .await;
    fault(&r, 403, "forbidden");
    let admin = app.admin().await;
    let r = cinder(
        &app,
        &admin,
        Method::PUT,
        &format!("/os-quota-sets/{pb}"),
        Some(json!({"quota_set": {"gigabytes": 2, "volumes": 1}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = cinder(
        &app,
        &b,
        Method::POST,
        "/volumes",
        Some(json!({"volume": {"size": 3}})),
    )
    .await;
    fault(&r, 413, "overLimit");
    assert_eq!(
        r.body["overLimit"]["message"],
        "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested 3G, quota is 2G and 0G has been consumed."
    );
    create(&app, &b, json!({"size": 1})).await;
    let r = cinder(
        &app,
        &b,
        Method::POST,
        "/volumes",
        Some(json!({"volume": {"size": 1}})),
    )
    .await;
    fault(&r, 413, "overLimit");
    assert!(
        r.body["overLimit"]["message"]
            .as_str()
            .expect("m")
            .starts_with("VolumeLimitExceeded")
    );
    // Every file the box made is in its volumes directory, named by the volume's id alone.
    let r = cinder(
        &app,
        &b,
        Method::POST,
        "/volumes",
        Some(json!({"volume": {"size": 1, "name": "../../../etc/passwd"}})),
    )
    .await;
    fault(&r, 413, "overLimit");
    for e in std::fs::read_dir(app.data_dir.path().join("volumes")).expect("dir") {
        let name = e.expect("entry").file_name().to_string_lossy().into_owned();
        assert!(
            name == "snapshots" || (name.ends_with(".raw") && name.len() == 40),
            "{name}"
        );
    }
}

#[tokio::test]
async fn reconcile_resolves_transitional_statuses_and_removes_orphans() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let id = create(&app, &t, json!({"size": 1})).await;
    let stuck = create(&app, &t, json!({"size": 1})).await;
    // As a crash would leave them: one volume mid-create, a file with no row, a temporary.
    app.store
        .write({
            let stuck = stuck.clone();
            move |tx| store::volume::set_status(tx, &stuck, &[], "creating").map(|_| ())
        })
        .await
        .expect("write");
    let dir = app.data_dir.path().join("volumes");
    let orphan = dir.join("99999999-9999-4999-8999-999999999999.raw");
    std::fs::write(&orphan, b"x").expect("write");
    let tmp = dir.join(format!(".{id}.raw.tmp"));
    std::fs::write(&tmp, b"half").expect("write");
    let report = app.state.volumes.reconcile().await.expect("reconcile");
    assert_eq!(report.resolved, 1);
    assert_eq!(report.orphans_removed, 2);
    assert!(!orphan.exists() && !tmp.exists() && file_of(&app, &id).exists());
    let r = cinder(&app, &t, Method::GET, &format!("/volumes/{stuck}"), None).await;
    assert_eq!(r.body["volume"]["status"], "error");
    // An admin resets it; the member deletes it.
    let admin = app.admin().await;
    let r = cinder(
        &app,
        &admin,
        Method::POST,
        &format!("/volumes/{stuck}/action"),
        Some(json!({"os-reset_status": {"status": "available"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = cinder(&app, &t, Method::DELETE, &format!("/volumes/{stuck}"), None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(settle(&app, &t, &stuck).await.is_null());
}

/// A server of the token's project on the fake driver, built; returns its id.
async fn server(app: &TestApp, token: &str) -> String {
    let h = [
        ("x-auth-token", token),
        ("openstack-api-version", "compute 2.79"),
    ];
    let r = app
        .call(
            Method::POST,
            "/compute/v2.1/servers",
            &h,
            Some(json!({"server": {"name": "s", "imageRef": common::IMAGE, "flavorRef": "1", "networks": "none"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    app.compute.idle().await;
    r.body["server"]["id"].as_str().expect("id").to_owned()
}

async fn nova(app: &TestApp, token: &str, m: Method, path: &str, body: Option<Value>) -> Resp {
    let h = [
        ("x-auth-token", token),
        ("openstack-api-version", "compute 2.79"),
    ];
    app.call(m, &format!("/compute/v2.1{path}"), &h, body).await
}

#[tokio::test]
async fn attach_and_detach_through_nova_and_attack_across_projects() {
    let app = TestApp::new().await;
    let a = app.demo().await;
    let (_, _, b) = app.user_with_role("neighbour", "member").await;
    let sa = server(&app, &a).await;
    let sb = server(&app, &b).await;
    let va = create(&app, &a, json!({"size": 1})).await;
    let vb = create(&app, &b, json!({"size": 1})).await;
    let attach = |v: &str| json!({"volumeAttachment": {"volumeId": v, "tag": "data", "delete_on_termination": false}});
    // Across projects: another project's volume, another project's server.
    let r = nova(
        &app,
        &b,
        Method::POST,
        &format!("/servers/{sb}/os-volume_attachments"),
        Some(attach(&va)),
    )
    .await;
    fault(&r, 404, "itemNotFound");
    let r = nova(
        &app,
        &b,
        Method::POST,
        &format!("/servers/{sa}/os-volume_attachments"),
        Some(attach(&vb)),
    )
    .await;
    fault(&r, 404, "itemNotFound");
    let r = cinder(&app, &a, Method::GET, &format!("/volumes/{va}"), None).await;
    assert_eq!(r.body["volume"]["status"], "available");
    // Attach.
    let r = nova(
        &app,
        &a,
        Method::POST,
        &format!("/servers/{sa}/os-volume_attachments"),
        Some(attach(&va)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let att = &r.body["volumeAttachment"];
    assert_eq!(
        (att["volumeId"].as_str(), att["serverId"].as_str()),
        (Some(va.as_str()), Some(sa.as_str()))
    );
    assert_eq!(att["device"], "/dev/vdb");
    assert_eq!(att["tag"], "data");
    assert_eq!(att["delete_on_termination"], false);
    let sid = model::compute::ServerId::parse(&sa).expect("id");
    assert_eq!(app.driver.volumes_of(&sid), vec![va.clone()]);
    let r = cinder(&app, &a, Method::GET, &format!("/volumes/{va}"), None).await;
    assert_eq!(r.body["volume"]["status"], "in-use");
    assert_eq!(r.body["volume"]["attachments"][0]["server_id"], sa.as_str());
    let r = nova(
        &app,
        &a,
        Method::GET,
        &format!("/servers/{sa}/os-volume_attachments"),
        None,
    )
    .await;
    assert_eq!(
        r.body["volumeAttachments"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
    // Attached: not deleted, not attached twice, not seen by B.
    let r = cinder(&app, &a, Method::DELETE, &format!("/volumes/{va}"), None).await;
    fault(&r, 400, "badRequest");
    let r = nova(
        &app,
        &a,
        Method::POST,
        &format!("/servers/{sa}/os-volume_attachments"),
        Some(attach(&va)),
    )
    .await;
    assert!(r.status.is_client_error(), "{}", r.text);
    let r = nova(
        &app,
        &b,
        Method::GET,
        &format!("/servers/{sa}/os-volume_attachments"),
        None,
    )
    .await;
    fault(&r, 404, "itemNotFound");
    let r = nova(
        &app,
        &b,
        Method::DELETE,
        &format!("/servers/{sa}/os-volume_attachments/{va}"),
        None,
    )
    .await;
    fault(&r, 404, "itemNotFound");
    // Detach.
    let r = nova(
        &app,
        &a,
        Method::DELETE,
        &format!("/servers/{sa}/os-volume_attachments/{va}"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(app.driver.volumes_of(&sid).is_empty());
    let r = cinder(&app, &a, Method::GET, &format!("/volumes/{va}"), None).await;
    assert_eq!(r.body["volume"]["status"], "available");
    assert_eq!(r.body["volume"]["attachments"], json!([]));
    let hist = app
        .state
        .volumes
        .history(&admin_ctx(&app).await, &va)
        .await
        .expect("history");
    assert_eq!(
        hist,
        [
            "creating",
            "available",
            "attaching",
            "in-use",
            "detaching",
            "available"
        ]
    );
}
