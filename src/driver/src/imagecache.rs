//! The part of image-cache pruning every caching backend shares: a cache is a directory of
//! entries named by content hash ([`crate::ImageFile::cache_key`]; files or directories), each entry complete once it has its
//! name; an entry being filled has a name starting with `.` and is renamed into place.
//!
//! A backend works out which entries its instances refer to (it alone knows how they refer
//! to them) and calls [`sweep`] while holding the lock that its cache fills take. An entry's
//! mtime is when it was last used: the backend [`touch`]es it whenever a spawn, rebuild or
//! unshelve uses it.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Work-in-progress names (`.tmp-…`, `.unpack-…`) older than this are leftovers of a fill
/// that died, whatever the minimum unused age.
pub const LEFTOVER_AGE: Duration = Duration::from_secs(24 * 3600);

/// What a [`sweep`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// The entries (image ids) removed.
    pub removed: Vec<String>,
    /// The leftovers of interrupted fills removed.
    pub leftovers: Vec<String>,
    /// Entries that could not be removed, with why.
    pub failed: Vec<(String, String)>,
}

/// Marks a cache entry as used now (its mtime), so a prune keeps it for the minimum age.
pub fn touch(entry: &Path) -> std::io::Result<()> {
    std::fs::File::open(entry)?.set_modified(SystemTime::now())
}

/// How long ago `meta` was modified; zero when its mtime is in the future.
fn age(meta: &std::fs::Metadata, now: SystemTime) -> Duration {
    meta.modified()
        .ok()
        .and_then(|m| now.duration_since(m).ok())
        .unwrap_or(Duration::ZERO)
}

/// Removes from `cache` every entry whose name is not in `in_use` and whose mtime is more
/// than `min_unused_age` old, and every work-in-progress name older than both
/// `min_unused_age` and [`LEFTOVER_AGE`]. Symbolic links are never followed nor removed, and
/// nothing outside `cache` is touched. A cache directory that does not exist is empty.
///
/// The caller holds the lock its fills take, so no fill runs meanwhile.
pub fn sweep(
    cache: &Path,
    in_use: &HashSet<String>,
    min_unused_age: Duration,
) -> std::io::Result<Swept> {
    let mut out = Swept::default();
    let entries = match std::fs::read_dir(cache) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    let now = SystemTime::now();
    let mut names: Vec<_> = entries
        .collect::<std::io::Result<Vec<_>>>()?
        .into_iter()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for os_name in names {
        let Some(name) = os_name.to_str().map(str::to_owned) else {
            // Image ids are UUIDs; anything else is not ours to judge.
            continue;
        };
        let path = cache.join(&os_name);
        // `symlink_metadata`: a link is seen as a link, never as what it points to.
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let ft = meta.file_type();
        if ft.is_symlink() || !(ft.is_file() || ft.is_dir()) {
            continue;
        }
        let age = age(&meta, now);
        let leftover = name.starts_with('.');
        let remove = if leftover {
            age > min_unused_age.max(LEFTOVER_AGE)
        } else {
            !in_use.contains(&name) && age > min_unused_age
        };
        if !remove {
            continue;
        }
        // `remove_dir_all` does not follow the links inside the tree it removes.
        let r = if ft.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match r {
            Ok(()) if leftover => out.leftovers.push(name),
            Ok(()) => out.removed.push(name),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => out.failed.push((name, e.to_string())),
        }
    }
    Ok(out)
}

/// Checks that the file at `path` has the content hash `hash` (`<algo>-<hex>`, as
/// [`crate::ImageFile::content_hash`]; `sha512` or `sha256`): only then may it fill the cache
/// entry named by that hash. A mismatch is `InvalidData`.
pub fn verify_content(path: &Path, hash: &str) -> std::io::Result<()> {
    use sha2::Digest;
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let (algo, want) = hash
        .split_once('-')
        .ok_or_else(|| invalid("no content hash".into()))?;
    let mut f = std::fs::File::open(path)?;
    let got: Vec<u8> = match algo {
        "sha512" => {
            let mut h = sha2::Sha512::new();
            std::io::copy(&mut f, &mut h)?;
            h.finalize().to_vec()
        }
        "sha256" => {
            let mut h = sha2::Sha256::new();
            std::io::copy(&mut f, &mut h)?;
            h.finalize().to_vec()
        }
        other => return Err(invalid(format!("unsupported content hash {other}"))),
    };
    let got: String = got.iter().map(|b| format!("{b:02x}")).collect();
    if got != want {
        return Err(invalid("the content does not match its hash".into()));
    }
    Ok(())
}

/// The content hash of the file at `path` as the image service records it (`sha512-<hex>`).
pub fn content_hash_of(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut h = sha2::Sha512::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut h)?;
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha512-{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_age(p: &Path, ago: Duration) {
        let t = SystemTime::now() - ago;
        std::fs::File::open(p)
            .and_then(|f| f.set_modified(t))
            .expect("set mtime");
    }

    const DAY: Duration = Duration::from_secs(86400);

    #[test]
    fn only_unused_old_entries_and_old_leftovers_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("cache");
        std::fs::create_dir(&cache).expect("cache");
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).expect("outside");
        std::fs::write(outside.join("keep"), b"x").expect("outside file");
        for f in [
            "old-unused",
            "old-used",
            "new-unused",
            ".tmp-old",
            ".tmp-new",
        ] {
            std::fs::write(cache.join(f), b"x").expect("entry");
        }
        std::fs::create_dir(cache.join("old-dir")).expect("dir entry");
        std::fs::write(cache.join("old-dir").join("f"), b"x").expect("dir file");
        // A link to a directory outside the cache, old and unused: left alone, as is what it
        // points to.
        std::os::unix::fs::symlink(&outside, cache.join("old-link")).expect("link");
        std::os::unix::fs::symlink(&outside, cache.join("old-dir").join("link")).expect("link");
        for f in ["old-unused", "old-used", "old-dir", ".tmp-old"] {
            set_age(&cache.join(f), 2 * DAY);
        }
        set_age(&cache.join(".tmp-new"), Duration::from_secs(3600));
        let in_use = HashSet::from(["old-used".to_string()]);
        let s = sweep(&cache, &in_use, Duration::from_secs(3600 * 2)).expect("sweep");
        assert_eq!(s.removed, vec!["old-dir".to_string(), "old-unused".into()]);
        assert_eq!(s.leftovers, vec![".tmp-old".to_string()]);
        assert!(s.failed.is_empty(), "{:?}", s.failed);
        for f in ["old-used", "new-unused", ".tmp-new", "old-link"] {
            assert!(
                std::fs::symlink_metadata(cache.join(f)).is_ok(),
                "{f} was removed"
            );
        }
        assert!(outside.join("keep").exists());
        // Nothing more to do the second time; a missing cache is empty.
        let s = sweep(&cache, &in_use, Duration::from_secs(3600 * 2)).expect("sweep");
        assert_eq!(s, Swept::default());
        assert_eq!(
            sweep(&dir.path().join("none"), &in_use, DAY).expect("missing"),
            Swept::default()
        );
    }

    #[test]
    fn touch_makes_an_entry_young_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("img");
        std::fs::write(&f, b"x").expect("entry");
        std::fs::create_dir(dir.path().join("tree")).expect("dir entry");
        set_age(&f, 2 * DAY);
        set_age(&dir.path().join("tree"), 2 * DAY);
        touch(&f).expect("touch file");
        touch(&dir.path().join("tree")).expect("touch dir");
        let s = sweep(dir.path(), &HashSet::new(), DAY).expect("sweep");
        assert!(s.removed.is_empty(), "{:?}", s.removed);
    }
}
