//! Block-storage volumes in containers against the real kernel, as root: a raw file
//! attached to a running container is mounted at `/mnt/<volume id>` (a fresh volume gets
//! an ext4 file system owned by the container's root), the container writes a marker and
//! plants symbolic links, the detach leaves no mount and no loop device and the marker is
//! in the file, and destroy leaves the file. A second container, booted with the volume,
//! reads the marker and cannot remount it `dev`, open a device node on it or reach the
//! host through the links; its own symbolic link as a mount path is refused. Runs with and
//! without a user namespace. Skipped with a message without root, unless
//! ONEBOX_REQUIRE_BACKENDS=1.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Env, SERIAL, wait_until};
use driver::{ComputeDriver, RebootKind, Volume};

const MARKER: &str = "onebox-volume-marker-5c1e";

fn script(volume_id: &str) -> String {
    format!(
        r#"#!/bin/sh
m=/mnt/{volume_id}
t() {{ n=$1; shift; if "$@" >/dev/null 2>&1; then echo "ATTACK $n ESCAPED"; else echo "ATTACK $n refused"; fi; }}
ln -s /etc /mnt/evil 2>/dev/null
trap 'exit 0' TERM
echo "vol: booted"
while :; do
    while ! grep -q " $m " /proc/self/mountinfo; do sleep 0.1; done
    echo "vol: mounted owner=$(stat -c %u:%g $m) read=$(cat $m/marker 2>/dev/null)."
    if [ "$(hostname)" = vol-a ]; then
        echo {MARKER} > $m/marker && sync && echo "vol: wrote"
        ln -s /etc $m/etc-link && ln -s /etc/passwd $m/passwd-link && echo "vol: planted"
    else
        t remount-dev mount -o remount,dev,suid $m
        t bind-over-etc mount --bind $m /etc
        t open-node head -c 1 $m/nullnode
        echo x > $m/etc-link/onebox-vol-probe
    fi
    echo "vol: done"
    while grep -q " $m " /proc/self/mountinfo; do sleep 0.1; done
    echo "vol: gone"
done
"#
    )
}

fn raw_file(dir: &Path, name: &str, mib: u64) -> PathBuf {
    let f = dir.join(name);
    let file = std::fs::File::create(&f).expect("volume file");
    file.set_len(mib << 20).expect("size");
    f
}

