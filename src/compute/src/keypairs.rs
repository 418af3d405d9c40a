//! Keypairs: generated or imported public keys, owned by a user.

use chrono::Utc;
use md5::{Digest, Md5};
use model::UserId;
use model::compute::{Keypair, KeypairType};
use store::compute as sql;

use model::Context;

use crate::{Compute, Error, Result};

/// A keypair just made by onebox: the private key is shown once and never stored.
pub struct Generated {
    pub keypair: Keypair,
    pub private_key: String,
}

/// The user a keypair call acts for: the caller, or (admins, 2.10+) another user. `rule` is
/// the call's policy (`index`, `show`, `create`, `delete`), named when it is refused.
pub fn acting_user(ctx: &Context, requested: Option<&str>, rule: &str) -> Result<UserId> {
    match requested {
        Some(u) if u != ctx.user_id.as_str() => {
            if !ctx.is_admin() {
                return Err(Error::Forbidden(format!(
                    "Policy doesn't allow os_compute_api:os-keypairs:{rule} to be performed."
                )));
            }
            Ok(UserId::new(u))
        }
        _ => Ok(ctx.user_id.clone()),
    }
}

/// `aa:bb:…` over a digest, as Nova prints fingerprints.
fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The MD5 fingerprint of an OpenSSH public key line, or why it is not one.
pub fn ssh_fingerprint(public_key: &str) -> Result<String> {
    let invalid =
        || Error::BadRequest("Keypair data is invalid: failed to generate fingerprint".into());
    let key = ssh_key::PublicKey::from_openssh(public_key.trim()).map_err(|_| invalid())?;
    let blob = key.to_bytes().map_err(|_| invalid())?;
    Ok(colon_hex(&Md5::digest(&blob)))
}

/// The SHA-1 fingerprint of a PEM certificate (x509 keypairs), over its DER, once it parses
/// as an X.509 certificate; Nova's fault (with its parser's words for the common failures)
/// when it does not.
pub fn x509_fingerprint(pem: &str) -> Result<String> {
    let invalid = |why: &str| {
        Error::BadRequest(format!(
            "Keypair data is invalid: failed to generate X509 fingerprint. Error message: {why}"
        ))
    };
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .ok()
        .filter(|(_, b)| b.label == "CERTIFICATE")
        .ok_or_else(|| {
            invalid(
                "Unable to load PEM file. See https://cryptography.io/en/latest/faq/#why-can-t-i-import-my-pem-file for more details. MalformedFraming",
            )
        })?;
    if x509_parser::parse_x509_certificate(&block.contents).is_err() {
        let kind = der_header_fault(&block.contents).unwrap_or("InvalidValue");
        return Err(invalid(&format!(
            "error parsing asn1 value: ParseError {{ kind: {kind} }}"
        )));
    }
    use sha1::Sha1;
    Ok(colon_hex(&Sha1::digest(&block.contents)))
}

/// What is wrong with the outer DER header, in the words of the parser Nova uses: a length
/// in the indefinite form, of more than four octets or not minimal is `InvalidLength`;
/// octets missing are `ShortData`.
fn der_header_fault(der: &[u8]) -> Option<&'static str> {
    let Some(&lb) = der.get(1) else {
        return Some("ShortData");
    };
    let rest = &der[2..];
    if lb & 0x80 == 0 {
        return (rest.len() < usize::from(lb)).then_some("ShortData");
    }
    let n = usize::from(lb & 0x7f);
    if n == 0 || n > 4 {
        return Some("InvalidLength");
    }
    let Some(octets) = rest.get(..n) else {
        return Some("ShortData");
    };
    if octets[0] == 0 {
        return Some("InvalidLength");
    }
    let len = octets
        .iter()
        .fold(0usize, |a, &b| (a << 8) | usize::from(b));
    if len < 128 {
        return Some("InvalidLength");
    }
    (rest.len() - n < len).then_some("ShortData")
}

/// A self-signed client certificate for `user` as Nova makes for `x509` keypairs (subject
/// `CN=<user>`, the `<user>@localhost` user principal name, client authentication, ten
/// years): the private key (PKCS#8 PEM; Nova gives a PKCS#12 bundle) and the certificate.
/// The key is ECDSA P-256 where Nova's is RSA 2048.
fn x509_certificate(user: &str) -> Result<(String, String)> {
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, SanType,
    };
    let fail = |e: rcgen::Error| Error::Task(format!("generating an x509 keypair: {e}"));
    let key = KeyPair::generate().map_err(fail)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, user);
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    // The Microsoft UPN otherName (1.3.6.1.4.1.311.20.2.3).
    params.subject_alt_names = vec![SanType::OtherName((
        vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
        format!("{user}@localhost").into(),
    ))];
    let now = Utc::now().date_naive();
    let ymd = |d: chrono::NaiveDate| {
        use chrono::Datelike;
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    params.not_before = ymd(now);
    params.not_after = ymd(now + chrono::Duration::days(3650));
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok((key.serialize_pem(), cert.pem()))
}

impl Compute {
    /// Stores a keypair, counting it against the `key_pairs` quota of the caller's project
    /// (Nova counts keypairs per user against that limit) in the same transaction.
    async fn insert_keypair(&self, ctx: &Context, k: Keypair) -> Result<Keypair> {
        let out = k.clone();
        let project = ctx.project_id.clone();
        self.store
            .write(move |tx| {
                if sql::get_keypair(tx, &k.user_id, &k.name)?.is_some() {
                    return Ok(Err(Error::Conflict(format!(
                        "Key pair '{}' already exists.",
                        k.name
                    ))));
                }
                let limit = match &project {
                    Some(p) => crate::quotas::limit_of(tx, p, "key_pairs")?,
                    None => crate::quotas::default_limit(tx, "key_pairs")?,
                };
                let used = sql::count_keypairs(tx, &k.user_id)?;
                if limit >= 0 && used >= limit {
                    return Ok(Err(Error::QuotaExceeded(
                        "Quota exceeded, too many key pairs.".into(),
                    )));
                }
                sql::insert_keypair(tx, &k)?;
                Ok(Ok(()))
            })
            .await??;
        tracing::info!(user_id = %out.user_id, keypair = %out.name, "keypair created");
        Ok(out)
    }

