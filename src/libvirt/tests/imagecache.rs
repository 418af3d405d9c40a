//! Pruning the VM image cache over a data directory of real qcow2 files (made with
//! `qemu-img`), without libvirt: which bases, kernels and leftovers go and which stay.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use driver::ImageFile;
use driver_libvirt::disk::{self, Disks};

const DAY: Duration = Duration::from_secs(86400);

struct Dirs {
    _tmp: tempfile::TempDir,
    cache: PathBuf,
    instances: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = tmp.path().join("cache").join("images");
    let instances = tmp.path().join("instances");
    std::fs::create_dir_all(&cache).expect("cache");
    std::fs::create_dir_all(&instances).expect("instances");
    Dirs {
        _tmp: tmp,
        cache,
        instances,
    }
}

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img runs");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn base(d: &Dirs, id: &str) -> PathBuf {
    let p = d.cache.join(id);
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        p.to_str().expect("utf-8"),
        "1M",
    ]);
    p
}

/// An overlay at `instances/<server>/<name>` on `backing` (written as given).
fn overlay(d: &Dirs, server: &str, name: &str, backing: &str) -> PathBuf {
    let dir = d.instances.join(server);
    std::fs::create_dir_all(&dir).expect("instance dir");
    let p = dir.join(name);
    // Relative backing names are relative to the overlay's directory.
    let r = Command::new("qemu-img")
        .current_dir(&dir)
        .args(["create", "-q", "-f", "qcow2", "-b", backing, "-F", "qcow2"])
        .arg(&p)
        .output()
        .expect("qemu-img runs");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    p
}

fn set_age(p: &Path, ago: Duration) {
    std::fs::File::open(p)
        .and_then(|f| f.set_modified(SystemTime::now() - ago))
        .expect("set mtime");
}

fn present(d: &Dirs, name: &str) -> bool {
    d.cache.join(name).exists()
}

// Cache entries are named by content hash; these two are used through `Disks`.
const A: &str = "sha256-0a00000000000000000000000000000000000000000000000000000000000001";
const B: &str = "0b000000-0000-4000-8000-000000000002";
const C: &str = "0c000000-0000-4000-8000-000000000003";
const D: &str = "0d000000-0000-4000-8000-000000000004";
const E: &str = "0e000000-0000-4000-8000-000000000005";
const F: &str = "0f000000-0000-4000-8000-000000000006";
const KERNEL_XML: &str = "1a000000-0000-4000-8000-000000000007";
const KERNEL_FILE: &str = "sha256-1b00000000000000000000000000000000000000000000000000000000000008";
const RAMDISK_OLD: &str = "1c000000-0000-4000-8000-000000000009";
const S1: &str = "5e000000-0000-4000-8000-000000000001";
const S2: &str = "5e000000-0000-4000-8000-000000000002";
const S3: &str = "5e000000-0000-4000-8000-000000000003";

#[test]
fn the_header_names_the_backing_file_as_qemu_img_does() {
    let d = dirs();
    let b = base(&d, A);
    let o = overlay(&d, S1, "disk", b.to_str().expect("utf-8"));
    assert_eq!(disk::qcow2_backing_file(&o).expect("read"), Some(b.clone()));
    let out = Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(&o)
        .output()
        .expect("qemu-img info");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["backing-filename"], b.to_str().expect("utf-8"));
    // A base has none; neither has a file that is not qcow2.
    assert_eq!(disk::qcow2_backing_file(&b).expect("read"), None);
    let raw = d.instances.join("raw");
    std::fs::write(&raw, b"console output").expect("raw");
    assert_eq!(disk::qcow2_backing_file(&raw).expect("read"), None);
    std::fs::write(&raw, b"").expect("empty");
    assert_eq!(disk::qcow2_backing_file(&raw).expect("read"), None);
}

