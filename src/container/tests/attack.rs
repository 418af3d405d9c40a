//! The escape catalogue, against the real kernel as root: a container whose init tries each
//! way out a container's root has been known to take (device nodes of the host's disk,
//! raw sockets, new namespaces, mounts, the kernel log, the clock, /proc and /sys knobs) and
//! prints what happened on its console, plus what the host sees of it (device allow-list,
//! seccomp mode, capabilities, uid map). Skipped with a message without root, unless
//! ONEBOX_REQUIRE_BACKENDS=1.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use common::{Env, SERIAL, wait_until};
use driver::ComputeDriver;

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The host's root disk, as (major, minor).
fn root_disk() -> (u64, u64) {
    let dev = std::fs::metadata("/").expect("stat /").dev();
    (
        u64::from(nix::sys::stat::major(dev) as u32),
        u64::from(nix::sys::stat::minor(dev) as u32),
    )
}

/// init: tries each escape and prints `ATTACK <name> refused|ESCAPED`, then what it holds.
fn script(major: u64, minor: u64, gateway: &str) -> String {
    format!(
        r#"#!/bin/sh
t() {{ n=$1; shift; if "$@" >/dev/null 2>&1; then echo "ATTACK $n ESCAPED"; else echo "ATTACK $n refused"; fi; }}
t mknod-host-disk mknod /tmp/disk b {major} {minor}
t mknod-in-dev mknod /dev/disk b {major} {minor}
t read-image-disk-node dd if=/disk of=/dev/null bs=512 count=1
t raw-socket arping -c 1 -w 1 -I eth0 {gateway}
t unshare-user unshare -U true
t unshare-mount unshare -m true
t unshare-net unshare -n true
t mount-tmpfs mount -t tmpfs none /mnt
t kernel-log dmesg
t set-clock sh -c '! date -s 2001.01.01-00:00:00 2>&1 | grep -q "can.t set"' 
t write-sysrq sh -c 'echo h > /proc/sysrq-trigger'
t write-proc-sys sh -c 'echo 1 > /proc/sys/kernel/sysrq'
t write-sys touch /sys/onebox-attack
t read-kcore sh -c 'test "$(head -c 16 /proc/kcore | wc -c)" -gt 0'
t read-timer-list sh -c 'test "$(head -c 16 /proc/timer_list | wc -c)" -gt 0'
echo "MASKED-ACPI $(grep -c ' /proc/acpi ' /proc/self/mountinfo)"
echo "STATUS $(grep -E '^(Seccomp|CapEff|CapBnd):' /proc/self/status | tr '\n\t' '  ')"
echo "PING-GROUPS $(cat /proc/sys/net/ipv4/ping_group_range | tr '\t' ' ')"
echo "ATTACKS DONE"
while :; do sleep 1 & wait $!; done
"#
    )
}

const ATTACKS: [&str; 15] = [
    "mknod-host-disk",
    "mknod-in-dev",
    "read-image-disk-node",
    "raw-socket",
    "unshare-user",
    "unshare-mount",
    "unshare-net",
    "mount-tmpfs",
    "kernel-log",
    "set-clock",
    "write-sysrq",
    "write-proc-sys",
    "write-sys",
    "read-kcore",
    "read-timer-list",
];

/// The capability bits that must not be held (CAP_NET_RAW 13, CAP_SYS_ADMIN 21,
/// CAP_MKNOD 27, CAP_SYS_MODULE 16, CAP_SYS_RAWIO 17).
const FORBIDDEN_CAPS: [u32; 5] = [13, 16, 17, 21, 27];

fn cap_mask(status: &str, key: &str) -> u64 {
    let v = status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("{key} in {status}"));
    u64::from_str_radix(v, 16).expect("hex")
}

/// Boots the attacker (with or without a user namespace) and checks every outcome.
fn run_catalogue(env: &mut Env, userns: bool) {
    let (major, minor) = root_disk();
    let cache = env.cfg.data_dir.join("cache").join("rootfs");
    let key = env.image.cache_key().expect("the image's content hash");
    let lower = container::rootfs::ensure_unpacked(
        &cache,
        &key,
        &env.image.path,
        container::rootfs::UnpackLimits::default(),
    )
    .expect("unpack");
    // An image that ships a node of the host's disk (tar would not unpack one).
    let node = lower.join("disk");
    if !node.exists() {
        nix::sys::stat::mknod(
            &node,
            nix::sys::stat::SFlag::S_IFBLK,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(major, minor),
        )
        .expect("mknod in the image");
    }
    std::fs::write(lower.join("attack.sh"), script(major, minor, &env.gateway)).expect("script");
    env.image
        .properties
        .insert(container::INIT_PROPERTY.into(), "/bin/sh /attack.sh".into());
    let mut spec = env.spec(if userns { "attacker" } else { "attacker-root" });
    if !userns {
        spec.extra_specs
            .insert(container::USERNS_EXTRA_SPEC.into(), "false".into());
    }
    let id = spec.id.clone();
    env.d().spawn(&spec).expect("spawn the attacker");
    env.observe(&id);
    let d = env.d();
    let console = || d.console_output(&id, None).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(30), || console()
            .contains("ATTACKS DONE")),
        "the attacker finished:\n{}",
        console()
    );
    let out = console();
    eprintln!("userns={userns}:\n{out}");
    for a in ATTACKS {
        assert!(
            out.contains(&format!("ATTACK {a} refused")),
            "{a} is refused (userns={userns}):\n{out}"
        );
    }
    assert!(!out.contains("ESCAPED"), "nothing escaped:\n{out}");
    assert!(
        out.contains("MASKED-ACPI 1") || !Path::new("/proc/acpi").exists(),
        "/proc/acpi is masked:\n{out}"
    );
    let groups = if userns { "0 65535" } else { "0 2147483647" };
    assert!(
        out.contains(&format!("PING-GROUPS {groups}")),
        "ICMP echo sockets are open to every group:\n{out}"
    );

    // What the host sees.
    let pid = d.init_pid(&id).expect("init runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    assert!(
        status.contains("Seccomp:\t2"),
        "init is under a seccomp filter:\n{status}"
    );
    for key in ["CapEff:", "CapBnd:", "CapPrm:"] {
        let m = cap_mask(&status, key);
        for bit in FORBIDDEN_CAPS {
            assert_eq!(m & (1 << bit), 0, "{key} lacks capability {bit}: {m:x}");
        }
    }
    let policy = d.cgroup(&id).device_policy().expect("device policy");
    match d.layout() {
        container::cgroup::Layout::V1(_) => {
            assert!(
                policy.contains("c 1:3 rwm"),
                "/dev/null is allowed: {policy}"
            );
            assert!(!policy.contains("a *:* rwm"), "not every device: {policy}");
            assert!(
                !policy.contains(&format!("b {major}:")),
                "not the disk: {policy}"
            );
        }
        container::cgroup::Layout::V2(_) => {
            assert!(policy.starts_with("1 "), "one device program: {policy}");
        }
    }
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).expect("uid_map");
    let fields: Vec<u64> = map
        .split_whitespace()
        .map(|w| w.parse().expect("number"))
        .collect();
    if userns {
        assert_eq!(fields.len(), 3, "{map}");
        assert!(
            fields[1] >= 1 << 20,
            "root inside is not the host's root: {map}"
        );
        assert_eq!(fields[2], 65536, "{map}");
    } else {
        assert_eq!(fields, [0, 0, 4294967295], "the admin's opt-out: {map}");
    }
    ping_as_container_root(pid, userns, &env.gateway);
    env.d().destroy(&id).expect("destroy");
}

