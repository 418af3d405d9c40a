//! Root filesystems: images unpacked once into the shared read-only cache (pruned of the
//! ones no container uses), and snapshots packed back into tarballs.

use std::collections::HashSet;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::time::Duration;

use driver::imagecache::{self, Swept};

/// How much one root filesystem may unpack to: a tarball (gzip especially) can claim far
/// more than it holds, and a tar bomb must fail cleanly instead of filling the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Bytes of file data (the sum of the entries' sizes, sparse files at their full size).
    pub max_bytes: u64,
    /// Entries (files, directories, links, nodes): the inodes the tree takes.
    pub max_inodes: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        Self {
            max_bytes: 8 << 30,
            max_inodes: 1_000_000,
        }
    }
}

/// Unpacks the rootfs tarball `image` (plain or gzip-compressed tar) into `<cache>/<key>/`
/// unless it is there already, and returns that directory. `key` is the image's content
/// hash ([`driver::ImageFile::cache_key`]), and the tarball is checked against it before it
/// is unpacked, so an entry only ever holds the content its name says. The tarball is
/// unpacked beside it within `limits` and renamed into place, so a directory under its
/// final name is always complete; a failed unpack leaves nothing. The directory's mtime is
/// set to now either way: it is when the image was last used, which [`prune_cache`] goes
/// by. The caller holds the driver's unpack lock.
pub fn ensure_unpacked(
    cache: &Path,
    key: &str,
    image: &Path,
    limits: UnpackLimits,
) -> Result<PathBuf, String> {
    let dest = unpacked(cache, key, image, limits)?;
    // Unpacking kept the tarball's own mtime on the directory.
    imagecache::touch(&dest).map_err(|e| format!("marking {} used: {e}", dest.display()))?;
    Ok(dest)
}

fn unpacked(
    cache: &Path,
    key: &str,
    image: &Path,
    limits: UnpackLimits,
) -> Result<PathBuf, String> {
    if key.is_empty() || key.contains('/') || key.starts_with('.') {
        return Err(format!("bad cache key {key:?}"));
    }
    let dest = cache.join(key);
    if std::fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir()) {
        return Ok(dest);
    }
    imagecache::verify_content(image, key)
        .map_err(|e| format!("checking {}: {e}", image.display()))?;
    std::fs::create_dir_all(cache).map_err(|e| format!("creating {}: {e}", cache.display()))?;
    let tmp = cache.join(format!(".unpack-{key}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("creating {}: {e}", tmp.display()))?;
    let r = unpack(image, &tmp, limits);
    if let Err(e) = r {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    // The root of the container's filesystem is world-readable, whatever the temporary
    // directory's mode was.
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755));
    match std::fs::rename(&tmp, &dest) {
        Ok(()) => Ok(dest),
        // Another spawn unpacked the same image meanwhile.
        Err(_) if dest.is_dir() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dest)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(format!("renaming the unpacked image: {e}"))
        }
    }
}

/// The names of the rootfs cache entries the container instances under `instances` use:
/// the image id and the lower layer's directory name in each `instance.json`. Directories
/// without one (a VM's, or a spawn not written yet) refer to nothing; an `instance.json`
/// that cannot be read is an error, so a prune that cannot tell what is in use removes
/// nothing.
pub fn referenced(instances: &Path) -> Result<HashSet<String>, String> {
    let mut refs = HashSet::new();
    let dirs = match std::fs::read_dir(instances) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(refs),
        Err(e) => return Err(format!("reading {}: {e}", instances.display())),
    };
    for d in dirs {
        let d = d.map_err(|e| format!("reading {}: {e}", instances.display()))?;
        let file = d.path().join("instance.json");
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                continue;
            }
            Err(e) => return Err(format!("reading {}: {e}", file.display())),
        };
        // Only the two fields that matter are read, so a record of another version counts.
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("reading {}: {e}", file.display()))?;
        if let Some(id) = v.get("image_id").and_then(|v| v.as_str()) {
            refs.insert(id.to_owned());
        }
        if let Some(name) = v
            .get("lower")
            .and_then(|v| v.as_str())
            .and_then(|l| Path::new(l).file_name())
        {
            refs.insert(name.to_string_lossy().into_owned());
        }
    }
    Ok(refs)
}

