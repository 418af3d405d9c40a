//! Root filesystem tarballs against the rootfs cache, over real files (no container runs):
//! a tar bomb, in bytes or in inodes, fails cleanly and leaves nothing; an entry only ever
//! holds the content its hash names.

use std::io::Write;
use std::path::{Path, PathBuf};

use container::rootfs::{self, UnpackLimits};
use driver::imagecache::content_hash_of;

fn header(size: u64, dir: bool) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_000_000_000);
    h.set_cksum();
    h
}

/// A gzip tarball with `/sbin/init` and whatever `more` appends.
fn tarball(
    path: &Path,
    more: impl FnOnce(&mut tar::Builder<flate2::write::GzEncoder<std::fs::File>>),
) {
    let f = std::fs::File::create(path).expect("create");
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    b.append_data(&mut header(0, true), "sbin", std::io::empty())
        .expect("dir");
    let init = b"#!/bin/sh\n";
    b.append_data(
        &mut header(init.len() as u64, false),
        "sbin/init",
        &init[..],
    )
    .expect("init");
    more(&mut b);
    b.into_inner()
        .expect("tar")
        .finish()
        .expect("gzip")
        .flush()
        .expect("flush");
}

/// Everything in the cache directory, leftovers of unpacks included.
fn cache_entries(cache: &Path) -> Vec<String> {
    std::fs::read_dir(cache)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

struct Dirs {
    tmp: tempfile::TempDir,
    cache: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().expect("tmp");
    let cache = tmp.path().join("cache");
    Dirs { tmp, cache }
}

const LIMITS: UnpackLimits = UnpackLimits {
    max_bytes: 16 << 20,
    max_inodes: 1000,
};

#[test]
fn attack_a_tar_bomb_in_bytes_fails_cleanly() {
    let d = dirs();
    let bomb = d.tmp.path().join("bomb.tar.gz");
    // 64 MiB of zeros: a few hundred KiB compressed, four times the limit unpacked.
    tarball(&bomb, |b| {
        let size = 64u64 << 20;
        b.append_data(
            &mut header(size, false),
            "zeros",
            std::io::repeat(0).take_bytes(size),
        )
        .expect("zeros");
    });
    assert!(std::fs::metadata(&bomb).expect("meta").len() < 4 << 20);
    let key = content_hash_of(&bomb).expect("hash");
    let e = rootfs::ensure_unpacked(&d.cache, &key, &bomb, LIMITS).expect_err("a bomb");
    assert!(e.contains("more than"), "{e}");
    assert_eq!(cache_entries(&d.cache), Vec::<String>::new());
}

#[test]
fn attack_a_tar_bomb_in_inodes_fails_cleanly() {
    let d = dirs();
    let bomb = d.tmp.path().join("inodes.tar.gz");
    tarball(&bomb, |b| {
        for i in 0..5000 {
            b.append_data(&mut header(0, false), format!("f{i}"), std::io::empty())
                .expect("file");
        }
    });
    let key = content_hash_of(&bomb).expect("hash");
    let e = rootfs::ensure_unpacked(&d.cache, &key, &bomb, LIMITS).expect_err("a bomb");
    assert!(e.contains("more than 1000 entries"), "{e}");
    assert_eq!(cache_entries(&d.cache), Vec::<String>::new());
    // The same tree within the limits unpacks.
    let roomy = UnpackLimits {
        max_bytes: 16 << 20,
        max_inodes: 10_000,
    };
    let root = rootfs::ensure_unpacked(&d.cache, &key, &bomb, roomy).expect("unpack");
    assert!(root.join("f4999").exists() && root.join("sbin/init").exists());
}

#[test]
fn attack_a_cache_entry_never_holds_other_content_than_its_hash() {
    let d = dirs();
    let good = d.tmp.path().join("good.tar.gz");
    let evil = d.tmp.path().join("evil.tar.gz");
    tarball(&good, |_| {});
    tarball(&evil, |b| {
        let body = b"poisoned\n";
        b.append_data(
            &mut header(body.len() as u64, false),
            "etc-marker",
            &body[..],
        )
        .expect("marker");
    });
    let good_key = content_hash_of(&good).expect("hash");
    let evil_key = content_hash_of(&evil).expect("hash");
    // Unpacked under the good image's hash, the evil tarball is refused: an image whose id
    // (or claimed hash) is another's still gets only its own content.
    let e = rootfs::ensure_unpacked(&d.cache, &good_key, &evil, LIMITS).expect_err("mismatch");
    assert!(e.contains("does not match"), "{e}");
    assert_eq!(cache_entries(&d.cache), Vec::<String>::new());
    let g = rootfs::ensure_unpacked(&d.cache, &good_key, &good, LIMITS).expect("good");
    let v = rootfs::ensure_unpacked(&d.cache, &evil_key, &evil, LIMITS).expect("evil");
    assert_ne!(g, v);
    assert!(!g.join("etc-marker").exists());
    assert!(v.join("etc-marker").exists());
    // Keys that are no plain names never reach the file system.
    assert!(rootfs::ensure_unpacked(&d.cache, "../x", &good, LIMITS).is_err());
}

trait TakeBytes: std::io::Read + Sized {
    fn take_bytes(self, n: u64) -> std::io::Take<Self> {
        std::io::Read::take(self, n)
    }
}
impl<R: std::io::Read> TakeBytes for R {}
