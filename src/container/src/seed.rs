//! What a container gets of its server's metadata, as a libvirt-LXC guest gets a config
//! drive: user data, the key pair's key and the config drive's files, never dropped.
//!
//! The driver writes `<instance>/seed/` at spawn and rebuild (the instance directory is
//! root's alone): `config_drive/…` (the config drive's files,
//! [`driver::metadata::config_drive_files`]), `user-data` (the server's user data, decoded)
//! and `authorized_keys` (its key pair's public key). At each boot the shim reads it while
//! it is still the host's root, and writes it into the container only after pivoting into
//! the container's root, so every path of the image (a symbolic link to anywhere) resolves
//! inside the container and nothing is written on the host:
//! - `/var/lib/cloud/seed/config_drive/`: cloud-init's ConfigDrive data source reads it with
//!   no block device, so a cloud-init image gets its user data, keys and network config;
//! - `/etc/onebox/user-data`: what onebox-rootfs's init runs;
//! - `/root/.ssh/authorized_keys` gets the key when the image has no cloud-init (which
//!   installs keys itself), as Nova's key injection did.
//!
//! A failure to write them (an image whose `/var` is a file, say) is printed on the console
//! and the container boots anyway, as a guest whose cloud-init finds nothing would.

use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use driver::InstanceSpec;

/// Where cloud-init's ConfigDrive data source looks for a seed directory.
pub const CONFIG_DRIVE: &str = "/var/lib/cloud/seed/config_drive";
/// What onebox-rootfs's init runs.
pub const USER_DATA: &str = "/etc/onebox/user-data";

/// Writes the seed of `spec` into `dir` (replacing an older one).
pub fn write(dir: &Path, spec: &InstanceSpec) -> io::Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for (path, body) in driver::metadata::config_drive_files(spec) {
        let f = dir.join("config_drive").join(path);
        if let Some(d) = f.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(f, body)?;
    }
    if let Some(u) = &spec.user_data {
        std::fs::write(dir.join("user-data"), driver::metadata::user_data_bytes(u))?;
    }
    if let Some(k) = spec.key_data.as_deref().filter(|k| !k.trim().is_empty()) {
        std::fs::write(dir.join("authorized_keys"), format!("{}\n", k.trim()))?;
    }
    Ok(())
}

/// A seed read into memory (by the shim, before it enters the container).
#[derive(Debug, Default)]
pub struct Seed {
    /// The config drive's files, by path within it.
    pub files: Vec<(PathBuf, Vec<u8>)>,
    pub user_data: Option<Vec<u8>>,
    pub key: Option<String>,
}

fn walk(base: &Path, rel: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(rd) = std::fs::read_dir(base.join(rel)) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(t) = e.file_type() else { continue };
        let rel = rel.join(e.file_name());
        if t.is_dir() {
            walk(base, &rel, out);
        } else if t.is_file()
            && let Ok(body) = std::fs::read(e.path())
        {
            out.push((rel, body));
        }
    }
}

/// Reads the seed in `dir` (none: an empty seed).
pub fn read(dir: &Path) -> Seed {
    let mut files = Vec::new();
    walk(&dir.join("config_drive"), Path::new(""), &mut files);
    files.sort();
    Seed {
        files,
        user_data: std::fs::read(dir.join("user-data")).ok(),
        key: std::fs::read_to_string(dir.join("authorized_keys"))
            .ok()
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty()),
    }
}

fn write_file(path: &Path, body: &[u8], mode: u32) -> io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    // Replaced, not followed: a link the image left there is not written through.
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.is_dir() => std::fs::remove_file(path)?,
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    io::Write::write_all(&mut f, body)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
}

