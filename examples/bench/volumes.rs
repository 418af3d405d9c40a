//! `bench volumes`: a volume made from a 1 GiB qcow2 image through the Block Storage API,
//! from the request to `available`, against a plain `qemu-img convert` of the same image
//! file to a raw file in the same directory, in the same run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{admin_session, median, ms, start_with};

const RUNS: usize = 3;

/// A 1 GiB qcow2 image whose every MiB holds data (a sparse image would measure nothing).
fn make_image(dir: &Path) -> Result<std::path::PathBuf> {
    let raw = dir.join("bench-src.raw");
    let mut block = vec![0u8; 1 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&raw)?);
        for _ in 0..1024 {
            for b in block.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all(&block)?;
        }
    }
    let qcow = dir.join("bench-src.qcow2");
    let st = Command::new("qemu-img")
        .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(&qcow)
        .status()?;
    if !st.success() {
        bail!("qemu-img convert to qcow2 failed");
    }
    std::fs::remove_file(&raw)?;
    Ok(qcow)
}

fn plain_convert(src: &Path, dest: &Path) -> Result<Duration> {
    let t0 = Instant::now();
    let st = Command::new("qemu-img")
        .args(["convert", "-q", "-f", "qcow2", "-O", "raw"])
        .arg(src)
        .arg(dest)
        .status()?;
    let d = t0.elapsed();
    if !st.success() {
        bail!("qemu-img convert failed");
    }
    std::fs::remove_file(dest)?;
    Ok(d)
}

async fn volume_from_image(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    image: &str,
) -> Result<Duration> {
    let url = format!("{base}/volume/v3/volumes");
    let t0 = Instant::now();
    let r: Value = c
        .post(&url)
        .header("x-auth-token", token)
        .json(&json!({"volume": {"size": 1, "imageRef": image}}))
        .send()
        .await?
        .json()
        .await?;
    let id = r["volume"]["id"]
        .as_str()
        .with_context(|| format!("volume create: {r}"))?
        .to_owned();
    loop {
        let v: Value = c
            .get(format!("{url}/{id}"))
            .header("x-auth-token", token)
            .send()
            .await?
            .json()
            .await?;
        match v["volume"]["status"].as_str() {
            Some("available") => break,
            Some("error") => bail!("volume {id} went to error"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let d = t0.elapsed();
    c.delete(format!("{url}/{id}"))
        .header("x-auth-token", token)
        .send()
        .await?;
    Ok(d)
}

pub async fn volumes() -> Result<()> {
    let d = start_with(&["--fake-driver"]).await?;
    let base = d.base.clone();
    let (token, _) = admin_session(&base).await?;
    let qcow = make_image(d.dir.path())?;
    let c = reqwest::Client::new();
    let r: Value = c
        .post(format!("{base}/image/v2/images"))
        .header("x-auth-token", &token)
        .json(&json!({"name": "bench-1g", "disk_format": "qcow2", "container_format": "bare"}))
        .send()
        .await?
        .json()
        .await?;
    let image = r["id"].as_str().context("image id")?.to_owned();
    let body = tokio::fs::read(&qcow).await?;
    let st = c
        .put(format!("{base}/image/v2/images/{image}/file"))
        .header("x-auth-token", &token)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await?
        .status();
    if !st.is_success() {
        bail!("image upload: {st}");
    }
    let dest = d.dir.path().join("volumes").join(".bench-plain.raw");
    let (mut api, mut plain) = (Vec::new(), Vec::new());
    // Alternated, so that neither side always meets a warm page cache first.
    for _ in 0..RUNS {
        plain.push(plain_convert(&qcow, &dest)?);
        api.push(volume_from_image(&c, &base, &token, &image).await?);
    }
    let (a, p) = (median(&mut api), median(&mut plain));
    println!("volume create from a 1 GiB qcow2 image, median of {RUNS}:");
    println!("  onebox (request to available): {:.0} ms", ms(a));
    println!("  plain qemu-img convert:        {:.0} ms", ms(p));
    println!(
        "  ratio: {:.2}x (goal <= 1.10x)",
        a.as_secs_f64() / p.as_secs_f64()
    );
    Ok(())
}
