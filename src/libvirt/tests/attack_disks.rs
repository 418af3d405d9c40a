//! The VM image cache against hostile images, over real files and real `qemu-img` (no
//! libvirt): entries are keyed by content hash and checked against it, and a conversion
//! that runs too long or writes too much is killed and leaves nothing behind.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use driver::ImageFile;
use driver_libvirt::disk::Disks;

const ID: &str = "6c1d1c3e-5f7a-4b39-9d2e-0a0b0c0d0e0f";

fn raw(dir: &Path, name: &str, byte: u8) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, vec![byte; 1 << 20]).expect("write");
    p
}

fn file(path: &Path, disk_format: &str) -> ImageFile {
    common::image(ID, path, disk_format, "bare")
}

/// The cache's entries, leftovers of fills included.
fn entries(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(cache)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A stand-in for qemu-img: `info` is the real one, `convert` runs `convert_body` (a shell
/// fragment; `$out` is the output file).
fn fake_qemu_img(dir: &Path, convert_body: &str) -> String {
    let p = dir.join("qemu-img");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\nif [ \"$1\" = convert ]; then\n  for a; do out=$a; done\n  {convert_body}\nfi\nexec qemu-img \"$@\"\n"
        ),
    )
    .expect("script");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p.to_string_lossy().into_owned()
}

#[test]
fn attack_an_id_reused_with_other_content_never_gets_the_cached_base() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cache = tmp.path().join("cache");
    let disks = Disks::new("qemu-img".into(), "genisoimage".into(), cache.clone());
    let good = raw(tmp.path(), "good", 0x11);
    let evil = raw(tmp.path(), "evil", 0x66);
    let a = disks.base(&file(&good, "raw")).expect("base");
    // The same id with other content: another entry, converted from its own data.
    let b = disks.base(&file(&evil, "raw")).expect("base");
    assert_ne!(a, b);
    let ok = std::process::Command::new("qemu-img")
        .args(["compare", "-q", "-f", "raw", "-F", "qcow2"])
        .arg(&evil)
        .arg(&b)
        .status()
        .expect("compare")
        .success();
    assert!(ok, "the second base does not hold the second image's data");
    // Data that does not match the hash it claims never fills an entry, not even one named
    // by that hash.
    let mut liar = file(&evil, "raw");
    liar.content_hash = common::content_hash(&good);
    std::fs::remove_file(&a).expect("drop the good entry");
    assert!(disks.base(&liar).is_err());
    let mut blob = file(&evil, "aki");
    blob.content_hash = common::content_hash(&good);
    assert!(disks.blob(&blob).is_err());
    assert_eq!(
        entries(&cache),
        vec![b.file_name().expect("name").to_string_lossy().into_owned()]
    );
    // No hash, no cache entry.
    let mut none = file(&good, "raw");
    none.content_hash = String::new();
    assert!(disks.base(&none).is_err());
}

#[test]
fn attack_a_conversion_that_never_ends_is_killed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cache = tmp.path().join("cache");
    let tool = fake_qemu_img(tmp.path(), ": > \"$out\"; exec sleep 60");
    let mut disks = Disks::new(tool, "genisoimage".into(), cache.clone());
    disks.convert_timeout = Duration::from_secs(1);
    let img = raw(tmp.path(), "img", 0x22);
    let t = Instant::now();
    let e = disks.base(&file(&img, "raw")).expect_err("killed");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert!(e.to_string().contains("killed after"), "{e}");
    assert_eq!(entries(&cache), Vec::<String>::new());
}

#[test]
fn attack_a_conversion_that_writes_without_end_is_stopped() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cache = tmp.path().join("cache");
    // 1 MiB of image may take about 65 MiB of qcow2; this writes 256 MiB.
    let tool = fake_qemu_img(
        tmp.path(),
        "exec dd if=/dev/zero of=\"$out\" bs=1M count=256 status=none",
    );
    let disks = Disks::new(tool, "genisoimage".into(), cache.clone());
    let img = raw(tmp.path(), "img", 0x33);
    let e = disks.base(&file(&img, "raw")).expect_err("stopped");
    assert!(e.to_string().contains("output passed"), "{e}");
    assert_eq!(entries(&cache), Vec::<String>::new());
}

#[test]
fn attack_an_image_larger_than_the_cache_has_room_for_is_refused_before_converting() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cache = tmp.path().join("cache");
    let img = tmp.path().join("huge.qcow2");
    let ok = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&img)
        .arg("1P")
        .status()
        .expect("qemu-img")
        .success();
    assert!(ok);
    // A conversion would write zeros for a petabyte; it must never start.
    let tool = fake_qemu_img(tmp.path(), "echo converted > \"$out.started\"; exit 1");
    let disks = Disks::new(tool, "genisoimage".into(), cache.clone());
    let e = disks.base(&file(&img, "qcow2")).expect_err("refused");
    assert!(e.to_string().contains("are free"), "{e}");
    assert_eq!(entries(&cache), Vec::<String>::new());
}
