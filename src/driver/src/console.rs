//! Console logs on the host: read from their end, never whole, and kept under a cap.
//!
//! A guest decides how much it writes to its console; the host decides how much of it is
//! kept. Every backend's `console_output` reads at most [`TAIL_BYTES`] (Nova's libvirt
//! driver returns at most the last 100 KiB too) from the end of its log files, so a log
//! that grew to gigabytes before its cap took effect costs one seek. Writers that own their
//! file rotate it by renaming (the container supervisor, the SOL capture); a log another
//! process keeps open with `O_APPEND` (QEMU's serial file) is capped with
//! [`copy_truncate`].

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The most `console_output` returns: the last 100 KiB, as Nova's libvirt driver.
pub const TAIL_BYTES: u64 = 100 * 1024;

/// The previous generation of a console log: `<log>.1`.
pub fn rotated(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// The last `max` bytes of `files` read one after the other (oldest first), read from the
/// end of each; missing files count as empty.
pub fn tail(files: &[&Path], max: u64) -> std::io::Result<Vec<u8>> {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut want = max;
    for path in files.iter().rev() {
        if want == 0 {
            break;
        }
        let mut f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        let take = len.min(want);
        f.seek(SeekFrom::Start(len - take))?;
        let mut buf = Vec::with_capacity(take as usize);
        f.take(take).read_to_end(&mut buf)?;
        want -= buf.len() as u64;
        parts.push(buf);
    }
    parts.reverse();
    Ok(parts.concat())
}

/// Text of a console: invalid UTF-8 replaced, carriage returns dropped, and only the last
/// `lines` lines when asked (Nova's `length`).
pub fn last_lines(raw: &[u8], lines: Option<usize>) -> String {
    let text = String::from_utf8_lossy(raw).replace('\r', "");
    match lines {
        None => text,
        Some(n) => {
            let all: Vec<&str> = text.lines().collect();
            let mut out = all[all.len().saturating_sub(n)..].join("\n");
            if !out.is_empty() {
                out.push('\n');
            }
            out
        }
    }
}

/// When `log` holds more than `cap` bytes, its last `cap / 2` bytes become `<log>.1` and
/// `log` is truncated to nothing, so the two together never hold much more than `cap`.
/// The writer keeps its descriptor: with `O_APPEND` its next write lands at the new end.
/// What it writes between the copy and the truncation is lost, as with logrotate's
/// `copytruncate`. Returns whether it rotated.
pub fn copy_truncate(log: &Path, cap: u64) -> std::io::Result<bool> {
    let len = match std::fs::metadata(log) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if len <= cap {
        return Ok(false);
    }
    let keep = tail(&[log], cap / 2)?;
    let old = rotated(log);
    let tmp = {
        let mut name = old.as_os_str().to_owned();
        name.push(".tmp");
        PathBuf::from(name)
    };
    std::fs::write(&tmp, &keep)?;
    std::fs::rename(&tmp, &old)?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(log)?
        .set_len(0)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn attack_a_console_log_of_gigabytes_is_read_from_its_end_only() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("console.log");
        // 8 GiB of holes, then the last lines: reading the whole file would take minutes
        // and all the memory; the tail is one seek.
        let mut f = File::create(&log).expect("create");
        f.seek(SeekFrom::Start(8 << 30)).expect("seek");
        for i in 0..5 {
            writeln!(f, "line {i}\r").expect("write");
        }
        drop(f);
        let raw = tail(&[&rotated(&log), &log], TAIL_BYTES).expect("tail");
        assert_eq!(raw.len() as u64, TAIL_BYTES);
        assert_eq!(last_lines(&raw, Some(2)), "line 3\nline 4\n");
    }

    #[test]
    fn the_tail_spans_the_rotated_generation() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("c.log");
        std::fs::write(rotated(&log), "a\nb\n").expect("old");
        std::fs::write(&log, "c\n").expect("new");
        let raw = tail(&[&rotated(&log), &log], 1 << 20).expect("tail");
        assert_eq!(last_lines(&raw, Some(2)), "b\nc\n");
        assert_eq!(last_lines(&raw, None), "a\nb\nc\n");
        assert_eq!(tail(&[&log], 1).expect("one byte"), b"\n");
    }

    #[test]
    fn attack_a_guest_flooding_its_append_mode_serial_log_stays_under_the_cap() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("console.log");
        // The writer holds its descriptor open in append mode, as QEMU with append='on'.
        let mut w = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open");
        let cap = 16 * 1024;
        for i in 0..20_000 {
            writeln!(w, "flood line {i:06}").expect("write");
            if i % 500 == 0 {
                copy_truncate(&log, cap).expect("rotate");
            }
        }
        copy_truncate(&log, cap).expect("rotate");
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        assert!(size(&log) <= cap, "log {}", size(&log));
        assert!(
            size(&rotated(&log)) <= cap / 2,
            "old {}",
            size(&rotated(&log))
        );
        // The newest lines are there, in order, and the writer kept writing after a
        // truncation at the new end (no hole of zeros).
        let raw = tail(&[&rotated(&log), &log], TAIL_BYTES).expect("tail");
        assert!(!raw.contains(&0), "a hole in the log");
        assert_eq!(last_lines(&raw, Some(1)), "flood line 019999\n");
    }
}
