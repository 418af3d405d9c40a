//! Authentication: the `password` and `token` methods, token issue, validation, revocation and
//! purge, and a user's change of its own password.
//!
//! What an unauthenticated caller can make the box do is bounded here:
//! - failed passwords are counted per (account, source address), so a stranger cannot lock
//!   the owner out from elsewhere, and a refusal never names the account;
//! - token requests are rate limited per source ([`Identity::admit_auth`]);
//! - password hashing waits in a bounded queue (503 past it);
//! - a user holds at most `max_tokens_per_user` live tokens (the oldest are revoked), and dead
//!   tokens are deleted on every issue and by the periodic purge.
//!
//! A token made from a token (`token` method) never outlives its parent, carries its parent's
//! audit chain as Keystone does, and dies with it: revoking a token revokes every token made
//! from it, down the chain.

use std::net::IpAddr;
use std::time::Instant;

use chrono::{DateTime, Utc};
use model::{AuthMethod, TokenRecord, UserId};
use store::identity as sql;

use crate::lockout::{AccountKey, source_key};
use crate::policy::Context;
use crate::service::{
    DomainRef, Identity, Issued, ProjectRef, Scope, TokenInfo, UserRef, invalid_credentials,
    load_info, resolve_domain,
};
use crate::{Error, Result, secret};

/// The token a new one is made from.
struct Parent {
    hash: Vec<u8>,
    expires_at: DateTime<Utc>,
    /// Keystone's audit chain id: the audit id of the first token of the chain.
    chain: String,
}

/// How the lockout names an account that does not exist: by what was asked for, so that an
/// unknown name is refused exactly like a known one. Hashed, so a stranger sending huge names
/// cannot make the lockout table hold them.
fn unknown_account(user: &UserRef) -> AccountKey {
    let asked = match user {
        UserRef::Id(id) => format!("id:{id}"),
        UserRef::Name { name, domain } => match domain {
            DomainRef::Id(d) => format!("name:{d}/{name}"),
            DomainRef::Name(d) => format!("name:@{d}/{name}"),
        },
    };
    let digest = secret::token_hash(&asked);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("?{hex}")
}

impl Identity {
    /// Takes one token request from `source`'s allowance (`POST /v3/auth/tokens`).
    pub fn admit_auth(&self, source: Option<IpAddr>) -> Result<()> {
        self.rate
            .admit(source_key(source), Instant::now())
            .map_err(|retry_after| {
                tracing::debug!(?source, "token request over the rate limit");
                Error::TooManyRequests { retry_after }
            })
    }

    /// The `password` auth method, for a caller whose address is unknown (in-process tools).
    pub async fn authenticate_password(
        &self,
        user: UserRef,
        password: String,
        scope: Scope,
    ) -> Result<Issued> {
        self.authenticate_password_from(None, user, password, scope)
            .await
    }

    /// The `password` auth method for a caller at `source`.
    pub async fn authenticate_password_from(
        &self,
        source: Option<IpAddr>,
        user: UserRef,
        password: String,
        scope: Scope,
    ) -> Result<Issued> {
        let src = source_key(source);
        let unknown = unknown_account(&user);
        let (user, hash) = self
            .store
            .read(move |c| {
                let u = match &user {
                    UserRef::Id(id) => sql::get_user(c, id)?,
                    UserRef::Name { name, domain } => match resolve_domain(c, domain)? {
                        Some(d) => sql::find_user(c, &d.id, name)?,
                        None => None,
                    },
                };
                let hash = match &u {
                    Some(u) => sql::password_hash(c, &u.id)?,
                    None => None,
                };
                Ok((u, hash))
            })
            .await?;
        let account = user.as_ref().map_or(unknown, |u| u.id.to_string());
        if let Some(wait) = self.lockout.locked_for(&account, src, Instant::now()) {
            tracing::warn!(account = %account, source = %src, wait_s = wait.as_secs(), "login refused: too many failures from this source");
            // The same answer as a wrong password: a refusal must not tell a stranger
            // whether the account exists or is locked.
            return Err(invalid_credentials());
        }
        // Verify on the hashing threads: argon2 costs tens of milliseconds by design.
        let ok = self
            .hash_gate
            .run(move || match hash {
                Some(h) => secret::verify_password(&password, &h),
                None => {
                    secret::verify_password(&password, secret::decoy_hash());
                    false
                }
            })
            .await?;
        let user = match (user, ok) {
            (Some(u), true) => u,
            _ => {
                self.lockout.failed(&account, src, Instant::now());
                tracing::info!(account = %account, source = %src, "login failed: wrong password");
                return Err(invalid_credentials());
            }
        };
        self.lockout.succeeded(&account, src);
        if !user.enabled {
            return Err(Error::Unauthorized(format!(
                "The account is disabled for user: {}.",
                user.id
            )));
        }
        self.issue(user.id, vec![AuthMethod::Password], scope, None)
            .await
    }

