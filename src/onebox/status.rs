//! `onebox status`: facts about this box, gathered without changing anything. Is the API
//! listening, which backends could run here and, if not, why not, and what the database holds.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::config::Config;

pub(crate) fn loopback_for(listen: SocketAddr) -> SocketAddr {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let timeout = Duration::from_secs(2);
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    Ok(s)
}

/// Asks `GET /healthz` on `listen` (on loopback when it is a wildcard address). `Ok` carries
/// the status line of a 200 answer.
pub fn probe_listener(listen: SocketAddr) -> Result<String, String> {
    let addr = loopback_for(listen);
    healthz(connect(addr)?, addr)
}

/// The same over HTTPS, the server's certificate verified against `ca` (for the name
/// `localhost`, which the certificates onebox creates carry).
pub fn probe_tls_listener(listen: SocketAddr, ca: &Path) -> Result<String, String> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let addr = loopback_for(listen);
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca)
        .map_err(|e| format!("{}: {e}", ca.display()))?
    {
        roots
            .add(c.map_err(|e| format!("{}: {e}", ca.display()))?)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
        .map_err(|e| e.to_string())?;
    healthz(rustls::StreamOwned::new(conn, connect(addr)?), addr)
}

fn healthz(mut s: impl Read + Write, addr: SocketAddr) -> Result<String, String> {
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let read = s.take(4096).read_to_end(&mut buf);
    // A server may reset the connection after its answer; the answer is what counts.
    if let (Err(e), true) = (read, buf.is_empty()) {
        return Err(e.to_string());
    }
    let text = String::from_utf8_lossy(&buf);
    let line = text.lines().next().unwrap_or_default().to_owned();
    if line.split_whitespace().nth(1) == Some("200") {
        Ok(line)
    } else if line.is_empty() {
        Err("no HTTP answer".into())
    } else {
        Err(format!("answered {line:?}"))
    }
}

/// One backend: whether it could run on this host, and the facts behind the answer.
pub struct Backend {
    pub name: &'static str,
    pub available: bool,
    pub facts: Vec<String>,
}

const LIBVIRT_SOCKETS: &[&str] = &[
    "/run/libvirt/libvirt-sock",
    "/run/libvirt/virtqemud-sock",
    "/var/run/libvirt/libvirt-sock",
];

fn is_socket(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

fn libvirt() -> Backend {
    let found = LIBVIRT_SOCKETS.iter().find(|p| is_socket(Path::new(p)));
    let facts = match found {
        Some(p) => vec![format!("libvirt socket {p}")],
        None => vec![format!(
            "no libvirt socket ({}); install libvirt-daemon-system",
            LIBVIRT_SOCKETS.join(", ")
        )],
    };
    Backend {
        name: "libvirt",
        available: found.is_some(),
        facts,
    }
}

fn kvm() -> Backend {
    let mut facts = Vec::new();
    // The vendor module says which hardware virtualisation the kernel drives; other kvm_*
    // modules (e.g. a paravirtual one inside a VM) are reported as they are.
    let vendor = ["kvm_intel", "kvm_amd"]
        .into_iter()
        .map(str::to_owned)
        .find(|m| Path::new("/sys/module").join(m).exists())
        .or_else(|| {
            std::fs::read_dir("/sys/module")
                .ok()?
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .find(|n| n.starts_with("kvm_"))
        });
    match &vendor {
        Some(m) => facts.push(format!("module {m} loaded")),
        None => facts.push(
            "neither kvm_intel nor kvm_amd is loaded (no hardware virtualisation, or it is \
             off in the firmware)"
                .into(),
        ),
    }
    let usable = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => {
            facts.push("/dev/kvm is usable".into());
            true
        }
        Err(e) => {
            facts.push(format!("/dev/kvm: {e}"));
            false
        }
    };
    Backend {
        name: "kvm",
        available: usable,
        facts,
    }
}

