//! Block-storage volumes against real libvirt and QEMU: a raw volume attached to a running
//! guest shows up as a virtio disk carrying the volume id as its serial, the guest writes a
//! marker into it, the detach waits until the guest and QEMU let it go, and the marker is
//! in the volume's file on the host. Destroying the guest leaves the file. A second guest
//! defined with the volume reads the marker; detached and attached while shut off, only its
//! definition changes.
//!
//! Needs root and a libvirtd (`scripts/libvirtd.sh start`); skips otherwise, or fails when
//! `ONEBOX_REQUIRE_BACKENDS` is set.

mod common;

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use driver::{ComputeDriver, Volume};
use driver_libvirt::{LibvirtConfig, LibvirtDriver};

const BOOT: Duration = Duration::from_secs(120);
const VOLUME_ID: &str = "3c5e1d2a-7b8f-4c0d-9e1f-0a2b3c4d5e6f";
const MARKER: &str = "onebox-volume-marker-7f3a";

/// Waits for a disk whose serial is the volume id's first 20 characters, prints what it
/// holds, writes the marker when it holds none, and reports when the disk is gone.
fn script() -> String {
    format!(
        r#"#!/bin/sh
(
want={serial}
while :; do
    dev=""
    for s in /sys/block/vd*/serial; do
        [ "$(cat "$s" 2>/dev/null)" = "$want" ] && dev=$(basename "$(dirname "$s")")
    done
    if [ -n "$dev" ]; then
        echo "onebox-vol: found $dev"
        echo "onebox-vol: read=$(head -c {len} /dev/$dev | tr -d '\000')."
        if [ "$(head -c {len} /dev/$dev)" != "{MARKER}" ]; then
            printf '%s' "{MARKER}" | dd of=/dev/$dev bs=512 count=1 conv=notrunc,fsync 2>/dev/null
            sync
            echo "onebox-vol: wrote"
        fi
        while [ -e /sys/block/$dev ]; do sleep 1; done
        echo "onebox-vol: gone"
    fi
    sleep 1
done
) </dev/null >/dev/console 2>&1 &
"#,
        serial = &VOLUME_ID[..20],
        len = MARKER.len(),
    )
}

fn virsh(args: &[&str]) -> String {
    let out = std::process::Command::new("virsh")
        .args(["-q", "-c", "qemu:///system"])
        .args(args)
        .output()
        .expect("virsh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn count(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

fn wait_count(log: &Path, needle: &str, n: usize) {
    let end = std::time::Instant::now() + BOOT;
    while count(log, needle) < n {
        assert!(
            std::time::Instant::now() < end,
            "{needle:?} not seen {n} times; console:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether any QEMU process holds `path` open.
fn qemu_holds(path: &Path) -> bool {
    !driver::holders::holders(path, |p| driver::holders::cmdline(p).contains("qemu")).is_empty()
}

/// Destroys the guests even when the test fails, and removes the bridges they made.
struct Cleanup<'a>(
    &'a LibvirtDriver,
    Vec<model::compute::ServerId>,
    Vec<String>,
);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for id in &self.1 {
            let _ = self.0.destroy(id);
        }
        for b in &self.2 {
            let _ = hostnet::delete_link(b);
        }
    }
}

#[test]
fn a_volume_moves_between_guests_with_its_data_and_outlives_them() {
    if !common::available() {
        return;
    }
    let data = tempfile::Builder::new()
        .prefix("onebox-volumes-")
        .tempdir()
        .expect("tempdir");
    let store = tempfile::Builder::new()
        .prefix("onebox-volstore-")
        .tempdir()
        .expect("tempdir");
    let file = store.path().join("volume-1");
    let st = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "raw"])
        .arg(&file)
        .arg("64M")
        .status()
        .expect("qemu-img");
    assert!(st.success());
    let mut cfg = LibvirtConfig::new(data.path().to_path_buf());
    cfg.shutdown_timeout = Duration::from_secs(10);
    let d = LibvirtDriver::connect(cfg).expect("connect to libvirt");
    let vol = Volume {
        volume_id: VOLUME_ID.into(),
        path: file.clone(),
        format: "raw".into(),
        device: "/dev/vdb".into(),
        ..Default::default()
    };
    let user_data = base64::engine::general_purpose::STANDARD.encode(script());

    let mut a = common::spec(7);
    a.user_data = Some(user_data.clone());
    a.config_drive = true;
    let mut b = common::spec(7);
    b.user_data = Some(user_data);
    b.config_drive = true;
    b.ports[0].address = "10.213.7.11".into();
    b.ports[0].mac = "fa:16:3e:aa:01:07".into();
    b.volumes = vec![vol.clone()];
    let br = hostnet::bridge_name(&a.ports[0].network_id);
    let _guard = Cleanup(&d, vec![a.id.clone(), b.id.clone()], vec![br]);

    // Attached to a running guest: in both definitions, with the id as serial; the guest
    // finds it by that serial and writes the marker.
    d.spawn(&a).expect("spawn");
    let log = d.console_log(&a.id);
    common::wait_console(&log, "user-data-exit=0", BOOT);
    let dom = driver_libvirt::domain_name_of(&a.id);
    let mut with = a.clone();
    with.volumes.push(vol.clone());
    d.attach_volume(&with, &vol).expect("attach");
    let live = virsh(&["dumpxml", &dom]);
    assert!(
        live.contains(&format!("<serial>{VOLUME_ID}</serial>")),
        "{live}"
    );
    assert!(live.contains(&format!("<source file='{}'", file.display())));
    assert!(virsh(&["dumpxml", "--inactive", &dom]).contains(VOLUME_ID));
    common::wait_console(&log, "onebox-vol: found vdb", BOOT);
    common::wait_console(&log, "onebox-vol: wrote", BOOT);
    // Attaching again changes nothing.
    d.attach_volume(&with, &vol).expect("attach again");
    assert_eq!(virsh(&["dumpxml", &dom]).matches(VOLUME_ID).count(), 1);
    // Extended online: the file grows, QEMU is told, the guest's disk has the new capacity.
    let grown = std::fs::metadata(&file).expect("file").len() + (64 << 20);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .and_then(|f| f.set_len(grown))
        .expect("grow");
    d.extend_volume(&with, &vol, grown).expect("extend");
    let info = virsh(&["domblkinfo", &dom, "vdb"]);
    assert!(info.contains(&format!("Capacity:       {grown}")), "{info}");

    // Detached: gone from the guest and both definitions, no QEMU holds the file, and the
    // marker is in it.
    d.detach_volume(&a, &vol).expect("detach");
    assert!(!virsh(&["dumpxml", &dom]).contains(VOLUME_ID));
    assert!(!virsh(&["dumpxml", "--inactive", &dom]).contains(VOLUME_ID));
    assert!(!qemu_holds(&file), "QEMU still holds the volume");
    common::wait_console(&log, "onebox-vol: gone", BOOT);
    let bytes = std::fs::read(&file).expect("volume");
    assert_eq!(&bytes[..MARKER.len()], MARKER.as_bytes());
    d.detach_volume(&a, &vol).expect("detach again");

    // Destroying a guest with the volume attached leaves the volume's file alone.
    d.attach_volume(&with, &vol).expect("attach for destroy");
    d.destroy(&a.id).expect("destroy");
    assert!(file.exists(), "destroy removed the volume's file");
    assert_eq!(std::fs::metadata(&file).expect("volume").len(), grown);
    assert!(!qemu_holds(&file));

    // A guest defined with the volume boots with it and reads the marker.
    d.spawn(&b).expect("spawn with the volume");
    let log = d.console_log(&b.id);
    common::wait_console(&log, &format!("onebox-vol: read={MARKER}."), BOOT);
    assert_eq!(count(&log, "onebox-vol: wrote"), 0);
    let dom = driver_libvirt::domain_name_of(&b.id);

    // Shut off: detach and attach change the definition only, and the volume is back at
    // the next start.
    d.power_off(&b.id).expect("stop");
    assert!(!qemu_holds(&file));
    let mut without = b.clone();
    without.volumes.clear();
    d.detach_volume(&without, &vol)
        .expect("detach while shut off");
    assert!(!virsh(&["dumpxml", "--inactive", &dom]).contains(VOLUME_ID));
    d.attach_volume(&b, &vol).expect("attach while shut off");
    assert!(virsh(&["dumpxml", "--inactive", &dom]).contains(VOLUME_ID));
    d.power_on(&b.id).expect("start");
    wait_count(&log, &format!("onebox-vol: read={MARKER}."), 2);

    d.destroy(&b.id).expect("destroy");
    assert!(file.exists());
    assert!(!qemu_holds(&file));
}

