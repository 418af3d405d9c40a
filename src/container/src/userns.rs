//! User namespaces: every container's root is an unprivileged user of the host.
//!
//! Each container gets its own range of [`RANGE_SIZE`] host uids and gids, starting at a
//! base at or above [`FLOOR`] (so no host user collides), allocated from [`IdRanges`] (the
//! onebox binary keeps them in SQLite, beside the server; the driver frees a range when it
//! destroys the container). Inside, uid and gid 0..65535 map to base..base+65535.
//!
//! The shared unpacked image stays owned by the host's ids and is never changed per
//! container: the shim makes an *idmapped* copy of its mount (`open_tree` +
//! `mount_setattr(MOUNT_ATTR_IDMAP)` with the container's user namespace) and mounts the
//! container's root overlay on it, as the host's root, inside the container's mount
//! namespace; the upper layer (the container's own files) holds the shifted ids on disk
//! (its directories are given to the container's root), and a snapshot shifts them back.
//! On a kernel whose overlayfs takes no idmapped layer (before 5.19) each container gets its
//! own copy of the image with shifted ids instead ([`prepare_layers`]).

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Mutex;

/// The ids of one container.
pub const RANGE_SIZE: u32 = 65536;
/// The lowest base: 2^20, above every uid a host gives its own users.
pub const FLOOR: u32 = 1 << 20;

/// The first kernel whose overlayfs takes idmapped lower layers.
pub const IDMAPPED_OVERLAY_KERNEL: (u32, u32) = (5, 19);

/// Where the containers' id ranges are recorded.
pub trait IdRanges: Send + Sync + std::fmt::Debug {
    /// The base of `server`'s range, allocating a free one when it has none.
    fn allocate(&self, server: &str) -> Result<u32, String>;
    /// Frees `server`'s range (nothing when it has none).
    fn release(&self, server: &str) -> Result<(), String>;
}

/// The lowest free base given the bases in use.
pub fn first_free(used: impl IntoIterator<Item = u32>) -> Result<u32, String> {
    let used: std::collections::BTreeSet<u32> = used.into_iter().collect();
    let mut base = FLOOR;
    loop {
        if !used.contains(&base) {
            return Ok(base);
        }
        base = base
            .checked_add(RANGE_SIZE)
            .filter(|b| b.checked_add(RANGE_SIZE).is_some())
            .ok_or("every user id range is in use")?;
    }
}

/// Ranges kept in memory (tests, and a driver built without a database).
#[derive(Debug, Default)]
pub struct MemoryIdRanges(Mutex<BTreeMap<String, u32>>);

impl IdRanges for MemoryIdRanges {
    fn allocate(&self, server: &str) -> Result<u32, String> {
        let mut m = self.0.lock().map_err(|_| "id ranges lock poisoned")?;
        if let Some(b) = m.get(server) {
            return Ok(*b);
        }
        let b = first_free(m.values().copied())?;
        m.insert(server.to_owned(), b);
        Ok(b)
    }

    fn release(&self, server: &str) -> Result<(), String> {
        let mut m = self.0.lock().map_err(|_| "id ranges lock poisoned")?;
        m.remove(server);
        Ok(())
    }
}

/// The `uid_map`/`gid_map` line of a container whose range starts at `base`.
pub fn map_line(base: u32) -> String {
    format!("0 {base} {RANGE_SIZE}\n")
}

/// Maps a host id of a container's files back to the id inside (a snapshot's tar holds the
/// ids as the container sees them); ids outside the range are left alone.
pub fn unshift(id: u64, base: Option<u32>) -> u64 {
    match base {
        Some(b) if id >= u64::from(b) && id < u64::from(b) + u64::from(RANGE_SIZE) => {
            id - u64::from(b)
        }
        _ => id,
    }
}

/// The idmapped copy of the image's mount for the container whose init is `pid`.
pub fn idmapped_lower(lower: &std::path::Path, pid: i32) -> Result<OwnedFd, String> {
    let userns = std::fs::File::open(format!("/proc/{pid}/ns/user"))
        .map_err(|e| format!("opening the user namespace of {pid}: {e}"))?;
    let tree = crate::sys::open_tree_clone(lower)?;
    crate::sys::idmap_tree(&tree, &OwnedFd::from(userns))?;
    Ok(tree)
}

