//! What the VM tests share: whether the machine can run them, the tiny guest, and specs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use driver::{ImageFile, InstanceSpec, Port};
use model::compute::ServerId;

/// Whether a missing prerequisite fails the test (CI) instead of skipping it.
pub fn required() -> bool {
    std::env::var_os("ONEBOX_REQUIRE_BACKENDS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Skips (returns false) or fails when the machine cannot run VMs: root, a libvirtd that
/// answers on qemu:///system, QEMU.
pub fn available() -> bool {
    let why = if !nix::unistd::geteuid().is_root() {
        Some("not root")
    } else if virt::connect::Connect::open(Some("qemu:///system")).is_err() {
        Some("libvirtd does not answer on qemu:///system (scripts/libvirtd.sh start)")
    } else if std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_err()
    {
        Some("qemu-system-x86_64 is missing (scripts/setup.sh)")
    } else {
        None
    };
    match why {
        None => true,
        Some(w) if required() => panic!("VM backend prerequisites missing: {w}"),
        Some(w) => {
            eprintln!("skipped: {w}");
            false
        }
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The tiny guest (`firmware/build-guest.sh`), built when missing: (vmlinux, initrd, qcow2).
pub fn guest() -> (PathBuf, PathBuf, PathBuf) {
    let build = repo().join("firmware/build");
    let files = [
        build.join("onebox-tiny.vmlinux"),
        build.join("onebox-tiny.initrd"),
        build.join("onebox-tiny.qcow2"),
    ];
    if !files.iter().all(|f| f.exists()) {
        let st = std::process::Command::new(repo().join("firmware/build-guest.sh"))
            .status()
            .expect("running firmware/build-guest.sh");
        assert!(st.success(), "firmware/build-guest.sh failed");
    }
    let [k, r, d] = files;
    (k, r, d)
}

pub fn image(id: &str, path: &Path, disk: &str, container: &str) -> ImageFile {
    ImageFile {
        id: id.into(),
        path: path.to_path_buf(),
        disk_format: disk.into(),
        container_format: container.into(),
        content_hash: content_hash(path),
        properties: BTreeMap::new(),
    }
}

/// The content hash the image service records for the file at `path`.
pub fn content_hash(path: &Path) -> String {
    use sha2::Digest;
    let data = std::fs::read(path).expect("reading an image");
    let hex: String = sha2::Sha512::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha512-{hex}")
}

/// A spec booting the tiny guest with one port on `net` (`10.213.<n>.0/24`).
pub fn spec(net: u8) -> InstanceSpec {
    let (k, r, d) = guest();
    let id = ServerId::generate();
    let short = &id.as_str()[..6];
    InstanceSpec {
        id: id.clone(),
        name: format!("vmtest-{short}"),
        hostname: format!("vmtest-{short}"),
        project_id: "p".into(),
        vcpus: 1,
        ram_mb: 128,
        disk_gb: 1,
        flavor_name: "tiny".into(),
        image_id: Some("test-tiny".into()),
        image: Some(image("test-tiny-disk", &d, "qcow2", "bare")),
        kernel: Some(image("test-tiny-kernel", &k, "aki", "aki")),
        ramdisk: Some(image("test-tiny-ramdisk", &r, "ari", "ari")),
        ports: vec![Port {
            network_id: format!("00000000-0000-4000-8000-0000000002{net:02x}"),
            network_name: "test".into(),
            cidr: format!("10.213.{net}.0/24"),
            gateway: format!("10.213.{net}.1"),
            address: format!("10.213.{net}.10"),
            mac: format!("fa:16:3e:aa:00:{net:02x}"),
            ..Default::default()
        }],
        ..InstanceSpec::default()
    }
}

/// Waits until the console log holds a line containing `needle`; returns the log.
pub fn wait_console(log: &Path, needle: &str, timeout: Duration) -> String {
    let end = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        if Instant::now() > end {
            panic!("{needle:?} not on the console within {timeout:?}; console:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
