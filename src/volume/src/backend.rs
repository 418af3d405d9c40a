//! Where volume data lives: the [`StorageBackend`] trait and the file backend.
//!
//! The file backend keeps each volume as a sparse raw file `<dir>/<id>.raw` and each snapshot
//! as `<dir>/snapshots/<id>.raw`. Every file is written under a temporary name, fsynced,
//! renamed and its directory fsynced, so a crash never leaves a partial volume under its real
//! name; free space is checked before anything is written.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const GIB: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Not enough space for the request: the create fails, nothing is written.
    #[error("not enough free space: {needed} bytes needed, {free} free")]
    NoSpace { needed: u64, free: u64 },
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("{0}")]
    Io(String),
}

impl From<std::io::Error> for BackendError {
    fn from(e: std::io::Error) -> Self {
        BackendError::Io(e.to_string())
    }
}

pub type BackendResult<T> = Result<T, BackendError>;

/// A place volumes are kept. Every method blocks; the service calls them on blocking
/// threads. Paths returned are the provider locations the database records.
pub trait StorageBackend: Send + Sync {
    /// An empty volume of `size_gb`.
    fn create_empty(&self, id: &str, size_gb: u64) -> BackendResult<PathBuf>;
    /// A volume of `size_gb` holding the image at `image`, read as `format` (the image's
    /// declared format, never probed).
    fn create_from_image(
        &self,
        id: &str,
        size_gb: u64,
        image: &Path,
        format: &str,
    ) -> BackendResult<PathBuf>;
    /// A volume of `size_gb` holding a copy of the volume or snapshot at `source`.
    fn copy_from(&self, id: &str, size_gb: u64, source: &Path) -> BackendResult<PathBuf>;
    /// A snapshot of the volume at `source`.
    fn snapshot(&self, snapshot_id: &str, source: &Path) -> BackendResult<PathBuf>;
    /// Grows the volume at `path` to `new_size_gb`.
    fn extend(&self, path: &Path, new_size_gb: u64) -> BackendResult<()>;
    /// The volume at `source` as a new file of disk format `format` (`raw` or `qcow2`) for
    /// an image upload; the caller removes it when done (a restart's sweep removes one left).
    fn export(&self, source: &Path, format: &str) -> BackendResult<PathBuf>;
    /// Removes the volume or snapshot at `path` (gone already is fine).
    fn delete(&self, path: &Path) -> BackendResult<()>;
    /// Bytes free for new volumes.
    fn free_bytes(&self) -> BackendResult<u64>;
    /// Removes every file that is none of `known` ids (and every temporary file); returns
    /// what it removed.
    fn sweep(&self, known: &HashSet<String>) -> BackendResult<Vec<PathBuf>>;
}

/// Raw sparse files under one directory (`<data_dir>/volumes`).
pub struct FileBackend {
    dir: PathBuf,
}

/// The formats `qemu-img convert -f` is given for an image's declared disk format.
fn qemu_format(declared: &str) -> Option<&'static str> {
    Some(match declared {
        "raw" => "raw",
        "qcow2" => "qcow2",
        "vmdk" => "vmdk",
        "vdi" => "vdi",
        "vhd" => "vpc",
        "vhdx" => "vhdx",
        _ => return None,
    })
}

/// An id is a UUID: nothing that could name another directory.
fn check_id(id: &str) -> BackendResult<()> {
    if id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        Ok(())
    } else {
        Err(BackendError::Invalid(format!("bad volume id {id:?}")))
    }
}

fn sync_dir(dir: &Path) -> BackendResult<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