/// Pings the gateway through an ICMP echo socket (what iputils' ping uses without
/// CAP_NET_RAW) as the container's root: in its user and network namespaces, uid and gid 0,
/// no capability (busybox's ping only knows raw sockets, so the host's python3 does it).
fn ping_as_container_root(pid: i32, userns: bool, gateway: &str) {
    let have = |p: &str| Path::new(p).exists();
    if !have("/usr/bin/python3") || !have("/usr/bin/nsenter") {
        eprintln!("ping check skipped: no python3 or nsenter on the host");
        return;
    }
    let py = format!(
        "import socket,struct\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM,socket.IPPROTO_ICMP)\n\
         s.settimeout(3)\n\
         s.sendto(struct.pack('!BBHHH',8,0,0,0,1)+b'onebox',('{gateway}',0))\n\
         d,_=s.recvfrom(200)\n\
         print('pong' if d[0]==0 else 'bad')\n"
    );
    let t = pid.to_string();
    let mut args = vec!["-t", &t, "-n"];
    if userns {
        args.extend(["-U", "-S", "0", "-G", "0"]);
    }
    let out = std::process::Command::new("/usr/bin/nsenter")
        .args(&args)
        .args(["/usr/bin/setpriv", "--inh-caps=-all", "--bounding-set=-all"])
        .args(["/usr/bin/python3", "-c", &py])
        .output()
        .expect("nsenter");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("pong"),
        "ping works without CAP_NET_RAW (userns={userns}): {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn attack_catalogue_every_escape_is_refused() {
    let _g = lock();
    if !common::can_run() {
        return;
    }
    let mut env = Env::new("attack");
    run_catalogue(&mut env, true);
    // Without a user namespace (a flavor an admin opted out), the other layers still hold.
    run_catalogue(&mut env, false);
    env.teardown_and_check();
}

/// The first cgroup2 mount of the host (`/sys/fs/cgroup` on a pure v2 host,
/// `/sys/fs/cgroup/unified` on a hybrid one).
fn cgroup2_mount() -> Option<std::path::PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next() == Some("cgroup2"))
            .then(|| left.split_whitespace().nth(4).map(Into::into))
            .flatten()
    })
}

/// The cgroup v2 device program, attached to a cgroup of the host's cgroup2 hierarchy: a
/// process in it cannot read the host's disk through a node it holds, and can still use
/// /dev/null.
#[test]
fn attack_a_cgroup2_device_program_refuses_the_host_disk() {
    let _g = lock();
    if !common::can_run() {
        return;
    }
    let Some(root) = cgroup2_mount() else {
        eprintln!("skipped: no cgroup2 mount");
        return;
    };
    let (major, minor) = root_disk();
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tmp");
    let node = tmp.path().join("disk");
    nix::sys::stat::mknod(
        &node,
        nix::sys::stat::SFlag::S_IFBLK,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(major, minor),
    )
    .expect("mknod");
    let cg = root.join(format!("onebox-attack-{}", std::process::id()));
    std::fs::create_dir(&cg).expect("cgroup");
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _cleanup = Cleanup(cg.clone());
    container::devices::attach_v2(&cg).expect("attach the device program");
    assert_eq!(container::devices::programs_attached(&cg), Ok(1));

    let probe = format!(
        "read go; \
         if dd if={n} of=/dev/null bs=512 count=1 2>/dev/null; then echo disk-read; else echo disk-refused; fi; \
         if head -c 1 /dev/null; then echo null-ok; fi",
        n = node.display()
    );
    let mut child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&probe)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sh");
    std::fs::write(cg.join("cgroup.procs"), child.id().to_string()).expect("join the cgroup");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("go");
    let out = child.wait_with_output().expect("wait");
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("disk-refused"), "the disk is refused: {out}");
    assert!(out.contains("null-ok"), "/dev/null still works: {out}");
}
