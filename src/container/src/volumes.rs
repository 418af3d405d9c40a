//! Block-storage volumes in containers: the volume's ext4 file system mounted at its mount
//! path (`/mnt/<volume id>` unless the attachment names one).
//!
//! The host side is a staging mount per volume, `<instance>/volumes/<volume id>`: a raw
//! file goes through a loop device (its name kept in `<instance>/volumes/.<volume id>.loop`),
//! a block device is used as it is; a volume with no file system at all gets an ext4 one
//! (`mkfs.ext4 -q`), one with another file system is refused. The staging mount is always
//! `nodev,nosuid` (and `ro` for a read-only attachment). It is made before the shim starts
//! a boot and released when the boot ends (stop, reboot, destroy), so nothing holds a
//! volume of a container that does not run.
//!
//! Into the container the staging mount goes as a detached copy (`open_tree`), idmapped
//! with the container's user namespace when it has one (the volume's ids on disk are the
//! container's own, 0 being its root, so a volume moves between containers unchanged), and
//! attached (`move_mount`) inside the container's mount namespace on a directory reached
//! component by component without following any symbolic link. At boot the shim (user
//! namespace) or the container's init (without) grafts every recorded volume before init
//! runs; an attach to a running container does the same from a thread that entered init's
//! mount namespace. A detach unmounts the volume inside (refused while busy: a process in
//! the container still uses it), then the staging mount and the loop device, and returns
//! once no loop device is backed by the file.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use crate::state::Paths;

/// A volume of an instance, as `instance.json` records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRec {
    pub volume_id: String,
    /// The volume's raw file or block device on the host.
    pub path: PathBuf,
    /// Where the container sees it (absolute, checked).
    pub mount_path: String,
    pub read_only: bool,
}

impl VolumeRec {
    pub fn of(v: &driver::Volume) -> Result<Self, String> {
        let id = &v.volume_id;
        if id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("bad volume id {id:?}"));
        }
        if v.format != "raw" {
            return Err(format!(
                "volume {id} is {}: a container mounts raw volumes only",
                v.format
            ));
        }
        let mount_path = if v.mount_path.is_empty() {
            format!("/mnt/{id}")
        } else {
            v.mount_path.clone()
        };
        check_mount_path(&mount_path)?;
        Ok(Self {
            volume_id: id.clone(),
            path: v.path.clone(),
            mount_path,
            read_only: v.read_only,
        })
    }
}

