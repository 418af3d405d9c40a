//! Disks: the cache of base images, qcow2 overlays on them, growth, snapshots, and the
//! config drive's ISO. Every tool is a child process with the image format passed
//! explicitly (never probed).

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use driver::ImageFile;
use driver::imagecache::{self, Swept};

use crate::{Error, bounded};

pub struct Disks {
    pub qemu_img: String,
    pub genisoimage: String,
    pub cache_dir: PathBuf,
    /// How long one `qemu-img convert` (a cache fill, a snapshot) may run before it is
    /// killed.
    pub convert_timeout: Duration,
    /// Serialises filling the cache, so two spawns of one image convert it once; a prune
    /// takes it too, so it never runs during a fill.
    fill: Mutex<()>,
    /// Held shared while a cached entry is found and touched, exclusively while the cache
    /// is pruned: an entry a spawn found is either fresh when the prune looks at it, or
    /// gone before the spawn looks (and then filled again).
    entries: RwLock<()>,
}

/// How long a quick tool run (`qemu-img info`, `create`, `resize`, `genisoimage`) may take.
const QUICK: Duration = Duration::from_secs(60);

/// A qcow2 file's metadata beyond its data: refcounts and L2 tables take well under 1/64 of
/// the virtual size with 64 KiB clusters; 64 MiB covers the header and small images.
fn qcow2_bound(virtual_size: u64) -> u64 {
    virtual_size
        .saturating_add(virtual_size / 64)
        .saturating_add(64 << 20)
}

fn run(cmd: &mut Command, what: &str) -> Result<String, Error> {
    bounded::run(cmd, what, QUICK, None)
}

/// Removes a file if it exists.
pub fn remove_file(p: &Path) -> Result<(), Error> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io(format!("removing {}", p.display()), e)),
    }
}

impl Disks {
    pub fn new(qemu_img: String, genisoimage: String, cache_dir: PathBuf) -> Self {
        Self {
            qemu_img,
            genisoimage,
            cache_dir,
            convert_timeout: Duration::from_secs(1800),
            fill: Mutex::new(()),
            entries: RwLock::new(()),
        }
    }

    /// The cached entry `dest`, touched (its mtime is when it was last used), if it is there.
    fn cached(&self, dest: &Path) -> Option<PathBuf> {
        let _g = self.entries.read().unwrap_or_else(|e| e.into_inner());
        if !std::fs::symlink_metadata(dest).is_ok_and(|m| m.is_file()) {
            return None;
        }
        if let Err(e) = imagecache::touch(dest) {
            tracing::warn!(path = %dest.display(), error = %e, "cannot mark a cached image used");
        }
        Some(dest.to_path_buf())
    }

    /// Removes the cached bases, kernels and ramdisks that nothing refers to and that were
    /// last used more than `min_unused_age` ago. What refers to them: the qcow2 files in the
    /// instance directories under `instances` (any name: `disk`, `disk.resize-backup`,
    /// `disk.rescue`, ... and their backing chains), the `*.xml` files there, and the domain
    /// definitions in `domain_xml`.
    pub fn prune(
        &self,
        instances: &Path,
        domain_xml: &[String],
        min_unused_age: Duration,
    ) -> Result<Swept, Error> {
        let _fill = self.fill.lock().unwrap_or_else(|e| e.into_inner());
        let _entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        prune_cache(&self.cache_dir, instances, domain_xml, min_unused_age)
    }

    /// The cache entry of an image: named by its content hash ([`ImageFile::cache_key`]),
    /// never by its id.
    fn entry(&self, img: &ImageFile) -> Result<PathBuf, Error> {
        let key = img.cache_key().map_err(Error::Invalid)?;
        Ok(self.cache_dir.join(key))
    }

