//! Pruning the rootfs cache over a data directory of plain directories and instance records,
//! without running a container: which unpacked images and leftovers go and which stay.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use container::cgroup::{Cgroup, Layout, Limits};
use container::rootfs;
use container::state::{self, Instance};

const DAY: Duration = Duration::from_secs(86400);

const A: &str = "0a000000-0000-4000-8000-000000000001";
const B: &str = "0b000000-0000-4000-8000-000000000002";
const C: &str = "0c000000-0000-4000-8000-000000000003";
const D: &str = "0d000000-0000-4000-8000-000000000004";
const S1: &str = "5e000000-0000-4000-8000-000000000001";
const S2: &str = "5e000000-0000-4000-8000-000000000002";
const VM: &str = "5e000000-0000-4000-8000-000000000003";

struct Dirs {
    tmp: tempfile::TempDir,
    cache: PathBuf,
    instances: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = tmp.path().join("cache").join("rootfs");
    let instances = tmp.path().join("instances");
    std::fs::create_dir_all(&cache).expect("cache");
    std::fs::create_dir_all(&instances).expect("instances");
    Dirs {
        tmp,
        cache,
        instances,
    }
}

fn set_age(p: &Path, ago: Duration) {
    std::fs::File::open(p)
        .and_then(|f| f.set_modified(SystemTime::now() - ago))
        .expect("set mtime");
}

fn age(p: &Path) -> Duration {
    let m = std::fs::metadata(p)
        .and_then(|m| m.modified())
        .expect("mtime");
    SystemTime::now().duration_since(m).unwrap_or_default()
}

/// An unpacked image: a small tree.
fn unpacked(d: &Dirs, id: &str) -> PathBuf {
    let root = d.cache.join(id);
    std::fs::create_dir_all(root.join("sbin")).expect("tree");
    std::fs::write(root.join("sbin").join("init"), b"#!/bin/sh\n").expect("init");
    root
}

/// The record the driver writes for a container on image `image_id` with lower layer `lower`.
fn instance(d: &Dirs, server: &str, image_id: &str, lower: &Path) {
    let dir = d.instances.join(server);
    std::fs::create_dir_all(&dir).expect("instance dir");
    let rec = Instance {
        id: server.into(),
        hostname: "c".into(),
        image_id: image_id.into(),
        lower: lower.to_path_buf(),
        init: vec!["/sbin/init".into()],
        cgroup: Cgroup::new(Layout::V2("/sys/fs/cgroup".into()), "onebox", server),
        limits: Limits {
            memory_bytes: 64 << 20,
            cpu_quota_us: None,
            cpu_period_us: 100_000,
            pids_max: 256,
        },
        nics: Vec::new(),
        nameservers: Vec::new(),
        console_max_bytes: 1 << 20,
        user_namespace: None,
        lower_shifted: false,
        boot: 1,
        forwarding: false,
        volumes: vec![],
    };
    state::write_json(&dir.join("instance.json"), &rec).expect("instance.json");
}