/// Readies the overlay's layers of `inst` for its user namespace: gives the container's
/// root the upper and work directories (so the root of its file system is its own), and,
/// without idmapped mounts, makes the container's own copy of the image with shifted ids
/// (`<instance>/lower`), which becomes its lower layer.
pub fn prepare_layers(
    p: &crate::state::Paths,
    inst: &mut crate::state::Instance,
    idmapped: bool,
) -> Result<(), String> {
    let Some(base) = inst.user_namespace else {
        return Ok(());
    };
    for d in [p.upper(), p.work()] {
        std::os::unix::fs::chown(&d, Some(base), Some(base))
            .map_err(|e| format!("giving {} to the container: {e}", d.display()))?;
    }
    if idmapped {
        inst.lower_shifted = false;
        return Ok(());
    }
    let copy = p.dir.join("lower");
    let tmp = p.dir.join("lower.tmp");
    for d in [&copy, &tmp] {
        match std::fs::remove_dir_all(d) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("removing {}: {e}", d.display()));
            }
            _ => {}
        }
    }
    shifted_copy(&inst.lower, &tmp, base)?;
    std::fs::rename(&tmp, &copy).map_err(|e| format!("renaming {}: {e}", tmp.display()))?;
    inst.lower = copy;
    inst.lower_shifted = true;
    Ok(())
}

/// Copies the tree `from` to `to` (which must not exist) with every owner shifted up by
/// `base`: directories, regular files and symbolic links (device nodes, sockets and fifos
/// are left out), modes kept (set after the owner, which clears set-id bits).
pub fn shifted_copy(from: &Path, to: &Path, base: u32) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown};
    let err = |p: &Path, e: std::io::Error| format!("copying {}: {e}", p.display());
    let meta = std::fs::symlink_metadata(from).map_err(|e| err(from, e))?;
    let (uid, gid) = (
        meta.uid()
            .checked_add(base)
            .filter(|u| *u - base < RANGE_SIZE),
        meta.gid()
            .checked_add(base)
            .filter(|g| *g - base < RANGE_SIZE),
    );
    let ft = meta.file_type();
    if ft.is_dir() {
        std::fs::create_dir(to).map_err(|e| err(to, e))?;
        for entry in std::fs::read_dir(from).map_err(|e| err(from, e))? {
            let entry = entry.map_err(|e| err(from, e))?;
            shifted_copy(&entry.path(), &to.join(entry.file_name()), base)?;
        }
    } else if ft.is_file() {
        std::fs::copy(from, to).map_err(|e| err(from, e))?;
    } else if ft.is_symlink() {
        let target = std::fs::read_link(from).map_err(|e| err(from, e))?;
        std::os::unix::fs::symlink(target, to).map_err(|e| err(to, e))?;
    } else {
        return Ok(());
    }
    // An id beyond the container's range becomes its nobody (65534).
    let nobody = base + 65534;
    lchown(to, Some(uid.unwrap_or(nobody)), Some(gid.unwrap_or(nobody))).map_err(|e| err(to, e))?;
    if !ft.is_symlink() {
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| err(to, e))?;
    }
    Ok(())
}

/// Mounts the container's root overlay (`opts`: its layers, the lower one the idmapped
/// image) on `target` inside the mount namespace of `pid`, as the host's root: only the
/// host's user namespace may use a mount made there. The calling process (the shim, still
/// single-threaded) enters the namespace and comes back.
pub fn mount_root_in(pid: i32, opts: &str, target: &std::path::Path) -> Result<(), String> {
    use nix::sched::{CloneFlags, setns};
    let open = |p: String| std::fs::File::open(&p).map_err(|e| format!("opening {p}: {e}"));
    let own = open("/proc/self/ns/mnt".into())?;
    let theirs = open(format!("/proc/{pid}/ns/mnt"))?;
    let cwd = std::env::current_dir().map_err(|e| format!("current directory: {e}"))?;
    setns(&theirs, CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("entering the container's mount namespace: {e}"))?;
    let r = crate::mounts::mnt(
        Some("overlay"),
        target,
        Some("overlay"),
        nix::mount::MsFlags::MS_NODEV,
        Some(opts),
    );
    setns(&own, CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("leaving the container's mount namespace: {e}"))?;
    std::env::set_current_dir(&cwd).map_err(|e| format!("back to {}: {e}", cwd.display()))?;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_distinct_above_the_floor_and_reused_when_freed() {
        let r = MemoryIdRanges::default();
        let a = r.allocate("a").expect("a");
        let b = r.allocate("b").expect("b");
        assert_eq!(a, FLOOR);
        assert_eq!(b, FLOOR + RANGE_SIZE);
        assert_eq!(r.allocate("a").expect("again"), a, "one range per server");
        r.release("a").expect("release");
        assert_eq!(r.allocate("c").expect("c"), a, "a freed range is reused");
    }

    #[test]
    fn ids_are_shifted_back_only_inside_the_range() {
        assert_eq!(unshift(u64::from(FLOOR) + 5, Some(FLOOR)), 5);
        assert_eq!(unshift(0, Some(FLOOR)), 0);
        assert_eq!(
            unshift(u64::from(FLOOR + RANGE_SIZE), Some(FLOOR)),
            u64::from(FLOOR + RANGE_SIZE)
        );
        assert_eq!(unshift(7, None), 7);
        assert_eq!(map_line(FLOOR), "0 1048576 65536\n");
    }
}
