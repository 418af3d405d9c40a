//! Tenant isolation of images and disks, tried as a project member would through the API:
//! another project's private image as one's kernel or ramdisk, an image far larger than the
//! flavor's disk, the id of a deleted image brought back with other content, a backup
//! rotation reaching another project's images, VMDK descriptors naming host files, and
//! snapshots written at a full quota.

mod common;

use axum::http::{Method, StatusCode};
use common::{Resp, TestApp, assert_compute_fault};
use driver::Operation;
use serde_json::{Value, json};

const GIB: u64 = 1 << 30;

/// One caller of the image and compute APIs.
struct Caller<'a> {
    app: &'a TestApp,
    token: String,
}

impl Caller<'_> {
    async fn glance(&self, m: Method, path: &str, body: Option<Value>) -> Resp {
        self.app
            .call(
                m,
                &format!("/image/v2{path}"),
                &[("x-auth-token", &self.token)],
                body,
            )
            .await
    }

    async fn nova(&self, m: Method, path: &str, body: Option<Value>) -> Resp {
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

    /// Creates an image with `body` and uploads `data` into it; returns its id.
    async fn image(&self, body: Value, data: Vec<u8>) -> String {
        let r = self.glance(Method::POST, "/images", Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id = r.body["id"].as_str().expect("id").to_owned();
        let r = self.upload(&id, data).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
        id
    }

    async fn upload(&self, id: &str, data: Vec<u8>) -> Resp {
        self.app
            .call_raw(
                Method::PUT,
                &format!("/image/v2/images/{id}/file"),
                &[
                    ("x-auth-token", &self.token),
                    ("content-type", "application/octet-stream"),
                ],
                Some(data),
            )
            .await
    }

    async fn create_server(&self, image: &str, flavor: &str) -> Resp {
        let r = self
            .nova(
                Method::POST,
                "/servers",
                Some(
                    json!({"server": {"name": "s", "imageRef": image, "flavorRef": flavor,
                                       "networks": "none"}}),
                ),
            )
            .await;
        self.app.compute.idle().await;
        r
    }

    async fn server_ok(&self, image: &str, flavor: &str) -> String {
        let r = self.create_server(image, flavor).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
        r.body["server"]["id"].as_str().expect("id").to_owned()
    }

    async fn act(&self, id: &str, body: Value) -> Resp {
        let r = self
            .nova(Method::POST, &format!("/servers/{id}/action"), Some(body))
            .await;
        self.app.compute.idle().await;
        r
    }
}

/// A raw disk image: `n` bytes.
fn raw(n: usize) -> Vec<u8> {
    vec![0x5a; n]
}

fn raw_image(name: &str) -> Value {
    json!({"name": name, "disk_format": "raw", "container_format": "bare"})
}

/// A qcow2 file of virtual size `size` (qemu-img's notation), a few hundred KiB on disk.
fn qcow2(size: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("big.qcow2");
    let ok = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&p)
        .arg(size)
        .status()
        .expect("qemu-img")
        .success();
    assert!(ok);
    std::fs::read(&p).expect("read")
}

