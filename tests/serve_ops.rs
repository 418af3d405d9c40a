//! The `onebox` binary on real sockets: HTTPS with the certificate `onebox init` creates,
//! plain HTTP only on loopback, and the maintenance commands that refuse to run under a
//! serving onebox. Every server is on the fake driver; nothing outside the temporary data
//! directory and loopback is touched.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

const BIN: &str = env!("CARGO_BIN_EXE_onebox");

/// A `onebox serve` stopped (SIGTERM, then SIGKILL) when dropped, also when a test fails.
struct Served {
    child: Child,
    main: SocketAddr,
    plain: Option<SocketAddr>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, tls: bool) -> PathBuf {
    let data = dir.join("data");
    let mut text = format!(
        "data_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\nfake_driver = true\nfirmware_dir = \"{}\"\n\
         [libvirt]\nenabled = false\n[container]\nenabled = \"off\"\n",
        data.display(),
        dir.join("no-firmware").display()
    );
    if tls {
        text.push_str(&format!(
            "[api]\ntls_cert = \"{d}/tls/server.crt\"\ntls_key = \"{d}/tls/server.key\"\n\
             plain_listen = \"127.0.0.1:0\"\n",
            d = data.display()
        ));
    }
    let path = dir.join("onebox.toml");
    std::fs::write(&path, text).expect("config");
    path
}

fn onebox(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running onebox")
}

fn serve(config: &Path) -> Served {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting onebox serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut served = Served {
        child,
        main: SocketAddr::from(([0, 0, 0, 0], 0)),
        plain: None,
    };
    let mut lines = BufReader::new(stdout).lines();
    while let Some(Ok(line)) = lines.next() {
        if let Some(a) = line.strip_prefix("listening on ") {
            served.main = a.parse().expect("listen address");
            if !config_has_plain(config) {
                break;
            }
        } else if let Some(a) = line.strip_prefix("plain HTTP for local tools on ") {
            served.plain = Some(a.parse().expect("plain address"));
            break;
        }
    }
    assert_ne!(served.main.port(), 0, "onebox serve printed its address");
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    served
}

fn config_has_plain(config: &Path) -> bool {
    std::fs::read_to_string(config).is_ok_and(|t| t.contains("plain_listen"))
}

