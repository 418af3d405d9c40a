//! `bench console`: a keystroke's round trip through the serial console's websocket to a
//! container's shell, beside the same shell on a local pty.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::{
    admin_session, bridges, busybox_rootfs_with, create_server, delete_server, start_with,
    wait_status,
};

const KEYS: usize = 1000;
/// Keys typed on one line before it is cleared (Ctrl-U, not measured).
const PER_LINE: usize = 40;
const INIT: &str = "#!/bin/sh\necho onebox-bench: console ready\nwhile :; do /bin/sh -i; done\n";

async fn recv<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Result<Vec<u8>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        Ok(Some(Ok(Message::Binary(b)))) => Ok(b.to_vec()),
        Ok(Some(Ok(Message::Text(t)))) => Ok(t.as_bytes().to_vec()),
        Ok(Some(Ok(_))) => Ok(Vec::new()),
        other => bail!("the console's websocket ended: {other:?}"),
    }
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| {
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        v[i].as_secs_f64() * 1e6
    };
    (at(0.50), at(0.99))
}

/// Round trips on a local pty running busybox's `sh -i`.
fn local_pty(busybox: &str) -> Result<Vec<Duration>> {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_string_lossy().as_ref())?;
    let mut child = Command::new(busybox)
        .args(["sh", "-i"])
        .env("PS1", "$ ")
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave))
        .spawn()?;
    let mut m = std::fs::File::from(master);
    // A shell that stops answering is killed, which ends every pending read with an error.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch = {
        let done = done.clone();
        let pid = child.id().to_string();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if Instant::now() > deadline {
                    let _ = Command::new("kill").args(["-9", &pid]).status();
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let result = (|| {
        let mut buf = [0u8; 4096];
        // The prompt first.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while !seen.windows(2).any(|w| w == b"$ ") {
            if Instant::now() > deadline {
                bail!("no prompt from the local shell");
            }
            let n = m.read(&mut buf)?;
            seen.extend_from_slice(&buf[..n]);
        }
        let mut times = Vec::with_capacity(KEYS);
        for i in 0..KEYS {
            if i % PER_LINE == 0 && i > 0 {
                m.write_all(b"\x15")?;
                std::thread::sleep(Duration::from_millis(20));
                let _ = m.read(&mut buf)?;
            }
            let t0 = Instant::now();
            m.write_all(b"x")?;
            loop {
                let n = m.read(&mut buf)?;
                if buf[..n].contains(&b'x') {
                    break;
                }
            }
            times.push(t0.elapsed());
        }
        Ok(times)
    })();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = watch.join();
    let _ = child.kill();
    let _ = child.wait();
    result
}

pub async fn console() -> Result<()> {
    if !Path::new("/proc/self").metadata().is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    }) {
        bail!("bench console needs root");
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("busybox-static is not installed")?;
    let work = tempfile::tempdir()?;
    let tarball = work.path().join("rootfs.tar");
    busybox_rootfs_with(&tarball, INIT)?;
    let parent = format!("onebox-bench-{}", std::process::id());
    let config = work.path().join("onebox.toml");
    std::fs::write(
        &config,
        format!("[container]\ncgroup_parent = \"{parent}\"\nstop_timeout_secs = 2\n"),
    )?;
    let bridges_before = bridges();
    let d = start_with(&["--config", &config.to_string_lossy()]).await?;
    let base = d.base.clone();
    let (token, _) = admin_session(&base).await?;
    let c = reqwest::Client::new();
    let image = super::rootfs_image(&c, &base, &token, "console", &tarball).await?;
    let id = create_server(&c, &base, &token, &image, "console").await?;
    let measured = async {
        wait_status(&c, &base, &token, &id, "ACTIVE").await?;
        let log = d.dir.path().join("instances").join(&id).join("console.log");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(&log).is_ok_and(|s| s.contains("console ready")) {
            if Instant::now() > deadline {
                bail!("the container's console never said it was ready");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let r: serde_json::Value = c
            .post(format!("{base}/compute/v2.1/servers/{id}/remote-consoles"))
            .header("x-auth-token", &token)
            .header("openstack-api-version", "compute 2.6")
            .json(&serde_json::json!({"remote_console": {"protocol": "serial", "type": "serial"}}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let url = r["remote_console"]["url"].as_str().context("console url")?;
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
        // A fresh prompt, then the keys.
        ws.send(Message::Binary("\x15\n".into())).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        while tokio::time::timeout(Duration::from_millis(200), ws.next())
            .await
            .is_ok()
        {}
        let mut times = Vec::with_capacity(KEYS);
        for i in 0..KEYS {
            if i % PER_LINE == 0 && i > 0 {
                ws.send(Message::Binary("\x15".into())).await?;
                tokio::time::sleep(Duration::from_millis(20)).await;
                while tokio::time::timeout(Duration::from_millis(20), ws.next())
                    .await
                    .is_ok()
                {}
            }
            let t0 = Instant::now();
            ws.send(Message::Binary("x".into())).await?;
            while !recv(&mut ws).await?.contains(&b'x') {}
            times.push(t0.elapsed());
        }
        let _ = ws.close(None).await;
        Ok(times)
    }
    .await;
    let local = tokio::task::spawn_blocking(move || local_pty(busybox)).await?;
    delete_server(&c, &base, &token, &id).await?;
    drop(d);
    for p in ["", "memory", "cpu", "cpuacct", "devices", "pids", "freezer"] {
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(p).join(&parent));
    }
    for br in bridges().difference(&bridges_before) {
        let _ = Command::new("ip").args(["link", "del", br]).status();
    }
    let (ws50, ws99) = percentiles(measured?);
    let (pty50, pty99) = percentiles(local?);
    println!("keystroke round trip, {KEYS} keys, one at a time (µs)");
    println!("  serial console websocket to a container  p50 {ws50:>8.0}  p99 {ws99:>8.0}");
    println!("  local pty, the same shell                p50 {pty50:>8.0}  p99 {pty99:>8.0}");
    Ok(())
}