    fn tmp_name(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!(".tmp-{name}-{}", uuid::Uuid::new_v4().simple()))
    }

    /// The image as a qcow2 base in the cache (`<cache>/<content hash>`), converted from its
    /// declared format the first time it is needed, after its data is checked against the
    /// hash the entry is named by. The conversion runs under [`Disks::convert_timeout`], and
    /// its output may not pass what the image's virtual size allows nor what the cache's
    /// file system has free. Base files are never written again.
    pub fn base(&self, img: &ImageFile) -> Result<PathBuf, Error> {
        let dest = self.entry(img)?;
        if let Some(p) = self.cached(&dest) {
            return Ok(p);
        }
        let _g = self.fill.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = self.cached(&dest) {
            return Ok(p);
        }
        std::fs::create_dir_all(&self.cache_dir)
            .map_err(|e| Error::Io(format!("creating {}", self.cache_dir.display()), e))?;
        let fmt = match img.disk_format.as_str() {
            "qcow2" => "qcow2",
            "raw" => "raw",
            other => {
                return Err(Error::Invalid(format!(
                    "image {} has disk format {other}, which a VM cannot boot",
                    img.id
                )));
            }
        };
        verify_content(&img.path, &img.content_hash)?;
        let bound = qcow2_bound(self.info_virtual_size(&img.path, fmt)?);
        let free = bounded::free_bytes(&self.cache_dir)?;
        if bound > free {
            return Err(Error::Invalid(format!(
                "image {} needs up to {bound} bytes in the image cache; {free} are free",
                img.id
            )));
        }
        let tmp = Self::tmp_name(&self.cache_dir, &img.id);
        let r = bounded::run(
            Command::new(&self.qemu_img)
                .args(["convert", "-f", fmt, "-O", "qcow2"])
                .arg(&img.path)
                .arg(&tmp),
            "qemu-img convert",
            self.convert_timeout,
            Some((&tmp, bound)),
        );
        if let Err(e) = r {
            let _ = remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &dest)
            .map_err(|e| Error::Io(format!("renaming into {}", dest.display()), e))?;
        Ok(dest)
    }

    /// A kernel or ramdisk as a file in the cache (copied: the image store's file may be
    /// deleted while a guest still boots from it), named by its content hash and checked
    /// against it.
    pub fn blob(&self, img: &ImageFile) -> Result<PathBuf, Error> {
        let dest = self.entry(img)?;
        if let Some(p) = self.cached(&dest) {
            return Ok(p);
        }
        let _g = self.fill.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = self.cached(&dest) {
            return Ok(p);
        }
        std::fs::create_dir_all(&self.cache_dir)
            .map_err(|e| Error::Io(format!("creating {}", self.cache_dir.display()), e))?;
        let tmp = Self::tmp_name(&self.cache_dir, &img.id);
        if let Err(e) = std::fs::copy(&img.path, &tmp) {
            let _ = remove_file(&tmp);
            return Err(Error::Io(format!("copying {}", img.path.display()), e));
        }
        if let Err(e) = verify_content(&tmp, &img.content_hash) {
            let _ = remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &dest)
            .map_err(|e| Error::Io(format!("renaming into {}", dest.display()), e))?;
        Ok(dest)
    }

    /// The virtual size of the image file `path` in format `fmt`, in bytes.
    fn info_virtual_size(&self, path: &Path, fmt: &str) -> Result<u64, Error> {
        let out = run(
            Command::new(&self.qemu_img)
                .args(["info", "--output=json", "-f", fmt, "-U"])
                .arg(path),
            "qemu-img info",
        )?;
        let v: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| Error::Tool("qemu-img info".into(), e.to_string()))?;
        v["virtual-size"]
            .as_u64()
            .ok_or_else(|| Error::Tool("qemu-img info".into(), "no virtual-size".into()))
    }

    /// The virtual size of a qcow2 file, in bytes.
    pub fn virtual_size(&self, path: &Path) -> Result<u64, Error> {
        self.info_virtual_size(path, "qcow2")
    }

    /// A new qcow2 overlay at `dest` on `base` (or a blank disk), at least `size_gb` large.
    pub fn overlay(&self, base: Option<&Path>, dest: &Path, size_gb: u64) -> Result<(), Error> {
        let want = size_gb * 1024 * 1024 * 1024;
        let mut cmd = Command::new(&self.qemu_img);
        cmd.args(["create", "-q", "-f", "qcow2"]);
        let size = match base {
            Some(b) => {
                cmd.arg("-b").arg(b).args(["-F", "qcow2"]);
                want.max(self.virtual_size(b)?)
            }
            None => want.max(1024 * 1024),
        };
        cmd.arg(dest).arg(size.to_string());
        run(&mut cmd, "qemu-img create")?;
        Ok(())
    }

    /// Grows a qcow2 file to `size_gb` if it is smaller; never shrinks it.
    pub fn grow(&self, path: &Path, size_gb: u64) -> Result<(), Error> {
        let want = size_gb * 1024 * 1024 * 1024;
        if want > self.virtual_size(path)? {
            run(
                Command::new(&self.qemu_img)
                    .args(["resize", "-q", "-f", "qcow2"])
                    .arg(path)
                    .arg(want.to_string()),
                "qemu-img resize",
            )?;
        }
        Ok(())
    }

    /// A standalone qcow2 copy of `disk` (its backing chain flattened) at `dest`.
    pub fn flatten(&self, disk: &Path, dest: &Path) -> Result<(), Error> {
        let tmp = Self::tmp_name(
            dest.parent().unwrap_or(Path::new(".")),
            &dest
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let bound = qcow2_bound(self.virtual_size(disk)?);
        let r = bounded::run(
            Command::new(&self.qemu_img)
                .args(["convert", "-U", "-f", "qcow2", "-O", "qcow2"])
                .arg(disk)
                .arg(&tmp),
            "qemu-img convert",
            self.convert_timeout,
            Some((&tmp, bound)),
        );
        if let Err(e) = r {
            let _ = remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, dest)
            .map_err(|e| Error::Io(format!("renaming into {}", dest.display()), e))
    }

    /// An ISO 9660 image labelled `config-2` holding the tree under `dir`.
    pub fn iso(&self, dir: &Path, dest: &Path) -> Result<(), Error> {
        run(
            Command::new(&self.genisoimage)
                .args([
                    "-quiet",
                    "-J",
                    "-r",
                    "-V",
                    "config-2",
                    "-input-charset",
                    "utf-8",
                    "-o",
                ])
                .arg(dest)
                .arg(dir),
            "genisoimage",
        )?;
        Ok(())
    }
}

