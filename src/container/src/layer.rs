//! Each container's writable layer (the overlay's `upper/` and `work/`) lives on a file
//! system of its own, capped at the flavor's root disk: a sparse file `layer.img` in the
//! instance directory holding an ext4 file system, loop-mounted `nodev,nosuid` at
//! `layer/` before the shim starts. The shim finds `upper/` and `work/` under it through
//! [`Paths::upper`] and [`Paths::work`], unchanged.
//!
//! Why a loop-mounted file and not a project quota: quotas need the data directory on XFS
//! or on ext4 mounted with `prjquota`, which onebox cannot assume on a user's host; a loop
//! file works on any file system, costs only the blocks written (sparse, mounted with
//! `discard` so deleted files give their space back), makes a full layer an `ENOSPC` inside
//! the container alone, and carries `nodev,nosuid` on the mount itself, whatever the image
//! holds. Instances made before this (no `layer.img`) keep their layer in the instance
//! directory.

use std::path::Path;
use std::process::Command;

use crate::state::Paths;

const GIB: u64 = 1 << 30;

/// Runs a tool to completion; its stderr is the error.
fn tool(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running {what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The size of the layer for a flavor's root disk of `disk_gb` GiB; `disk_gb = 0` (Nova's
/// "as large as the image", for admins only) gets `zero_disk_bytes`.
pub fn layer_bytes(disk_gb: u64, zero_disk_bytes: u64) -> u64 {
    if disk_gb == 0 {
        zero_disk_bytes
    } else {
        disk_gb.saturating_mul(GIB)
    }
}

/// Whether `dir` is a mount point (another device than its parent's).
fn is_mounted(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(d), Some(Ok(parent))) = (std::fs::metadata(dir), dir.parent().map(std::fs::metadata))
    else {
        return false;
    };
    d.dev() != parent.dev()
}

/// Makes the layer file system of `bytes` for a new instance and mounts it, with empty
/// `upper/` and `work/`. On failure nothing is left mounted and the file is gone.
pub fn create(p: &Paths, bytes: u64) -> Result<(), String> {
    let img = p.layer_image();
    let r = (|| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&img)
            .map_err(|e| format!("creating {}: {e}", img.display()))?;
        f.set_len(bytes)
            .map_err(|e| format!("sizing {}: {e}", img.display()))?;
        drop(f);
        // Lazy init keeps the file sparse; no blocks reserved for root, who inside the
        // container is the only user anyway.
        tool(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-m", "0", "-E"])
                .arg("lazy_itable_init=1,lazy_journal_init=1,nodiscard")
                .arg(&img),
            "mkfs.ext4",
        )?;
        mount(p)?;
        for d in [p.upper(), p.work()] {
            std::fs::create_dir_all(&d).map_err(|e| format!("creating {}: {e}", d.display()))?;
        }
        Ok(())
    })();
    if r.is_err() {
        let _ = remove(p);
    }
    r
}

/// Mounts the layer of an instance that has one, unless it is mounted (after a host reboot
/// it is not).
pub fn mount(p: &Paths) -> Result<(), String> {
    let (img, dir) = (p.layer_image(), p.layer());
    if !img.exists() || is_mounted(&dir) {
        return Ok(());
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    // Checking and growing the file system is safe only while no loop device holds it;
    // otherwise it grows at a later mount.
    if p.layer_grow_mark().exists() {
        if still_attached(&img) {
            tracing::warn!(image = %img.display(), "the layer is still in use; it grows later");
        } else {
            grow_offline(&img)?;
            let _ = std::fs::remove_file(p.layer_grow_mark());
        }
    }
    tool(
        Command::new("mount")
            .args(["-t", "ext4", "-o", "loop,nodev,nosuid,discard"])
            .arg(&img)
            .arg(&dir),
        "mount",
    )
}

/// Unmounts and deletes the layer (the loop device goes with its last user).
pub fn remove(p: &Paths) -> Result<(), String> {
    unmount(p)?;
    match std::fs::remove_file(p.layer_image()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("removing the layer: {e}")),
    }
}

/// Grows the layer of a resized instance to `bytes` (never shrinks it: a revert keeps the
/// larger file system, as a VM's disk keeps its size). The file grows at once; the file
/// system grows online where the kernel lets this process (`resize2fs` on the loop device),
/// else at the next mount, offline (a `layer.grow` mark says so).
pub fn grow(p: &Paths, bytes: u64) -> Result<(), String> {
    let img = p.layer_image();
    let Ok(meta) = std::fs::metadata(&img) else {
        // An instance made before layers existed.
        return Ok(());
    };
    if bytes <= meta.len() {
        return Ok(());
    }
    std::fs::write(p.layer_grow_mark(), b"")
        .map_err(|e| format!("marking the layer to grow: {e}"))?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .and_then(|f| f.set_len(bytes))
        .map_err(|e| format!("growing {}: {e}", img.display()))?;
    if is_mounted(&p.layer()) {
        match grow_online(&img) {
            Ok(()) => {
                let _ = std::fs::remove_file(p.layer_grow_mark());
            }
            Err(e) => tracing::warn!(error = %e, "the layer grows at the next boot"),
        }
    }
    Ok(())
}

fn grow_online(img: &Path) -> Result<(), String> {
    let out = Command::new("losetup")
        .args(["-n", "-O", "NAME", "-j"])
        .arg(img)
        .output()
        .map_err(|e| format!("running losetup: {e}"))?;
    let dev = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("no loop device holds {}", img.display()))?;
    tool(Command::new("losetup").args(["-c", &dev]), "losetup -c")?;
    tool(Command::new("resize2fs").arg(&dev), "resize2fs")
}

/// Grows the unmounted file system to its file's size.
fn grow_offline(img: &Path) -> Result<(), String> {
    // e2fsck exits 1 when it fixed something, which is fine here.
    let st = Command::new("e2fsck")
        .args(["-f", "-p"])
        .arg(img)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running e2fsck: {e}"))?;
    if st.status.code().is_none_or(|c| c > 1) {
        return Err(format!(
            "e2fsck failed: {}",
            String::from_utf8_lossy(&st.stderr).trim()
        ));
    }
    tool(Command::new("resize2fs").arg(img), "resize2fs")
}

/// Unmounts the layer, leaving its file: at once when nothing uses it, else lazily (the
/// file system lives on until its last user goes).
pub fn unmount(p: &Paths) -> Result<(), String> {
    let dir = p.layer();
    if is_mounted(&dir) {
        match nix::mount::umount2(&dir, nix::mount::MntFlags::empty()) {
            Err(nix::errno::Errno::EBUSY) => {
                nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH)
                    .map_err(|e| format!("unmounting {}: {e}", dir.display()))?
            }
            r => r.map_err(|e| format!("unmounting {}: {e}", dir.display()))?,
        }
    }
    Ok(())
}

/// Whether a loop device still holds `img` (a lazily unmounted layer that is still in use,
/// or one whose loop device the kernel has not released yet), waiting a little for the
/// kernel to let go.
fn still_attached(img: &Path) -> bool {
    for _ in 0..50 {
        let held = Command::new("losetup")
            .args(["-n", "-O", "NAME", "-j"])
            .arg(img)
            .output()
            .map(|o| !String::from_utf8_lossy(&o.stdout).trim().is_empty())
            .unwrap_or(true);
        if !held {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    true
}
