//! Benchmarks of a real onebox process on loopback. Prints the figures BENCHMARKS.md records.
//!
//! ```text
//! cargo build --release --bins --examples
//! target/release/examples/bench identity
//! ```
//!
//! `identity`: idle RSS of the daemon, password token issue rate, token validation rate
//! (`GET /v3/auth/tokens`) and authenticated compute request rate, with p50/p99 latencies,
//! then RSS after the load. Every loop is bounded in count; traffic stays on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const ADMIN_PW: &str = "bench-admin-pw";

struct Daemon {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
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
        _dir: dir,
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
    let d = start().await?;
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
    let mut s = load(5000, 8, 200, move |c| {
        c.get(&url)
            .header("x-auth-token", &t)
            .header("x-subject-token", &t)
    })
    .await?;
    s.print("token validate (GET /v3/auth/tokens)");
    println!(
        "RSS after token validation             {:>9} KiB",
        rss_kib(pid)?
    );

    let url = format!("{base}/compute/v2.1/{project}/");
    let t = token.clone();
    let mut s = load(5000, 8, 200, move |c| {
        c.get(&url).header("x-auth-token", &t)
    })
    .await?;
    s.print("authenticated compute request");

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
async fn fill(base: &str, token: &str, count: usize, batch: usize) -> Result<Duration> {
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
                "name": "bench", "imageRef": STANDIN_IMAGE, "flavorRef": "42",
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

const STANDIN_IMAGE: &str = "0b0e1c1d-5f6a-4b7c-8d9e-0a1b2c3d4e5f";

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
    let body = serde_json::json!({"server": {"name": "rate", "imageRef": STANDIN_IMAGE, "flavorRef": "42", "networks": "auto"}});
    let started = Instant::now();
    let mut s = load(500, 8, 202, move |c| {
        c.post(&url)
            .header("x-auth-token", &t)
            .header("openstack-api-version", "compute 2.100")
            .json(&body)
    })
    .await?;
    s.print("server create requests (fake driver)");
    fill(&base, &token, 0, 1).await?;
    let all_active = started.elapsed();
    println!(
        "servers created to ACTIVE                {:>9.1} servers/s   (500 in {:.2} s)",
        500.0 / all_active.as_secs_f64(),
        all_active.as_secs_f64()
    );

    for (target, label) in [(1_000usize, "1,000"), (10_000, "10,000")] {
        let have: usize = if target == 1_000 { 500 } else { 1_000 };
        fill(&base, &token, target - have, 500).await?;
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

#[tokio::main]
async fn main() -> Result<()> {
    let which = std::env::args().nth(1).unwrap_or_default();
    match which.as_str() {
        "identity" => identity().await,
        "servers" => servers().await,
        _ => bail!("usage: bench identity|servers"),
    }
}