    /// The `token` auth method: a new token (usually with a new scope) from a valid one. It
    /// expires when its parent does and is revoked with it.
    pub async fn authenticate_token(&self, token: &str, scope: Scope) -> Result<Issued> {
        // Keystone answers a dead token here with 404, as it does on validation.
        let info = self.validate(token).await?.ok_or(Error::NotFound {
            kind: "token",
            id: String::new(),
        })?;
        let mut methods = info.record.methods.clone();
        if !methods.contains(&AuthMethod::Token) {
            methods.push(AuthMethod::Token);
        }
        let parent = Parent {
            hash: secret::token_hash(token),
            expires_at: info.record.expires_at,
            chain: info.record.audit_ids.last().cloned().unwrap_or_default(),
        };
        self.issue(info.user.id, methods, scope, Some(parent)).await
    }

    async fn issue(
        &self,
        user_id: UserId,
        methods: Vec<AuthMethod>,
        scope: Scope,
        parent: Option<Parent>,
    ) -> Result<Issued> {
        let token = secret::new_token();
        let hash = secret::token_hash(&token);
        // Keystone reports token times to the second (microseconds zeroed).
        let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 0);
        let ttl = chrono::Duration::from_std(self.cfg.token_ttl)
            .unwrap_or_else(|_| chrono::Duration::hours(1));
        let mut expires_at = now + ttl;
        let mut audit_ids = vec![secret::new_audit_id()];
        if let Some(p) = &parent {
            // A token from a token never outlives its parent (Keystone keeps the expiry).
            expires_at = expires_at.min(p.expires_at);
            audit_ids.push(p.chain.clone());
        }
        let keep = self.cfg.limits.max_tokens_per_user.max(1) - 1;
        let info = self
            .store
            .write(move |tx| {
                let at = Utc::now();
                // The parent may have been revoked since it was validated: checked again in
                // the transaction that writes the child, so no child escapes a revocation.
                if let Some(p) = &parent
                    && sql::live_token(tx, &p.hash, at)?.is_none()
                {
                    return Ok(None);
                }
                let project_id = match &scope {
                    Scope::Unscoped => None,
                    Scope::Project(p) => {
                        let project = match p {
                            ProjectRef::Id(id) => sql::get_project(tx, id)?,
                            ProjectRef::Name { name, domain } => {
                                match resolve_domain(tx, domain)? {
                                    Some(d) => sql::find_project(tx, &d.id, name)?,
                                    None => None,
                                }
                            }
                        };
                        match project {
                            Some(p) if p.enabled => Some(p.id),
                            _ => return Ok(None),
                        }
                    }
                };
                let record = TokenRecord {
                    user_id: user_id.clone(),
                    project_id,
                    methods,
                    issued_at: now,
                    expires_at,
                    audit_ids,
                };
                let Some(info) = load_info(tx, record)? else {
                    return Ok(None);
                };
                // At most `max_tokens_per_user` live: the oldest make room. Then the user's
                // dead tokens go, so a busy user cannot grow the table.
                let evicted = sql::revoke_oldest_tokens(tx, &user_id, keep, at)?;
                if evicted > 0 {
                    tracing::info!(user_id = %user_id, evicted, "oldest tokens revoked: too many live tokens");
                }
                sql::purge_user_tokens(tx, &user_id, at)?;
                sql::insert_token(
                    tx,
                    &hash,
                    &info.record,
                    parent.as_ref().map(|p| p.hash.as_slice()),
                )?;
                Ok(Some(info))
            })
            .await?;
        match info {
            Some(info) => {
                tracing::info!(user_id = %info.user.id, project_id = ?info.project.as_ref().map(|(p, _)| p.id.as_str()), "token issued");
                Ok(Issued { token, info })
            }
            None => Err(Error::Unauthorized(
                "The request you have made requires authentication.".into(),
            )),
        }
    }

    /// Validates a token: `None` if it is unknown, expired, revoked, or no longer backed by an
    /// enabled user and a role on its project.
    pub async fn validate(&self, token: &str) -> Result<Option<TokenInfo>> {
        let hash = secret::token_hash(token);
        // The epoch is read before the rows: a write committed after this point moves it on,
        // so what is read here is never remembered past that write.
        let epoch = self.store.identity_epoch();
        if let Some(info) = self.tokens.get(&hash, epoch, Utc::now()) {
            return Ok(Some(info));
        }
        let key = hash.clone();
        let info = self
            .store
            .read(move |c| {
                let Some(record) = sql::live_token(c, &key, Utc::now())? else {
                    return Ok(None);
                };
                load_info(c, record)
            })
            .await
            .map_err(Error::from)?;
        if let Some(info) = &info {
            self.tokens.put(hash, epoch, info.clone());
        }
        Ok(info)
    }

    /// Revokes a token and every token made from it.
    pub async fn revoke(&self, token: &str) -> Result<bool> {
        let hash = secret::token_hash(token);
        Ok(self
            .store
            .write(move |tx| sql::revoke_token(tx, &hash))
            .await?)
    }

    /// Deletes every expired or revoked token.
    pub async fn purge_expired(&self) -> Result<usize> {
        Ok(self
            .store
            .write(move |tx| sql::purge_tokens(tx, Utc::now()))
            .await?)
    }

    /// A user changing its own password, proving the old one (`POST /v3/users/{id}/password`).
    /// Wrong old passwords count towards the same lockout as logins, per source: a stolen
    /// token is no way to guess the password behind it.
    pub async fn change_own_password(
        &self,
        ctx: &Context,
        id: &UserId,
        original: String,
        password: String,
        source: Option<IpAddr>,
    ) -> Result<()> {
        if !ctx.is_self(id) {
            return Err(crate::policy::forbidden());
        }
        let src = source_key(source);
        let account = id.to_string();
        if let Some(wait) = self.lockout.locked_for(&account, src, Instant::now()) {
            tracing::warn!(user_id = %id, source = %src, wait_s = wait.as_secs(), "password change refused: too many failures from this source");
            return Err(invalid_credentials());
        }
        let id2 = id.clone();
        let hash = self
            .store
            .read(move |c| sql::password_hash(c, &id2))
            .await?;
        let ok = self
            .hash_gate
            .run(move || hash.is_some_and(|h| secret::verify_password(&original, &h)))
            .await?;
        if !ok {
            self.lockout.failed(&account, src, Instant::now());
            tracing::info!(user_id = %id, source = %src, "password change failed: wrong original password");
            return Err(invalid_credentials());
        }
        self.lockout.succeeded(&account, src);
        let new_hash = self.hash_password(password).await?;
        let id2 = id.clone();
        self.store
            .write(move |tx| {
                sql::set_password_hash(tx, &id2, &new_hash)?;
                sql::revoke_user_tokens(tx, &id2)?;
                Ok(())
            })
            .await?;
        tracing::info!(user_id = %id, "password changed by its user");
        Ok(())
    }
}
