//! Benchmarks of a real onebox process on loopback. Prints the figures BENCHMARKS.md records.
//!
//! ```text
//! cargo build --release --bins --examples
//! target/release/examples/bench identity
//! target/release/examples/bench servers
//! target/release/examples/bench image
//! target/release/examples/bench vms        # root, libvirtd running
//! target/release/examples/bench containers
//! target/release/examples/bench console    # root
//! ```
//!
//! `console` (root; the container backend): a keystroke's round trip (sent, echoed back)
//! through the serial console's websocket to a shell in a container, p50/p99 over 1,000
//! keys, beside the same shell (busybox `sh -i`) on a local pty in the same run.
//!
//! `identity`: idle RSS of the daemon, password token issue rate, token validation rate
//! (`GET /v3/auth/tokens`) and authenticated compute request rate, with p50/p99 latencies,
//! then RSS after the load. Every loop is bounded in count; traffic stays on 127.0.0.1.
//!
//! `servers`: on the fake driver, the server create rate to ACTIVE and `GET /servers/detail`
//! with 1,000 and 10,000 servers in the database.
//!
//! `containers` (root; the container backend, no fake driver): time from `POST /servers` to
//! ACTIVE and to the first line of the container's console, median of 50 one after another,
//! beside `crun run` of the same root filesystem running `/bin/true` in the same run; the
//! create rate with 20 requests in parallel; memory per idle container.
//!
//! `image`: upload and download throughput of a 1 GiB raw image through the daemon, against a
//! plain sequential write (with fsync) and read of 1 GiB on the same file system, and the
//! daemon's RSS during and after.
//!
//! `vms`: real guests (the tiny guest of `firmware/build-guest.sh`) on libvirt: `POST
//! /servers` to ACTIVE and to the guest's first console line, median and p90 over 20 boots,
//! beside a plain `virsh create` of the same domain XML; 10 boots at once; the daemon's RSS
//! with 10 guests running.
//!
//! `ipmi`: against a simulated BMC (`scripts/ipmi-sim.sh`, Debian's ipmi_sim on loopback), the
//! latency of onebox's IPMI client (session open, chassis power status on an open session, and
//! a whole open + status + close) beside `ipmitool -I lanplus` doing the same in the same run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const ADMIN_PW: &str = "bench-admin-pw";

struct Daemon {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Stop the process this benchmark started, by its PID.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn onebox_bin() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/examples/bench → target/<profile>/onebox
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("onebox"))
        .context("locating the onebox binary")?;
    if !bin.exists() {
        bail!(
            "{} not found: cargo build --release --bins first",
            bin.display()
        );
    }
    Ok(bin)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn start() -> Result<Daemon> {
    start_with(&[]).await
}

async fn start_with(extra: &[&str]) -> Result<Daemon> {
    let bin = onebox_bin()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let data = dir.path().to_string_lossy().into_owned();
    let st = Command::new(&bin)
        .args(["init", "--data-dir", &data, "--listen", &listen])
        .env("ONEBOX_ADMIN_PASSWORD", ADMIN_PW)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !st.success() {
        bail!("onebox init failed");
    }
    let child = Command::new(&bin)
        .args(["serve", "--data-dir", &data, "--listen", &listen])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let base = format!("http://{listen}");
    let d = Daemon {
        child,
        base: base.clone(),
        dir,
    };
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(d);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("onebox did not start")
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS")
}

fn auth_body(project: bool) -> serde_json::Value {
    let mut b = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": ADMIN_PW}}}}});
    if project {
        b["auth"]["scope"] =
            serde_json::json!({"project": {"name": "admin", "domain": {"name": "Default"}}});
    }
    b
}

struct Stats {
    n: usize,
    elapsed: Duration,
    lat: Vec<Duration>,
}

impl Stats {
    fn print(&mut self, what: &str) {
        self.lat.sort();
        let pct = |p: f64| {
            let i = ((self.lat.len() as f64 * p).ceil() as usize).clamp(1, self.lat.len()) - 1;
            self.lat[i].as_secs_f64() * 1000.0
        };
        println!(
            "{what:<38} {:>9.1} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   (n={}, {:.1} s)",
            self.n as f64 / self.elapsed.as_secs_f64(),
            pct(0.50),
            pct(0.99),
            self.n,
            self.elapsed.as_secs_f64()
        );
    }
}

/// Runs `total` requests made by `make`, `concurrency` at a time; every answer must be `want`.
async fn load<F>(total: usize, concurrency: usize, want: u16, make: F) -> Result<Stats>
where
    F: Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let client = reqwest::Client::new();
    let make = Arc::new(make);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, make, next) = (client.clone(), make.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                let t = Instant::now();
                let r = make(&client).send().await?;
                let status = r.status().as_u16();
                r.bytes().await?;
                if status != want {
                    bail!("unexpected status {status}");
                }
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut lat = Vec::with_capacity(total);
    for t in tasks {
        lat.extend(t.await??);
    }
    Ok(Stats {
        n: lat.len(),
        elapsed: started.elapsed(),
        lat,
    })
}