/// Removes from the rootfs cache `cache` the unpacked images no container under
/// `instances` uses and that were last used more than `min_unused_age` ago, and unpack
/// leftovers older than a day (see [`imagecache::sweep`]). The caller holds the driver's
/// unpack lock.
pub fn prune_cache(
    cache: &Path,
    instances: &Path,
    min_unused_age: Duration,
) -> Result<Swept, String> {
    let refs = referenced(instances)?;
    imagecache::sweep(cache, &refs, min_unused_age)
        .map_err(|e| format!("pruning {}: {e}", cache.display()))
}

/// The bytes an entry unpacks to: its data, or for a GNU sparse file its full size.
fn unpacked_size<R: Read>(entry: &tar::Entry<'_, R>) -> u64 {
    let h = entry.header();
    let sparse = h
        .as_gnu()
        .filter(|_| h.entry_type().is_gnu_sparse())
        .and_then(|g| g.real_size().ok())
        .unwrap_or(0);
    entry.size().max(sparse)
}

fn describe(e: &std::io::Error) -> String {
    let mut msg = format!("unpacking the image's root filesystem: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

fn unpack(image: &Path, into: &Path, limits: UnpackLimits) -> Result<(), String> {
    let mut f = std::fs::File::open(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(|e| e.to_string())?;
    f.rewind().map_err(|e| e.to_string())?;
    let reader: Box<dyn Read> = if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(flate2::read::GzDecoder::new(BufReader::new(f)))
    } else {
        Box::new(BufReader::new(f))
    };
    let mut ar = tar::Archive::new(reader);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(true);
    ar.set_preserve_mtime(true);
    ar.set_unpack_xattrs(false);
    ar.set_overwrite(true);
    let (mut bytes, mut inodes) = (0u64, 0u64);
    // Directories are applied last, deepest first, as `tar::Archive::unpack` does, so a
    // read-only directory does not stop its own files from being written.
    let mut dirs = Vec::new();
    for entry in ar.entries().map_err(|e| describe(&e))? {
        let mut entry = entry.map_err(|e| describe(&e))?;
        inodes += 1;
        bytes = bytes.saturating_add(unpacked_size(&entry));
        if inodes > limits.max_inodes {
            return Err(format!(
                "the image's root filesystem has more than {} entries",
                limits.max_inodes
            ));
        }
        if bytes > limits.max_bytes {
            return Err(format!(
                "the image's root filesystem unpacks to more than {} bytes",
                limits.max_bytes
            ));
        }
        if entry.header().entry_type() == tar::EntryType::Directory {
            dirs.push(entry);
            continue;
        }
        // `unpack_in` refuses entries that would land outside `into` (`..`, absolute paths,
        // through symlinks).
        entry.unpack_in(into).map_err(|e| describe(&e))?;
    }
    dirs.sort_by(|a, b| b.path_bytes().cmp(&a.path_bytes()));
    for mut d in dirs {
        d.unpack_in(into).map_err(|e| describe(&e))?;
    }
    Ok(())
}

/// Appends one entry; with `base` (a container in a user namespace) its owner is written as
/// the container sees it, not as the host stores it.
fn append<W: std::io::Write>(
    b: &mut tar::Builder<W>,
    full: &Path,
    rel: &Path,
    meta: &std::fs::Metadata,
    base: Option<u32>,
) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if base.is_none() {
        return b.append_path_with_name(full, rel);
    }
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    h.set_uid(crate::userns::unshift(u64::from(meta.uid()), base));
    h.set_gid(crate::userns::unshift(u64::from(meta.gid()), base));
    let ft = meta.file_type();
    if ft.is_file() {
        let f = std::fs::File::open(full)?;
        b.append_data(&mut h, rel, f)
    } else if ft.is_symlink() {
        let target = std::fs::read_link(full)?;
        h.set_size(0);
        b.append_link(&mut h, rel, target)
    } else {
        h.set_size(0);
        b.append_data(&mut h, rel, std::io::empty())
    }
}

/// Packs the tree at `root` into the tar file `dest`, leaving out the contents of the
/// kernel's filesystems (`/proc`, `/sys`, `/dev`) but keeping their directories. `base`:
/// the container's id range, whose host ids are written back as the container's own.
pub fn pack(root: &Path, dest: &Path, base: Option<u32>) -> Result<(), String> {
    let out = std::fs::File::create(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(out));
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Complete);
    let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
    // Another file system mounted in the tree (a volume) is not the container's: its
    // directory is kept, its contents left out.
    let root_dev = std::fs::metadata(root)
        .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
        .map_err(|e| format!("{}: {e}", root.display()))?;
    while let Some(rel) = stack.pop() {
        let full = root.join(&rel);
        let meta =
            std::fs::symlink_metadata(&full).map_err(|e| format!("{}: {e}", full.display()))?;
        let ft = meta.file_type();
        if !rel.as_os_str().is_empty() {
            use std::os::unix::fs::FileTypeExt;
            if ft.is_socket() || ft.is_fifo() {
                continue;
            }
            append(&mut b, &full, &rel, &meta, base)
                .map_err(|e| format!("packing {}: {e}", rel.display()))?;
        }
        if ft.is_dir() && std::os::unix::fs::MetadataExt::dev(&meta) == root_dev {
            let top = rel.as_os_str().is_empty();
            let mut names: Vec<_> = std::fs::read_dir(&full)
                .map_err(|e| format!("{}: {e}", full.display()))?
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect();
            names.sort();
            for n in names.into_iter().rev() {
                let child = rel.join(&n);
                if !top {
                    stack.push(child);
                    continue;
                }
                if ["proc", "sys", "dev"].iter().any(|k| n == *k) {
                    // The directory itself, empty.
                    let mut h = tar::Header::new_gnu();
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o755);
                    h.set_size(0);
                    h.set_uid(0);
                    h.set_gid(0);
                    h.set_mtime(0);
                    b.append_data(&mut h, &child, std::io::empty())
                        .map_err(|e| format!("packing {}: {e}", child.display()))?;
                    continue;
                }
                stack.push(child);
            }
        }
    }
    let w = b
        .into_inner()
        .map_err(|e| format!("finishing {}: {e}", dest.display()))?;
    w.into_inner()
        .map_err(|e| format!("writing {}: {e}", dest.display()))?
        .sync_all()
        .map_err(|e| format!("syncing {}: {e}", dest.display()))
}

/// Packs a stopped container's root: its overlay mounted for the time of the copy on a
/// private mount point in the instance directory.
pub(crate) fn pack_stopped(
    p: &crate::state::Paths,
    inst: &crate::state::Instance,
    dest: &Path,
) -> std::result::Result<(), String> {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    crate::layer::mount(p)?;
    let mnt = p.dir.join("snapshot-mnt");
    std::fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        inst.lower.display(),
        p.upper().display(),
        p.work().display()
    );
    mount(
        Some("overlay"),
        &mnt,
        Some("overlay"),
        MsFlags::MS_RDONLY,
        Some(opts.as_str()),
    )
    .map_err(|e| format!("mounting the root filesystem: {e}"))?;
    let r = pack(&mnt, dest, inst.user_namespace);
    let u = umount2(&mnt, MntFlags::MNT_DETACH).map_err(|e| format!("unmounting: {e}"));
    let _ = std::fs::remove_dir(&mnt);
    r.and(u)
}
