//! The container side of the file system set-up, run by init's process in its own mount
//! namespace before it pivots into the root: `/etc` files, `/proc` (with runc's masked and
//! read-only paths), a read-only `/sys`, and a `/dev` that holds only the standard nodes.

use std::path::Path;

use nix::mount::{MsFlags, mount};

use crate::state::Instance;

/// Device nodes bind-mounted from the host into the container's `/dev` (every one on the
/// allow-list of [`crate::devices`]); `ptmx` is the devpts instance's own.
pub const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Paths hidden from the container, as runc hides them: a file is covered by `/dev/null`, a
/// directory by an empty read-only tmpfs.
pub const MASKED: [&str; 11] = [
    "proc/acpi",
    "proc/asound",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];

/// Paths the container sees read-only.
pub const READ_ONLY: [&str; 5] = [
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];

pub fn mnt(
    src: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), String> {
    mount(src, target, fstype, flags, data).map_err(|e| {
        format!(
            "mounting {} on {}: {e}",
            fstype.or(src).unwrap_or("?"),
            target.display()
        )
    })
}

pub fn mkdir(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("creating {}: {e}", p.display()))
}

/// Writes `/etc/<name>` of the root filesystem, replacing a symbolic link (whose target
/// would be resolved on the host) with a file.
fn write_etc(root: &Path, name: &str, content: &str) -> Result<(), String> {
    let etc = root.join("etc");
    if std::fs::symlink_metadata(&etc).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err("/etc of the image is a symbolic link".into());
    }
    mkdir(&etc)?;
    let p = etc.join(name);
    if std::fs::symlink_metadata(&p).is_ok_and(|m| !m.is_file()) {
        let _ = std::fs::remove_file(&p);
    }
    std::fs::write(&p, content).map_err(|e| format!("writing /etc/{name}: {e}"))
}

pub fn etc_files(inst: &Instance, root: &Path) -> Result<(), String> {
    write_etc(root, "hostname", &format!("{}\n", inst.hostname))?;
    let mut hosts =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    match inst.nics.first() {
        Some(n) => hosts.push_str(&format!("{}\t{}\n", n.address, inst.hostname)),
        None => hosts.push_str(&format!("127.0.1.1\t{}\n", inst.hostname)),
    }
    write_etc(root, "hosts", &hosts)?;
    let mut resolv = String::from("# written by onebox\n");
    for ns in &inst.nameservers {
        resolv.push_str(&format!("nameserver {ns}\n"));
    }
    write_etc(root, "resolv.conf", &resolv)
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// Mounts `/proc`, `/sys` and `/dev` under `root`. `userns`: the container has a user
/// namespace (its ids for `ping_group_range` are its own 0..65535).
pub fn kernel_filesystems(root: &Path, userns: bool) -> Result<(), String> {
    let proc = root.join("proc");
    mkdir(&proc)?;
    mnt(Some("proc"), &proc, Some("proc"), NOSUID_NODEV_NOEXEC, None)?;
    // ICMP echo sockets for every group, so ping works without CAP_NET_RAW (this file
    // belongs to the container's network namespace).
    let groups = if userns { "0 65535" } else { "0 2147483647" };
    std::fs::write(proc.join("sys/net/ipv4/ping_group_range"), groups)
        .map_err(|e| format!("setting ping_group_range: {e}"))?;
    let sys = root.join("sys");
    mkdir(&sys)?;
    mnt(
        Some("sysfs"),
        &sys,
        Some("sysfs"),
        NOSUID_NODEV_NOEXEC | MsFlags::MS_RDONLY,
        None,
    )?;
    for p in MASKED {
        mask(&root.join(p))?;
    }
    for p in READ_ONLY {
        read_only(&root.join(p))?;
    }
    dev(&root.join("dev"))
}

fn absent(e: &nix::errno::Errno) -> bool {
    *e == nix::errno::Errno::ENOENT
}

/// Covers `p` (a file: with `/dev/null`; a directory: with an empty read-only tmpfs).
fn mask(p: &Path) -> Result<(), String> {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return Ok(());
    };
    let r = if meta.is_dir() {
        mount(
            Some("tmpfs"),
            p,
            Some("tmpfs"),
            NOSUID_NODEV_NOEXEC | MsFlags::MS_RDONLY,
            Some("size=0,mode=555"),
        )
    } else {
        mount(
            Some("/dev/null"),
            p,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    };
    match r {
        Err(e) if !absent(&e) => Err(format!("masking {}: {e}", p.display())),
        _ => Ok(()),
    }
}

/// Makes `p` read-only (a bind mount of itself, remounted read-only).
fn read_only(p: &Path) -> Result<(), String> {
    if std::fs::symlink_metadata(p).is_err() {
        return Ok(());
    }
    let s = p.to_string_lossy();
    mnt(Some(&s), p, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
    mnt(
        None,
        p,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | NOSUID_NODEV_NOEXEC,
        None,
    )
}

/// A tmpfs `/dev` (nosuid, nodev, noexec: a node made in it opens nothing) with the
/// standard nodes bind-mounted from the host, a private devpts and `/dev/shm`.
fn dev(dev: &Path) -> Result<(), String> {
    mkdir(dev)?;
    mnt(
        Some("tmpfs"),
        dev,
        Some("tmpfs"),
        NOSUID_NODEV_NOEXEC | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for d in DEVICES {
        let target = dev.join(d);
        std::fs::File::create(&target).map_err(|e| format!("/dev/{d}: {e}"))?;
        mnt(
            Some(&format!("/dev/{d}")),
            &target,
            None,
            MsFlags::MS_BIND,
            None,
        )?;
    }
    let pts = dev.join("pts");
    mkdir(&pts)?;
    mnt(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    let shm = dev.join("shm");
    mkdir(&shm)?;
    mnt(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        NOSUID_NODEV_NOEXEC,
        Some("mode=1777,size=65536k"),
    )?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(link))
            .map_err(|e| format!("/dev/{link}: {e}"))?;
    }
    Ok(())
}