async fn identity() -> Result<()> {
    // The per-source limit on token requests would answer most of this loopback load with
    // 429; what is measured here is the work behind a token, so the limit is lifted.
    let mut config = tempfile::NamedTempFile::new()?;
    std::io::Write::write_all(
        &mut config,
        b"[identity]\nauth_rate_per_sec = 1000000.0\nauth_burst = 1000000\n",
    )?;
    let path = config.path().to_string_lossy().into_owned();
    let d = start_with(&["--config", &path]).await?;
    let pid = d.child.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "idle RSS after start                   {:>9} KiB",
        rss_kib(pid)?
    );

    let base = d.base.clone();
    let url = format!("{base}/identity/v3/auth/tokens");
    let body = auth_body(true);
    let mut s = load(200, 4, 201, move |c| c.post(&url).json(&body)).await?;
    s.print("token issue (password, argon2id)");
    println!(
        "RSS after token issue                  {:>9} KiB",
        rss_kib(pid)?
    );

    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/identity/v3/auth/tokens"))
        .json(&auth_body(true))
        .send()
        .await?;
    let token = r
        .headers()
        .get("x-subject-token")
        .context("token")?
        .to_str()?
        .to_owned();
    let body: serde_json::Value = r.json().await?;
    let project = body["token"]["project"]["id"]
        .as_str()
        .context("project")?
        .to_owned();

    let url = format!("{base}/identity/v3/auth/tokens");
    let t = token.clone();
    let cpu0 = cpu_secs(pid)?;
    let mut s = load(5000, 8, 200, move |c| {
        c.get(&url)
            .header("x-auth-token", &t)
            .header("x-subject-token", &t)
    })
    .await?;
    s.print("token validate (GET /v3/auth/tokens)");
    println!(
        "  daemon CPU per request                {:>9.3} ms",
        (cpu_secs(pid)? - cpu0) * 1000.0 / 5000.0
    );
    println!(
        "RSS after token validation             {:>9} KiB",
        rss_kib(pid)?
    );

    let url = format!("{base}/compute/v2.1/{project}/");
    let t = token.clone();
    let cpu0 = cpu_secs(pid)?;
    let mut s = load(5000, 8, 200, move |c| {
        c.get(&url).header("x-auth-token", &t)
    })
    .await?;
    s.print("authenticated compute request");
    println!(
        "  daemon CPU per request                {:>9.3} ms",
        (cpu_secs(pid)? - cpu0) * 1000.0 / 5000.0
    );

    println!(
        "RSS after load                         {:>9} KiB",
        rss_kib(pid)?
    );
    Ok(())
}

/// A project-scoped admin token and the ids of the admin and demo projects.
async fn admin_session(base: &str) -> Result<(String, String)> {
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/identity/v3/auth/tokens"))
        .json(&auth_body(true))
        .send()
        .await?;
    let token = r
        .headers()
        .get("x-subject-token")
        .context("token")?
        .to_str()?
        .to_owned();
    let body: serde_json::Value = r.json().await?;
    let project = body["token"]["project"]["id"]
        .as_str()
        .context("project")?
        .to_owned();
    Ok((token, project))
}

/// Creates `count` servers in batches of `batch` (multi-create) and waits until all are ACTIVE.
async fn fill(
    base: &str,
    token: &str,
    image: &str,
    count: usize,
    batch: usize,
) -> Result<Duration> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut made = 0;
    while made < count {
        let n = batch.min(count - made);
        let r = client
            .post(format!("{base}/compute/v2.1/servers"))
            .header("x-auth-token", token)
            .header("openstack-api-version", "compute 2.100")
            .json(&serde_json::json!({"server": {
                "name": "bench", "imageRef": image, "flavorRef": "42",
                "networks": "none", "min_count": n, "max_count": n}}))
            .send()
            .await?;
        if r.status().as_u16() != 202 {
            bail!("create failed: {}", r.text().await?);
        }
        made += n;
    }
    // Poll until every server is ACTIVE.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let r: serde_json::Value = client
            .get(format!("{base}/compute/v2.1/servers?status=BUILD&limit=1"))
            .header("x-auth-token", token)
            .send()
            .await?
            .json()
            .await?;
        if r["servers"].as_array().is_some_and(Vec::is_empty) {
            return Ok(started.elapsed());
        }
        if Instant::now() > deadline {
            bail!("servers did not become ACTIVE in time");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Uploads a small raw image for the fake driver to boot; returns its id.
async fn boot_image(base: &str, token: &str) -> Result<String> {
    let client = reqwest::Client::new();
    let r: serde_json::Value = client
        .post(format!("{base}/image/v2/images"))
        .header("x-auth-token", token)
        .json(
            &serde_json::json!({"name": "bench", "disk_format": "raw", "container_format": "bare"}),
        )
        .send()
        .await?
        .json()
        .await?;
    let id = r["id"].as_str().context("image id")?.to_owned();
    let up = client
        .put(format!("{base}/image/v2/images/{id}/file"))
        .header("x-auth-token", token)
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; 1 << 20])
        .send()
        .await?;
    if !up.status().is_success() {
        bail!("image upload failed: {}", up.text().await?);
    }
    Ok(id)
}

async fn servers() -> Result<()> {
    let d = start_with(&["--fake-driver"]).await?;
    let pid = d.child.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "idle RSS after start                   {:>9} KiB",
        rss_kib(pid)?
    );
    let base = d.base.clone();
    let (token, project) = admin_session(&base).await?;
    let image = boot_image(&base, &token).await?;
    let client = reqwest::Client::new();
    let r = client
        .put(format!("{base}/compute/v2.1/os-quota-sets/{project}"))
        .header("x-auth-token", &token)
        .json(&serde_json::json!({"quota_set": {"instances": -1, "cores": -1, "ram": -1}}))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("quota update failed: {}", r.text().await?);
    }

    // Create rate: one server per request, 8 clients, until all 500 are ACTIVE.
    let url = format!("{base}/compute/v2.1/servers");
    let t = token.clone();
    let body = serde_json::json!({"server": {"name": "rate", "imageRef": image, "flavorRef": "42", "networks": "auto"}});
    let started = Instant::now();
    let mut s = load(500, 8, 202, move |c| {
        c.post(&url)
            .header("x-auth-token", &t)
            .header("openstack-api-version", "compute 2.100")
            .json(&body)
    })
    .await?;
    s.print("server create requests (fake driver)");
    fill(&base, &token, &image, 0, 1).await?;
    let all_active = started.elapsed();
    println!(
        "servers created to ACTIVE                {:>9.1} servers/s   (500 in {:.2} s)",
        500.0 / all_active.as_secs_f64(),
        all_active.as_secs_f64()
    );

    for (target, label) in [(1_000usize, "1,000"), (10_000, "10,000")] {
        let have: usize = if target == 1_000 { 500 } else { 1_000 };
        fill(&base, &token, &image, target - have, 500).await?;
        let url = format!("{base}/compute/v2.1/servers/detail");
        let t = token.clone();
        let mut s = load(40, 4, 200, move |c| {
            c.get(&url)
                .header("x-auth-token", &t)
                .header("openstack-api-version", "compute 2.100")
        })
        .await?;
        s.print(&format!("GET /servers/detail ({label} in DB, 1000/page)"));
        let url = format!("{base}/compute/v2.1/servers/detail?limit=50");
        let t = token.clone();
        let mut s = load(400, 8, 200, move |c| {
            c.get(&url)
                .header("x-auth-token", &t)
                .header("openstack-api-version", "compute 2.100")
        })
        .await?;
        s.print(&format!("GET /servers/detail?limit=50 ({label})"));
        println!(
            "RSS with {label} servers             {:>9} KiB",
            rss_kib(pid)?
        );
    }
    Ok(())
}

