//! Disks: the cache of base images, qcow2 overlays on them, growth, snapshots, and the
//! config drive's ISO. Every tool is a child process with the image format passed
//! explicitly (never probed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use driver::ImageFile;

use crate::Error;

pub struct Disks {
    pub qemu_img: String,
    pub genisoimage: String,
    pub cache_dir: PathBuf,
    /// Serialises filling the cache, so two spawns of one image convert it once.
    fill: Mutex<()>,
}

fn run(cmd: &mut Command, what: &str) -> Result<String, Error> {
    let out = cmd
        .output()
        .map_err(|e| Error::Io(format!("running {what}"), e))?;
    if !out.status.success() {
        return Err(Error::Tool(
            what.to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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
            fill: Mutex::new(()),
        }
    }

    fn tmp_name(dir: &Path, name: &str) -> PathBuf {
        dir.join(format!(".tmp-{name}-{}", uuid::Uuid::new_v4().simple()))
    }

    /// The image as a qcow2 base in the cache (`<cache>/<image id>`), converted from its
    /// declared format the first time it is needed. Base files are never written again.
    pub fn base(&self, img: &ImageFile) -> Result<PathBuf, Error> {
        let dest = self.cache_dir.join(&img.id);
        if dest.exists() {
            return Ok(dest);
        }
        let _g = self.fill.lock().unwrap_or_else(|e| e.into_inner());
        if dest.exists() {
            return Ok(dest);
        }
        std::fs::create_dir_all(&self.cache_dir)
            .map_err(|e| Error::Io(format!("creating {}", self.cache_dir.display()), e))?;
        let tmp = Self::tmp_name(&self.cache_dir, &img.id);
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
        let r = run(
            Command::new(&self.qemu_img)
                .args(["convert", "-f", fmt, "-O", "qcow2"])
                .arg(&img.path)
                .arg(&tmp),
            "qemu-img convert",
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
    /// deleted while a guest still boots from it).
    pub fn blob(&self, img: &ImageFile) -> Result<PathBuf, Error> {
        let dest = self.cache_dir.join(&img.id);
        if dest.exists() {
            return Ok(dest);
        }
        let _g = self.fill.lock().unwrap_or_else(|e| e.into_inner());
        if dest.exists() {
            return Ok(dest);
        }
        std::fs::create_dir_all(&self.cache_dir)
            .map_err(|e| Error::Io(format!("creating {}", self.cache_dir.display()), e))?;
        let tmp = Self::tmp_name(&self.cache_dir, &img.id);
        if let Err(e) = std::fs::copy(&img.path, &tmp) {
            let _ = remove_file(&tmp);
            return Err(Error::Io(format!("copying {}", img.path.display()), e));
        }
        std::fs::rename(&tmp, &dest)
            .map_err(|e| Error::Io(format!("renaming into {}", dest.display()), e))?;
        Ok(dest)
    }

    /// The virtual size of a qcow2 file, in bytes.
    pub fn virtual_size(&self, path: &Path) -> Result<u64, Error> {
        let out = run(
            Command::new(&self.qemu_img)
                .args(["info", "--output=json", "-f", "qcow2", "-U"])
                .arg(path),
            "qemu-img info",
        )?;
        let v: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| Error::Tool("qemu-img info".into(), e.to_string()))?;
        v["virtual-size"]
            .as_u64()
            .ok_or_else(|| Error::Tool("qemu-img info".into(), "no virtual-size".into()))
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
        let r = run(
            Command::new(&self.qemu_img)
                .args(["convert", "-U", "-f", "qcow2", "-O", "qcow2"])
                .arg(disk)
                .arg(&tmp),
            "qemu-img convert",
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