#[tokio::test]
async fn attack_another_projects_private_kernel_cannot_be_linked() {
    let app = TestApp::with_glance(1 << 30).await;
    let victim = Caller {
        app: &app,
        token: app.demo().await,
    };
    let (_, attacker_project, t) = app.user_with_role("attacker", "member").await;
    let demo = Caller {
        app: &app,
        token: t,
    };
    // The victim's private kernel and ramdisk.
    let kernel = victim
        .image(
            json!({"name": "k", "disk_format": "aki", "container_format": "aki",
                   "visibility": "private"}),
            b"secret kernel".to_vec(),
        )
        .await;
    let ramdisk = victim
        .image(
            json!({"name": "r", "disk_format": "ari", "container_format": "ari",
                   "visibility": "private"}),
            b"secret ramdisk".to_vec(),
        )
        .await;
    // The attacker's own image, linking to them.
    let mut body = raw_image("mine");
    body["ramdisk_id"] = json!(ramdisk);
    let linked = demo.image(body, raw(1 << 20)).await;
    let r = demo.create_server(&linked, "1").await;
    assert_compute_fault(&r, 400, "badRequest");
    assert_eq!(
        r.body["badRequest"]["message"],
        format!("Image {ramdisk} could not be found."),
        "{}",
        r.text
    );
    let mut body = raw_image("mine2");
    body["kernel_id"] = json!(kernel);
    let linked_k = demo.image(body, raw(1 << 20)).await;
    let r = demo.create_server(&linked_k, "1").await;
    assert_eq!(
        r.body["badRequest"]["message"],
        format!("Image {kernel} could not be found."),
        "{}",
        r.text
    );
    // Rebuild and rescue with it are refused the same way; no backend ever saw the data.
    let plain = demo.image(raw_image("plain"), raw(1 << 20)).await;
    let server = demo.server_ok(&plain, "1").await;
    let r = demo
        .act(&server, json!({"rebuild": {"imageRef": linked_k}}))
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    assert!(r.text.contains(&kernel), "{}", r.text);
    let r = demo
        .act(&server, json!({"rescue": {"rescue_image_ref": linked}}))
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    let sid = model::compute::ServerId::parse(&server).expect("sid");
    let spec = app.driver.spec_of(&sid).expect("spec");
    assert!(spec.kernel.is_none() && spec.ramdisk.is_none());
    // Shared with the attacker (and so visible to it), the same kernel may be linked.
    let r = app
        .call_raw(
            Method::PATCH,
            &format!("/image/v2/images/{kernel}"),
            &[
                ("x-auth-token", &victim.token),
                (
                    "content-type",
                    "application/openstack-images-v2.1-json-patch",
                ),
            ],
            Some(
                json!([{"op": "replace", "path": "/visibility", "value": "shared"}])
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = victim
        .glance(
            Method::POST,
            &format!("/images/{kernel}/members"),
            Some(json!({"member": attacker_project})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let shared = demo.server_ok(&linked_k, "1").await;
    let sid = model::compute::ServerId::parse(&shared).expect("sid");
    let spec = app.driver.spec_of(&sid).expect("spec");
    assert_eq!(spec.kernel.expect("kernel").id, kernel);
    // Shelved (its snapshot inherits kernel_id) and then no longer shared with: it cannot
    // come back on the kernel it lost.
    let r = demo.act(&shared, json!({"shelve": null})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let r = victim
        .glance(
            Method::DELETE,
            &format!("/images/{kernel}/members/{attacker_project}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = demo.act(&shared, json!({"unshelve": null})).await;
    assert_compute_fault(&r, 400, "badRequest");
    assert_eq!(
        r.body["badRequest"]["message"],
        format!("Image {kernel} could not be found."),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn attack_an_image_larger_than_the_flavor_disk_is_refused() {
    let app = TestApp::with_glance(1 << 30).await;
    let demo = Caller {
        app: &app,
        token: app.demo().await,
    };
    // 50 TiB of virtual disk in a few hundred KiB of qcow2, on a 1 GiB flavor.
    let bomb = demo
        .image(
            json!({"name": "bomb", "disk_format": "qcow2", "container_format": "bare"}),
            qcow2("50T"),
        )
        .await;
    let r = demo.create_server(&bomb, "1").await;
    assert_compute_fault(&r, 400, "badRequest");
    assert_eq!(
        r.body["badRequest"]["message"],
        format!(
            "Flavor's disk is too small for requested image. Flavor disk is {} bytes, image is {} bytes.",
            GIB,
            50u64 << 40
        ),
        "{}",
        r.text
    );
    // Rebuild onto it is refused alike.
    let plain = demo.image(raw_image("plain"), raw(1 << 20)).await;
    let server = demo.server_ok(&plain, "1").await;
    let r = demo
        .act(&server, json!({"rebuild": {"imageRef": bomb}}))
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    assert!(r.text.contains("Flavor's disk is too small"), "{}", r.text);
    // A disk=0 flavor is no way around it: members may not use one for an image-backed
    // server (Nova's default zero_disk_flavor policy) ...
    let admin = Caller {
        app: &app,
        token: app.admin().await,
    };
    let r = admin
        .nova(
            Method::POST,
            "/flavors",
            Some(
                json!({"flavor": {"name": "zero", "id": "zero", "ram": 128, "vcpus": 1,
                                   "disk": 0}}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = demo.create_server(&bomb, "zero").await;
    assert_compute_fault(&r, 403, "forbidden");
    // ... and an admin's is capped at [compute] zero_disk_max_gb.
    let big = admin
        .image(
            json!({"name": "big", "disk_format": "qcow2", "container_format": "bare",
                   "visibility": "public"}),
            qcow2("10G"),
        )
        .await;
    let r = admin.create_server(&bomb, "zero").await;
    assert_compute_fault(&r, 400, "badRequest");
    // Resize from disk=0 to a disk smaller than the image is refused too.
    let zero = admin.server_ok(&big, "zero").await;
    let r = admin
        .act(&zero, json!({"resize": {"flavorRef": "1"}}))
        .await;
    assert_compute_fault(&r, 400, "badRequest");
    assert!(
        r.text.contains("Flavor disk is 1073741824 bytes"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn attack_a_deleted_image_id_cannot_come_back() {
    let app = TestApp::with_glance(1 << 30).await;
    let demo = Caller {
        app: &app,
        token: app.demo().await,
    };
    let id = "6c1d1c3e-5f7a-4b39-9d2e-0a0b0c0d0e0f";
    let mut body = raw_image("good");
    body["id"] = json!(id);
    demo.image(body.clone(), raw(1 << 20)).await;
    let server = demo.server_ok(id, "1").await;
    let r = demo
        .glance(Method::DELETE, &format!("/images/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    // Glance keeps a deleted id reserved: the same id with other content is refused, so
    // nothing that names the id (a server, a cache) can be handed other data.
    let r = demo.glance(Method::POST, "/images", Some(body)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let admin = app.admin().await;
    let r = app
        .call(
            Method::POST,
            "/image/v2/images",
            &[("x-auth-token", &admin)],
            Some(json!({"id": id, "name": "again", "disk_format": "raw",
                        "container_format": "bare"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let r = demo
        .act(&server, json!({"rebuild": {"imageRef": id}}))
        .await;
    assert_compute_fault(&r, 400, "badRequest");
}

#[tokio::test]
async fn attack_backup_rotation_never_counts_another_projects_images() {
    let app = TestApp::with_glance(1 << 30).await;
    let demo = Caller {
        app: &app,
        token: app.demo().await,
    };
    let (_, _, t) = app.user_with_role("other", "member").await;
    let other = Caller {
        app: &app,
        token: t,
    };
    let plain = demo.image(raw_image("plain"), raw(1 << 20)).await;
    let server = demo.server_ok(&plain, "1").await;
    let backup = |rotation: u32| {
        json!({"createBackup": {"name": "b", "backup_type": "daily",
                                                         "rotation": rotation}})
    };
    // Another project's image dressed up as a backup of the demo server, made before any
    // real one (the oldest: what rotation deletes first).
    let mut fake = raw_image("not-a-backup");
    for (k, v) in [
        ("instance_uuid", server.as_str()),
        ("image_type", "backup"),
        ("backup_type", "daily"),
    ] {
        fake[k] = json!(v);
    }
    let decoy = other.image(fake.clone(), raw(4096)).await;
    let r = demo.act(&server, backup(2)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let first = r.body["image_id"].as_str().expect("id").to_owned();
    // A newer decoy would push the demo project's own backup out of a rotation of 2.
    let decoy2 = other.image(fake, raw(4096)).await;
    let r = demo.act(&server, backup(2)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let second = r.body["image_id"].as_str().expect("id").to_owned();
    for id in [&first, &second] {
        let r = demo
            .glance(Method::GET, &format!("/images/{id}"), None)
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "own backup {id} rotated out: {}",
            r.text
        );
        assert_eq!(r.body["status"], "active", "{}", r.text);
    }
    // An admin's backup of the server, rotating down to 1, deletes the demo project's older
    // backup and never the other project's images.
    let admin = Caller {
        app: &app,
        token: app.admin().await,
    };
    let r = admin.act(&server, backup(1)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    for id in [&decoy, &decoy2] {
        let r = other
            .glance(Method::GET, &format!("/images/{id}"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "decoy {id} deleted: {}", r.text);
    }
    let r = demo
        .glance(Method::GET, &format!("/images/{first}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
}

#[tokio::test]
async fn attack_vmdk_descriptor_naming_a_host_file_is_refused() {
    let app = TestApp::new().await;
    let demo = Caller {
        app: &app,
        token: app.demo().await,
    };
    let descriptor = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n\
        createType=\"monolithicFlat\"\n\nRW 8 FLAT \"/etc/hostname\" 0\n\n\
        ddb.virtualHWVersion = \"4\"\nddb.adapterType = \"ide\"\n";
    let r = demo
        .glance(
            Method::POST,
            "/images",
            Some(json!({"name": "flat", "disk_format": "vmdk", "container_format": "bare"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().expect("id").to_owned();
    let r = demo.upload(&id, descriptor.as_bytes().to_vec()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("refers to other files"), "{}", r.text);
    let r = demo
        .glance(Method::GET, &format!("/images/{id}"), None)
        .await;
    assert_eq!(r.body["status"], "killed", "{}", r.text);
    // A self-contained VMDK is still welcome.
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("ok.vmdk");
    assert!(
        std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "vmdk"])
            .arg(&p)
            .arg("1M")
            .status()
            .expect("qemu-img")
            .success()
    );
    demo.image(
        json!({"name": "sparse", "disk_format": "vmdk", "container_format": "bare"}),
        std::fs::read(&p).expect("read"),
    )
    .await;
}

#[tokio::test]
async fn attack_a_snapshot_at_a_full_quota_writes_no_scratch_data() {
    let app = TestApp::with_glance(2 << 20).await;
    let demo = Caller {
        app: &app,
        token: app.demo().await,
    };
    // The whole quota in one image.
    let plain = demo.image(raw_image("plain"), raw(2 << 20)).await;
    let server = demo.server_ok(&plain, "1").await;
    // A driver snapshot would fail loudly: the event must say the quota stopped it first.
    app.driver.set_failing(Operation::Snapshot, true);
    let r = demo
        .act(&server, json!({"createImage": {"name": "snap"}}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let admin = app.admin().await;
    let list = app
        .call(
            Method::GET,
            &format!("/compute/v2.1/servers/{server}/os-instance-actions"),
            &[
                ("x-auth-token", &admin),
                ("openstack-api-version", "compute 2.84"),
            ],
            None,
        )
        .await;
    let req = list.body["instanceActions"]
        .as_array()
        .expect("actions")
        .iter()
        .find(|a| a["action"] == "createImage")
        .expect("createImage")["request_id"]
        .as_str()
        .expect("req")
        .to_owned();
    let r = app
        .call(
            Method::GET,
            &format!("/compute/v2.1/servers/{server}/os-instance-actions/{req}"),
            &[
                ("x-auth-token", &admin),
                ("openstack-api-version", "compute 2.84"),
            ],
            None,
        )
        .await;
    let ev = &r.body["instanceAction"]["events"][0];
    assert_eq!(ev["result"], "Error", "{}", r.text);
    let details = ev["details"].as_str().unwrap_or_default();
    assert!(details.contains("quota"), "{}", r.text);
    assert!(!details.contains("fake driver"), "{}", r.text);
    let scratch: Vec<_> = std::fs::read_dir(app.data_dir.path().join("images"))
        .expect("images")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-snapshot"))
        .collect();
    assert!(scratch.is_empty());
}