/// How cgroups are mounted: v2 only, v1 with a v2 hierarchy beside it, or v1 only.
fn cgroups() -> (bool, String) {
    let root = Path::new("/sys/fs/cgroup");
    if let Ok(c) = std::fs::read_to_string(root.join("cgroup.controllers")) {
        let c = c.split_whitespace().collect::<Vec<_>>().join(" ");
        return (true, format!("cgroup v2 (unified), controllers: {c}"));
    }
    if root.join("unified").exists() {
        return (
            true,
            "cgroup v1 with a v2 hierarchy at /sys/fs/cgroup/unified (hybrid)".into(),
        );
    }
    if root.join("memory").exists() || root.join("cpu").exists() {
        return (true, "cgroup v1 (legacy)".into());
    }
    (false, "no cgroup hierarchy under /sys/fs/cgroup".into())
}

fn containers() -> Backend {
    let mut facts = Vec::new();
    let kinds = ["mnt", "pid", "net", "uts", "ipc", "user", "cgroup"];
    let missing: Vec<_> = kinds
        .iter()
        .filter(|k| !Path::new("/proc/self/ns").join(k).exists())
        .collect();
    if missing.is_empty() {
        facts.push(format!("namespaces: {}", kinds.join(" ")));
    } else {
        facts.push(format!(
            "missing namespaces: {}",
            missing
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    let (cg_ok, cg) = cgroups();
    facts.push(cg);
    Backend {
        name: "containers",
        available: missing.is_empty() && cg_ok,
        facts,
    }
}

fn ipmi() -> Backend {
    Backend {
        name: "ipmi",
        available: true,
        facts: vec!["needs only UDP (port 623) to each BMC".into()],
    }
}

pub fn backends() -> Vec<Backend> {
    vec![libvirt(), kvm(), containers(), ipmi()]
}

/// Prints the report. Returns whether the API answered.
pub fn run(cfg: &Config, config_file: Option<&Path>) -> bool {
    println!("onebox {}", env!("CARGO_PKG_VERSION"));
    match config_file {
        Some(p) => println!("config:    {}", p.display()),
        None => println!("config:    built-in defaults (no file)"),
    }
    println!("data dir:  {}", cfg.data_dir.display());
    let url = format!("{}/healthz", cfg.client_base_url());
    // The plain loopback listener when there is one, else `listen` itself.
    let (addr, probe) = match (cfg.api.plain_listen, cfg.tls(), cfg.client_ca()) {
        (Some(p), _, _) => (p, probe_listener(p)),
        (None, false, _) => (cfg.listen, probe_listener(cfg.listen)),
        (None, true, Some(ca)) => (cfg.listen, probe_tls_listener(cfg.listen, &ca)),
        (None, true, None) => (
            cfg.listen,
            Err("HTTPS with a certificate of the system's trust (set [api] tls_ca or plain_listen to check it)".into()),
        ),
    };
    let up = match probe {
        Ok(line) => {
            println!("listener:  {addr} reachable ({line})");
            true
        }
        Err(e) => {
            println!("listener:  {addr} not reachable: {e} ({url})");
            false
        }
    };
    if crate::lock::held(&cfg.data_dir) {
        println!("service:   running (a onebox holds the data directory's lock)");
    } else {
        println!("service:   not running on this data directory");
    }
    let db = cfg.db_path();
    if !db.exists() {
        println!("database:  none yet at {} (run onebox init)", db.display());
    } else {
        match store::stats::inventory_at(&db) {
            Ok((version, counts)) => {
                println!(
                    "database:  {}, schema {version} (this onebox writes {})",
                    db.display(),
                    store::LATEST_VERSION
                );
                for c in counts {
                    println!("  {:<10} {}", c.what, c.n);
                }
            }
            Err(e) => println!("database:  {}: {e}", db.display()),
        }
    }
    println!("backends:");
    for b in backends() {
        let state = if b.available {
            "available"
        } else {
            "unavailable"
        };
        println!("  {:<11} {state}: {}", b.name, b.facts.join("; "));
    }
    up
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_tells_a_closed_port_from_a_healthy_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).expect("read");
                assert!(n > 0, "request cut short");
                req.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                .expect("write");
        });
        let wildcard = SocketAddr::from(([0, 0, 0, 0], addr.port()));
        assert!(probe_listener(wildcard).expect("healthy").contains("200"));
        server.join().expect("server");
        // The listener is gone now.
        assert!(probe_listener(addr).is_err());
    }

    #[test]
    fn every_backend_reports_facts() {
        for b in backends() {
            assert!(!b.facts.is_empty(), "{}", b.name);
        }
    }
}