const GIB: u64 = 1 << 30;
const CHUNK: usize = 1 << 20;

/// One MiB of pseudo-random bytes (xorshift), sent 1024 times: the data must not be all
/// zeroes, but generating it must not be what is measured.
fn pattern() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = Vec::with_capacity(CHUNK);
    while buf.len() < CHUNK {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf.extend_from_slice(&x.to_le_bytes());
    }
    buf
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').context("stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        f.get(11).context("utime")?.parse::<f64>()? + f.get(12).context("stime")?.parse::<f64>()?;
    // USER_HZ is 100 on every Linux onebox supports.
    Ok(ticks / 100.0)
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

/// Reads an HTTP/1.1 response head from `s`; returns the status and the Content-Length.
async fn response_head(s: &mut tokio::net::TcpStream) -> Result<(u16, Option<u64>)> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await? == 0 {
            bail!("connection closed in the response head");
        }
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("status")?;
    let len = text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())
            .flatten()
    });
    Ok((status, len))
}

/// The plain-disk baseline: 1 GiB written sequentially and fsynced, then read back.
fn disk_baseline(dir: &Path, data: &[u8]) -> Result<(Duration, Duration)> {
    use std::io::{Read, Write};
    let path = dir.join("baseline.bin");
    let t = Instant::now();
    let mut f = std::fs::File::create(&path)?;
    for _ in 0..(GIB / CHUNK as u64) {
        f.write_all(data)?;
    }
    f.sync_all()?;
    drop(f);
    let write = t.elapsed();
    let t = Instant::now();
    let mut f = std::fs::File::open(&path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let read = t.elapsed();
    std::fs::remove_file(&path)?;
    if total != GIB {
        bail!("baseline read {total} bytes");
    }
    Ok((write, read))
}

async fn image() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let d = start().await?;
    let pid = d.child.id();
    let data = pattern();

    let (bw, br) = disk_baseline(d.dir.path(), &data)?;

    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/identity/v3/auth/tokens", d.base))
        .json(&auth_body(true))
        .send()
        .await?;
    let token = r
        .headers()
        .get("x-subject-token")
        .context("token")?
        .to_str()?
        .to_owned();
    let r: serde_json::Value = client
        .post(format!("{}/image/v2/images", d.base))
        .header("x-auth-token", &token)
        .json(
            &serde_json::json!({"name": "bench", "disk_format": "raw", "container_format": "bare"}),
        )
        .send()
        .await?
        .json()
        .await?;
    let id = r["id"].as_str().context("image id")?.to_owned();
    let addr = d.base.trim_start_matches("http://").to_owned();

    // Upload: one PUT with a Content-Length, written in 1 MiB pieces on a raw socket, so the
    // client costs as little as possible.
    let cpu0 = cpu_secs(pid)?;
    let t = Instant::now();
    let mut s = tokio::net::TcpStream::connect(&addr).await?;
    let head = format!(
        "PUT /image/v2/images/{id}/file HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {token}\r\nContent-Type: application/octet-stream\r\nContent-Length: {GIB}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await?;
    let mut peak_rss = 0;
    for i in 0..(GIB / CHUNK as u64) {
        s.write_all(&data).await?;
        if i % 128 == 0 {
            peak_rss = peak_rss.max(rss_kib(pid)?);
        }
    }
    let (status, _) = response_head(&mut s).await?;
    let up = t.elapsed();
    if status != 204 {
        bail!("upload answered {status}");
    }
    let up_cpu = cpu_secs(pid)? - cpu0;

    // Download: read the whole body and count it.
    let cpu0 = cpu_secs(pid)?;
    let t = Instant::now();
    let mut s = tokio::net::TcpStream::connect(&addr).await?;
    let head = format!(
        "GET /image/v2/images/{id}/file HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await?;
    let (status, len) = response_head(&mut s).await?;
    if status != 200 || len != Some(GIB) {
        bail!("download answered {status} with length {len:?}");
    }
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total % (128 * CHUNK as u64) < n as u64 {
            peak_rss = peak_rss.max(rss_kib(pid)?);
        }
    }
    let down = t.elapsed();
    let down_cpu = cpu_secs(pid)? - cpu0;
    if total != GIB {
        bail!("downloaded {total} bytes");
    }

    println!("1 GiB, same file system, 1 MiB writes");
    println!(
        "plain write + fsync                    {:>8.0} MiB/s  ({:.2} s)",
        mib_s(GIB, bw),
        bw.as_secs_f64()
    );
    println!(
        "image upload (PUT …/file, md5+sha512, qemu-img, fsync, rename)  {:>8.0} MiB/s  ({:.2} s)  ratio {:.2}",
        mib_s(GIB, up),
        up.as_secs_f64(),
        bw.as_secs_f64() / up.as_secs_f64()
    );
    println!(
        "plain read                             {:>8.0} MiB/s  ({:.2} s)",
        mib_s(GIB, br),
        br.as_secs_f64()
    );
    println!(
        "image download (GET …/file)            {:>8.0} MiB/s  ({:.2} s)  ratio {:.2}",
        mib_s(GIB, down),
        down.as_secs_f64(),
        br.as_secs_f64() / down.as_secs_f64()
    );
    println!("daemon CPU time: upload {up_cpu:.2} s, download {down_cpu:.2} s (2 cores)");
    println!("daemon peak RSS during transfers       {peak_rss:>8} KiB");
    println!(
        "daemon RSS after                       {:>8} KiB",
        rss_kib(pid)?
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let which = std::env::args().nth(1).unwrap_or_default();
    match which.as_str() {
        "identity" => identity().await,
        "servers" => servers().await,
        "image" => image().await,
        "ipmi" => tokio::task::spawn_blocking(ipmi_bench).await?,
        "containers" => containers().await,
        "vms" => vm_bench::vms().await,
        "network" => network_bench::network().await,
        "volumes" => volumes_bench::volumes().await,
        "console" => console_bench::console().await,
        _ => {
            bail!("usage: bench identity|servers|image|ipmi|containers|vms|network|volumes|console")
        }
    }
}

/// p50 and p95 of durations, in milliseconds.
fn p50_p95(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| {
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(i).map(|d| d.as_secs_f64() * 1e3).unwrap_or(f64::NAN)
    };
    (at(0.50), at(0.95))
}

struct IpmiSim {
    dir: tempfile::TempDir,
    script: PathBuf,
}

impl Drop for IpmiSim {
    fn drop(&mut self) {
        // Stops the simulator and its machine by the PIDs the script recorded.
        let _ = Command::new(&self.script)
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

fn ipmi_bench() -> Result<()> {
    const N: usize = 200;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ipmi-sim.sh");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let console = free_port()?;
    let sim = IpmiSim {
        dir: tempfile::tempdir()?,
        script: script.clone(),
    };
    let out = Command::new(&script)
        .arg("start")
        .arg(sim.dir.path())
        .arg(port.to_string())
        .arg(console.to_string())
        .output()?;
    if !out.status.success() {
        bail!(
            "scripts/ipmi-sim.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let cfg = ipmi::Config::new("127.0.0.1", port, "admin", "password");
    let ipmitool = |args: &[&str], stdin: Option<String>| -> Result<Duration> {
        let mut c = Command::new("ipmitool");
        c.args([
            "-I",
            "lanplus",
            "-C",
            "3",
            "-H",
            "127.0.0.1",
            "-U",
            "admin",
            "-E",
        ])
        .args(["-p", &port.to_string()])
        .args(args)
        .env("IPMI_PASSWORD", "password")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let t = Instant::now();
        let ok = match stdin {
            None => c.status()?.success(),
            Some(input) => {
                use std::io::Write;
                let mut child = c.stdin(Stdio::piped()).spawn()?;
                child
                    .stdin
                    .take()
                    .context("ipmitool stdin")?
                    .write_all(input.as_bytes())?;
                child.wait()?.success()
            }
        };
        if !ok {
            bail!("ipmitool {args:?} failed");
        }
        Ok(t.elapsed())
    };
    // Warm up both (page cache, ipmi_sim's first session).
    for _ in 0..5 {
        ipmi::Session::open(&cfg)?.close();
        ipmitool(&["chassis", "power", "status"], None)?;
    }

    let mut open = Vec::new();
    let mut whole = Vec::new();
    for _ in 0..N {
        let t = Instant::now();
        let mut s = ipmi::Session::open(&cfg)?;
        open.push(t.elapsed());
        s.power_is_on()?;
        s.close();
        whole.push(t.elapsed());
    }
    let mut s = ipmi::Session::open(&cfg)?;
    let mut status = Vec::new();
    for _ in 0..N {
        let t = Instant::now();
        s.power_is_on()?;
        status.push(t.elapsed());
    }
    s.close();

    let mut tool_whole = Vec::new();
    let mut tool_open = Vec::new();
    for _ in 0..N {
        tool_whole.push(ipmitool(&["chassis", "power", "status"], None)?);
        // Get Device ID: one command that does not touch the chassis.
        tool_open.push(ipmitool(&["raw", "0x06", "0x01"], None)?);
    }
    // ipmitool keeps one session for a whole `shell` script: the per-command cost is the
    // difference between N+1 and 1 commands, divided by N (means only).
    let one = ipmitool(&["shell"], Some("chassis power status\nexit\n".into()))?;
    let many = ipmitool(
        &["shell"],
        Some("chassis power status\n".repeat(N + 1) + "exit\n"),
    )?;
    let tool_status_mean = (many.saturating_sub(one)).as_secs_f64() * 1e3 / N as f64;

    let row = |what: &str, (p50, p95): (f64, f64)| {
        println!("{what:<58} p50 {p50:>8.3} ms   p95 {p95:>8.3} ms");
    };
    println!("IPMI against ipmi_sim on 127.0.0.1:{port}, cipher suite 3, n={N}");
    row(
        "onebox: session open (RMCP+ setup + privilege ADMINISTRATOR)",
        p50_p95(open),
    );
    row("onebox: power status on an open session", p50_p95(status));
    row("onebox: open + power status + close", p50_p95(whole));
    row(
        "ipmitool: process + open + Get Device ID + close",
        p50_p95(tool_open),
    );
    row(
        "ipmitool: process + open + power status + close",
        p50_p95(tool_whole),
    );
    println!(
        "{:<58} mean {tool_status_mean:>7.3} ms",
        "ipmitool shell: power status on an open session"
    );
    drop(sim);
    Ok(())
}

/// init of the benchmark's container image: one console line, then idle until SIGTERM.
const BENCH_INIT: &str = "#!/bin/sh\necho onebox-bench: booted\ntrap 'exit 0' TERM\nwhile :; do sleep 1 & wait $!; done\n";

/// A busybox root filesystem tarball (busybox-static), the same for onebox and crun.
fn busybox_rootfs(dest: &Path) -> Result<()> {
    busybox_rootfs_with(dest, BENCH_INIT)
}

/// The same with `init` as `/sbin/init`.
fn busybox_rootfs_with(dest: &Path, init: &str) -> Result<()> {
    let bb = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("busybox-static is not installed")?;
    let mut b = tar::Builder::new(std::fs::File::create(dest)?);
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h
    };
    for d in ["bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root"] {
        b.append_data(
            &mut header(tar::EntryType::Directory, 0o755, 0),
            d,
            std::io::empty(),
        )?;
    }
    let data = std::fs::read(bb)?;
    b.append_data(
        &mut header(tar::EntryType::Regular, 0o755, data.len() as u64),
        "bin/busybox",
        data.as_slice(),
    )?;
    let list = Command::new(bb).arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && applet != "init" {
            b.append_link(
                &mut header(tar::EntryType::Symlink, 0o777, 0),
                format!("bin/{applet}"),
                "busybox",
            )?;
        }
    }
    b.append_data(
        &mut header(tar::EntryType::Regular, 0o755, init.len() as u64),
        "sbin/init",
        init.as_bytes(),
    )?;
    b.append_data(
        &mut header(tar::EntryType::Regular, 0o644, 30),
        "etc/passwd",
        &b"root:x:0:0:root:/root:/bin/sh\n"[..],
    )?;
    b.finish()?;
    Ok(())
}

/// The container root filesystem at `tarball` uploaded as an image named `name`; its id.
async fn rootfs_image(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    tarball: &Path,
) -> Result<String> {
    let img: serde_json::Value = c
        .post(format!("{base}/image/v2/images"))
        .header("x-auth-token", token)
        .json(&serde_json::json!({"name": name, "disk_format": "raw", "container_format": "bare", "hypervisor_type": "lxc"}))
        .send()
        .await?
        .json()
        .await?;
    let image = img["id"].as_str().context("image id")?.to_owned();
    let up = c
        .put(format!("{base}/image/v2/images/{image}/file"))
        .header("x-auth-token", token)
        .header("content-type", "application/octet-stream")
        .body(std::fs::read(tarball)?)
        .send()
        .await?;
    if !up.status().is_success() {
        bail!("image upload failed: {}", up.text().await?);
    }
    Ok(image)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `crun run` of the rootfs with `/bin/true`, `runs` times, each timed from just before the
/// command to its exit, all inside one private mount namespace (on a hybrid cgroup layout
/// crun needs cgroup2's controller list hidden; the host's view is untouched).
fn crun_runs(tarball: &Path, work: &Path, runs: usize) -> Result<Vec<Duration>> {
    let bundle = work.join("bundle");
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(&rootfs)?;
    tar::Archive::new(std::fs::File::open(tarball)?).unpack(&rootfs)?;
    let st = Command::new("crun")
        .args(["spec"])
        .current_dir(&bundle)
        .status()
        .context("crun is not installed")?;
    if !st.success() {
        bail!("crun spec failed");
    }
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path)?)?;
    cfg["process"]["terminal"] = false.into();
    cfg["process"]["args"] = serde_json::json!(["/bin/true"]);
    cfg["root"]["path"] = "rootfs".into();
    cfg["root"]["readonly"] = true.into();
    cfg["linux"]["cgroupsPath"] = format!("/onebox-bench-crun-{}", std::process::id()).into();
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg)?)?;
    let state = work.join("crun-state");
    let hybrid = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .is_ok_and(|c| !c.trim().is_empty());
    let script = format!(
        "set -e\n{}for i in $(seq {runs}); do s=$(date +%s%N); crun --root {st} run -b {b} onebox-bench-$i >/dev/null; e=$(date +%s%N); echo $((e - s)); done\n",
        if hybrid {
            "mount --bind /dev/null /sys/fs/cgroup/unified/cgroup.controllers\n"
        } else {
            ""
        },
        st = state.display(),
        b = bundle.display(),
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()?;
    if !out.status.success() {
        bail!("crun run failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .map(Duration::from_nanos)
        .collect())
}

async fn server_status(c: &reqwest::Client, base: &str, token: &str, id: &str) -> Result<String> {
    let r = c
        .get(format!("{base}/compute/v2.1/servers/{id}"))
        .header("x-auth-token", token)
        .send()
        .await?;
    if r.status().as_u16() == 404 {
        return Ok("GONE".into());
    }
    let v: serde_json::Value = r.json().await?;
    Ok(v["server"]["status"].as_str().unwrap_or("?").to_owned())
}

async fn create_server(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    image: &str,
    name: &str,
) -> Result<String> {
    let r = c
        .post(format!("{base}/compute/v2.1/servers"))
        .header("x-auth-token", token)
        .header("openstack-api-version", "compute 2.100")
        .json(&serde_json::json!({"server": {"name": name, "imageRef": image, "flavorRef": "42", "networks": "auto"}}))
        .send()
        .await?;
    if r.status().as_u16() != 202 {
        bail!("create failed: {}", r.text().await?);
    }
    let v: serde_json::Value = r.json().await?;
    Ok(v["server"]["id"].as_str().context("server id")?.to_owned())
}

async fn wait_status(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    want: &str,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = server_status(c, base, token, id).await?;
        if s == want {
            return Ok(());
        }
        if s == "ERROR" || Instant::now() > deadline {
            bail!("server {id} is {s}, not {want}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn delete_server(c: &reqwest::Client, base: &str, token: &str, id: &str) -> Result<()> {
    c.delete(format!("{base}/compute/v2.1/servers/{id}"))
        .header("x-auth-token", token)
        .send()
        .await?;
    wait_status(c, base, token, id, "GONE").await
}

async fn containers() -> Result<()> {
    if !Path::new("/proc/self").metadata().is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    }) {
        bail!("bench containers needs root");
    }
    const RUNS: usize = 50;
    const PARALLEL: usize = 20;
    let work = tempfile::tempdir()?;
    let tarball = work.path().join("rootfs.tar");
    busybox_rootfs(&tarball)?;
    let parent = format!("onebox-bench-{}", std::process::id());
    let config = work.path().join("onebox.toml");
    std::fs::write(
        &config,
        format!("[container]\ncgroup_parent = \"{parent}\"\nstop_timeout_secs = 2\n"),
    )?;
    let bridges_before = bridges();
    let d = start_with(&["--config", &config.to_string_lossy()]).await?;
    let data = d.dir.path().to_owned();
    let base = d.base.clone();
    let (token, project) = admin_session(&base).await?;
    let c = reqwest::Client::new();
    c.put(format!("{base}/compute/v2.1/os-quota-sets/{project}"))
        .header("x-auth-token", &token)
        .json(&serde_json::json!({"quota_set": {"instances": -1, "cores": -1, "ram": -1}}))
        .send()
        .await?;
    let image = rootfs_image(&c, &base, &token, "rootfs", &tarball).await?;

    // One container first, so the image is unpacked into the cache (not measured).
    let id = create_server(&c, &base, &token, &image, "warm").await?;
    wait_status(&c, &base, &token, &id, "ACTIVE").await?;
    delete_server(&c, &base, &token, &id).await?;

    let (mut to_active, mut to_console) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        let t0 = Instant::now();
        let id = create_server(&c, &base, &token, &image, &format!("lat-{i}")).await?;
        // The console file and the API are watched side by side; each time is taken when
        // its condition is first seen.
        let log = data.join("instances").join(&id).join("console.log");
        let (mut active, mut console) = (None, None);
        while active.is_none() || console.is_none() {
            if console.is_none() && std::fs::read_to_string(&log).is_ok_and(|s| s.contains('\n')) {
                console = Some(t0.elapsed());
            }
            if active.is_none() {
                match server_status(&c, &base, &token, &id).await?.as_str() {
                    "ACTIVE" => active = Some(t0.elapsed()),
                    "ERROR" => bail!("server {id} went to ERROR"),
                    _ => {}
                }
            }
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("server {id}: no ACTIVE or no console line within 30 s");
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        to_active.extend(active);
        to_console.extend(console);
        delete_server(&c, &base, &token, &id).await?;
    }
    let mut crun = match crun_runs(&tarball, work.path(), RUNS) {
        Ok(v) if !v.is_empty() => Some(v),
        Ok(_) => None,
        Err(e) => {
            println!("crun: {e:#}");
            None
        }
    };
    for ctrl in [
        "",
        "memory",
        "cpu,cpuacct",
        "pids",
        "freezer",
        "blkio",
        "devices",
        "cpuset",
        "systemd",
        "unified",
    ] {
        let _ = std::fs::remove_dir(
            Path::new("/sys/fs/cgroup")
                .join(ctrl)
                .join(format!("onebox-bench-crun-{}", std::process::id())),
        );
    }
    println!("container start, median of {RUNS} (sequential, busybox rootfs, m1.nano):");
    println!(
        "  POST /servers -> ACTIVE                 {:>8.1} ms",
        ms(median(&mut to_active))
    );
    println!(
        "  POST /servers -> first console line     {:>8.1} ms",
        ms(median(&mut to_console))
    );
    match crun.as_mut() {
        Some(v) => println!(
            "  crun run /bin/true, start to exit       {:>8.1} ms",
            ms(median(v))
        ),
        None => println!("  crun run: not measured"),
    }

    // Create rate: 20 requests at once, until all are ACTIVE.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..PARALLEL {
        let (c, base, token, image) = (c.clone(), base.clone(), token.clone(), image.clone());
        tasks.push(tokio::spawn(async move {
            let id = create_server(&c, &base, &token, &image, &format!("par-{i}")).await?;
            wait_status(&c, &base, &token, &id, "ACTIVE").await?;
            Ok::<_, anyhow::Error>(id)
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await??);
    }
    let el = started.elapsed();
    println!(
        "create rate, {PARALLEL} in parallel to ACTIVE      {:>8.1} containers/s ({PARALLEL} in {:.2} s)",
        PARALLEL as f64 / el.as_secs_f64(),
        el.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (mut cg_bytes, mut shim_kib) = (0u64, 0u64);
    for id in &ids {
        let v2 = Path::new("/sys/fs/cgroup")
            .join(&parent)
            .join(id)
            .join("memory.current");
        let v1 = Path::new("/sys/fs/cgroup/memory")
            .join(&parent)
            .join(id)
            .join("memory.usage_in_bytes");
        let text = std::fs::read_to_string(&v2).or_else(|_| std::fs::read_to_string(&v1))?;
        cg_bytes += text.trim().parse::<u64>().unwrap_or(0);
        let boot: serde_json::Value = serde_json::from_slice(&std::fs::read(
            data.join("instances").join(id).join("boot.json"),
        )?)?;
        shim_kib += pss_kib(boot["shim_pid"].as_u64().unwrap_or(0) as u32).unwrap_or(0);
    }
    let n = ids.len() as u64;
    println!(
        "memory per idle container (cgroup)      {:>8} KiB",
        cg_bytes / n / 1024
    );
    println!(
        "supervisor (shim) PSS per container     {:>8} KiB",
        shim_kib / n
    );
    println!(
        "daemon RSS with {PARALLEL} containers          {:>8} KiB",
        rss_kib(d.child.id())?
    );
    for id in &ids {
        delete_server(&c, &base, &token, id).await?;
    }
    drop(d);
    for p in [
        Path::new("/sys/fs/cgroup").join(&parent),
        Path::new("/sys/fs/cgroup/memory").join(&parent),
        Path::new("/sys/fs/cgroup/cpu").join(&parent),
        Path::new("/sys/fs/cgroup/pids").join(&parent),
        Path::new("/sys/fs/cgroup/freezer").join(&parent),
    ] {
        let _ = std::fs::remove_dir(p);
    }
    for br in bridges().difference(&bridges_before) {
        let _ = Command::new("ip").args(["link", "del", br]).status();
    }
    Ok(())
}

/// Proportional set size: private pages plus a fair share of pages shared with other
/// processes (the shims all map the same onebox binary).
fn pss_kib(pid: u32) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("Pss")
}

fn bridges() -> std::collections::HashSet<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("obr"))
                .collect()
        })
        .unwrap_or_default()
}