/// The backing file named in the header of the qcow2 file `path`, as written there
/// (relative names are relative to `path`'s directory); `None` when the file is not qcow2
/// or has no backing file. Reads the header only: magic `QFI\xfb`, then big-endian
/// `backing_file_offset` (u64 at byte 8) and `backing_file_size` (u32 at byte 16).
pub fn qcow2_backing_file(path: &Path) -> std::io::Result<Option<PathBuf>> {
    let mut f = std::fs::File::open(path)?;
    let mut h = [0u8; 20];
    match f.read_exact(&mut h) {
        Ok(()) => {}
        // Shorter than a qcow2 header: not qcow2.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    if h[0..4] != *b"QFI\xfb" {
        return Ok(None);
    }
    let offset = u64::from_be_bytes(h[8..16].try_into().unwrap_or_default());
    let size = u32::from_be_bytes(h[16..20].try_into().unwrap_or_default());
    if offset == 0 || size == 0 {
        return Ok(None);
    }
    // QEMU refuses names over 1023 bytes; so does this.
    if size > 1023 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: backing file name of {size} bytes", path.display()),
        ));
    }
    let mut name = vec![0u8; size as usize];
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(&mut name)?;
    use std::os::unix::ffi::OsStringExt;
    Ok(Some(PathBuf::from(std::ffi::OsString::from_vec(name))))
}

/// How deep a backing chain is followed from a file in an instance directory.
const MAX_CHAIN: usize = 16;

/// Adds the file name of every file in `disk`'s backing chain to `into`.
fn add_backing_chain(disk: &Path, into: &mut HashSet<String>) -> Result<(), Error> {
    let mut cur = disk.to_path_buf();
    for _ in 0..MAX_CHAIN {
        let backing = match qcow2_backing_file(&cur) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(()),
            // A file removed meanwhile (a confirmed resize's backup) refers to nothing; a
            // missing backing file ends the chain.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::Io(format!("reading {}", cur.display()), e)),
        };
        let Some(name) = backing.file_name() else {
            return Ok(());
        };
        into.insert(name.to_string_lossy().into_owned());
        cur = match cur.parent() {
            Some(dir) => dir.join(&backing),
            None => backing,
        };
    }
    Ok(())
}

/// Adds the last component of every path in a domain definition (kernel, initrd, disk
/// sources, backing stores) to `into`. Words that are no path add names no cache entry has
/// (cache entries are image ids), so this errs only on the side of keeping.
fn add_xml_paths(xml: &str, into: &mut HashSet<String>) {
    for word in xml.split(|c: char| matches!(c, '<' | '>' | '\'' | '"') || c.is_whitespace()) {
        if let Some((_, name)) = word.rsplit_once('/')
            && !name.is_empty()
        {
            into.insert(name.to_string());
        }
    }
}