/// A raw HTTP/1.1 GET over any stream; the whole answer as text.
async fn get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    path: &str,
) -> std::io::Result<String> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn tls_connector(roots: rustls::RootCertStore) -> tokio_rustls::TlsConnector {
    // rustls steers towards aws-lc-rs; onebox builds with ring (see src/onebox/tls.rs).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn https_get(
    addr: SocketAddr,
    roots: rustls::RootCertStore,
    name: &str,
    path: &str,
) -> std::io::Result<String> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).expect("name");
    let tls = tls_connector(roots).connect(name, tcp).await?;
    get(tls, path).await
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The `cacert:` clouds.yaml names (the same for each cloud).
fn cacert_of(clouds: &str) -> PathBuf {
    let line = clouds
        .lines()
        .find_map(|l| l.trim().strip_prefix("cacert: "))
        .unwrap_or_else(|| panic!("no cacert in clouds.yaml:\n{clouds}"));
    PathBuf::from(line.trim_matches('\''))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_plain_http_to_the_tls_listener_is_refused_and_https_verifies_with_the_box_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), true);
    let data = dir.path().join("data");
    let out = onebox(&config, &["init"]);
    assert!(out.status.success(), "onebox init: {out:?}");

    // init created the box's CA and the server certificate, private keys 0600, and told
    // clients which CA to trust.
    assert_eq!(mode(&data.join("tls/server.key")), 0o600);
    assert_eq!(mode(&data.join("tls/ca.key")), 0o600);
    let clouds = std::fs::read_to_string(data.join("clouds.yaml")).expect("clouds.yaml");
    let ca = cacert_of(&clouds);
    assert_eq!(ca, data.join("tls/ca.crt"));
    assert!(clouds.contains("auth_url: https://"), "{clouds}");
    let openrc = std::fs::read_to_string(data.join("admin-openrc")).expect("openrc");
    assert!(
        openrc.contains(&format!("export OS_CACERT='{}'", ca.display())),
        "{openrc}"
    );

    let served = serve(&config);
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&ca).expect("ca.crt") {
        roots.add(c.expect("pem")).expect("a CA certificate");
    }

    // HTTPS, the certificate verified against the CA clouds.yaml names, for each loopback
    // name; links and the catalog say https.
    for name in ["localhost", "127.0.0.1"] {
        let answer = https_get(served.main, roots.clone(), name, "/identity/v3/")
            .await
            .unwrap_or_else(|e| panic!("HTTPS as {name}: {e}"));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.contains("\"href\":\"https://127.0.0.1/identity/v3/\""),
            "{answer}"
        );
    }

    // A client that does not trust the box's CA gets no answer.
    let refused = https_get(
        served.main,
        rustls::RootCertStore::empty(),
        "localhost",
        "/healthz",
    )
    .await;
    assert!(refused.is_err(), "an unverified certificate was accepted");

    // The attack: plain HTTP (a password in clear) to the listener every address reaches.
    let tcp = TcpStream::connect(served.main).await.expect("connect");
    let answer = get(tcp, "/healthz").await.unwrap_or_default();
    assert!(
        !answer.contains("HTTP/1."),
        "plain HTTP was answered on the TLS port: {answer:?}"
    );
    // A header claiming TLS over plain HTTP is dropped.
    let plain = served.plain.expect("plain listener");
    assert!(plain.ip().is_loopback());
    let mut tcp = TcpStream::connect(plain).await.expect("connect plain");
    tcp.write_all(
        b"GET /identity/v3/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("write");
    let mut buf = String::new();
    tcp.read_to_string(&mut buf).await.expect("read");
    assert!(buf.starts_with("HTTP/1.1 200"), "{buf}");
    assert!(
        buf.contains("\"href\":\"http://127.0.0.1/identity/v3/\""),
        "{buf}"
    );

    // `onebox status` checks the plain loopback listener (the configuration now naming the
    // ports the kernel chose).
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text
        .replace(
            "plain_listen = \"127.0.0.1:0\"",
            &format!("plain_listen = \"{plain}\""),
        )
        .replace(
            "\nlisten = \"127.0.0.1:0\"",
            &format!("\nlisten = \"{}\"", served.main),
        );
    std::fs::write(&config, text).expect("config");
    let out = onebox(&config, &["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("listener:  {plain} reachable")),
        "{text}"
    );

    // Without the plain listener, `onebox status` asks over HTTPS, verifying the box's CA.
    let text = std::fs::read_to_string(&config).expect("config");
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("plain_listen"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&config, text).expect("config");
    let out = onebox(&config, &["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("listener:  {} reachable", served.main)),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_db_migrate_and_init_refuse_while_onebox_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), false);
    let data = dir.path().join("data");
    let served = serve(&config);
    let clouds = std::fs::read(data.join("clouds.yaml")).expect("first start wrote clouds.yaml");

    // `--backup` would always write a backup: none appears, and the refusal says why.
    let out = onebox(&config, &["db", "migrate", "--backup"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "db migrate ran under a serving onebox"
    );
    assert!(err.contains("stop it first"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    let backups = std::fs::read_dir(&data)
        .expect("data dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".bak"))
        .count();
    assert_eq!(backups, 0, "db migrate wrote a backup");

    let out = onebox(&config, &["init"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "init ran under a serving onebox");
    assert!(err.contains("stop it first"), "{err}");
    assert_eq!(
        std::fs::read(data.join("clouds.yaml")).expect("clouds.yaml"),
        clouds
    );

    // Reading the version is harmless and allowed; once onebox stopped, migrate runs.
    let out = onebox(&config, &["db", "version"]);
    assert!(out.status.success(), "{out:?}");
    drop(served);
    let out = onebox(&config, &["db", "migrate"]);
    assert!(out.status.success(), "{out:?}");
}