/// `bench vms`: real guests on libvirt.
#[path = "bench/network.rs"]
mod network_bench;
#[path = "bench/volumes.rs"]
mod volumes_bench;

#[path = "bench/console.rs"]
mod console_bench;

mod vm_bench {
    use super::*;

    async fn upload(
        base: &str,
        token: &str,
        name: &str,
        disk: &str,
        container: &str,
        props: serde_json::Value,
        file: &Path,
    ) -> Result<String> {
        let client = reqwest::Client::new();
        let mut body =
            serde_json::json!({"name": name, "disk_format": disk, "container_format": container});
        if let (Some(b), Some(p)) = (body.as_object_mut(), props.as_object()) {
            for (k, v) in p {
                b.insert(k.clone(), v.clone());
            }
        }
        let r: serde_json::Value = client
            .post(format!("{base}/image/v2/images"))
            .header("x-auth-token", token)
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        let id = r["id"].as_str().context("image id")?.to_owned();
        let up = client
            .put(format!("{base}/image/v2/images/{id}/file"))
            .header("x-auth-token", token)
            .header("content-type", "application/octet-stream")
            .body(std::fs::read(file)?)
            .send()
            .await?;
        if !up.status().is_success() {
            bail!("image upload failed: {}", up.text().await?);
        }
        Ok(id)
    }

