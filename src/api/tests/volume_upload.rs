//! `os-volume_upload_image` (`openstack image create --volume`): a volume's data becomes an
//! image of the caller's project, raw or qcow2, and the volume returns to its status; what a
//! member must not do with it.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{Resp, TestApp};
use serde_json::{Value, json};

async fn cinder(app: &TestApp, token: &str, m: Method, path: &str, body: Option<Value>) -> Resp {
    let h = [
        ("x-auth-token", token),
        ("openstack-api-version", "volume 3.70"),
    ];
    app.call(m, &format!("/volume/v3{path}"), &h, body).await
}

async fn status_of(app: &TestApp, token: &str, id: &str) -> String {
    let r = cinder(app, token, Method::GET, &format!("/volumes/{id}"), None).await;
    r.body["volume"]["status"].as_str().unwrap_or("").to_owned()
}

async fn wait_volume(app: &TestApp, token: &str, id: &str, want: &str) {
    for _ in 0..400 {
        if status_of(app, token, id).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("volume {id} never {want}");
}

async fn image_status(app: &TestApp, token: &str, id: &str) -> Value {
    let h = [("x-auth-token", token)];
    for _ in 0..4800 {
        let r = app
            .call(Method::GET, &format!("/image/v2/images/{id}"), &h, None)
            .await;
        if r.body["status"] != "queued" && r.body["status"] != "saving" {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("image {id} never settled");
}

/// A 1 GiB volume whose first bytes are `marker`.
async fn marked_volume(app: &TestApp, token: &str) -> String {
    let r = cinder(
        app,
        token,
        Method::POST,
        "/volumes",
        Some(json!({"volume": {"size": 1, "name": "src"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let id = r.body["volume"]["id"].as_str().expect("id").to_owned();
    wait_volume(app, token, &id, "available").await;
    let file = app
        .data_dir
        .path()
        .join("volumes")
        .join(format!("{id}.raw"));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .expect("volume file");
    std::os::unix::fs::FileExt::write_at(&f, b"marker", 0).expect("write");
    id
}

async fn upload(app: &TestApp, token: &str, id: &str, args: Value) -> Resp {
    cinder(
        app,
        token,
        Method::POST,
        &format!("/volumes/{id}/action"),
        Some(json!({ "os-volume_upload_image": args })),
    )
    .await
}

#[tokio::test]
async fn a_volume_becomes_an_image_raw_or_qcow2() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let vol = marked_volume(&app, &t).await;
    for fmt in ["raw", "qcow2"] {
        let r = upload(
            &app,
            &t,
            &vol,
            json!({"image_name": format!("from-volume-{fmt}"), "disk_format": fmt,
                   "container_format": "bare", "force": false}),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        let up = &r.body["os-volume_upload_image"];
        assert_eq!(up["status"], "uploading");
        assert_eq!(up["disk_format"], fmt);
        let image = up["image_id"].as_str().expect("image id").to_owned();
        let img = image_status(&app, &t, &image).await;
        assert_eq!(img["status"], "active", "{img}");
        assert_eq!(img["visibility"], "private");
        assert_eq!(img["min_disk"], 1);
        wait_volume(&app, &t, &vol, "available").await;
        let iid = model::image::ImageId::parse(&image).expect("image id");
        let (_, path) = app.images.data_of(&iid).await.expect("image data");
        let mut data = vec![0u8; 4096];
        let len = std::fs::metadata(&path).expect("image file").len();
        std::os::unix::fs::FileExt::read_at(
            &std::fs::File::open(&path).expect("open"),
            &mut data,
            0,
        )
        .expect("read");
        match fmt {
            "raw" => {
                assert_eq!(len, 1 << 30);
                assert_eq!(&data[..6], b"marker");
            }
            _ => {
                assert_eq!(&data[..4], b"QFI\xfb", "a qcow2 image");
                assert!(len < 10 << 20, "a sparse volume makes a small qcow2");
            }
        }
    }
    // No temporary file is left beside the volumes.
    let left: Vec<_> = std::fs::read_dir(app.data_dir.path().join("volumes"))
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn attack_a_member_uploads_only_its_own_volumes_to_private_images() {
    let app = TestApp::new().await;
    let a = app.demo().await;
    let (_, _, b) = app.user_with_role("neighbour", "member").await;
    let vol = marked_volume(&app, &a).await;
    // Another project's volume: not found.
    let r = upload(&app, &b, &vol, json!({"image_name": "stolen"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // A public image is an admin's to make: refused, and the volume is unchanged.
    let r = upload(
        &app,
        &a,
        &vol,
        json!({"image_name": "everyone", "visibility": "public"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(status_of(&app, &a, &vol).await, "available");
    // Bad input.
    for args in [
        json!({}),
        json!({"image_name": "x", "disk_format": "vhd"}),
        json!({"image_name": "x", "container_format": "nope"}),
    ] {
        let r = upload(&app, &a, &vol, args).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    }
    assert_eq!(status_of(&app, &a, &vol).await, "available");
    // Neither project got an image.
    for t in [&a, &b] {
        let r = app
            .call(
                Method::GET,
                "/image/v2/images",
                &[("x-auth-token", t.as_str())],
                None,
            )
            .await;
        let names: Vec<&str> = r.body["images"]
            .as_array()
            .expect("images")
            .iter()
            .filter_map(|i| i["name"].as_str())
            .collect();
        assert!(
            !names.contains(&"stolen") && !names.contains(&"everyone"),
            "{names:?}"
        );
    }
}
