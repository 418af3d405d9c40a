//! The HTTPS listener's certificate: loading it for rustls (with the `ring` provider, which
//! builds with a C compiler alone), and creating it when the configuration names files that
//! do not exist yet.
//!
//! A box with `[api] tls_cert` and `tls_key` set but neither file present gets a CA of its
//! own in `<data_dir>/tls/` (`ca.crt`, and `ca.key` with mode 0600) and a server certificate
//! signed by it, for `localhost`, `127.0.0.1`, `::1`, the host's name and the configured
//! public address. Clients trust the box by its CA certificate: `onebox init` writes its path
//! as `cacert` into clouds.yaml and as `OS_CACERT` into the openrc files. The CA key stays on
//! the box so that a removed server certificate can be issued again without every client
//! having to trust a new CA.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Config;

/// How long the box's CA and its server certificates are valid, in days.
const VALID_DAYS: i64 = 3650;

/// The box CA's certificate (given to clients).
pub fn box_ca_cert(cfg: &Config) -> PathBuf {
    cfg.box_ca_dir().join("ca.crt")
}

/// The box CA's private key (mode 0600).
pub fn box_ca_key(cfg: &Config) -> PathBuf {
    cfg.box_ca_dir().join("ca.key")
}

/// What [`ensure_certificate`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// TLS is not configured.
    Off,
    /// The configured certificate and key exist; nothing was written.
    Present,
    /// The server certificate was issued by the box's CA, created now when `new_ca`.
    Issued { new_ca: bool },
}

/// Creates the configured certificate and key, signed by the box's CA, when TLS is
/// configured and neither file exists. A certificate without its key (or the reverse) is an
/// error: onebox never overwrites an administrator's files.
pub fn ensure_certificate(cfg: &Config) -> Result<Outcome> {
    let Some((cert, key)) = cfg.api.tls_files()? else {
        return Ok(Outcome::Off);
    };
    match (cert.exists(), key.exists()) {
        (true, true) => return Ok(Outcome::Present),
        (false, false) => {}
        (true, false) => bail!(
            "[api] tls_cert {} exists but tls_key {} does not",
            cert.display(),
            key.display()
        ),
        (false, true) => bail!(
            "[api] tls_key {} exists but tls_cert {} does not",
            key.display(),
            cert.display()
        ),
    }
    let (ca_key, ca_cert_pem, new_ca) = box_ca(cfg)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key)
        .with_context(|| format!("reading {}", box_ca_cert(cfg).display()))?;
    let server_key = KeyPair::generate().context("generating the server key")?;
    let params = server_params(&names(cfg))?;
    let server_cert = params
        .signed_by(&server_key, &issuer)
        .context("signing the server certificate")?;
    for dir in [cert.parent(), key.parent()].into_iter().flatten() {
        create_dir(dir)?;
    }
    write_file(key, &server_key.serialize_pem(), 0o600)?;
    write_file(cert, &server_cert.pem(), 0o644)?;
    Ok(Outcome::Issued { new_ca })
}

/// The box's CA: loaded when both its files exist, else created (its key with mode 0600).
fn box_ca(cfg: &Config) -> Result<(KeyPair, String, bool)> {
    let (cert_path, key_path) = (box_ca_cert(cfg), box_ca_key(cfg));
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => {
            let key_pem = std::fs::read_to_string(&key_path)
                .with_context(|| format!("reading {}", key_path.display()))?;
            let key = KeyPair::from_pem(&key_pem)
                .with_context(|| format!("parsing {}", key_path.display()))?;
            let cert = std::fs::read_to_string(&cert_path)
                .with_context(|| format!("reading {}", cert_path.display()))?;
            return Ok((key, cert, false));
        }
        (false, false) => {}
        _ => bail!(
            "the box's CA is incomplete: {} and {} exist only together (remove the other to \
             create a new CA)",
            cert_path.display(),
            key_path.display()
        ),
    }
    let key = KeyPair::generate().context("generating the CA key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(&format!("onebox CA {}", host_name()));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params);
    let cert = params
        .self_signed(&key)
        .context("signing the CA certificate")?;
    create_dir(&cfg.box_ca_dir())?;
    write_file(&key_path, &key.serialize_pem(), 0o600)?;
    write_file(&cert_path, &cert.pem(), 0o644)?;
    Ok((key, cert.pem(), true))
}

fn server_params(names: &[String]) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(names.to_vec()).context("the certificate's names")?;
    params.distinguished_name = dn(names.get(3).map_or("localhost", String::as_str));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params);
    Ok(params)
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "onebox");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// From yesterday (clocks differ) for [`VALID_DAYS`].
fn validity(params: &mut CertificateParams) {
    use chrono::Datelike;
    let ymd = |d: chrono::DateTime<chrono::Utc>| {
        // Months and days always fit in u8.
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    let now = chrono::Utc::now();
    params.not_before = ymd(now - chrono::Duration::days(1));
    params.not_after = ymd(now + chrono::Duration::days(VALID_DAYS));
}

/// The names the server certificate is for: loopback by name and address, the host's name,
/// and the addresses clients are configured to use (`public_url`, a specific `listen`).
pub fn names(cfg: &Config) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let mut add = |n: String| {
        if !n.is_empty() && !names.contains(&n) {
            names.push(n);
        }
    };
    add(host_name());
    if let Some(host) = cfg.public_url.as_deref().and_then(url_host) {
        add(host);
    }
    if !cfg.listen.ip().is_unspecified() {
        add(cfg.listen.ip().to_string());
    }
    names
}