#[test]
fn a_server_without_an_image_boots_from_its_qcow2_volume() {
    if !common::available() {
        return;
    }
    let data = tempfile::Builder::new()
        .prefix("onebox-bfv-")
        .tempdir()
        .expect("tempdir");
    let store = tempfile::Builder::new()
        .prefix("onebox-bfvstore-")
        .tempdir()
        .expect("tempdir");
    let (_, _, disk) = common::guest();
    let file = store.path().join("boot-volume");
    std::fs::copy(&disk, &file).expect("copying the guest's disk into a volume");
    let mut cfg = LibvirtConfig::new(data.path().to_path_buf());
    cfg.shutdown_timeout = Duration::from_secs(10);
    let d = LibvirtDriver::connect(cfg).expect("connect to libvirt");
    let mut s = common::spec(8);
    s.image = None;
    s.volumes = vec![Volume {
        volume_id: "9a8b7c6d-0000-4000-8000-0000000000bf".into(),
        path: file.clone(),
        format: "qcow2".into(),
        device: "/dev/vda".into(),
        boot_index: Some(0),
        ..Default::default()
    }];
    let br = hostnet::bridge_name(&s.ports[0].network_id);
    let _guard = Cleanup(&d, vec![s.id.clone()], vec![br]);
    d.spawn(&s).expect("spawn from the volume");
    // The guest finds its root disk (the volume's file system) as vda.
    common::wait_console(&d.console_log(&s.id), "root-disk=/dev/vda", BOOT);
    let dom = driver_libvirt::domain_name_of(&s.id);
    let def = virsh(&["dumpxml", "--inactive", &dom]);
    assert!(
        def.contains(&format!("<source file='{}'", file.display())),
        "{def}"
    );
    assert!(def.contains("<boot order='1'/>"), "{def}");
    assert!(def.contains("type='qcow2'"), "{def}");
    assert!(
        !data
            .path()
            .join("instances")
            .join(s.id.as_str())
            .join("disk")
            .exists(),
        "a volume-backed server has no disk of its own"
    );
    d.destroy(&s.id).expect("destroy");
    assert!(file.exists(), "destroy removed the boot volume");
    assert!(!qemu_holds(&file));
}
