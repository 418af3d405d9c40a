//! What every operation reaches for: the faults Nova words the same way everywhere (not
//! found, policy, locked, quota), the lock checks, the quota arithmetic and the generator of
//! admin passwords.

use model::Context;
use model::ProjectId;
use model::compute::{Server, ServerId};

use crate::{Compute, Error, Result, abort};

/// Nova's 404 for a server the caller may not see or that does not exist.
pub(crate) fn not_found(id: &str) -> Error {
    Error::NotFound(format!("Instance {id} could not be found."))
}

/// Nova's 403 for a policy rule the caller does not pass.
pub(crate) fn policy(rule: &str) -> Error {
    Error::Forbidden(format!("Policy doesn't allow {rule} to be performed."))
}

/// Nova's 409 for an action a lock stops.
pub(crate) fn locked(id: &ServerId) -> Error {
    Error::Conflict(format!("Instance {id} is locked"))
}

/// Refuses with Nova's 409 when a non-admin acts on a server that was locked when it was
/// read.
pub(crate) fn check_lock(ctx: &Context, s: &Server) -> Result<()> {
    if s.locked() && !ctx.is_admin() {
        return Err(locked(&s.id));
    }
    Ok(())
}

/// Inside a write: refuses with Nova's 409 when the server is locked now. Actions a lock
/// stops check the lock again here, in the transaction that starts them, so a lock that
/// committed after the request read the server still wins.
pub(crate) fn refuse_if_locked(tx: &store::Connection, id: &ServerId) -> store::Result<()> {
    if store::compute::lock_holder(tx, id)?.is_some() {
        return Err(abort(locked(id)));
    }
    Ok(())
}

/// Whether `requested` more of a resource of which `used` is used passes `limit` (a
/// negative limit is no limit).
pub(crate) fn exceeds(limit: i64, used: i64, requested: i64) -> bool {
    limit >= 0 && used + requested > limit
}

/// Nova's quota fault for resource `res`.
pub(crate) fn quota_exceeded(res: &str, requested: i64, used: i64, limit: i64) -> Error {
    Error::QuotaExceeded(format!(
        "Quota exceeded for {res}: Requested {requested}, but already used {used} of {limit} {res}"
    ))
}

/// A fresh admin password: 12 characters without look-alikes, from the OS generator.
pub(crate) fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).expect("the OS random number generator failed");
    b.iter()
        .map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char)
        .collect()
}

impl Compute {
    /// Refuses metadata of `count` items beyond the project's `metadata_items` quota.
    pub(crate) async fn check_metadata_quota(
        &self,
        project: &ProjectId,
        count: usize,
    ) -> Result<()> {
        let p = project.clone();
        let limit = self
            .store
            .read(move |c| crate::quotas::limit_of(c, &p, "metadata_items"))
            .await?;
        if exceeds(limit, 0, count as i64) {
            return Err(quota_exceeded("metadata_items", count as i64, 0, limit));
        }
        Ok(())
    }
}
