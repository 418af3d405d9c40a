//! Which processes hold a file or block device open: a volume's detach returns only once
//! none of the instance's do.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// What identifies an open file: a block device by its device number, a file by its inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Block(u64),
    Inode(u64, u64),
}

fn key(m: &std::fs::Metadata) -> Key {
    if m.file_type().is_block_device() {
        Key::Block(m.rdev())
    } else {
        Key::Inode(m.dev(), m.ino())
    }
}

/// The pids of the processes with a descriptor on `path` (`/proc/<pid>/fd`); `keep` filters
/// by pid before any descriptor of it is read. Empty when `path` does not exist.
pub fn holders(path: &Path, keep: impl Fn(u32) -> bool) -> Vec<u32> {
    let Ok(want) = std::fs::metadata(path).map(|m| key(&m)) else {
        return Vec::new();
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if !keep(pid) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        // Following the descriptor's link stats the open file itself.
        if fds
            .flatten()
            .any(|fd| std::fs::metadata(fd.path()).is_ok_and(|m| key(&m) == want))
        {
            out.push(pid);
        }
    }
    out
}

/// The command line of `pid`, its arguments joined by spaces.
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_open_file_has_this_process_as_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("v");
        std::fs::write(&f, b"x").expect("write");
        let me = std::process::id();
        assert!(!super::holders(&f, |p| p == me).contains(&me));
        let open = std::fs::File::open(&f).expect("open");
        assert_eq!(super::holders(&f, |p| p == me), vec![me]);
        drop(open);
        assert!(super::holders(&f, |p| p == me).is_empty());
        assert!(super::holders(&dir.path().join("none"), |_| true).is_empty());
    }
}