/// The loop devices backed by `file`.
fn loops(file: &Path) -> String {
    let out = Command::new("losetup")
        .args(["-n", "-O", "NAME", "-j"])
        .arg(file)
        .output()
        .expect("losetup");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `f` with the volume's file system mounted on the host (a loop mount of its own).
fn on_host<T>(file: &Path, f: impl FnOnce(&Path) -> T) -> T {
    let dir = tempfile::tempdir().expect("tempdir");
    let st = Command::new("mount")
        .args(["-o", "loop"])
        .arg(file)
        .arg(dir.path())
        .status()
        .expect("mount");
    assert!(st.success(), "mounting the volume on the host");
    let r = f(dir.path());
    let st = Command::new("umount")
        .arg(dir.path())
        .status()
        .expect("umount");
    assert!(st.success());
    r
}

/// Detaches loop devices of the test's files even when it fails.
struct Files(Vec<PathBuf>);

impl Drop for Files {
    fn drop(&mut self) {
        for f in &self.0 {
            for l in loops(f).lines() {
                let _ = Command::new("losetup").args(["-d", l.trim()]).status();
            }
        }
    }
}

fn console(env: &Env, id: &model::compute::ServerId) -> String {
    env.d().console_output(id, None).unwrap_or_default()
}

fn wait_for(env: &Env, id: &model::compute::ServerId, needle: &str, n: usize) -> String {
    assert!(
        wait_until(Duration::from_secs(30), || console(env, id)
            .matches(needle)
            .count()
            >= n),
        "{needle:?} {n} times:\n{}",
        console(env, id)
    );
    console(env, id)
}

fn run(userns: bool) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::can_run() {
        return;
    }
    let mut env = Env::new(if userns { "vol" } else { "volroot" });
    let store = tempfile::tempdir().expect("tempdir");
    let file = raw_file(store.path(), "volume-1", 64);
    let other = raw_file(store.path(), "volume-2", 16);
    let _files = Files(vec![file.clone(), other.clone()]);
    let volume_id = format!(
        "7d2c5e1a-{:04x}-4000-8000-00000000000b",
        std::process::id() & 0xffff
    );
    let vol = Volume {
        volume_id: volume_id.clone(),
        path: file.clone(),
        format: "raw".into(),
        device: "/dev/vdb".into(),
        ..Default::default()
    };
    // The init of the test image runs the script.
    let cache = env.cfg.data_dir.join("cache").join("rootfs");
    let key = env.image.cache_key().expect("hash");
    let lower = container::rootfs::ensure_unpacked(
        &cache,
        &key,
        &env.image.path,
        container::rootfs::UnpackLimits::default(),
    )
    .expect("unpack");
    std::fs::write(lower.join("vol.sh"), script(&volume_id)).expect("script");
    env.image
        .properties
        .insert(container::INIT_PROPERTY.into(), "/bin/sh /vol.sh".into());
    let mut a = env.spec("vol-a");
    let mut b = env.spec("vol-b");
    if !userns {
        for s in [&mut a, &mut b] {
            s.extra_specs
                .insert(container::USERNS_EXTRA_SPEC.into(), "false".into());
        }
    }
    let data = env.cfg.data_dir.to_string_lossy().into_owned();
    let host_mounts = || std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");

    // Attached to a running container: a fresh file system, the container's root owns it.
    env.d().spawn(&a).expect("spawn a");
    env.observe(&a.id);
    wait_for(&env, &a.id, "vol: booted", 1);
    let mut with = a.clone();
    with.volumes.push(vol.clone());
    env.d().attach_volume(&with, &vol).expect("attach");
    let out = wait_for(&env, &a.id, "vol: done", 1);
    assert!(out.contains("vol: mounted owner=0:0 read=."), "{out}");
    assert!(
        out.contains("vol: wrote") && out.contains("vol: planted"),
        "{out}"
    );
    assert!(!loops(&file).is_empty(), "a loop device backs the volume");
    env.d().attach_volume(&with, &vol).expect("attach again");
    let pid = env.d().init_pid(&a.id).expect("init");
    let inside = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let line = inside
        .lines()
        .find(|l| l.contains(&format!(" /mnt/{volume_id} ")))
        .expect("mounted inside");
    assert!(line.contains("nosuid") && line.contains("nodev"), "{line}");
    assert_eq!(inside.matches(&volume_id).count(), 1, "{inside}");

    // Detached: gone inside, no staging mount, no loop device; the marker is in the file.
    env.d().detach_volume(&a, &vol).expect("detach");
    wait_for(&env, &a.id, "vol: gone", 1);
    assert!(
        loops(&file).is_empty(),
        "loop device left: {}",
        loops(&file)
    );
    assert!(!host_mounts().contains(&format!("volumes/{volume_id}")));
    env.d().detach_volume(&a, &vol).expect("detach again");
    let marker = on_host(&file, |m| {
        // A device node the next container must not be able to use (nodev): the host's
        // null device, which the device allow-list would let it open.
        nix::sys::stat::mknod(
            &m.join("nullnode"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .expect("mknod");
        assert!(
            std::fs::symlink_metadata(m.join("etc-link"))
                .expect("planted link")
                .file_type()
                .is_symlink()
        );
        std::fs::read_to_string(m.join("marker")).expect("marker")
    });
    assert_eq!(marker.trim(), MARKER);

    // Destroy with the volume attached leaves the file and holds nothing.
    env.d()
        .attach_volume(&with, &vol)
        .expect("attach for destroy");
    wait_for(&env, &a.id, "vol: mounted", 2);
    env.d().destroy(&a.id).expect("destroy a");
    assert_eq!(
        std::fs::metadata(&file).expect("volume kept").len(),
        64 << 20
    );
    assert!(loops(&file).is_empty(), "loop device left after destroy");
    assert!(
        !host_mounts().contains(&data),
        "a mount of the data directory is left"
    );

    // Booted with the volume: mounted before init runs; the attacks fail.
    b.volumes = vec![vol.clone()];
    env.d().spawn(&b).expect("spawn b");
    env.observe(&b.id);
    let out = wait_for(&env, &b.id, "vol: done", 1);
    assert!(
        out.contains(&format!("vol: mounted owner=0:0 read={MARKER}.")),
        "{out}"
    );
    for a in ["remount-dev", "bind-over-etc", "open-node"] {
        assert!(out.contains(&format!("ATTACK {a} refused")), "{a}:\n{out}");
    }
    assert!(
        !Path::new("/etc/onebox-vol-probe").exists(),
        "the host's /etc was written"
    );
    // A snapshot holds the container's files, not the volume's.
    let snap = store.path().join("snap.tar");
    env.d().snapshot(&b.id, &snap).expect("snapshot");
    let names: Vec<String> = tar::Archive::new(std::fs::File::open(&snap).expect("snapshot"))
        .entries()
        .expect("entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(names.iter().any(|n| n.contains("vol.sh")), "{names:?}");
    assert!(names.iter().any(|n| n.contains(&volume_id)), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("marker")), "{names:?}");
    // A mount path that is a symbolic link inside the container is refused.
    let evil = Volume {
        volume_id: format!("{volume_id}-2"),
        path: other.clone(),
        format: "raw".into(),
        mount_path: "/mnt/evil".into(),
        ..Default::default()
    };
    let mut with_evil = b.clone();
    with_evil.volumes.push(evil.clone());
    let e = env
        .d()
        .attach_volume(&with_evil, &evil)
        .expect_err("a symbolic link as mount path");
    assert!(e.to_string().contains("not a directory"), "{e}");
    assert!(
        loops(&other).is_empty(),
        "the refused attach left a loop device"
    );
    let pid = env.d().init_pid(&b.id).expect("init");
    let inside = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    assert!(!inside.contains(" /etc "), "{inside}");
    // Read-only at a path of its own (the refused attach left it a file system).
    let ro = Volume {
        mount_path: "/data/ro".into(),
        read_only: true,
        ..evil.clone()
    };
    let mut with_ro = b.clone();
    with_ro.volumes.push(ro.clone());
    env.d()
        .attach_volume(&with_ro, &ro)
        .expect("attach read-only");
    let inside = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let line = inside
        .lines()
        .find(|l| l.contains(" /data/ro "))
        .expect("mounted read-only");
    assert!(line.contains(" ro,"), "{line}");
    env.d().detach_volume(&b, &ro).expect("detach read-only");
    assert!(loops(&other).is_empty());

    // A reboot keeps it; a detach and attach of the running container move it.
    env.d().reboot(&b.id, RebootKind::Hard).expect("reboot");
    env.observe(&b.id);
    wait_for(&env, &b.id, "vol: done", 2);
    // A process inside using the volume makes the detach fail, and change nothing.
    let pid = env.d().init_pid(&b.id).expect("init");
    let mut user = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "/bin/busybox", "sh", "-c"])
        .arg(format!("cd /mnt/{volume_id} && exec sleep 60"))
        .spawn()
        .expect("nsenter");
    std::thread::sleep(Duration::from_millis(500));
    let e = env.d().detach_volume(&b, &vol).expect_err("busy");
    let _ = user.kill();
    let _ = user.wait();
    assert!(e.to_string().contains("busy"), "{e}");
    assert!(!loops(&file).is_empty());
    env.d().detach_volume(&b, &vol).expect("detach b");
    wait_for(&env, &b.id, "vol: gone", 1);
    assert!(loops(&file).is_empty());
    env.d().attach_volume(&b, &vol).expect("attach b");
    wait_for(&env, &b.id, "vol: done", 3);
    // Held by b, the volume cannot be mounted by another container at the same time.
    let mut c = env.spec("vol-c");
    c.volumes = vec![vol.clone()];
    let e = env.d().spawn(&c).expect_err("the volume is in use");
    assert!(e.to_string().contains("in use"), "{e}");
    assert_eq!(loops(&file).lines().count(), 1, "{}", loops(&file));
    assert!(
        !env.cfg
            .data_dir
            .join("instances")
            .join(c.id.as_str())
            .exists(),
        "the failed spawn left its instance"
    );

    // Shut off: detach and attach change the record only; the next start mounts it.
    env.d().power_off(&b.id).expect("stop b");
    assert!(
        loops(&file).is_empty(),
        "a stopped container holds no volume"
    );
    let mut without = b.clone();
    without.volumes.clear();
    env.d()
        .detach_volume(&without, &vol)
        .expect("detach while stopped");
    env.d()
        .attach_volume(&b, &vol)
        .expect("attach while stopped");
    assert!(loops(&file).is_empty());
    env.d().power_on(&b.id).expect("start b");
    env.observe(&b.id);
    wait_for(&env, &b.id, "vol: done", 4);

    // The container ends behind the driver's back (init killed); a driver starting
    // afterwards releases what the stopped container still held.
    let pid = env.d().init_pid(&b.id).expect("init");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill init");
    assert!(wait_until(Duration::from_secs(10), || env
        .d()
        .running_boot(&b.id)
        .is_none()));
    assert!(!loops(&file).is_empty(), "still staged");
    let again = container::ContainerDriver::new(env.cfg.clone()).expect("a new driver");
    assert!(
        loops(&file).is_empty(),
        "the new driver released the volume"
    );
    assert!(!host_mounts().contains(&format!("volumes/{volume_id}")));
    drop(again);

    env.teardown_and_check();
    assert!(file.exists() && loops(&file).is_empty());
}

#[test]
fn attack_a_volume_moves_between_containers_and_opens_no_way_out() {
    run(true);
}

#[test]
fn attack_a_volume_in_a_container_without_a_user_namespace() {
    run(false);
}