    /// Generates a keypair for `user`: ed25519 for `ssh`, a self-signed certificate for `x509`.
    pub async fn generate_keypair(
        &self,
        ctx: &Context,
        user: UserId,
        name: String,
        kind: KeypairType,
    ) -> Result<Generated> {
        if kind == KeypairType::X509 {
            let u = user.as_str().to_owned();
            let (private_key, public_key) =
                tokio::task::spawn_blocking(move || x509_certificate(&u))
                    .await
                    .map_err(|e| Error::Task(e.to_string()))??;
            let fingerprint = x509_fingerprint(&public_key)?;
            let keypair = self
                .insert_keypair(
                    ctx,
                    Keypair {
                        name,
                        user_id: user,
                        kind,
                        public_key,
                        fingerprint,
                        created_at: Utc::now(),
                    },
                )
                .await?;
            return Ok(Generated {
                keypair,
                private_key,
            });
        }
        let (private_key, public_key) = tokio::task::spawn_blocking(move || {
            let key =
                ssh_key::PrivateKey::random(&mut rand_core::OsRng, ssh_key::Algorithm::Ed25519)
                    .map_err(|e| Error::Task(e.to_string()))?;
            let private = key
                .to_openssh(ssh_key::LineEnding::LF)
                .map_err(|e| Error::Task(e.to_string()))?
                .to_string();
            let public = key
                .public_key()
                .to_openssh()
                .map_err(|e| Error::Task(e.to_string()))?;
            Ok::<_, Error>((private, format!("{public} Generated-by-onebox")))
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
        let fingerprint = ssh_fingerprint(&public_key)?;
        let keypair = self
            .insert_keypair(
                ctx,
                Keypair {
                    name,
                    user_id: user,
                    kind,
                    public_key,
                    fingerprint,
                    created_at: Utc::now(),
                },
            )
            .await?;
        Ok(Generated {
            keypair,
            private_key,
        })
    }

    pub async fn import_keypair(
        &self,
        ctx: &Context,
        user: UserId,
        name: String,
        kind: KeypairType,
        public_key: String,
    ) -> Result<Keypair> {
        let fingerprint = match kind {
            KeypairType::Ssh => ssh_fingerprint(&public_key)?,
            KeypairType::X509 => x509_fingerprint(&public_key)?,
        };
        self.insert_keypair(
            ctx,
            Keypair {
                name,
                user_id: user,
                kind,
                public_key,
                fingerprint,
                created_at: Utc::now(),
            },
        )
        .await
    }

    pub async fn list_keypairs(
        &self,
        user: UserId,
        marker: Option<String>,
        limit: Option<usize>,
    ) -> Result<Vec<Keypair>> {
        if let Some(m) = &marker {
            let (u, m2) = (user.clone(), m.clone());
            if self
                .store
                .read(move |c| sql::get_keypair(c, &u, &m2))
                .await?
                .is_none()
            {
                return Err(Error::BadRequest(format!("Marker {m} could not be found.")));
            }
        }
        Ok(self
            .store
            .read(move |c| sql::list_keypairs(c, &user, marker.as_deref(), limit))
            .await?)
    }

    pub async fn get_keypair(&self, user: UserId, name: &str) -> Result<Keypair> {
        let n = name.to_owned();
        let u = user.clone();
        self.store
            .read(move |c| sql::get_keypair(c, &u, &n))
            .await?
            .ok_or_else(|| Error::NotFound(format!("Keypair {name} not found for user {user}")))
    }

    pub async fn delete_keypair(&self, user: UserId, name: &str) -> Result<()> {
        let n = name.to_owned();
        let u = user.clone();
        if !self
            .store
            .write(move |tx| sql::delete_keypair(tx, &u, &n))
            .await?
        {
            return Err(Error::NotFound(format!(
                "Keypair {name} not found for user {user}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints() {
        let k =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf7Wq3ad5G3+1dEnTHy1RdQjpLSFajmyRzkd5HMIbhW test";
        let f = ssh_fingerprint(k).expect("fingerprint");
        assert_eq!(f.split(':').count(), 16);
        assert!(ssh_fingerprint("ssh-rsa not-base64").is_err());
        assert!(x509_fingerprint("nope").is_err());
        let bad = "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n";
        let Err(Error::BadRequest(m)) = x509_fingerprint(bad) else {
            panic!("a malformed certificate must be refused");
        };
        assert_eq!(
            m,
            "Keypair data is invalid: failed to generate X509 fingerprint. Error message: error parsing asn1 value: ParseError { kind: InvalidLength }"
        );
    }

    #[test]
    fn generated_x509_certificates_name_the_user_and_match_their_fingerprint() {
        let (key, cert) = x509_certificate("u-1").expect("certificate");
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).expect("pem");
        let (_, c) = x509_parser::parse_x509_certificate(&pem.contents).expect("der");
        assert_eq!(c.subject().to_string(), "CN=u-1");
        assert_eq!(c.subject(), c.issuer());
        let f = x509_fingerprint(&cert).expect("fingerprint");
        use sha1::Sha1;
        assert_eq!(f, colon_hex(&Sha1::digest(&pem.contents)));
        assert_eq!(f.len(), 59);
    }
}