/// The host of `https://host:port/path` (brackets of an IPv6 address removed).
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    // Only names a certificate can carry.
    let ok = host.parse::<IpAddr>().is_ok()
        || (!host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    ok.then(|| host.to_ascii_lowercase())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

fn create_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// Writes `content` with `mode`, replacing `path` atomically; the mode is set before any
/// byte is written.
fn write_file(path: &Path, content: &str, mode: u32) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// The cryptography of every TLS connection onebox makes or takes: rustls's `ring` provider.
/// rustls now steers towards `aws-lc-rs` for its post-quantum key exchange, but aws-lc
/// needs a heavier C toolchain to build; classical X25519/ECDHE is what the OpenStack
/// clients offer today.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls server configuration of `cert` (a PEM chain, server certificate first) and
/// `key`: TLS 1.2 and 1.3, HTTP/1.1.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the certificate {}", cert.display()))?;
    if chain.is_empty() {
        bail!("no certificate in {}", cert.display());
    }
    warn_if_readable(key);
    let private = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the key {}", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .with_context(|| format!("{} and {}", cert.display(), key.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A key any user can read is no secret: said loudly, not refused (a group-readable key, as
/// Debian's ssl-cert group has them, is fine).
fn warn_if_readable(key: &Path) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = std::fs::metadata(key)
        && m.mode() & 0o004 != 0
    {
        tracing::warn!(key = %key.display(), "the TLS key is readable by every user; chmod 0600 it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::SanType;

    fn cfg(dir: &Path) -> Config {
        let mut c = Config {
            data_dir: dir.to_owned(),
            ..Config::default()
        };
        c.api.tls_cert = Some(dir.join("tls/server.crt"));
        c.api.tls_key = Some(dir.join("tls/server.key"));
        c
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn the_box_ca_and_certificate_are_created_once_with_private_keys_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = cfg(dir.path());
        c.public_url = Some("https://cloud.example.org:8774/".into());
        assert_eq!(
            ensure_certificate(&c).expect("created"),
            Outcome::Issued { new_ca: true }
        );
        let cert = dir.path().join("tls/server.crt");
        let key = dir.path().join("tls/server.key");
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&box_ca_key(&c)), 0o600);
        assert_eq!(mode(&cert), 0o644);
        // The server certificate loads, and is not rewritten.
        server_config(&cert, &key).expect("rustls accepts it");
        let before = std::fs::read(&cert).expect("cert");
        assert_eq!(ensure_certificate(&c).expect("again"), Outcome::Present);
        assert_eq!(std::fs::read(&cert).expect("cert"), before);
        // Removed, it is issued again by the same CA.
        std::fs::remove_file(&cert).expect("rm");
        std::fs::remove_file(&key).expect("rm");
        let ca = std::fs::read(box_ca_cert(&c)).expect("ca");
        assert_eq!(
            ensure_certificate(&c).expect("reissued"),
            Outcome::Issued { new_ca: false }
        );
        assert_eq!(std::fs::read(box_ca_cert(&c)).expect("ca"), ca);
        // Half a pair is the administrator's business: refused, nothing written.
        std::fs::remove_file(&key).expect("rm");
        let err = ensure_certificate(&c).expect_err("half a pair");
        assert!(err.to_string().contains("tls_key"), "{err}");
        assert!(!key.exists());
    }

    #[test]
    fn the_names_cover_loopback_the_host_and_the_public_address() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = cfg(dir.path());
        c.public_url = Some("https://Cloud.Example.org:8774".into());
        c.listen = "192.0.2.7:8774".parse().expect("addr");
        let n = names(&c);
        for want in [
            "localhost",
            "127.0.0.1",
            "::1",
            "cloud.example.org",
            "192.0.2.7",
        ] {
            assert!(n.iter().any(|x| x == want), "{want} in {n:?}");
        }
        assert_eq!(
            url_host("https://[2001:db8::1]:8774/x"),
            Some("2001:db8::1".into())
        );
        assert_eq!(url_host("https://bad host/"), None);
        // Every name is one a certificate can carry.
        server_params(&n).expect("params");
        assert!(
            server_params(&n)
                .expect("params")
                .subject_alt_names
                .contains(&SanType::IpAddress("::1".parse().expect("ip")))
        );
    }

    #[test]
    fn tls_is_off_unless_both_files_are_configured() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        assert_eq!(ensure_certificate(&c).expect("off"), Outcome::Off);
        c.api.tls_cert = Some(dir.path().join("c.pem"));
        assert!(ensure_certificate(&c).is_err());
        assert!(!dir.path().join("tls").exists());
    }
}
