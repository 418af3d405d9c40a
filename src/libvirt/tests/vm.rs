//! The VM backend against real libvirt and QEMU: the tiny guest boots, every action's effect
//! (rescue and unrescue too) is checked from libvirt and from the guest's serial console, the
//! conformance suite passes, and nothing (domains, bridges, taps, dnsmasq, files) is left
//! behind.
//!
//! Needs root and a libvirtd (`scripts/libvirtd.sh start`); skips otherwise, or fails when
//! `ONEBOX_REQUIRE_BACKENDS` is set. One test function: the steps share bridges and a
//! libvirtd, and two guests at once would only slow each other down on a small machine.

mod common;

use std::time::Duration;

use base64::Engine;
use driver::{ComputeDriver, RebootKind};
use driver_libvirt::{LibvirtConfig, LibvirtDriver, VirtType};
use model::compute::PowerState;
use sha2::Digest;

const BOOT: Duration = Duration::from_secs(120);

fn count(log: &std::path::Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

fn wait_count(log: &std::path::Path, needle: &str, n: usize) {
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

fn virsh(args: &[&str]) -> String {
    let out = std::process::Command::new("virsh")
        .args(["-q", "-c", "qemu:///system"])
        .args(args)
        .output()
        .expect("virsh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Leftovers {
    data: tempfile::TempDir,
}

impl Leftovers {
    /// Nothing of the test's is left: no onebox domain of ours, no bridge, no dnsmasq, no
    /// instance files.
    fn check(&self, ids: &[&model::compute::ServerId], bridges: &[String]) {
        let all = virsh(&["list", "--all", "--name"]);
        for id in ids {
            assert!(!all.contains(id.as_str()), "domain of {id} left in libvirt");
            assert!(
                !self
                    .data
                    .path()
                    .join("instances")
                    .join(id.as_str())
                    .exists(),
                "files of {id} left"
            );
        }
        for b in bridges {
            assert!(
                !std::path::Path::new("/sys/class/net").join(b).exists(),
                "bridge {b} left"
            );
        }
        let dhcp = self.data.path().join("dhcp");
        let left: Vec<_> = std::fs::read_dir(&dhcp)
            .map(|r| r.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "DHCP state left: {left:?}");
    }
}

#[test]
fn vm_backend_on_real_libvirt() {
    if !common::available() {
        return;
    }
    common::guest();
    let data = tempfile::Builder::new()
        .prefix("onebox-vmtest-")
        .tempdir()
        .expect("tempdir");
    let mut cfg = LibvirtConfig::new(data.path().to_path_buf());
    cfg.shutdown_timeout = Duration::from_secs(30);
    let d = LibvirtDriver::connect(cfg).expect("connect to libvirt");
    assert_eq!(
        d.virt_type(),
        VirtType::detect(),
        "virtualisation chosen at start-up"
    );
    let left = Leftovers { data };
    // Lifecycle events, as the compute service hears them.
    let (events_tx, events) = std::sync::mpsc::channel::<model::compute::ServerId>();
    let events_tx = std::sync::Mutex::new(events_tx);
    assert!(
        d.watch(std::sync::Arc::new(move |id: &model::compute::ServerId| {
            let _ = events_tx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send(id.clone());
        }))
    );
    let event_for = |id: &model::compute::ServerId, what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match events.recv_timeout(left) {
                Ok(got) if &got == id => return,
                Ok(_) => {}
                Err(_) => panic!("no lifecycle event for {what}"),
            }
        }
    };

    // 1. A guest with a key, user data and a config drive boots and reads them.
    let mut s = common::spec(1);
    let script = "#!/bin/sh\necho onebox-test: user-data ran\n";
    s.user_data = Some(base64::engine::general_purpose::STANDARD.encode(script));
    s.key_name = Some("k1".into());
    s.key_data = Some("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnebox test@onebox".into());
    s.config_drive = true;
    let id = s.id.clone();
    let bridge = hostnet::bridge_name(&s.ports[0].network_id);
    let guard = Cleanup(&d, vec![id.clone()]);
    d.spawn(&s).expect("spawn");
    let log = d.console_log(&id);
    let text = common::wait_console(&log, "onebox-guest: ready", BOOT);
    assert!(text.contains("onebox-guest: booted"), "{text}");
    assert!(
        text.contains("onebox-guest: ip=10.213.1.10"),
        "DHCP address: {text}"
    );
    assert!(text.contains("onebox-guest: config=config-drive"), "{text}");
    assert!(
        text.contains(&format!("onebox-guest: uuid={id}")),
        "meta_data.json uuid: {text}"
    );
    assert!(
        text.contains(
            "onebox-guest: public-key=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnebox test@onebox"
        ),
        "{text}"
    );
    let sha = hex::encode(sha2::Sha256::digest(script.as_bytes()));
    assert!(
        text.contains(&format!("onebox-guest: user-data-sha256={sha}")),
        "{text}"
    );
    assert!(text.contains("onebox-test: user-data ran"), "{text}");
    assert!(text.contains(&format!("onebox-guest: hostname={}", s.hostname)));

    // libvirt's view: the domain, its UUID, SMBIOS, the bridge and its dnsmasq.
    let name = driver_libvirt::domain_name_of(&id);
    let xml = virsh(&["dumpxml", &name]);
    assert!(xml.contains(&format!("<uuid>{id}</uuid>")));
    assert!(xml.contains("<entry name='product'>OpenStack Compute</entry>"));
    assert!(xml.contains(&format!("<source bridge='{bridge}'/>")));
    assert!(virsh(&["domstate", &name]).contains("running"));
    event_for(&id, "the start");
    while events.try_recv().is_ok() {}
    // A pause from outside onebox is heard at once, not at the next sync.
    virsh(&["suspend", &name]);
    event_for(&id, "a pause from outside");
    assert_eq!(
        d.get_info(&id).expect("info").power_state,
        PowerState::Paused
    );
    virsh(&["resume", &name]);
    event_for(&id, "a resume from outside");
    assert!(
        std::path::Path::new("/sys/class/net")
            .join(&bridge)
            .exists()
    );

    // 2. Every action, seen from libvirt and from the console.
    let boots = |n| wait_count(&log, "onebox-guest: ready", n);
    d.power_off(&id).expect("power off");
    assert!(virsh(&["domstate", &name]).contains("shut off"));
    assert!(
        count(&log, "onebox-guest: power-button") >= 1,
        "the guest saw the ACPI power button"
    );
    d.power_on(&id).expect("power on");
    boots(2);
    d.reboot(&id, RebootKind::Soft).expect("soft reboot");
    boots(3);
    assert_eq!(
        count(&log, "onebox-guest: power-button"),
        2,
        "soft reboot is ACPI"
    );
    d.reboot(&id, RebootKind::Hard).expect("hard reboot");
    boots(4);
    assert_eq!(
        count(&log, "onebox-guest: power-button"),
        2,
        "hard reboot is not"
    );

    d.pause(&id).expect("pause");
    assert!(virsh(&["domstate", &name]).contains("paused"));
    assert_eq!(
        d.get_info(&id).expect("info").power_state,
        PowerState::Paused
    );
    d.unpause(&id).expect("unpause");
    assert!(virsh(&["domstate", &name]).contains("running"));

    d.suspend(&id).expect("suspend");
    assert!(virsh(&["domstate", &name]).contains("shut off"));
    assert!(virsh(&["dominfo", &name]).contains("Managed save:   yes"));
    assert_eq!(
        d.get_info(&id).expect("info").power_state,
        PowerState::Suspended
    );
    d.resume(&id).expect("resume");
    assert!(virsh(&["domstate", &name]).contains("running"));
    // Resumed from memory, not booted again: the guest still answers with the same boot.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        count(&log, "onebox-guest: booted"),
        4,
        "resume does not reboot"
    );

    // Resize grows the disk (never shrinks it) and changes memory and CPUs; revert undoes it.
    let disk = left
        .data
        .path()
        .join("instances")
        .join(id.as_str())
        .join("disk");
    let vsize = || {
        let out = std::process::Command::new("qemu-img")
            .args(["info", "-U", "--output=json", "-f", "qcow2"])
            .arg(&disk)
            .output()
            .expect("qemu-img");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v["virtual-size"].as_u64().expect("size")
    };
    assert_eq!(vsize(), 1 << 30, "overlay grown to the flavor's disk");
    let mut big = s.clone();
    big.vcpus = 2;
    big.ram_mb = 192;
    big.disk_gb = 2;
    d.resize(&big).expect("resize");
    assert_eq!(vsize(), 2 << 30);
    assert!(virsh(&["dominfo", &name]).contains("CPU(s):         2"));
    boots(5);
    d.revert_resize(&s).expect("revert");
    assert_eq!(vsize(), 1 << 30, "revert restores the disk");
    assert!(virsh(&["dominfo", &name]).contains("CPU(s):         1"));
    boots(6);
    d.resize(&big).expect("resize again");
    d.confirm_resize(&id).expect("confirm");
    let mut small = s.clone();
    small.disk_gb = 1;
    small.vcpus = 2;
    small.ram_mb = 192;
    d.resize(&small).expect("resize to a smaller disk");
    assert_eq!(vsize(), 2 << 30, "a disk never shrinks");
    d.confirm_resize(&id).expect("confirm");
    boots(8);

    // Snapshot: a standalone qcow2 while the guest keeps running.
    let snap = left.data.path().join("snap.qcow2");
    let r = d.snapshot(&id, &snap).expect("snapshot");
    assert_eq!(r.disk_format, "qcow2");
    let info = std::process::Command::new("qemu-img")
        .args(["info", "--output=json", "-f", "qcow2"])
        .arg(&snap)
        .output()
        .expect("qemu-img");
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).expect("json");
    assert!(
        v.get("backing-filename").is_none(),
        "the snapshot stands alone"
    );
    assert!(virsh(&["domstate", &name]).contains("running"));

    // Rebuild: a fresh disk, the same identity; the console starts again.
    let mut again = small.clone();
    again.name = "rebuilt".into();
    again.config_drive = false;
    d.rebuild(&again).expect("rebuild");
    let text = common::wait_console(&log, "onebox-guest: ready", BOOT);
    assert_eq!(text.matches("onebox-guest: booted").count(), 1, "{text}");
    assert!(virsh(&["domuuid", &name]).contains(id.as_str()));

    // Rescue: the guest boots again, from a fresh `disk.rescue` of the rescue image as vda
    // with its own disk second (vdb), and reads the rescue's config drive, which carries the
    // rescue password. Unrescue: one disk again, the rescue's files gone, a new boot.
    // The driver names files under the canonical data directory.
    let inst = std::fs::canonicalize(left.data.path())
        .expect("data dir")
        .join("instances")
        .join(id.as_str());
    let disk_targets = |xml: &str| -> Vec<(String, String)> {
        xml.split("<disk ")
            .skip(1)
            .filter(|d| d.contains("device='disk'"))
            .map(|d| {
                let attr = |start: &str| {
                    d.split(start)
                        .nth(1)
                        .and_then(|r| r.split('\'').next())
                        .unwrap_or("")
                        .to_owned()
                };
                (attr("<source file='"), attr("<target dev='"))
            })
            .collect()
    };
    let mut rs = again.clone();
    rs.config_drive = true;
    let rescue = driver::RescueImage {
        image_id: rs.image_id.clone().unwrap_or_default(),
        image: rs.image.clone(),
        kernel: rs.kernel.clone(),
        ramdisk: rs.ramdisk.clone(),
    };
    d.rescue(&rs, &rescue, "rescue-pw-7f3a").expect("rescue");
    wait_count(&log, "onebox-guest: ready", 2);
    assert!(virsh(&["domstate", &name]).contains("running"));
    assert_eq!(
        d.get_info(&id).expect("info").power_state,
        PowerState::Running
    );
    let disks = disk_targets(&virsh(&["dumpxml", &name]));
    assert_eq!(
        disks,
        vec![
            (
                inst.join("disk.rescue").display().to_string(),
                "vda".to_owned()
            ),
            (inst.join("disk").display().to_string(), "vdb".to_owned()),
        ],
        "the rescue disk first, the server's own second"
    );
    let rescue_text = std::fs::read_to_string(&log).unwrap_or_default();
    let second_boot = rescue_text
        .rsplit("onebox-guest: booted")
        .next()
        .unwrap_or("");
    assert!(
        second_boot.contains("onebox-guest: config=config-drive"),
        "the rescue boot read its config drive: {rescue_text}"
    );
    let iso = std::fs::read(inst.join("config.rescue.iso")).expect("rescue config drive");
    assert!(
        iso.windows(14).any(|w| w == b"rescue-pw-7f3a"),
        "the rescue password is on the rescue's config drive"
    );
    assert!(inst.join("domain.rescue-backup.xml").exists());
    let backing = std::process::Command::new("qemu-img")
        .args(["info", "-U", "--output=json", "-f", "qcow2"])
        .arg(inst.join("disk.rescue"))
        .output()
        .expect("qemu-img");
    let v: serde_json::Value = serde_json::from_slice(&backing.stdout).expect("json");
    assert!(
        v["backing-filename"]
            .as_str()
            .is_some_and(|b| b.contains("cache")),
        "disk.rescue is an overlay on the cached base: {v}"
    );
    d.unrescue(&again).expect("unrescue");
    wait_count(&log, "onebox-guest: ready", 3);
    assert!(virsh(&["domstate", &name]).contains("running"));
    let disks = disk_targets(&virsh(&["dumpxml", &name]));
    assert_eq!(
        disks,
        vec![(inst.join("disk").display().to_string(), "vda".to_owned())],
        "one disk again"
    );
    for f in [
        "disk.rescue",
        "domain.rescue-backup.xml",
        "config.rescue.iso",
    ] {
        assert!(!inst.join(f).exists(), "{f} left after unrescue");
    }

    let diag = d.diagnostics(&id).expect("diagnostics");
    assert_eq!(diag.num_cpus, 2);
    assert_eq!(diag.nics.len(), 1);
    assert!(
        diag.nics[0].rx_packets > 0,
        "the NIC carried the DHCP exchange"
    );
    let out = d.console_output(&id, Some(2)).expect("console");
    assert!(out.lines().count() <= 2);
    let res = d.available_resources().expect("resources");
    assert!(res.vcpus > 0 && res.memory_mb > 0 && res.local_gb > 0);

    d.destroy(&id).expect("destroy");
    drop(guard);
    left.check(&[&id], std::slice::from_ref(&bridge));

    // 3. The conformance suite every driver passes. It stops guests before they have booted
    // far enough to answer the power button, so the ACPI wait is kept short.
    let mut cfg = LibvirtConfig::new(left.data.path().to_path_buf());
    cfg.shutdown_timeout = Duration::from_secs(3);
    let d = LibvirtDriver::connect(cfg).expect("connect to libvirt");
    let s2 = common::spec(2);
    let id2 = s2.id.clone();
    let bridge2 = hostnet::bridge_name(&s2.ports[0].network_id);
    driver::conformance::run(&d, s2);
    left.check(&[&id2], &[bridge2]);
}

struct Cleanup<'a>(&'a LibvirtDriver, Vec<model::compute::ServerId>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for id in &self.1 {
            let _ = self.0.destroy(id);
        }
    }
}
