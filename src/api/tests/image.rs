//! The Image API (Glance v2): records, data, listing, JSON patch, sharing, and refusals that
//! must leave nothing behind.

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use bytes::Bytes;
use common::{Resp, TestApp};
use md5::{Digest, Md5};
use serde_json::{Value, json};

const PATCH: &str = "application/openstack-images-v2.1-json-patch";

async fn create(app: &TestApp, token: &str, body: Value) -> Resp {
    app.call(
        Method::POST,
        "/image/v2/images",
        &[("x-auth-token", token)],
        Some(body),
    )
    .await
}

async fn create_ok(app: &TestApp, token: &str, body: Value) -> String {
    let r = create(app, token, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["id"].as_str().expect("id").to_owned()
}

async fn upload(app: &TestApp, token: &str, id: &str, data: Vec<u8>) -> Resp {
    app.call_raw(
        Method::PUT,
        &format!("/image/v2/images/{id}/file"),
        &[
            ("x-auth-token", token),
            ("content-type", "application/octet-stream"),
        ],
        Some(data),
    )
    .await
}

async fn patch(app: &TestApp, token: &str, id: &str, ops: Value) -> Resp {
    app.call_raw(
        Method::PATCH,
        &format!("/image/v2/images/{id}"),
        &[("x-auth-token", token), ("content-type", PATCH)],
        Some(ops.to_string().into_bytes()),
    )
    .await
}

async fn show(app: &TestApp, token: &str, id: &str) -> Resp {
    app.get(&format!("/image/v2/images/{id}"), Some(token))
        .await
}

/// A qcow2 image made by qemu-img; `backing` makes it an overlay of another qcow2.
fn qcow2(dir: &std::path::Path, name: &str, backing: Option<&str>) -> Vec<u8> {
    let mut cmd = std::process::Command::new("qemu-img");
    cmd.current_dir(dir).args(["create", "-q", "-f", "qcow2"]);
    if let Some(b) = backing {
        cmd.args(["-b", b, "-F", "qcow2"]);
    }
    cmd.arg(name);
    if backing.is_none() {
        cmd.arg("1M");
    }
    assert!(cmd.status().expect("qemu-img").success());
    std::fs::read(dir.join(name)).expect("read image")
}

/// The names of the files in the content store.
fn stored_files(app: &TestApp) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(app.data_dir.path().join("images"))
        .expect("images dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn md5_hex(b: &[u8]) -> String {
    hex(&Md5::digest(b))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Asserts a failed upload left the image `killed` with no data and no file.
async fn assert_killed(app: &TestApp, token: &str, id: &str) {
    let r = show(app, token, id).await;
    assert_eq!(r.body["status"], "killed", "{}", r.text);
    assert!(r.body["size"].is_null() && r.body["checksum"].is_null());
    assert!(r.body["os_hash_value"].is_null());
    assert_eq!(stored_files(app), Vec::<String>::new());
}

#[tokio::test]
async fn create_upload_download_with_checksums_and_ranges() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let r = create(
        &app,
        &t,
        json!({"name": "cirros", "disk_format": "qcow2", "container_format": "bare",
               "min_ram": 64, "tags": ["a"], "hw_rng_model": "virtio"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let b = &r.body;
    assert_eq!(b["status"], "queued");
    assert_eq!(b["visibility"], "shared");
    assert_eq!(b["hw_rng_model"], "virtio");
    assert_eq!(b["min_ram"], 64);
    assert!(b["size"].is_null() && b["checksum"].is_null());
    let id = b["id"].as_str().expect("id").to_owned();
    assert_eq!(b["self"], format!("/v2/images/{id}"));
    assert_eq!(b["file"], format!("/v2/images/{id}/file"));
    assert_eq!(b["schema"], "/v2/schemas/image");
    let created = b["created_at"].as_str().expect("created_at");
    assert!(
        chrono::NaiveDateTime::parse_from_str(created, "%Y-%m-%dT%H:%M:%SZ").is_ok(),
        "{created}"
    );

    // No data yet: 204.
    let r = app
        .get(&format!("/image/v2/images/{id}/file"), Some(&t))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    let dir = tempfile::tempdir().expect("tmp");
    let data = qcow2(dir.path(), "disk.qcow2", None);
    let r = upload(&app, &t, &id, data.clone()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = show(&app, &t, &id).await;
    let b = &r.body;
    assert_eq!(b["status"], "active");
    assert_eq!(b["size"], data.len());
    assert_eq!(b["virtual_size"], 1 << 20);
    assert_eq!(b["checksum"], md5_hex(&data));
    assert_eq!(b["os_hash_algo"], "sha512");
    use sha2::Digest as _;
    assert_eq!(b["os_hash_value"], hex(&sha2::Sha512::digest(&data)));
    assert_eq!(stored_files(&app), vec![id.clone()]);

    // A second upload is refused: the data of an image never changes.
    let r = upload(&app, &t, &id, data.clone()).await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    let r = app
        .get(&format!("/image/v2/images/{id}/file"), Some(&t))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-md5"), Some(md5_hex(&data).as_str()));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        r.header("content-length"),
        Some(data.len().to_string().as_str())
    );
    assert_eq!(md5_hex(r.text.as_bytes()).len(), 32);
    let h = [("x-auth-token", t.as_str()), ("range", "bytes=0-3")];
    let file = format!("/image/v2/images/{id}/file");
    let r = app.call(Method::GET, &file, &h, None).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 0-3/{}", data.len()).as_str())
    );
    assert_eq!(r.text, String::from_utf8_lossy(&data[..4]));
    let h = [("x-auth-token", t.as_str()), ("range", "bytes=-10")];
    let r = app.call(Method::GET, &file, &h, None).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.header("content-length"), Some("10"));
    let far = format!("bytes={}-", data.len() + 10);
    let h = [("x-auth-token", t.as_str()), ("range", far.as_str())];
    let r = app.call(Method::GET, &file, &h, None).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{}", data.len()).as_str())
    );

    // Deactivated: only the admin may download.
    let action = |a: &str| format!("/image/v2/images/{id}/actions/{a}");
    let h = [("x-auth-token", t.as_str())];
    let r = app
        .call(Method::POST, &action("deactivate"), &h, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(show(&app, &t, &id).await.body["status"], "deactivated");
    let r = app.get(&file, Some(&t)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .call(Method::POST, &action("reactivate"), &h, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&file, Some(&t)).await.status, StatusCode::OK);

    // Protected images stay; unprotected ones go with their data.
    let r = patch(
        &app,
        &t,
        &id,
        json!([{"op": "replace", "path": "/protected", "value": true}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = app
        .call(Method::DELETE, &format!("/image/v2/images/{id}"), &h, None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.text.contains("403 Forbidden"),
        "Glance's HTML fault: {}",
        r.text
    );
    patch(
        &app,
        &t,
        &id,
        json!([{"op": "replace", "path": "/protected", "value": false}]),
    )
    .await;
    let r = app
        .call(Method::DELETE, &format!("/image/v2/images/{id}"), &h, None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(show(&app, &t, &id).await.status, StatusCode::NOT_FOUND);
    assert_eq!(stored_files(&app), Vec::<String>::new());
}

#[tokio::test]
async fn chunked_streams_are_accepted() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let id = create_ok(
        &app,
        &t,
        json!({"name": "r", "disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..64)
        .map(|i| Ok(Bytes::from(vec![i as u8; 4096])))
        .collect();
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    let r = app
        .call_body(
            Method::PUT,
            &format!("/image/v2/images/{id}/file"),
            &[
                ("x-auth-token", &t),
                ("content-type", "application/octet-stream"),
            ],
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let b = show(&app, &t, &id).await.body;
    assert_eq!(b["size"], 64 * 4096);
    assert_eq!(b["virtual_size"], 64 * 4096);
}

#[tokio::test]
async fn list_filters_sorting_and_paging() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let mut ids = Vec::new();
    for (i, name) in ["delta", "alpha", "echo", "charlie", "bravo"]
        .iter()
        .enumerate()
    {
        let fmt = if i % 2 == 0 { "qcow2" } else { "raw" };
        let id = create_ok(
            &app,
            &t,
            json!({"name": name, "disk_format": fmt, "container_format": "bare",
                   "tags": [format!("t{}", i % 2)], "os_distro": if i == 0 {"cirros"} else {"debian"}}),
        )
        .await;
        ids.push(id);
    }
    let names = |r: &Resp| -> Vec<String> {
        r.body["images"]
            .as_array()
            .expect("images")
            .iter()
            .map(|i| i["name"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let r = app.get("/image/v2/images", Some(&t)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["first"], "/v2/images");
    assert_eq!(r.body["schema"], "/v2/schemas/images");
    assert!(r.body.get("next").is_none());
    // Newest first by default.
    assert_eq!(names(&r), ["bravo", "charlie", "echo", "alpha", "delta"]);

    let q = |s: &str| format!("/image/v2/images?{s}");
    assert_eq!(names(&app.get(&q("name=echo"), Some(&t)).await), ["echo"]);
    assert_eq!(
        names(&app.get(&q("sort_key=name&sort_dir=asc"), Some(&t)).await),
        ["alpha", "bravo", "charlie", "delta", "echo"]
    );
    assert_eq!(
        names(&app.get(&q("sort=name:desc"), Some(&t)).await),
        ["echo", "delta", "charlie", "bravo", "alpha"]
    );
    assert_eq!(
        names(&app.get(&q("disk_format=raw&sort=name:asc"), Some(&t)).await),
        ["alpha", "charlie"]
    );
    assert_eq!(
        names(&app.get(&q("tag=t0&sort=name:asc"), Some(&t)).await),
        ["bravo", "delta", "echo"]
    );
    assert_eq!(
        names(&app.get(&q("os_distro=cirros"), Some(&t)).await),
        ["delta"]
    );
    let r = app
        .get(
            &q(&format!("id=in:{},{}&sort=name:asc", ids[0], ids[1])),
            Some(&t),
        )
        .await;
    assert_eq!(names(&r), ["alpha", "delta"]);
    assert_eq!(
        names(&app.get(&q("status=active"), Some(&t)).await),
        Vec::<String>::new()
    );
    assert_eq!(
        names(&app.get(&q("size_min=1"), Some(&t)).await),
        Vec::<String>::new()
    );
    let r = app
        .get(&q("created_at=gte:2000-01-01T00:00:00Z"), Some(&t))
        .await;
    assert_eq!(names(&r).len(), 5, "{}", r.text);
    let r = app
        .get(&q("created_at=lt:2000-01-01T00:00:00Z"), Some(&t))
        .await;
    assert_eq!(names(&r).len(), 0);
    let r = app.get(&q("updated_at=gt:yesterday"), Some(&t)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.get(&q("visibility=bogus"), Some(&t)).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get(&q("sort_key=bogus"), Some(&t)).await.status,
        StatusCode::BAD_REQUEST
    );

    // Paging: follow `next` to the end.
    let mut seen = Vec::new();
    let mut url = q("limit=2&sort_key=name&sort_dir=asc");
    for _ in 0..5 {
        let r = app.get(&url, Some(&t)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        seen.extend(names(&r));
        match r.body["next"].as_str() {
            Some(next) => url = format!("/image{next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["alpha", "bravo", "charlie", "delta", "echo"]);
    let r = app
        .get(&q("marker=00000000-0000-4000-8000-000000000000"), Some(&t))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn json_patch_updates_and_refusals() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let id = create_ok(
        &app,
        &t,
        json!({"name": "old", "disk_format": "raw", "container_format": "bare", "k0": "v0"}),
    )
    .await;
    let r = patch(
        &app,
        &t,
        &id,
        json!([
            {"op": "replace", "path": "/name", "value": "new"},
            {"op": "add", "path": "/k1", "value": "v1"},
            {"op": "add", "path": "/a~1b", "value": "slash"},
            {"op": "remove", "path": "/k0"},
            {"op": "add", "path": "/tags", "value": ["x", "y", "x"]},
            {"op": "replace", "path": "/min_disk", "value": 2},
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["name"], "new");
    assert_eq!(r.body["k1"], "v1");
    assert_eq!(r.body["a/b"], "slash");
    assert!(r.body.get("k0").is_none());
    assert_eq!(r.body["tags"], json!(["x", "y"]));
    assert_eq!(r.body["min_disk"], 2);

    for path in ["/size", "/status", "/checksum", "/created_at", "/id"] {
        let r = patch(
            &app,
            &t,
            &id,
            json!([{"op": "replace", "path": path, "value": "x"}]),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
        assert!(r.text.contains("read-only"), "{}", r.text);
    }
    let r = patch(
        &app,
        &t,
        &id,
        json!([{"op": "replace", "path": "/nope", "value": "x"}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = patch(&app, &t, &id, json!([{"op": "remove", "path": "/nope"}])).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = patch(
        &app,
        &t,
        &id,
        json!([{"op": "replace", "path": "/disk_format", "value": "vhd9"}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = patch(
        &app,
        &t,
        &id,
        json!([{"op": "move", "path": "/name", "from": "/x"}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Only the admin publishes.
    let r = patch(
        &app,
        &t,
        &id,
        json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let admin = app.admin().await;
    let r = patch(
        &app,
        &admin,
        &id,
        json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A plain JSON body is not a patch.
    let r = app
        .call(
            Method::PATCH,
            &format!("/image/v2/images/{id}"),
            &[("x-auth-token", &t)],
            Some(json!([])),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // The failed patches changed nothing.
    let b = show(&app, &t, &id).await.body;
    assert_eq!(b["name"], "new");
    assert_eq!(b["status"], "queued");
}

#[tokio::test]
async fn members_accept_reject_and_visibility_across_projects() {
    let app = TestApp::new().await;
    let a = app.demo().await;
    let (_, pb, b) = app.user_with_role("bob", "member").await;
    let id = create_ok(&app, &a, json!({"name": "a-private", "visibility": "private", "disk_format": "raw", "container_format": "bare"})).await;
    let data = vec![7u8; 1000];
    assert_eq!(
        upload(&app, &a, &id, data.clone()).await.status,
        StatusCode::NO_CONTENT
    );

    // B sees nothing of A's private image.
    assert_eq!(show(&app, &b, &id).await.status, StatusCode::NOT_FOUND);
    let file = format!("/image/v2/images/{id}/file");
    assert_eq!(app.get(&file, Some(&b)).await.status, StatusCode::NOT_FOUND);
    let list = app.get("/image/v2/images", Some(&b)).await;
    assert_eq!(list.body["images"], json!([]));
    let r = patch(
        &app,
        &b,
        &id,
        json!([{"op": "replace", "path": "/name", "value": "mine"}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let members = format!("/image/v2/images/{id}/members");
    let ha = [("x-auth-token", a.as_str())];
    let hb = [("x-auth-token", b.as_str())];
    // Private images have no members.
    let r = app
        .call(Method::POST, &members, &ha, Some(json!({"member": pb})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    patch(
        &app,
        &a,
        &id,
        json!([{"op": "replace", "path": "/visibility", "value": "shared"}]),
    )
    .await;
    let r = app
        .call(Method::POST, &members, &ha, Some(json!({"member": pb})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["member_id"], pb.as_str());
    assert_eq!(r.body["image_id"], id.as_str());
    assert_eq!(r.body["schema"], "/v2/schemas/member");
    let r = app
        .call(Method::POST, &members, &ha, Some(json!({"member": pb})))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    // Pending: B can see it by id, but it is not in B's default list.
    assert_eq!(show(&app, &b, &id).await.status, StatusCode::OK);
    assert_eq!(
        app.get("/image/v2/images", Some(&b)).await.body["images"],
        json!([])
    );
    let r = app
        .get("/image/v2/images?member_status=pending", Some(&b))
        .await;
    assert_eq!(r.body["images"].as_array().map(Vec::len), Some(1));

    let mine = format!("{members}/{pb}");
    // Only B decides; the owner may not accept for it.
    let r = app
        .call(Method::PUT, &mine, &ha, Some(json!({"status": "accepted"})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .call(Method::PUT, &mine, &hb, Some(json!({"status": "accepted"})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "accepted");
    let list = app.get("/image/v2/images", Some(&b)).await;
    assert_eq!(list.body["images"][0]["id"], id.as_str());
    let r = app.get(&file, Some(&b)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text.len(), 1000);
    // B may read but not change, delete or share A's image.
    let r = patch(
        &app,
        &b,
        &id,
        json!([{"op": "replace", "path": "/name", "value": "mine"}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .call(Method::DELETE, &format!("/image/v2/images/{id}"), &hb, None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app.call(Method::DELETE, &mine, &hb, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The owner lists every member; B only itself.
    let r = app.call(Method::GET, &members, &ha, None).await;
    assert_eq!(r.body["members"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.body["schema"], "/v2/schemas/members");
    assert_eq!(
        app.call(Method::GET, &mine, &hb, None).await.status,
        StatusCode::OK
    );

    let r = app
        .call(Method::PUT, &mine, &hb, Some(json!({"status": "rejected"})))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        app.get("/image/v2/images", Some(&b)).await.body["images"],
        json!([])
    );
    let r = app
        .call(Method::PUT, &mine, &hb, Some(json!({"status": "maybe"})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let r = app.call(Method::DELETE, &mine, &ha, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(show(&app, &b, &id).await.status, StatusCode::NOT_FOUND);

    // Community images are visible to all by id and in visibility=community listings.
    patch(
        &app,
        &a,
        &id,
        json!([{"op": "replace", "path": "/visibility", "value": "community"}]),
    )
    .await;
    assert_eq!(show(&app, &b, &id).await.status, StatusCode::OK);
    assert_eq!(
        app.get("/image/v2/images", Some(&b)).await.body["images"],
        json!([])
    );
    let r = app
        .get("/image/v2/images?visibility=community", Some(&b))
        .await;
    assert_eq!(r.body["images"][0]["id"], id.as_str());
    // Creating a public image takes the admin.
    let r = create(&app, &b, json!({"name": "pub", "visibility": "public"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_formats_and_dangerous_images_are_refused() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let r = create(
        &app,
        &t,
        json!({"name": "x", "disk_format": "qcow3", "container_format": "bare"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = create(&app, &t, json!({"name": "x", "container_format": "box"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = create(&app, &t, json!({"name": "x", "size": 5})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = create(&app, &t, json!({"name": "x", "min_ram": -1})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = create(&app, &t, json!({"name": "x", "prop": 5})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Data needs both formats first; refused before a byte is read, the image stays queued.
    let id = create_ok(&app, &t, json!({"name": "noformat"})).await;
    assert_eq!(
        upload(&app, &t, &id, vec![1; 10]).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(show(&app, &t, &id).await.body["status"], "queued");
    assert_eq!(stored_files(&app), Vec::<String>::new());

    let dir = tempfile::tempdir().expect("tmp");
    qcow2(dir.path(), "base.qcow2", None);
    let overlay = qcow2(dir.path(), "ovl.qcow2", Some("base.qcow2"));
    let id = create_ok(
        &app,
        &t,
        json!({"name": "ovl", "disk_format": "qcow2", "container_format": "bare"}),
    )
    .await;
    let r = upload(&app, &t, &id, overlay).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("backing file"), "{}", r.text);
    assert_killed(&app, &t, &id).await;

    // Data that is not what the disk_format says.
    let id = create_ok(
        &app,
        &t,
        json!({"name": "liar", "disk_format": "qcow2", "container_format": "bare"}),
    )
    .await;
    let r = upload(&app, &t, &id, vec![0u8; 4096]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_killed(&app, &t, &id).await;
    let id = create_ok(
        &app,
        &t,
        json!({"name": "liar2", "disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    let r = upload(&app, &t, &id, qcow2(dir.path(), "plain.qcow2", None)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_killed(&app, &t, &id).await;

    // A killed image takes no more data.
    assert_eq!(
        upload(&app, &t, &id, vec![1; 10]).await.status,
        StatusCode::CONFLICT
    );
    let r = app
        .call_raw(
            Method::PUT,
            &format!("/image/v2/images/{id}/file"),
            &[("x-auth-token", &t), ("content-type", "application/json")],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn uploads_over_quota_are_refused_and_leave_nothing() {
    let app = TestApp::with_image_quota(10_000).await;
    let t = app.demo().await;
    let new = |name: &str| json!({"name": name, "disk_format": "raw", "container_format": "bare"});
    // Announced too big: refused before reading.
    let id = create_ok(&app, &t, new("big")).await;
    let r = upload(&app, &t, &id, vec![0; 20_000]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_killed(&app, &t, &id).await;

    // Streamed without a length: refused when the bytes pass the quota.
    let id = create_ok(&app, &t, new("stream")).await;
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        (0..10).map(|_| Ok(Bytes::from(vec![1u8; 3000]))).collect();
    let r = app
        .call_body(
            Method::PUT,
            &format!("/image/v2/images/{id}/file"),
            &[
                ("x-auth-token", &t),
                ("content-type", "application/octet-stream"),
            ],
            Body::from_stream(futures_util::stream::iter(chunks)),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_killed(&app, &t, &id).await;

    // What is stored counts: 6000 fit, 6000 more do not.
    let ok = create_ok(&app, &t, new("fits")).await;
    assert_eq!(
        upload(&app, &t, &ok, vec![2; 6000]).await.status,
        StatusCode::NO_CONTENT
    );
    let id = create_ok(&app, &t, new("over")).await;
    assert_eq!(
        upload(&app, &t, &id, vec![3; 6000]).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let r = show(&app, &t, &id).await;
    assert_eq!(r.body["status"], "killed");
    assert_eq!(stored_files(&app), vec![ok]);
}

#[tokio::test]
async fn an_upload_cut_midway_leaves_nothing() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let id = create_ok(
        &app,
        &t,
        json!({"name": "cut", "disk_format": "raw", "container_format": "bare"}),
    )
    .await;
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from(vec![1u8; 65536])),
        Ok(Bytes::from(vec![2u8; 65536])),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
        Ok(Bytes::from(vec![3u8; 65536])),
    ];
    let r = app
        .call_body(
            Method::PUT,
            &format!("/image/v2/images/{id}/file"),
            &[
                ("x-auth-token", &t),
                ("content-type", "application/octet-stream"),
            ],
            Body::from_stream(futures_util::stream::iter(chunks)),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_killed(&app, &t, &id).await;
    let r = app
        .get(&format!("/image/v2/images/{id}/file"), Some(&t))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn schemas_describe_images_and_members() {
    let app = TestApp::new().await;
    let t = app.demo().await;
    let r = app.get("/image/v2/schemas/image", Some(&t)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["name"], "image");
    assert_eq!(r.body["additionalProperties"]["type"], "string");
    assert_eq!(r.body["properties"]["size"]["readOnly"], true);
    let r = app.get("/image/v2/schemas/images", Some(&t)).await;
    assert_eq!(r.body["properties"]["images"]["items"]["name"], "image");
    for s in ["member", "members"] {
        let r = app.get(&format!("/image/v2/schemas/{s}"), Some(&t)).await;
        assert_eq!(r.body["name"], s);
    }
    assert_eq!(
        app.get("/image/v2/schemas/image", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = app.get("/image/v2/images/not-a-uuid", Some(&t)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text.contains("404 Not Found"));
}
