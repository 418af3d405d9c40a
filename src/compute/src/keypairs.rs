//! Keypairs: generated or imported public keys, owned by a user.

use base64::Engine;
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

/// The SHA-1 fingerprint of a PEM certificate (x509 keypairs).
pub fn x509_fingerprint(pem: &str) -> Result<String> {
    let invalid =
        || Error::BadRequest("Keypair data is invalid: failed to generate fingerprint".into());
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(invalid());
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|_| invalid())?;
    use sha1::Sha1;
    Ok(colon_hex(&Sha1::digest(&der)))
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

    /// Generates an ed25519 keypair for `user`.
    pub async fn generate_keypair(
        &self,
        ctx: &Context,
        user: UserId,
        name: String,
        kind: KeypairType,
    ) -> Result<Generated> {
        if kind == KeypairType::X509 {
            return Err(Error::BadRequest(
                "onebox generates ssh keypairs only; import an x509 certificate instead".into(),
            ));
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
    }
}