/// The names of the cache entries referred to from the instance directories under
/// `instances` and from `domain_xml`. Any error reading what an instance refers to is an
/// error: a prune that cannot tell what is in use removes nothing.
pub fn referenced(instances: &Path, domain_xml: &[String]) -> Result<HashSet<String>, Error> {
    let mut refs = HashSet::new();
    for xml in domain_xml {
        add_xml_paths(xml, &mut refs);
    }
    let dirs = match std::fs::read_dir(instances) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(refs),
        Err(e) => return Err(Error::Io(format!("reading {}", instances.display()), e)),
    };
    let io = |p: &Path, e| Error::Io(format!("reading {}", p.display()), e);
    for d in dirs {
        let d = d.map_err(|e| io(instances, e))?;
        if !d.file_type().map_err(|e| io(&d.path(), e))?.is_dir() {
            continue;
        }
        let dir = d.path();
        let files = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            // An instance deleted meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&dir, e)),
        };
        for f in files {
            let f = f.map_err(|e| io(&dir, e))?;
            let path = f.path();
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&path, e)),
            };
            if !meta.is_file() {
                continue;
            }
            if path.extension().is_some_and(|x| x == "xml") {
                match std::fs::read_to_string(&path) {
                    Ok(xml) => add_xml_paths(&xml, &mut refs),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&path, e)),
                }
            } else {
                // Every file, not only `disk*`: whatever is qcow2 may have a base.
                add_backing_chain(&path, &mut refs)?;
            }
        }
    }
    Ok(refs)
}

/// Removes from the VM image cache `cache` the entries no instance under `instances` (nor
/// any definition in `domain_xml`) refers to and that were last used more than
/// `min_unused_age` ago (see [`imagecache::sweep`]). The caller holds the cache's fill lock
/// ([`Disks::prune`] does).
pub fn prune_cache(
    cache: &Path,
    instances: &Path,
    domain_xml: &[String],
    min_unused_age: Duration,
) -> Result<Swept, Error> {
    let refs = referenced(instances, domain_xml)?;
    imagecache::sweep(cache, &refs, min_unused_age)
        .map_err(|e| Error::Io(format!("pruning {}", cache.display()), e))
}

/// Checks that the file at `path` has the content hash `hash` (see
/// [`imagecache::verify_content`]).
fn verify_content(path: &Path, hash: &str) -> Result<(), Error> {
    imagecache::verify_content(path, hash)
        .map_err(|e| Error::Io(format!("checking {}", path.display()), e))
}

/// Refuses to boot an image whose `kernel_id` (or, with a kernel, `ramdisk_id`) was not
/// resolved: the compute service resolves them with the server owner's visibility and
/// leaves out what the owner may not see, and a guest must then not boot as if the image
/// named nothing.
pub fn check_linked(
    image: Option<&ImageFile>,
    kernel: Option<&ImageFile>,
    ramdisk: Option<&ImageFile>,
) -> Result<(), Error> {
    let Some(img) = image else {
        return Ok(());
    };
    let named = |k: &str| img.properties.get(k).filter(|v| !v.is_empty());
    if let Some(k) = named("kernel_id")
        && kernel.is_none()
    {
        return Err(Error::Invalid(format!(
            "image {} names kernel {k}, which is not available to this server",
            img.id
        )));
    }
    if let Some(r) = named("ramdisk_id")
        && kernel.is_some()
        && ramdisk.is_none()
    {
        return Err(Error::Invalid(format!(
            "image {} names ramdisk {r}, which is not available to this server",
            img.id
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: &str, props: &[(&str, &str)]) -> ImageFile {
        ImageFile {
            id: id.into(),
            path: PathBuf::from("/nonexistent"),
            disk_format: "qcow2".into(),
            container_format: "bare".into(),
            content_hash: String::new(),
            properties: props
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn attack_a_linked_image_left_out_stops_the_boot() {
        let img = file("i", &[("kernel_id", "k"), ("ramdisk_id", "r")]);
        let k = file("k", &[]);
        let r = file("r", &[]);
        assert!(check_linked(Some(&img), None, None).is_err());
        assert!(check_linked(Some(&img), Some(&k), None).is_err());
        assert!(check_linked(Some(&img), Some(&k), Some(&r)).is_ok());
        assert!(check_linked(Some(&file("p", &[])), None, None).is_ok());
        assert!(check_linked(None, None, None).is_ok());
    }
}