    fn virsh(args: &[&str]) -> Result<String> {
        let out = Command::new("virsh")
            .args(["-q", "-c", "qemu:///system"])
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!(
                "virsh {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits until `log` holds a complete first line.
    async fn first_line(log: &Path, deadline: Instant) -> Result<()> {
        loop {
            if std::fs::read(log).is_ok_and(|b| b.contains(&b'\n')) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("no console line in {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn server_status(base: &str, token: &str, id: &str) -> Result<Option<String>> {
        let r = reqwest::Client::new()
            .get(format!("{base}/compute/v2.1/servers/{id}"))
            .header("x-auth-token", token)
            .send()
            .await?;
        if r.status().as_u16() == 404 {
            return Ok(None);
        }
        let v: serde_json::Value = r.json().await?;
        Ok(v["server"]["status"].as_str().map(str::to_owned))
    }

    /// Creates one server; returns its id.
    async fn create_vm(base: &str, token: &str, image: &str, flavor: &str) -> Result<String> {
        let r = reqwest::Client::new()
            .post(format!("{base}/compute/v2.1/servers"))
            .header("x-auth-token", token)
            .header("openstack-api-version", "compute 2.100")
            .json(
                &serde_json::json!({"server": {"name": "bench-vm", "imageRef": image,
            "flavorRef": flavor, "networks": "auto"}}),
            )
            .send()
            .await?;
        if r.status().as_u16() != 202 {
            bail!("create failed: {}", r.text().await?);
        }
        let v: serde_json::Value = r.json().await?;
        Ok(v["server"]["id"].as_str().context("server id")?.to_owned())
    }

    async fn wait_active(base: &str, token: &str, id: &str, deadline: Instant) -> Result<()> {
        loop {
            match server_status(base, token, id).await?.as_deref() {
                Some("ACTIVE") => return Ok(()),
                Some("ERROR") => bail!("server {id} went to ERROR"),
                _ => {}
            }
            if Instant::now() > deadline {
                bail!("server {id} did not become ACTIVE");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn delete_vm(base: &str, token: &str, id: &str) -> Result<()> {
        reqwest::Client::new()
            .delete(format!("{base}/compute/v2.1/servers/{id}"))
            .header("x-auth-token", token)
            .send()
            .await?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while server_status(base, token, id).await?.is_some() {
            if Instant::now() > deadline {
                bail!("server {id} was not deleted");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    fn pcts(mut v: Vec<f64>) -> (f64, f64) {
        v.sort_by(f64::total_cmp);
        let at = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
        (at(0.5), at(0.9))
    }

    /// The same domain under another name and UUID, with its console in `log`.
    fn baseline_xml(xml: &str, name: &str, log: &Path) -> String {
        let mut out = String::new();
        for line in xml.lines() {
            let t = line.trim_start();
            if t.starts_with("<uuid>") || t.starts_with("<entry name='uuid'>") {
                continue;
            }
            if t.starts_with("<name>") {
                out.push_str(&format!("  <name>{name}</name>\n"));
            } else if t.starts_with("<source path=") {
                out.push_str(&format!("      <source path='{}'/>\n", log.display()));
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// KVM and TCG figures are reported separately: every virtualisation type the host can
    /// run gets its own daemon (`[libvirt] virt_type`) and its own serial boots; the parallel
    /// boots and the memory figure use the best one. `BENCH_VM_TYPES=qemu` (or `kvm`)
    /// narrows the run.
    pub async fn vms() -> Result<()> {
        let fw = Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware/build");
        let files = ["vmlinux", "initrd", "qcow2"].map(|x| fw.join(format!("onebox-tiny.{x}")));
        if !files.iter().all(|f| f.exists()) {
            bail!("build the guest first: firmware/build-guest.sh");
        }
        let boots: usize = std::env::var("BENCH_VM_BOOTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20);
        let kvm = driver_libvirt::VirtType::detect() == driver_libvirt::VirtType::Kvm;
        let types: Vec<String> = match std::env::var("BENCH_VM_TYPES") {
            Ok(v) => v.split(',').map(str::to_owned).collect(),
            Err(_) if kvm => vec!["kvm".into(), "qemu".into()],
            Err(_) => {
                println!("KVM: not usable on this host (no kvm_intel/kvm_amd), TCG only");
                vec!["qemu".into()]
            }
        };
        for (n, virt) in types.iter().enumerate() {
            let b = Bench::setup(virt, &files).await?;
            b.serial(boots).await?;
            if n == 0 {
                b.parallel().await?;
            }
        }
        Ok(())
    }

    struct Bench {
        d: Daemon,
        token: String,
        image: String,
        flavor: String,
        _config: tempfile::NamedTempFile,
    }

    impl Bench {
        async fn setup(virt: &str, files: &[std::path::PathBuf; 3]) -> Result<Self> {
            let mut config = tempfile::NamedTempFile::new()?;
            std::io::Write::write_fmt(
                &mut config,
                format_args!("[libvirt]\nvirt_type = \"{virt}\""),
            )?;
            let path = config.path().to_string_lossy().into_owned();
            let d = start_with(&["--config", &path]).await?;
            let base = d.base.clone();
            let (token, project) = admin_session(&base).await?;
            let client = reqwest::Client::new();
            client
                .put(format!("{base}/compute/v2.1/os-quota-sets/{project}"))
                .header("x-auth-token", &token)
                .json(&serde_json::json!({"quota_set": {"instances": -1, "cores": -1, "ram": -1}}))
                .send()
                .await?;
            let none = serde_json::json!({});
            let k = upload(
                &base,
                &token,
                "bench-kernel",
                "aki",
                "aki",
                none.clone(),
                &files[0],
            )
            .await?;
            let r = upload(
                &base,
                &token,
                "bench-ramdisk",
                "ari",
                "ari",
                none,
                &files[1],
            )
            .await?;
            let image = upload(
                &base,
                &token,
                "bench-tiny",
                "qcow2",
                "bare",
                serde_json::json!({"kernel_id": k, "ramdisk_id": r}),
                &files[2],
            )
            .await?;
            let f: serde_json::Value = client
        .post(format!("{base}/compute/v2.1/flavors"))
        .header("x-auth-token", &token)
        .json(
            &serde_json::json!({"flavor": {"name": "bench.vm", "ram": 128, "vcpus": 1, "disk": 1}}),
        )
        .send()
        .await?
        .json()
        .await?;
            let flavor = f["flavor"]["id"].as_str().context("flavor id")?.to_owned();
            Ok(Self {
                d,
                token,
                image,
                flavor,
                _config: config,
            })
        }

        async fn serial(&self, boots: usize) -> Result<()> {
            let (base, token, image, flavor) =
                (&self.d.base, &self.token, &self.image, &self.flavor);
            let data = self.d.dir.path().to_path_buf();
            let (mut to_active, mut to_console, mut plain) = (Vec::new(), Vec::new(), Vec::new());
            let mut virt_type = String::new();
            for i in 0..boots {
                let t0 = Instant::now();
                let deadline = t0 + Duration::from_secs(120);
                let id = create_vm(base, token, image, flavor).await?;
                wait_active(base, token, &id, deadline).await?;
                to_active.push(t0.elapsed().as_secs_f64());
                first_line(
                    &data.join("instances").join(&id).join("console.log"),
                    deadline,
                )
                .await?;
                to_console.push(t0.elapsed().as_secs_f64());
                // The plain baseline: the same XML, started by virsh while onebox's guest is off.
                let dom = format!("onebox-{id}");
                let xml = virsh(&["dumpxml", "--inactive", &dom])?;
                virt_type = xml
                    .split("type='")
                    .nth(1)
                    .and_then(|r| r.split('\'').next())
                    .unwrap_or("")
                    .to_owned();
                virsh(&["destroy", &dom])?;
                let log = data.join(format!("plain-{i}.log"));
                let xml_path = data.join(format!("plain-{i}.xml"));
                let name = format!("bench-plain-{i}");
                std::fs::write(&xml_path, baseline_xml(&xml, &name, &log))?;
                let t1 = Instant::now();
                virsh(&["create", &xml_path.to_string_lossy()])?;
                let r = first_line(&log, t1 + Duration::from_secs(120)).await;
                plain.push(t1.elapsed().as_secs_f64());
                let _ = virsh(&["destroy", &name]);
                r?;
                delete_vm(base, token, &id).await?;
            }
            let (a50, a90) = pcts(to_active);
            let (c50, c90) = pcts(to_console);
            let (p50, p90) = pcts(plain);
            println!("virtualisation: {virt_type} ({boots} boots, one at a time)");
            println!(
                "POST /servers -> ACTIVE                 median {a50:6.2} s   p90 {a90:6.2} s"
            );
            println!(
                "POST /servers -> first console line     median {c50:6.2} s   p90 {c90:6.2} s"
            );
            println!(
                "virsh create -> first console line      median {p50:6.2} s   p90 {p90:6.2} s"
            );
            Ok(())
        }

        async fn parallel(&self) -> Result<()> {
            let (base, token, image, flavor) =
                (&self.d.base, &self.token, &self.image, &self.flavor);
            let data = self.d.dir.path().to_path_buf();
            let pid = self.d.child.id();
            // Ten at once.
            let t0 = Instant::now();
            let mut ids = Vec::new();
            for _ in 0..10 {
                ids.push(create_vm(base, token, image, flavor).await?);
            }
            let deadline = t0 + Duration::from_secs(300);
            let mut active = Vec::new();
            for id in &ids {
                wait_active(base, token, id, deadline).await?;
                active.push(t0.elapsed().as_secs_f64());
            }
            let mut console = Vec::new();
            for id in &ids {
                first_line(
                    &data.join("instances").join(id).join("console.log"),
                    deadline,
                )
                .await?;
                console.push(t0.elapsed().as_secs_f64());
            }
            println!(
                "10 parallel boots: all ACTIVE after {:.2} s, all on the console after {:.2} s",
                active.iter().copied().fold(0.0, f64::max),
                console.iter().copied().fold(0.0, f64::max)
            );
            tokio::time::sleep(Duration::from_secs(5)).await;
            println!(
                "onebox RSS with 10 guests running        {:>9} KiB",
                rss_kib(pid)?
            );
            for id in &ids {
                delete_vm(base, token, id).await?;
            }
            Ok(())
        }
    }
}
