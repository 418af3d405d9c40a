//! Tools that read guest-supplied images run under bounds: a time limit, and for those that
//! write a file, a cap on how large that file may grow and a check that the file system has
//! room for it before they start. A child past either bound is killed (by its own pid) and
//! its output removed, so a crafted image can neither stall a spawn forever nor fill the
//! host's disk.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// How often a running tool's elapsed time and output size are looked at.
const POLL: Duration = Duration::from_millis(50);

/// Bytes `path` takes: its apparent length or its allocated blocks, whichever is larger; 0
/// when it is not there yet.
fn size_of(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map_or(0, |m| m.len().max(m.blocks().saturating_mul(512)))
}

/// Bytes free to an unprivileged writer on the file system of `dir`.
pub fn free_bytes(dir: &Path) -> Result<u64, Error> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(|e| {
        Error::Io(
            format!("statvfs {}", dir.display()),
            std::io::Error::from(e),
        )
    })?;
    Ok((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

/// Runs `cmd` (`what` names it in errors) within `timeout`; when `output` is given, the
/// file there may grow to at most `max_output` bytes. Returns its stdout.
pub fn run(
    cmd: &mut Command,
    what: &str,
    timeout: Duration,
    output: Option<(&Path, u64)>,
) -> Result<String, Error> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Io(format!("running {what}"), e))?;
    // The pipes are drained on threads so a chatty tool never blocks on a full pipe.
    let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                // At most 64 KiB of a tool's output is kept; the rest is read and dropped.
                let _ = std::io::Read::read_to_end(
                    &mut std::io::Read::take(&mut r, 64 * 1024),
                    &mut buf,
                );
                let _ = std::io::copy(&mut r, &mut std::io::sink());
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    );
    let start = Instant::now();
    let over = loop {
        match child.try_wait() {
            Ok(Some(_)) => break None,
            Ok(None) => {}
            Err(e) => break Some(format!("waiting: {e}")),
        }
        if start.elapsed() > timeout {
            break Some(format!("killed after {} s", timeout.as_secs()));
        }
        if let Some((path, max)) = output
            && size_of(path) > max
        {
            break Some(format!("killed: its output passed {max} bytes"));
        }
        std::thread::sleep(POLL);
    };
    if let Some(why) = over {
        // Our own child: killed by its pid, then reaped.
        let _ = child.kill();
        let _ = child.wait();
        let _ = out.join();
        let _ = err.join();
        return Err(Error::Tool(what.to_string(), why));
    }
    let status = child
        .wait()
        .map_err(|e| Error::Io(format!("waiting for {what}"), e))?;
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    // A tool quicker than the polling is held to the bound all the same.
    if let Some((path, max)) = output
        && size_of(path) > max
    {
        return Err(Error::Tool(
            what.to_string(),
            format!("its output passed {max} bytes"),
        ));
    }
    if !status.success() {
        return Err(Error::Tool(
            what.to_string(),
            String::from_utf8_lossy(&stderr).trim().to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}