#[test]
fn only_unused_unpacked_images_older_than_the_minimum_age_are_removed() {
    let d = dirs();
    for id in [A, B, C, D] {
        unpacked(&d, id);
    }
    // A link inside an image to a directory outside the cache: removing the image removes
    // the link, never what it points to.
    let outside = d.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).expect("outside");
    std::fs::write(outside.join("keep"), b"x").expect("outside file");
    std::os::unix::fs::symlink(&outside, d.cache.join(C).join("escape")).expect("link");
    // A link in the cache itself is left alone.
    std::os::unix::fs::symlink(&outside, d.cache.join("link")).expect("link");
    // S1 uses A; S2's record names B as its lower layer (and some other image id). A VM's
    // directory has no record and uses nothing here.
    instance(&d, S1, A, &d.cache.join(A));
    instance(
        &d,
        S2,
        "ffffffff-0000-4000-8000-000000000000",
        &d.cache.join(B),
    );
    std::fs::create_dir_all(d.instances.join(VM)).expect("vm dir");
    std::fs::write(d.instances.join(VM).join("disk"), b"QFI\xfb").expect("vm disk");
    // Unpacks that died: two days ago and an hour ago.
    let old_tmp = d.cache.join(format!(".unpack-{D}-1"));
    let new_tmp = d.cache.join(format!(".unpack-{D}-2"));
    std::fs::create_dir_all(&old_tmp).expect("tmp");
    std::fs::create_dir_all(&new_tmp).expect("tmp");
    set_age(&old_tmp, 2 * DAY);
    set_age(&new_tmp, Duration::from_secs(3600));
    for id in [A, B, C] {
        set_age(&d.cache.join(id), 30 * DAY);
    }
    set_age(&d.cache.join(D), Duration::from_secs(3600));
    let swept =
        rootfs::prune_cache(&d.cache, &d.instances, Duration::from_secs(2 * 3600)).expect("prune");
    assert_eq!(swept.removed, vec![C.to_string()]);
    assert_eq!(swept.leftovers, vec![format!(".unpack-{D}-1")]);
    assert!(swept.failed.is_empty(), "{:?}", swept.failed);
    for id in [A, B, D] {
        assert!(
            d.cache.join(id).join("sbin/init").exists(),
            "{id} was removed"
        );
    }
    assert!(new_tmp.exists());
    assert!(outside.join("keep").exists());
    assert!(std::fs::symlink_metadata(d.cache.join("link")).is_ok());
    // S2 is deleted and S1 rebuilt on D: A and B go, D (in use) stays at any age.
    std::fs::remove_dir_all(d.instances.join(S2)).expect("delete");
    instance(&d, S1, D, &d.cache.join(D));
    set_age(&d.cache.join(D), 30 * DAY);
    let mut swept =
        rootfs::prune_cache(&d.cache, &d.instances, Duration::from_secs(2 * 3600)).expect("prune");
    swept.removed.sort();
    assert_eq!(swept.removed, vec![A.to_string(), B.into()]);
    assert!(d.cache.join(D).exists());
    // A record that cannot be read stops the prune: nothing is removed.
    std::fs::remove_dir_all(d.instances.join(S1)).expect("delete");
    std::fs::create_dir_all(d.instances.join(S2)).expect("dir");
    std::fs::write(d.instances.join(S2).join("instance.json"), b"{trunc").expect("bad json");
    assert!(rootfs::prune_cache(&d.cache, &d.instances, Duration::ZERO).is_err());
    assert!(d.cache.join(D).exists());
    std::fs::remove_dir_all(d.instances.join(S2)).expect("delete");
    let swept = rootfs::prune_cache(&d.cache, &d.instances, DAY).expect("prune");
    assert_eq!(swept.removed, vec![D.to_string()]);
}

/// A tarball of a tiny tree whose entries (the top directory too) are dated 2001.
fn old_tarball(path: &Path) {
    let f = std::fs::File::create(path).expect("tarball");
    let mut b = tar::Builder::new(f);
    for (name, dir) in [("./", true), ("./sbin/", true), ("./sbin/init", false)] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_mode(0o755);
        h.set_mtime(1_000_000_000);
        h.set_uid(0);
        h.set_gid(0);
        let body: &[u8] = if dir { b"" } else { b"#!/bin/sh\n" };
        h.set_size(body.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, name, body).expect("entry");
    }
    b.finish().expect("finish");
}

#[test]
fn using_an_unpacked_image_makes_it_young() {
    let d = dirs();
    let tarball = d.tmp.path().join("rootfs.tar");
    old_tarball(&tarball);
    let key = driver::imagecache::content_hash_of(&tarball).expect("hash");
    let limits = rootfs::UnpackLimits::default();
    // Freshly unpacked: used now, whatever the tarball says.
    let root = rootfs::ensure_unpacked(&d.cache, &key, &tarball, limits).expect("unpack");
    assert!(root.join("sbin/init").exists());
    assert!(age(&root) < Duration::from_secs(600), "{:?}", age(&root));
    assert!(
        rootfs::prune_cache(&d.cache, &d.instances, DAY)
            .expect("prune")
            .removed
            .is_empty()
    );
    // Found in the cache a month later: used now again.
    set_age(&root, 30 * DAY);
    let again = rootfs::ensure_unpacked(&d.cache, &key, &tarball, limits).expect("cached");
    assert_eq!(again, root);
    assert!(age(&root) < Duration::from_secs(600), "{:?}", age(&root));
    assert!(
        rootfs::prune_cache(&d.cache, &d.instances, DAY)
            .expect("prune")
            .removed
            .is_empty()
    );
    set_age(&root, 30 * DAY);
    assert_eq!(
        rootfs::prune_cache(&d.cache, &d.instances, DAY)
            .expect("prune")
            .removed,
        vec![key]
    );
}