#[test]
fn only_unreferenced_bases_unused_for_the_minimum_age_are_removed() {
    let d = dirs();
    for id in [A, B, C, D, E, F] {
        base(&d, id);
    }
    for id in [KERNEL_XML, KERNEL_FILE, RAMDISK_OLD] {
        std::fs::write(d.cache.join(id), b"kernel").expect("kernel");
    }
    // A: a server's disk. B: only a resize's backup. C: a rescue disk (any file in the
    // instance directory counts). E: a relative backing name. F: behind an instance-local
    // overlay in a chain.
    overlay(&d, S1, "disk", d.cache.join(A).to_str().expect("utf-8"));
    overlay(&d, S2, "disk", d.cache.join(A).to_str().expect("utf-8"));
    overlay(
        &d,
        S2,
        "disk.resize-backup",
        d.cache.join(B).to_str().expect("utf-8"),
    );
    overlay(
        &d,
        S2,
        "disk.rescue",
        d.cache.join(C).to_str().expect("utf-8"),
    );
    overlay(&d, S3, "disk", &format!("../../cache/images/{E}"));
    let mid = overlay(
        &d,
        S3,
        "layer.qcow2",
        d.cache.join(F).to_str().expect("utf-8"),
    );
    // The chain's top lives outside the instance directory, so F is reached only through it.
    let outside = d.instances.parent().expect("data dir").join("top.qcow2");
    std::fs::rename(&mid, &outside).expect("move");
    overlay(&d, S3, "disk.top", outside.to_str().expect("utf-8"));
    // A kernel named by a definition in libvirt, one named by a kept definition file.
    std::fs::write(
        d.instances.join(S1).join("domain.resize-backup.xml"),
        format!(
            "<domain><os><kernel>{}</kernel></os></domain>",
            d.cache.join(KERNEL_FILE).display()
        ),
    )
    .expect("xml");
    let libvirt_def = format!(
        "<domain><os><kernel>{}</kernel><initrd>{}</initrd></os></domain>",
        d.cache.join(KERNEL_XML).display(),
        d.cache.join("missing").display()
    );
    // Leftovers of conversions: one that died two days ago, one of an hour ago.
    std::fs::write(d.cache.join(format!(".tmp-{D}-old")), b"x").expect("tmp");
    std::fs::write(d.cache.join(format!(".tmp-{D}-new")), b"x").expect("tmp");
    for id in [A, B, C, E, F, KERNEL_XML, KERNEL_FILE, RAMDISK_OLD] {
        set_age(&d.cache.join(id), 30 * DAY);
    }
    set_age(&d.cache.join(format!(".tmp-{D}-old")), 2 * DAY);
    set_age(
        &d.cache.join(format!(".tmp-{D}-new")),
        Duration::from_secs(3600),
    );
    // D: unreferenced and an hour old, younger than the minimum age.
    set_age(&d.cache.join(D), Duration::from_secs(3600));
    // The cache's lock is taken: through Disks, as the driver does.
    let disks = Disks::new("qemu-img".into(), "genisoimage".into(), d.cache.clone());
    let swept = disks
        .prune(&d.instances, &[libvirt_def], Duration::from_secs(2 * 3600))
        .expect("prune");
    assert_eq!(swept.removed, vec![RAMDISK_OLD.to_string()]);
    assert_eq!(swept.leftovers, vec![format!(".tmp-{D}-old")]);
    for id in [A, B, C, D, E, F, KERNEL_XML, KERNEL_FILE] {
        assert!(present(&d, id), "{id} was removed");
    }
    assert!(present(&d, &format!(".tmp-{D}-new")));
    // Server 2 is deleted: A stays for server 1; B and C go. Server 3 rebuilt on A: E and F
    // go. Without the definition, KERNEL_XML goes; D is still too young.
    std::fs::remove_dir_all(d.instances.join(S2)).expect("delete S2");
    std::fs::remove_dir_all(d.instances.join(S3)).expect("delete S3");
    overlay(&d, S3, "disk", d.cache.join(A).to_str().expect("utf-8"));
    let mut swept = disks
        .prune(&d.instances, &[], Duration::from_secs(2 * 3600))
        .expect("prune");
    swept.removed.sort();
    let mut want = vec![
        B.to_string(),
        C.into(),
        E.into(),
        F.into(),
        KERNEL_XML.into(),
    ];
    want.sort();
    assert_eq!(swept.removed, want);
    for id in [A, D, KERNEL_FILE] {
        assert!(present(&d, id), "{id} was removed");
    }
    // The instance-local overlay outside the instance directory was never touched.
    assert!(outside.exists());
    // With no instance left, A (last used 30 days ago) and the kernel go; D stays until it
    // is old enough.
    std::fs::remove_dir_all(&d.instances).expect("delete all");
    let swept = disks
        .prune(&d.instances, &[], Duration::from_secs(2 * 3600))
        .expect("prune");
    assert_eq!(swept.removed, vec![A.to_string(), KERNEL_FILE.into()]);
    assert!(present(&d, D));
    let swept = disks
        .prune(&d.instances, &[], Duration::from_secs(60))
        .expect("prune");
    assert_eq!(swept.removed, vec![D.to_string()]);
}

#[test]
fn a_spawn_that_uses_a_cached_base_makes_it_young() {
    let d = dirs();
    let b = base(&d, A);
    set_age(&b, 30 * DAY);
    std::fs::write(d.cache.join(KERNEL_FILE), b"kernel").expect("kernel");
    set_age(&d.cache.join(KERNEL_FILE), 30 * DAY);
    let disks = Disks::new("qemu-img".into(), "genisoimage".into(), d.cache.clone());
    let img = |key: &str| ImageFile {
        id: "0a000000-0000-4000-8000-000000000001".into(),
        // Never read: the entries are cached already.
        path: d.cache.join("no-such-image"),
        disk_format: "qcow2".into(),
        container_format: "bare".into(),
        content_hash: key.into(),
        properties: Default::default(),
    };
    assert_eq!(disks.base(&img(A)).expect("base"), b);
    assert_eq!(
        disks.blob(&img(KERNEL_FILE)).expect("blob"),
        d.cache.join(KERNEL_FILE)
    );
    let swept = disks.prune(&d.instances, &[], DAY).expect("prune");
    assert!(swept.removed.is_empty(), "{:?}", swept.removed);
    assert!(b.exists());
    // A hash that is not a plain name never reaches the file system.
    assert!(disks.base(&img("../x")).is_err());
    assert!(disks.base(&img("sha512-../../x")).is_err());
}

#[test]
fn an_unreadable_reference_removes_nothing() {
    let d = dirs();
    base(&d, A);
    set_age(&d.cache.join(A), 30 * DAY);
    // qcow2 magic with a backing-name size no qcow2 file has.
    let dir = d.instances.join(S1);
    std::fs::create_dir_all(&dir).expect("dir");
    let mut h = Vec::new();
    h.extend_from_slice(b"QFI\xfb");
    h.extend_from_slice(&3u32.to_be_bytes());
    h.extend_from_slice(&512u64.to_be_bytes());
    h.extend_from_slice(&4096u32.to_be_bytes());
    h.resize(8192, 0);
    std::fs::write(dir.join("disk"), h).expect("disk");
    let disks = Disks::new("qemu-img".into(), "genisoimage".into(), d.cache.clone());
    assert!(disks.prune(&d.instances, &[], DAY).is_err());
    assert!(present(&d, A));
}