impl FileBackend {
    /// The backend over `dir`, made if missing (mode 0700).
    pub fn new(dir: impl Into<PathBuf>) -> BackendResult<Self> {
        let dir = dir.into();
        fs::create_dir_all(dir.join("snapshots"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        }
        let dir = dir.canonicalize()?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn volume_path(&self, id: &str) -> BackendResult<PathBuf> {
        check_id(id)?;
        Ok(self.dir.join(format!("{id}.raw")))
    }

    fn snapshot_path(&self, id: &str) -> BackendResult<PathBuf> {
        check_id(id)?;
        Ok(self.dir.join("snapshots").join(format!("{id}.raw")))
    }

    fn tmp_of(path: &Path) -> PathBuf {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        path.with_file_name(format!(".{name}.tmp"))
    }

    /// A path the backend may touch: a file directly in its directory or its snapshots.
    fn owned(&self, path: &Path) -> BackendResult<()> {
        let parent = path.parent().unwrap_or(Path::new(""));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let ok = (parent == self.dir || parent == self.dir.join("snapshots"))
            && name.is_some_and(|n| n.ends_with(".raw") && !n.starts_with('.'));
        if ok {
            Ok(())
        } else {
            Err(BackendError::Invalid(
                "the path is not a volume of this backend".into(),
            ))
        }
    }

    fn check_space(&self, needed: u64) -> BackendResult<()> {
        let free = self.free_bytes()?;
        if needed > free {
            return Err(BackendError::NoSpace { needed, free });
        }
        Ok(())
    }

    /// Makes `dest` from what `fill` writes into its temporary name: sized, fsynced, renamed.
    fn publish(
        &self,
        dest: &Path,
        size: u64,
        fill: impl FnOnce(&Path) -> BackendResult<()>,
    ) -> BackendResult<PathBuf> {
        self.check_space(size)?;
        let tmp = Self::tmp_of(dest);
        let _ = fs::remove_file(&tmp);
        let r = (|| {
            fill(&tmp)?;
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&tmp)?;
            if f.metadata()?.len() > size {
                return Err(BackendError::Invalid(
                    "the source is larger than the volume".into(),
                ));
            }
            f.set_len(size)?;
            f.sync_all()?;
            Ok(())
        })();
        if let Err(e) = r {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, dest)?;
        sync_dir(dest.parent().unwrap_or(&self.dir))?;
        Ok(dest.to_owned())
    }
}

fn convert(format: &str, src: &Path, dest: &Path) -> BackendResult<()> {
    convert_to(format, "raw", src, dest)
}

fn convert_to(format: &str, out_format: &str, src: &Path, dest: &Path) -> BackendResult<()> {
    let out = Command::new("qemu-img")
        .args(["convert", "-q", "-f", format, "-O", out_format])
        .arg(src)
        .arg(dest)
        .output()
        .map_err(|e| BackendError::Io(format!("qemu-img: {e}")))?;
    if !out.status.success() {
        return Err(BackendError::Io(format!(
            "qemu-img convert failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

impl StorageBackend for FileBackend {
    fn create_empty(&self, id: &str, size_gb: u64) -> BackendResult<PathBuf> {
        let dest = self.volume_path(id)?;
        self.publish(&dest, size_gb * GIB, |tmp| {
            File::create(tmp)?;
            Ok(())
        })
    }

    fn create_from_image(
        &self,
        id: &str,
        size_gb: u64,
        image: &Path,
        format: &str,
    ) -> BackendResult<PathBuf> {
        let fmt = qemu_format(format).ok_or_else(|| {
            BackendError::Invalid(format!("disk format {format} is not supported"))
        })?;
        let dest = self.volume_path(id)?;
        self.publish(&dest, size_gb * GIB, |tmp| convert(fmt, image, tmp))
    }

    fn copy_from(&self, id: &str, size_gb: u64, source: &Path) -> BackendResult<PathBuf> {
        self.owned(source)?;
        let dest = self.volume_path(id)?;
        self.publish(&dest, size_gb * GIB, |tmp| convert("raw", source, tmp))
    }

    fn snapshot(&self, snapshot_id: &str, source: &Path) -> BackendResult<PathBuf> {
        self.owned(source)?;
        let size = fs::metadata(source)?.len();
        let dest = self.snapshot_path(snapshot_id)?;
        self.publish(&dest, size, |tmp| convert("raw", source, tmp))
    }

    fn export(&self, source: &Path, format: &str) -> BackendResult<PathBuf> {
        self.owned(source)?;
        let fmt = match format {
            "raw" | "qcow2" => format,
            other => {
                return Err(BackendError::Invalid(format!(
                    "disk format {other} is not supported"
                )));
            }
        };
        // Dot-named: never mistaken for a volume, swept at the next start if left behind.
        let dest = self
            .dir
            .join(format!(".export-{}.{fmt}", uuid::Uuid::new_v4()));
        if let Err(e) = convert_to("raw", fmt, source, &dest) {
            let _ = fs::remove_file(&dest);
            return Err(e);
        }
        Ok(dest)
    }

    fn extend(&self, path: &Path, new_size_gb: u64) -> BackendResult<()> {
        self.owned(path)?;
        let f = OpenOptions::new().write(true).open(path)?;
        let now = f.metadata()?.len();
        let new = new_size_gb * GIB;
        if new < now {
            return Err(BackendError::Invalid("a volume cannot shrink".into()));
        }
        self.check_space(new - now)?;
        f.set_len(new)?;
        f.sync_all()?;
        Ok(())
    }

    fn delete(&self, path: &Path) -> BackendResult<()> {
        self.owned(path)?;
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        sync_dir(path.parent().unwrap_or(&self.dir))
    }

    fn free_bytes(&self) -> BackendResult<u64> {
        let st = nix::sys::statvfs::statvfs(&self.dir)
            .map_err(|e| BackendError::Io(format!("statvfs: {e}")))?;
        Ok((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
    }

    fn sweep(&self, known: &HashSet<String>) -> BackendResult<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for dir in [self.dir.clone(), self.dir.join("snapshots")] {
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                if !entry.file_type()?.is_file() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                let keep = name
                    .strip_suffix(".raw")
                    .is_some_and(|id| !name.starts_with('.') && known.contains(id));
                if !keep {
                    fs::remove_file(entry.path())?;
                    removed.push(entry.path());
                }
            }
            sync_dir(&dir)?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "11111111-2222-3333-4444-555555555555";

    fn backend() -> (tempfile::TempDir, FileBackend) {
        let t = tempfile::tempdir().expect("tempdir");
        let b = FileBackend::new(t.path().join("volumes")).expect("backend");
        (t, b)
    }

    #[test]
    fn an_empty_volume_is_a_sparse_file_of_its_size() {
        let (_t, b) = backend();
        let p = b.create_empty(ID, 1).expect("create");
        let md = fs::metadata(&p).expect("stat");
        assert_eq!(md.len(), GIB);
        use std::os::unix::fs::MetadataExt;
        assert!(md.blocks() * 512 < GIB / 16, "sparse");
        assert_eq!(p, b.dir().join(format!("{ID}.raw")));
        assert!(!b.dir().join(format!(".{ID}.raw.tmp")).exists());
        b.extend(&p, 2).expect("extend");
        assert_eq!(fs::metadata(&p).expect("stat").len(), 2 * GIB);
        assert!(b.extend(&p, 1).is_err(), "never shrinks");
        b.delete(&p).expect("delete");
        assert!(!p.exists());
        b.delete(&p).expect("deleting twice is fine");
    }

    #[test]
    fn a_volume_from_a_qcow2_image_holds_its_data_and_a_snapshot_copies_it() {
        let (t, b) = backend();
        let raw = t.path().join("src.raw");
        let mut data = vec![0u8; 1 << 20];
        data[..6].copy_from_slice(b"marker");
        fs::write(&raw, &data).expect("write");
        let qcow = t.path().join("src.qcow2");
        let ok = Command::new("qemu-img")
            .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
            .arg(&raw)
            .arg(&qcow)
            .status()
            .expect("qemu-img");
        assert!(ok.success());
        let p = b.create_from_image(ID, 1, &qcow, "qcow2").expect("create");
        let got = fs::read(&p).expect("read");
        assert_eq!(got.len() as u64, GIB);
        assert_eq!(&got[..6], b"marker");
        // Read as its declared format: a qcow2 declared raw is copied byte for byte.
        let id2 = "22222222-2222-3333-4444-555555555555";
        let p2 = b.create_from_image(id2, 1, &qcow, "raw").expect("as raw");
        assert_eq!(&fs::read(&p2).expect("read")[..4], b"QFI\xfb");
        let snap_id = "33333333-2222-3333-4444-555555555555";
        let s = b.snapshot(snap_id, &p).expect("snapshot");
        assert_eq!(&fs::read(&s).expect("read")[..6], b"marker");
        let id3 = "44444444-2222-3333-4444-555555555555";
        let c = b.copy_from(id3, 2, &s).expect("clone");
        let cloned = fs::read(&c).expect("read");
        assert_eq!(cloned.len() as u64, 2 * GIB);
        assert_eq!(&cloned[..6], b"marker");
        assert!(b.create_from_image(id3, 1, &qcow, "iso").is_err());
    }

    #[test]
    fn attack_paths_outside_the_backend_are_refused() {
        let (t, b) = backend();
        let outside = t.path().join("host.raw");
        fs::write(&outside, b"host").expect("write");
        assert!(b.delete(&outside).is_err());
        assert!(b.extend(&outside, 1).is_err());
        assert!(b.snapshot(ID, &outside).is_err());
        assert!(b.copy_from(ID, 1, Path::new("/etc/passwd")).is_err());
        let dotted = b.dir().join("../host.raw");
        assert!(b.delete(&dotted).is_err());
        assert!(outside.exists());
        for bad in [
            "../../etc/passwd",
            "x/../../y",
            "",
            "11111111-2222-3333-4444-55555555555/",
        ] {
            assert!(b.create_empty(bad, 1).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_space_fails_the_create_and_writes_nothing() {
        let (_t, b) = backend();
        let huge = b.free_bytes().expect("free") / GIB + 10;
        match b.create_empty(ID, huge) {
            Err(BackendError::NoSpace { .. }) => {}
            other => panic!("expected NoSpace, got {other:?}"),
        }
        assert_eq!(
            fs::read_dir(b.dir()).expect("dir").count(),
            1,
            "only snapshots/"
        );
    }

    #[test]
    fn the_sweep_removes_orphans_and_temporaries_only() {
        let (_t, b) = backend();
        let keep = b.create_empty(ID, 1).expect("create");
        let orphan = b
            .create_empty("99999999-2222-3333-4444-555555555555", 1)
            .expect("create");
        let tmp = b.dir().join(format!(".{ID}.raw.tmp"));
        fs::write(&tmp, b"half").expect("write");
        let known: HashSet<String> = [ID.to_owned()].into();
        let removed = b.sweep(&known).expect("sweep");
        assert_eq!(removed.len(), 2);
        assert!(keep.exists() && !orphan.exists() && !tmp.exists());
    }
}