/// Writes `seed` under `root` (`/` once the shim has pivoted into the container).
pub fn apply(seed: &Seed, root: &Path) -> Result<(), String> {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    if !seed.files.is_empty() {
        let base = at(CONFIG_DRIVE);
        let _ = std::fs::remove_dir_all(&base);
        for (rel, body) in &seed.files {
            write_file(&base.join(rel), body, 0o600)
                .map_err(|e| format!("writing {CONFIG_DRIVE}/{}: {e}", rel.display()))?;
        }
    }
    if let Some(u) = &seed.user_data {
        write_file(&at(USER_DATA), u, 0o700).map_err(|e| format!("writing {USER_DATA}: {e}"))?;
    }
    let cloud_init = ["usr/bin/cloud-init", "usr/local/bin/cloud-init"]
        .iter()
        .any(|p| root.join(p).exists());
    if let Some(k) = &seed.key
        && !cloud_init
    {
        let ssh = at("/root/.ssh");
        let file = ssh.join("authorized_keys");
        let old = std::fs::read_to_string(&file).unwrap_or_default();
        if !old.lines().any(|l| l.trim() == k) {
            let mut body = old;
            if !body.is_empty() && !body.ends_with('\n') {
                body.push('\n');
            }
            body.push_str(&format!("{k}\n"));
            std::fs::create_dir_all(&ssh)
                .and_then(|()| {
                    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o700))
                })
                .and_then(|()| write_file(&file, body.as_bytes(), 0o600))
                .map_err(|e| format!("writing /root/.ssh/authorized_keys: {e}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> InstanceSpec {
        InstanceSpec {
            name: "c1".into(),
            hostname: "c1".into(),
            user_data: Some("IyEvYmluL3NoCmVjaG8gaGk=".into()),
            key_name: Some("k".into()),
            key_data: Some("ssh-ed25519 AAAAC3Nza k@host".into()),
            ..InstanceSpec::default()
        }
    }

    #[test]
    fn a_seed_reaches_the_places_guests_look_in() {
        let host = tempfile::tempdir().expect("tmp");
        let dir = host.path().join("seed");
        write(&dir, &spec()).expect("write");
        let mode = std::fs::metadata(&dir).expect("dir").permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the seed is root's alone on the host");
        let seed = read(&dir);
        assert_eq!(seed.user_data.as_deref(), Some(&b"#!/bin/sh\necho hi"[..]));
        assert!(
            seed.files
                .iter()
                .any(|(p, _)| p == Path::new("openstack/latest/meta_data.json"))
        );

        let root = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(root.path().join("root/.ssh")).expect("ssh");
        std::fs::write(
            root.path().join("root/.ssh/authorized_keys"),
            "ssh-rsa OLD old\n",
        )
        .expect("old key");
        apply(&seed, root.path()).expect("apply");
        apply(&seed, root.path()).expect("a second boot");
        let md = std::fs::read_to_string(
            root.path()
                .join("var/lib/cloud/seed/config_drive/openstack/latest/meta_data.json"),
        )
        .expect("meta_data.json");
        assert!(md.contains("\"hostname\":\"c1\""), "{md}");
        let ud = root.path().join("etc/onebox/user-data");
        assert_eq!(
            std::fs::read(&ud).expect("user data"),
            b"#!/bin/sh\necho hi"
        );
        let keys =
            std::fs::read_to_string(root.path().join("root/.ssh/authorized_keys")).expect("keys");
        assert_eq!(
            keys, "ssh-rsa OLD old\nssh-ed25519 AAAAC3Nza k@host\n",
            "once"
        );

        // An image with cloud-init installs the key itself.
        let ci = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(ci.path().join("usr/bin")).expect("bin");
        std::fs::write(ci.path().join("usr/bin/cloud-init"), "").expect("cloud-init");
        apply(&seed, ci.path()).expect("apply");
        assert!(!ci.path().join("root/.ssh/authorized_keys").exists());
    }

    #[test]
    fn attack_a_link_in_the_image_is_replaced_not_written_through() {
        let outside = tempfile::tempdir().expect("tmp");
        let target = outside.path().join("victim");
        std::fs::write(&target, "untouched").expect("victim");
        let root = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(root.path().join("etc/onebox")).expect("etc");
        std::os::unix::fs::symlink(&target, root.path().join("etc/onebox/user-data"))
            .expect("link");
        let seed = Seed {
            user_data: Some(b"#!/bin/sh\n".to_vec()),
            ..Seed::default()
        };
        apply(&seed, root.path()).expect("apply");
        assert_eq!(
            std::fs::read_to_string(&target).expect("victim"),
            "untouched"
        );
        let m =
            std::fs::symlink_metadata(root.path().join("etc/onebox/user-data")).expect("user data");
        assert!(m.is_file());
    }
}
