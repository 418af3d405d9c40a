//! The data directory's lock: `onebox serve` holds an exclusive lock on `onebox.lock` for as
//! long as it runs, so that a second `onebox serve` and `onebox restore` can tell that the
//! directory is in use. The kernel drops the lock when the process ends, even on `kill -9`.

use std::fs::{File, TryLockError};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

pub struct DataDirLock {
    _file: File,
}

pub fn lock_path(data_dir: &Path) -> PathBuf {
    data_dir.join("onebox.lock")
}

/// Takes the lock, or fails with `in_use` when another process holds it.
pub fn acquire(data_dir: &Path, in_use: &str) -> Result<DataDirLock> {
    let path = lock_path(data_dir);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => bail!("{in_use} ({} is locked)", path.display()),
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    // The holder's pid, for people reading the file; the lock itself is what counts.
    file.set_len(0)?;
    writeln!(file, "{}", std::process::id())?;
    Ok(DataDirLock { _file: file })
}

/// Whether a running process holds the lock, without taking it.
pub fn held(data_dir: &Path) -> bool {
    let Ok(file) = File::open(lock_path(data_dir)) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!held(dir.path()));
        let first = acquire(dir.path(), "busy").expect("first");
        assert!(held(dir.path()));
        let err = acquire(dir.path(), "busy").err().expect("refused");
        assert!(err.to_string().starts_with("busy"), "{err}");
        drop(first);
        assert!(!held(dir.path()));
        acquire(dir.path(), "busy").expect("again");
    }
}
