//! Servers booted from volumes (Nova's `block_device_mapping_v2` with volume destinations)
//! on the fake driver: a volume made from an image, an existing volume, extra data volumes;
//! `delete_on_termination` both ways; the root volume never detaches; and what a member of
//! another project must not do with a mapping.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{Resp, TestApp};
use model::compute::ServerId;
use serde_json::{Value, json};

async fn cinder(app: &TestApp, token: &str, m: Method, path: &str, body: Option<Value>) -> Resp {
    let h = [
        ("x-auth-token", token),
        ("openstack-api-version", "volume 3.70"),
    ];
    app.call(m, &format!("/volume/v3{path}"), &h, body).await
}

async fn nova(app: &TestApp, token: &str, m: Method, path: &str, body: Option<Value>) -> Resp {
    let h = [
        ("x-auth-token", token),
        ("openstack-api-version", "compute 2.79"),
    ];
    app.call(m, &format!("/compute/v2.1{path}"), &h, body).await
}

/// A volume's status once it leaves the transitional ones; `None` once it is gone.
async fn settled(app: &TestApp, token: &str, id: &str) -> Option<Value> {
    for _ in 0..400 {
        let r = cinder(app, token, Method::GET, &format!("/volumes/{id}"), None).await;
        if r.status == StatusCode::NOT_FOUND {
            return None;
        }
        let st = r.body["volume"]["status"].as_str().unwrap_or("").to_owned();
        if !["creating", "downloading", "deleting"].contains(&st.as_str()) {
            return Some(r.body["volume"].clone());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("volume {id} never settled");
}

/// A 1 MiB raw image of the caller's project whose first bytes are `marker`.
async fn image(app: &TestApp, token: &str) -> String {
    let h = [("x-auth-token", token)];
    let r = app
        .call(
            Method::POST,
            "/image/v2/images",
            &h,
            Some(json!({"name": "bootable", "disk_format": "raw", "container_format": "bare"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_owned();
    let mut data = vec![0u8; 1 << 20];
    data[..6].copy_from_slice(b"marker");
    let r = app
        .call_raw(
            Method::PUT,
            &format!("/image/v2/images/{id}/file"),
            &[
                ("x-auth-token", token),
                ("content-type", "application/octet-stream"),
            ],
            Some(data),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    id
}

/// An available 1 GiB volume of `image`.
async fn volume_of_image(app: &TestApp, token: &str, image: &str) -> String {
    let body = json!({"volume": {"size": 1, "imageRef": image}});
    let r = cinder(app, token, Method::POST, "/volumes", Some(body)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let vol = r.body["volume"]["id"].as_str().expect("id").to_owned();
    settled(app, token, &vol).await.expect("volume");
    vol
}

async fn boot(app: &TestApp, token: &str, bdms: Value) -> Resp {
    let body = json!({"server": {
        "name": "bfv", "imageRef": "", "flavorRef": "1", "networks": "none",
        "block_device_mapping_v2": bdms,
    }});
    let r = nova(app, token, Method::POST, "/servers", Some(body)).await;
    app.compute.idle().await;
    r
}

async fn show(app: &TestApp, token: &str, id: &str) -> Value {
    let r = nova(app, token, Method::GET, &format!("/servers/{id}"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["server"].clone()
}

fn sid(r: &Resp) -> String {
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    r.body["server"]["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn a_server_boots_from_a_volume_made_of_its_image_and_deletes_it_on_termination() {
    let app = TestApp::with_glance(image::DEFAULT_QUOTA_BYTES).await;
    let t = app.demo().await;
    let img = image(&app, &t).await;
    let r = boot(
        &app,
        &t,
        json!([
            {"uuid": img, "source_type": "image", "destination_type": "volume",
             "boot_index": 0, "volume_size": 1, "delete_on_termination": true},
            {"source_type": "blank", "destination_type": "volume", "volume_size": 1,
             "delete_on_termination": false}
        ]),
    )
    .await;
    let id = sid(&r);
    let s = show(&app, &t, &id).await;
    assert_eq!(s["status"], "ACTIVE", "{s}");
    assert_eq!(s["image"], "", "a volume-backed server has no image");
    let attached = s["os-extended-volumes:volumes_attached"]
        .as_array()
        .expect("volumes_attached")
        .clone();
    assert_eq!(attached.len(), 2, "{s}");
    let root = attached[0]["id"].as_str().expect("id").to_owned();
    let data = attached[1]["id"].as_str().expect("id").to_owned();
    assert_eq!(attached[0]["delete_on_termination"], true);
    // The backend got the root volume as its boot disk, with the image's bytes in it.
    let spec = app
        .driver
        .spec_of(&ServerId::parse(&id).expect("id"))
        .expect("spec");
    assert!(spec.image.is_none());
    let boot_vol = spec
        .volumes
        .iter()
        .find(|v| v.boot_index == Some(0))
        .expect("boot volume");
    assert_eq!(boot_vol.volume_id, root);
    assert_eq!(boot_vol.device, "/dev/vda");
    let bytes = std::fs::read(&boot_vol.path).expect("volume file");
    assert_eq!(&bytes[..6], b"marker");
    let v = settled(&app, &t, &root).await.expect("root volume");
    assert_eq!(v["status"], "in-use");
    assert_eq!(v["bootable"], "true");
    assert_eq!(v["attachments"][0]["server_id"], id.as_str());
    // What a volume-backed server cannot do, refused before anything changes.
    for action in [
        json!({"rebuild": {"imageRef": img}}),
        json!({"createImage": {"name": "snap"}}),
        json!({"rescue": {}}),
    ] {
        let r = nova(
            &app,
            &t,
            Method::POST,
            &format!("/servers/{id}/action"),
            Some(action),
        )
        .await;
        common::assert_compute_fault(&r, 400, "badRequest");
        assert!(r.text.contains("boots from a volume"), "{}", r.text);
    }
    assert_eq!(show(&app, &t, &id).await["status"], "ACTIVE");
    // The listing shows the same volumes.
    let r = nova(&app, &t, Method::GET, "/servers/detail", None).await;
    assert_eq!(
        r.body["servers"][0]["os-extended-volumes:volumes_attached"],
        Value::Array(attached.clone()),
        "{}",
        r.text
    );
    // Cinder's attachments API (3.27+) shows the same attachments; another project none.
    let h = [
        ("x-auth-token", t.as_str()),
        ("openstack-api-version", "volume 3.27"),
    ];
    let r = app
        .call(Method::GET, "/volume/v3/attachments/detail", &h, None)
        .await;
    let atts = r.body["attachments"]
        .as_array()
        .expect("attachments")
        .clone();
    assert_eq!(atts.len(), 2, "{}", r.text);
    assert!(
        atts.iter()
            .all(|a| a["instance"] == id.as_str() && a["status"] == "attached")
    );
    let one = atts[0]["id"].as_str().expect("id").to_owned();
    let r = app
        .call(
            Method::GET,
            &format!("/volume/v3/attachments/{one}"),
            &h,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let old = [
        ("x-auth-token", t.as_str()),
        ("openstack-api-version", "volume 3.26"),
    ];
    let r = app
        .call(Method::GET, "/volume/v3/attachments", &old, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let (_, _, other) = app.user_with_role("stranger", "member").await;
    let h = [
        ("x-auth-token", other.as_str()),
        ("openstack-api-version", "volume 3.27"),
    ];
    let r = app
        .call(Method::GET, "/volume/v3/attachments", &h, None)
        .await;
    assert_eq!(r.body["attachments"], json!([]), "{}", r.text);
    let r = app
        .call(
            Method::GET,
            &format!("/volume/v3/attachments/{one}"),
            &h,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // An attached volume grows online from 3.42 (the backend is told), not before.
    let grow = json!({"os-extend": {"new_size": 2}});
    let path = format!("/volume/v3/volumes/{data}/action");
    for (version, want) in [("volume 3.41", 400), ("volume 3.42", 202)] {
        let h = [
            ("x-auth-token", t.as_str()),
            ("openstack-api-version", version),
        ];
        let r = app.call(Method::POST, &path, &h, Some(grow.clone())).await;
        assert_eq!(r.status.as_u16(), want, "{version}: {}", r.text);
    }
    let v = settled(&app, &t, &data).await.expect("data volume");
    assert_eq!(
        (v["status"].as_str(), v["size"].as_u64()),
        (Some("in-use"), Some(2)),
        "{v}"
    );
    let file = app
        .data_dir
        .path()
        .join("volumes")
        .join(format!("{data}.raw"));
    assert_eq!(std::fs::metadata(file).expect("file").len(), 2 << 30);
    // The root volume stays; a data volume detaches.
    let r = nova(
        &app,
        &t,
        Method::DELETE,
        &format!("/servers/{id}/os-volume_attachments/{root}"),
        None,
    )
    .await;
    common::assert_compute_fault(&r, 400, "badRequest");
    assert!(r.text.contains("root device"), "{}", r.text);
    // Deleting the server deletes the root volume (delete_on_termination) and frees the
    // data volume.
    let r = nova(&app, &t, Method::DELETE, &format!("/servers/{id}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    app.compute.idle().await;
    assert!(settled(&app, &t, &root).await.is_none(), "root volume kept");
    let v = settled(&app, &t, &data).await.expect("data volume");
    assert_eq!(v["status"], "available");
    assert!(v["attachments"].as_array().is_some_and(Vec::is_empty));
}

#[tokio::test]
async fn an_existing_volume_boots_a_server_and_outlives_it() {
    let app = TestApp::with_glance(image::DEFAULT_QUOTA_BYTES).await;
    let t = app.demo().await;
    let img = image(&app, &t).await;
    let vol = volume_of_image(&app, &t, &img).await;
    let mapping = json!([{"uuid": vol, "source_type": "volume", "destination_type": "volume",
                          "boot_index": "0", "delete_on_termination": false}]);
    let id = sid(&boot(&app, &t, mapping.clone()).await);
    assert_eq!(show(&app, &t, &id).await["status"], "ACTIVE");
    // The volume is taken: a second server cannot boot from it.
    let r = boot(&app, &t, mapping.clone()).await;
    common::assert_compute_fault(&r, 400, "badRequest");
    let r = nova(&app, &t, Method::DELETE, &format!("/servers/{id}"), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.compute.idle().await;
    let v = settled(&app, &t, &vol)
        .await
        .expect("volume outlives the server");
    assert_eq!(v["status"], "available");
    // Free again, it boots the next server.
    let id2 = sid(&boot(&app, &t, mapping).await);
    assert_eq!(show(&app, &t, &id2).await["status"], "ACTIVE");
}

#[tokio::test]
async fn mappings_nova_refuses() {
    let app = TestApp::with_glance(image::DEFAULT_QUOTA_BYTES).await;
    let t = app.demo().await;
    let img = image(&app, &t).await;
    for (bdms, want) in [
        (
            json!([{"uuid": img, "source_type": "image", "destination_type": "volume", "boot_index": 0}]),
            "non-zero size",
        ),
        (
            json!([{"source_type": "blank", "destination_type": "volume", "volume_size": 1}]),
            "Boot sequence",
        ),
        (
            json!([{"uuid": "5e3a5e9c-7a8e-4b6d-9c54-1f2e3d4c5b6a", "source_type": "volume",
                    "destination_type": "volume", "boot_index": 0}]),
            "failed to get volume",
        ),
    ] {
        let r = boot(&app, &t, bdms).await;
        common::assert_compute_fault(&r, 400, "badRequest");
        assert!(r.text.contains(want), "{want}: {}", r.text);
    }
}

#[tokio::test]
async fn attack_another_projects_volumes_images_and_quota_are_out_of_reach() {
    let app = TestApp::with_glance(image::DEFAULT_QUOTA_BYTES).await;
    let a = app.demo().await;
    let (_, _, b) = app.user_with_role("neighbour", "member").await;
    let img = image(&app, &a).await;
    let vol = volume_of_image(&app, &a, &img).await;
    // Another project's volume as a boot disk, or as a data disk: "not found", untouched.
    for boot_index in [json!(0), json!(null)] {
        let mut bdms = vec![json!({"uuid": vol, "source_type": "volume",
                                   "destination_type": "volume", "boot_index": boot_index})];
        if boot_index.is_null() {
            bdms.insert(
                0,
                json!({"source_type": "blank", "destination_type": "volume",
                       "volume_size": 1, "boot_index": 0}),
            );
        }
        let r = boot(&app, &b, Value::Array(bdms)).await;
        common::assert_compute_fault(&r, 400, "badRequest");
        assert!(r.text.contains("failed to get volume"), "{}", r.text);
    }
    let v = settled(&app, &a, &vol).await.expect("volume");
    assert_eq!(v["status"], "available");
    assert!(v["attachments"].as_array().is_some_and(Vec::is_empty));
    // Another project's private image made into a volume: not found.
    let r = boot(
        &app,
        &b,
        json!([{"uuid": img, "source_type": "image", "destination_type": "volume",
                "boot_index": 0, "volume_size": 1}]),
    )
    .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    // A mapping larger than the project's gigabytes quota fails the build, and leaves no
    // volume behind in the project.
    let r = boot(
        &app,
        &b,
        json!([{"source_type": "blank", "destination_type": "volume",
                "volume_size": 100000, "boot_index": 0}]),
    )
    .await;
    let id = sid(&r);
    let s = show(&app, &b, &id).await;
    assert_eq!(s["status"], "ERROR", "{s}");
    // An admin sees why.
    let s = show(&app, &app.admin().await, &id).await;
    assert!(
        s["fault"]["message"]
            .as_str()
            .is_some_and(|m| m.to_lowercase().contains("quota")),
        "{s}"
    );
    let r = cinder(&app, &b, Method::GET, "/volumes", None).await;
    assert_eq!(
        r.body["volumes"].as_array().map(Vec::len),
        Some(0),
        "{}",
        r.text
    );
}
