//! `bench network`: the networking API on the fake driver — port creates and lookups by
//! device, and a server created on a port with a security group against `networks: auto`.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{admin_session, boot_image, load, median, ms, start_with, wait_status};

async fn post(c: &reqwest::Client, url: &str, token: &str, body: Value) -> Result<Value> {
    let r = c
        .post(url)
        .header("x-auth-token", token)
        .header("openstack-api-version", "compute 2.100")
        .json(&body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let v: Value = r.json().await?;
    if !(200..300).contains(&status) {
        bail!("{url}: {status} {v}");
    }
    Ok(v)
}

pub async fn network() -> Result<()> {
    let d = start_with(&["--fake-driver"]).await?;
    let base = d.base.clone();
    let (token, project) = admin_session(&base).await?;
    let image = boot_image(&base, &token).await?;
    let c = reqwest::Client::new();
    let n = format!("{base}/network/v2.0");
    c.put(format!("{n}/quotas/{project}"))
        .header("x-auth-token", &token)
        .json(&json!({"quota": {"port": -1, "security_group_rule": -1}}))
        .send()
        .await?;
    c.put(format!("{base}/compute/v2.1/os-quota-sets/{project}"))
        .header("x-auth-token", &token)
        .json(&json!({"quota_set": {"instances": -1, "cores": -1, "ram": -1}}))
        .send()
        .await?;
    let net = post(
        &c,
        &format!("{n}/networks"),
        &token,
        json!({"network": {"name": "bench"}}),
    )
    .await?;
    let net_id = net["network"]["id"]
        .as_str()
        .context("network id")?
        .to_owned();
    post(
        &c,
        &format!("{n}/subnets"),
        &token,
        json!({"subnet": {"network_id": net_id, "ip_version": 4, "cidr": "10.250.0.0/16"}}),
    )
    .await?;

    // Port creates: 8 clients, 2,000 ports, each one address allocated from the subnet.
    let url = format!("{n}/ports");
    let (t, nid) = (token.clone(), net_id.clone());
    let seq = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut s = load(2_000, 8, 201, move |c| {
        c.post(&url)
            .header("x-auth-token", &t)
            .json(&json!({"port": {"network_id": nid, "device_id": format!("dev-{}", seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed)), "device_owner": "compute:bench"}}))
    })
    .await?;
    s.print("POST /v2.0/ports (2,000 on one net)");

    // Lookups by device (what Nova and the CLI do per server), with 2,000 ports present.
    let r: Value = c
        .get(format!("{n}/ports?limit=1"))
        .header("x-auth-token", &token)
        .send()
        .await?
        .json()
        .await?;
    let device = r["ports"][0]["device_id"]
        .as_str()
        .context("device")?
        .to_owned();
    let url = format!("{n}/ports?device_id={device}");
    let t = token.clone();
    let mut s = load(4_000, 8, 200, move |c| {
        c.get(&url).header("x-auth-token", &t)
    })
    .await?;
    s.print("GET /v2.0/ports?device_id= (2,000 ports)");

    // A security group with 1,000 rules in the project (each a distinct port).
    let g = post(
        &c,
        &format!("{n}/security-groups"),
        &token,
        json!({"security_group": {"name": "big"}}),
    )
    .await;
    let group = match g {
        Ok(g) => g["security_group"]["id"].as_str().map(str::to_owned),
        Err(e) => {
            println!("  security groups: not served ({e})");
            None
        }
    };
    if let Some(group) = &group {
        let url = format!("{n}/security-group-rules");
        let (t, gid) = (token.clone(), group.clone());
        let next = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(1000));
        let mut s = load(1_000, 4, 201, move |c| {
            let p = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            c.post(&url)
                .header("x-auth-token", &t)
                .json(&json!({"security_group_rule": {
                "security_group_id": gid, "direction": "ingress", "protocol": "tcp",
                "port_range_min": p, "port_range_max": p}}))
        })
        .await?;
        s.print("POST /v2.0/security-group-rules (to 1,000)");
    }

    // Server create to ACTIVE: networks auto, then a port made first with a group.
    let mut auto = Vec::new();
    let mut on_port = Vec::new();
    for i in 0..50 {
        let t0 = Instant::now();
        let v = post(&c, &format!("{base}/compute/v2.1/servers"), &token, json!({"server": {"name": format!("a{i}"), "imageRef": image, "flavorRef": "42", "networks": "auto"}})).await?;
        let id = v["server"]["id"].as_str().context("id")?.to_owned();
        wait_status(&c, &base, &token, &id, "ACTIVE").await?;
        auto.push(t0.elapsed());

        let t0 = Instant::now();
        let mut port_body = json!({"port": {"network_id": net_id}});
        if let Some(g) = &group {
            port_body["port"]["security_groups"] = json!([g]);
        }
        let p = post(&c, &format!("{n}/ports"), &token, port_body).await?;
        let pid = p["port"]["id"].as_str().context("port")?.to_owned();
        let v = post(&c, &format!("{base}/compute/v2.1/servers"), &token, json!({"server": {"name": format!("p{i}"), "imageRef": image, "flavorRef": "42", "networks": [{"port": pid}]}})).await?;
        let id = v["server"]["id"].as_str().context("id")?.to_owned();
        wait_status(&c, &base, &token, &id, "ACTIVE").await?;
        on_port.push(t0.elapsed());
    }
    println!(
        "server create to ACTIVE, networks auto     p50 {:>7.2} ms   (fake driver, n=50)",
        ms(median(&mut auto))
    );
    println!(
        "port (with group) + server to ACTIVE       p50 {:>7.2} ms   (fake driver, n=50)",
        ms(median(&mut on_port))
    );
    Ok(())
}