/// A mount path is absolute, plain (letters, digits, `._-`, no `.` or `..` component) and
/// not on the kernel's file systems or the root itself.
fn check_mount_path(p: &str) -> Result<(), String> {
    let bad = || format!("bad volume mount path {p:?}");
    if !p.starts_with('/') || p.len() > 255 {
        return Err(bad());
    }
    let comps: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
    if comps.is_empty()
        || comps.iter().any(|c| {
            *c == "."
                || *c == ".."
                || !c
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
        || ["proc", "sys", "dev"].contains(&comps[0])
    {
        return Err(bad());
    }
    Ok(())
}

fn volumes_dir(p: &Paths) -> PathBuf {
    p.dir.join("volumes")
}

fn staging(p: &Paths, v: &VolumeRec) -> PathBuf {
    volumes_dir(p).join(&v.volume_id)
}

fn loop_record(p: &Paths, id: &str) -> PathBuf {
    volumes_dir(p).join(format!(".{id}.loop"))
}

/// Whether `dir` is a mount point (another device than its parent's).
fn is_mounted(dir: &Path) -> bool {
    let (Ok(d), Some(Ok(parent))) = (std::fs::metadata(dir), dir.parent().map(std::fs::metadata))
    else {
        return false;
    };
    d.dev() != parent.dev()
}

fn tool(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running {what}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The loop devices whose backing file is `file` (`/sys/block/loop*/loop/backing_file`).
fn loops_of(file: &Path) -> Vec<String> {
    let Ok(want) = std::fs::canonicalize(file) else {
        return Vec::new();
    };
    let Ok(rd) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("loop"))
        .filter(|e| {
            std::fs::read_to_string(e.path().join("loop/backing_file"))
                .is_ok_and(|b| Path::new(b.trim()) == want)
        })
        .map(|e| format!("/dev/{}", e.file_name().to_string_lossy()))
        .collect()
}

/// What the device holds: `None` for nothing, else the file system type `blkid` reports.
fn fs_type(dev: &Path) -> Result<Option<String>, String> {
    // The ext superblock magic first (no process when it is there).
    let f = std::fs::File::open(dev).map_err(|e| format!("opening {}: {e}", dev.display()))?;
    let mut magic = [0u8; 2];
    if f.read_exact_at(&mut magic, 1080).is_ok() && magic == [0x53, 0xef] {
        return Ok(Some("ext4".into()));
    }
    let out = Command::new("blkid")
        .args(["-p", "-o", "value", "-s", "TYPE"])
        .arg(dev)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running blkid: {e}"))?;
    match out.status.code() {
        Some(0) => Ok(Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())),
        Some(2) => Ok(None),
        _ => Err(format!(
            "blkid failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// Makes the staging mount of `v` unless it is there.
pub fn stage(p: &Paths, v: &VolumeRec) -> Result<(), String> {
    let dir = staging(p, v);
    if is_mounted(&dir) {
        return Ok(());
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let meta = std::fs::metadata(&v.path).map_err(|e| format!("volume {}: {e}", v.volume_id))?;
    // One file system mounted twice through two devices is corrupted: a volume in use
    // elsewhere on this host is refused.
    let in_use = || format!("volume {} is in use elsewhere on this host", v.volume_id);
    let (dev, made_loop) = if meta.file_type().is_block_device() {
        let rdev = meta.rdev();
        let want = format!(
            "{}:{}",
            nix::sys::stat::major(rdev),
            nix::sys::stat::minor(rdev)
        );
        let mounted = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split(' ').nth(2) == Some(want.as_str()));
        if mounted {
            return Err(in_use());
        }
        (v.path.clone(), None)
    } else if meta.is_file() {
        if !loops_of(&v.path).is_empty() {
            return Err(in_use());
        }
        let mut cmd = Command::new("losetup");
        cmd.args(["--find", "--show"]);
        if v.read_only {
            cmd.arg("--read-only");
        }
        let dev = tool(cmd.arg(&v.path), "losetup")?;
        std::fs::write(loop_record(p, &v.volume_id), &dev)
            .map_err(|e| format!("recording the loop device: {e}"))?;
        (PathBuf::from(&dev), Some(dev))
    } else {
        return Err(format!(
            "volume {} is neither a file nor a block device",
            v.volume_id
        ));
    };
    let r = (|| {
        match fs_type(&dev)?.as_deref() {
            Some("ext2" | "ext3" | "ext4") => {}
            Some(other) => {
                return Err(format!(
                    "volume {} holds a {other} file system; containers mount ext4",
                    v.volume_id
                ));
            }
            None if v.read_only => {
                return Err(format!(
                    "volume {} has no file system and is attached read-only",
                    v.volume_id
                ));
            }
            None => {
                tool(
                    Command::new("mkfs.ext4")
                        .args(["-q", "-F", "-E", "nodiscard"])
                        .arg(&dev),
                    "mkfs.ext4",
                )?;
            }
        }
        let mut flags = nix::mount::MsFlags::MS_NODEV | nix::mount::MsFlags::MS_NOSUID;
        if v.read_only {
            flags |= nix::mount::MsFlags::MS_RDONLY;
        }
        nix::mount::mount(Some(dev.as_path()), &dir, Some("ext4"), flags, None::<&str>)
            .map_err(|e| format!("mounting volume {}: {e}", v.volume_id))
    })();
    if r.is_err()
        && let Some(l) = made_loop
    {
        let _ = tool(Command::new("losetup").args(["-d", &l]), "losetup -d");
        let _ = std::fs::remove_file(loop_record(p, &v.volume_id));
    }
    r
}

/// Stages every volume of an instance (before a boot).
pub fn stage_all(p: &Paths, vols: &[VolumeRec]) -> Result<(), String> {
    for v in vols {
        stage(p, v)?;
    }
    Ok(())
}

/// Undoes the staging of volume `id` (`file` its backing file, when known): unmounts it
/// (lazily when `lazy` and it is busy), detaches its loop device, and waits until no loop
/// device is backed by the file.
fn unstage(p: &Paths, id: &str, file: Option<&Path>, lazy: bool) -> Result<(), String> {
    let dir = volumes_dir(p).join(id);
    if is_mounted(&dir) {
        match nix::mount::umount2(&dir, nix::mount::MntFlags::empty()) {
            Err(nix::errno::Errno::EBUSY) if lazy => {
                tracing::warn!(volume_id = %id, "volume busy on the host; unmounted lazily");
                nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH)
                    .map_err(|e| format!("unmounting volume {id}: {e}"))?
            }
            Err(nix::errno::Errno::EBUSY) => {
                return Err(format!("volume {id} is busy"));
            }
            r => r.map_err(|e| format!("unmounting volume {id}: {e}"))?,
        }
    }
    if is_mounted(&dir) {
        return Err(format!("volume {id} is still mounted"));
    }
    let rec = loop_record(p, id);
    // Only a loop device this instance made is waited for (another may hold the file).
    let mut detached = false;
    if let Ok(dev) = std::fs::read_to_string(&rec) {
        let dev = dev.trim();
        let name = dev.trim_start_matches("/dev/");
        // Only the device this instance made, still backed by the volume's file.
        let backing = std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file"))
            .unwrap_or_default();
        let ours = match file {
            Some(f) => std::fs::canonicalize(f).is_ok_and(|f| Path::new(backing.trim()) == f),
            None => !backing.trim().is_empty(),
        };
        if ours && name.starts_with("loop") {
            tool(Command::new("losetup").args(["-d", dev]), "losetup -d")?;
            detached = true;
        }
        let _ = std::fs::remove_file(&rec);
    }
    if let Some(f) = file.filter(|_| detached) {
        let end = Instant::now() + Duration::from_secs(10);
        while !loops_of(f).is_empty() {
            if Instant::now() >= end {
                return Err(format!("a loop device still holds volume {id}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = std::fs::remove_dir(&dir);
    Ok(())
}

/// Releases every staged volume of a stopped instance (recorded or left behind by an
/// interrupted attach). Nothing of the instance holds them afterwards.
pub fn release_all(p: &Paths, vols: &[VolumeRec]) -> Result<(), String> {
    let dir = volumes_dir(p);
    let mut ids: Vec<String> = std::fs::read_dir(&dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .map(|n| {
                    n.strip_prefix('.')
                        .and_then(|n| n.strip_suffix(".loop"))
                        .map(str::to_owned)
                        .unwrap_or(n)
                })
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids.dedup();
    for id in ids {
        let file = vols.iter().find(|v| v.volume_id == id).map(|v| &v.path);
        unstage(p, &id, file.map(PathBuf::as_path), true)?;
    }
    Ok(())
}

/// The detached, idmapped (with `/proc/<userns_pid>/ns/user`) copies of the staging
/// mounts of `vols`, each with its mount path.
pub fn trees(
    p: &Paths,
    vols: &[VolumeRec],
    userns_pid: Option<i32>,
) -> Result<Vec<(OwnedFd, String)>, String> {
    let userns = match userns_pid {
        Some(pid) => Some(OwnedFd::from(
            std::fs::File::open(format!("/proc/{pid}/ns/user"))
                .map_err(|e| format!("opening the user namespace of {pid}: {e}"))?,
        )),
        None => None,
    };
    let mut out = Vec::new();
    for v in vols {
        let dir = staging(p, v);
        if !is_mounted(&dir) {
            return Err(format!("volume {} is not staged", v.volume_id));
        }
        let tree = crate::sys::open_tree_clone(&dir)?;
        if let Some(ns) = &userns {
            crate::sys::idmap_tree(&tree, ns)?;
        }
        out.push((tree, v.mount_path.clone()));
    }
    Ok(out)
}

/// Opens (making what is missing, owned by `owner`) the directory `rel` under `base`,
/// one component at a time, never following a symbolic link.
fn open_dir_nofollow(base: &Path, rel: &str, owner: Option<u32>) -> Result<OwnedFd, String> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut dir = nix::fcntl::open(base, flags, Mode::empty())
        .map_err(|e| format!("opening {}: {e}", base.display()))?;
    for c in rel.split('/').filter(|c| !c.is_empty()) {
        match nix::sys::stat::mkdirat(dir.as_fd(), c, Mode::from_bits_truncate(0o755)) {
            Ok(()) => {
                if let Some(id) = owner {
                    nix::unistd::fchownat(
                        dir.as_fd(),
                        c,
                        Some(id.into()),
                        Some(id.into()),
                        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                    )
                    .map_err(|e| format!("giving {rel} to the container: {e}"))?;
                }
            }
            Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(format!("making {rel}: {e}")),
        }
        dir = nix::fcntl::openat(dir.as_fd(), c, flags | OFlag::O_NOFOLLOW, Mode::empty())
            .map_err(|e| format!("{rel} is not a directory of the container ({e})"))?;
    }
    Ok(dir)
}

/// Attaches `trees` on their mount paths under `base` (a trusted directory: the
/// container's root) in the caller's mount namespace.
pub fn graft(base: &Path, trees: &[(OwnedFd, String)], owner: Option<u32>) -> Result<(), String> {
    for (tree, path) in trees {
        let target = open_dir_nofollow(base, path, owner)?;
        crate::sys::move_mount_onto(tree, &target)
            .map_err(|e| format!("mounting a volume on {path}: {e}"))?;
    }
    Ok(())
}

/// Runs `f` in the mount namespace of `pid` (whose root becomes the caller's) on a thread
/// of its own, which alone enters it.
pub(crate) fn in_mount_ns<T: Send>(
    pid: i32,
    f: impl FnOnce() -> Result<T, String> + Send,
) -> Result<T, String> {
    std::thread::scope(|s| {
        s.spawn(move || {
            use nix::sched::{CloneFlags, setns, unshare};
            let ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))
                .map_err(|e| format!("opening the container's mount namespace: {e}"))?;
            unshare(CloneFlags::CLONE_FS).map_err(|e| format!("unshare(CLONE_FS): {e}"))?;
            setns(&ns, CloneFlags::CLONE_NEWNS)
                .map_err(|e| format!("entering the container's mount namespace: {e}"))?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err("the mount thread panicked".into()))
    })
}

/// The `major:minor` of the staging mount of `v` (what `/proc/<pid>/mountinfo` shows for
/// its copies).
fn staged_dev(p: &Paths, v: &VolumeRec) -> Option<String> {
    let m = std::fs::metadata(staging(p, v)).ok()?;
    let d = m.dev();
    Some(format!(
        "{}:{}",
        nix::sys::stat::major(d),
        nix::sys::stat::minor(d)
    ))
}

/// The mount points inside the container (init `pid`) of the file system on `dev`.
fn mounted_in(pid: i32, dev: &str) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() > 4 && f[2] == dev).then(|| f[4].to_owned())
        })
        .collect()
}

/// Mounts `v` into the running container whose init is `pid` (staged already).
pub fn attach_running(
    p: &Paths,
    v: &VolumeRec,
    pid: i32,
    userns_base: Option<u32>,
) -> Result<(), String> {
    stage(p, v)?;
    let dev = staged_dev(p, v).ok_or("the volume is not staged")?;
    if mounted_in(pid, &dev).contains(&v.mount_path) {
        return Ok(());
    }
    let trees = trees(p, std::slice::from_ref(v), userns_base.map(|_| pid))?;
    in_mount_ns(pid, || graft(Path::new("/"), &trees, userns_base))
}

/// Unmounts `v` inside the running container whose init is `pid`: refused while a process
/// there uses it.
pub fn detach_running(p: &Paths, v: &VolumeRec, pid: i32) -> Result<(), String> {
    let Some(dev) = staged_dev(p, v) else {
        return Ok(());
    };
    if !is_mounted(&staging(p, v)) {
        return Ok(());
    }
    let (want_dev, want_ino) = {
        let m = std::fs::metadata(staging(p, v)).map_err(|e| e.to_string())?;
        (m.dev(), m.ino())
    };
    for mp in mounted_in(pid, &dev) {
        let id = v.volume_id.clone();
        in_mount_ns(pid, move || {
            // The mount point as the container left it, reached without following links,
            // must be the volume's root; it is unmounted by its name in its parent, not
            // following a link there either.
            let (parent, name) = match mp.rsplit_once('/') {
                Some((p, n)) if !n.is_empty() => (p, n),
                _ => return Err(format!("volume {id}: odd mount point {mp}")),
            };
            let dir = open_dir_nofollow_existing(parent)?;
            nix::unistd::fchdir(dir.as_fd()).map_err(|e| format!("entering {parent}: {e}"))?;
            let st = nix::sys::stat::fstatat(
                dir.as_fd(),
                name,
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| format!("{mp}: {e}"))?;
            if st.st_dev != want_dev || st.st_ino != want_ino {
                return Err(format!(
                    "volume {id}: its mount point {mp} was changed inside the container"
                ));
            }
            match nix::mount::umount2(name, nix::mount::MntFlags::UMOUNT_NOFOLLOW) {
                Err(nix::errno::Errno::EBUSY) => Err(format!(
                    "volume {id} is busy: a process in the container uses {mp}"
                )),
                r => r.map_err(|e| format!("unmounting volume {id} at {mp}: {e}")),
            }
        })?;
    }
    Ok(())
}

fn open_dir_nofollow_existing(path: &str) -> Result<OwnedFd, String> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut dir = nix::fcntl::open("/", flags, Mode::empty()).map_err(|e| e.to_string())?;
    for c in path.split('/').filter(|c| !c.is_empty()) {
        dir = nix::fcntl::openat(dir.as_fd(), c, flags | OFlag::O_NOFOLLOW, Mode::empty())
            .map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(dir)
}

/// Releases volume `v` on the host once nothing in the container uses it.
pub fn release(p: &Paths, v: &VolumeRec) -> Result<(), String> {
    unstage(p, &v.volume_id, Some(&v.path), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_plain_and_stay_off_the_kernel_file_systems() {
        for ok in ["/mnt/a", "/data", "/srv/db-1/x_y.z"] {
            assert!(check_mount_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/",
            "mnt/a",
            "/mnt/../etc",
            "/mnt/./a",
            "/proc/x",
            "/sys",
            "/dev/vdb",
            "/mnt/a b",
            "/mnt/a\n",
        ] {
            assert!(check_mount_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_record_defaults_to_mnt_and_refuses_qcow2_and_odd_ids() {
        let v = driver::Volume {
            volume_id: "0b1e2c3d-0000-4000-8000-00000000000a".into(),
            path: "/v".into(),
            format: "raw".into(),
            ..Default::default()
        };
        assert_eq!(
            VolumeRec::of(&v).expect("ok").mount_path,
            "/mnt/0b1e2c3d-0000-4000-8000-00000000000a"
        );
        let q = driver::Volume {
            format: "qcow2".into(),
            ..v.clone()
        };
        assert!(VolumeRec::of(&q).is_err());
        let odd = driver::Volume {
            volume_id: "../x".into(),
            ..v
        };
        assert!(VolumeRec::of(&odd).is_err());
    }
}
