//! The block storage quotas of a project: limits, usage, defaults, and the check a create
//! makes in its own transaction.

use model::volume::VolumeUsage;
use model::{Context, ProjectId};
use store::volume as sql;

use crate::{Error, Result, Volumes, admin_only};

/// The checks of a new volume or snapshot of `gb` against `project`'s limits, in the
/// transaction that writes it.
pub(crate) fn check_quota(
    c: &store::Connection,
    project: &ProjectId,
    volumes: i64,
    snapshots: i64,
    gb: i64,
) -> Result<()> {
    let limits = sql::limits(c, project)?;
    let limit = |k: &str| limits.iter().find(|(n, _)| *n == k).map_or(-1, |(_, l)| *l);
    let used = sql::usage(c, project)?;
    let per = limit("per_volume_gigabytes");
    if volumes > 0 && per >= 0 && gb > per {
        return Err(Error::OverQuota(format!(
            "VolumeSizeExceedsLimit: Requested volume size {gb}G is larger than maximum allowed limit {per}G."
        )));
    }
    let gl = limit("gigabytes");
    if gl >= 0 && used.gigabytes + gb > gl {
        return Err(Error::OverQuota(format!(
            "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested {gb}G, quota is {gl}G and {}G has been consumed.",
            used.gigabytes
        )));
    }
    let vl = limit("volumes");
    if volumes > 0 && vl >= 0 && used.volumes + volumes > vl {
        return Err(Error::OverQuota(format!(
            "VolumeLimitExceeded: Maximum number of volumes allowed ({vl}) exceeded for quota 'volumes'."
        )));
    }
    let sl = limit("snapshots");
    if snapshots > 0 && sl >= 0 && used.snapshots + snapshots > sl {
        return Err(Error::OverQuota(format!(
            "SnapshotLimitExceeded: Maximum number of snapshots allowed ({sl}) exceeded"
        )));
    }
    Ok(())
}

impl Volumes {
    pub async fn limits(&self, ctx: &Context, project: &str) -> Result<Vec<(&'static str, i64)>> {
        let p = ProjectId::new(project);
        if !ctx.can_read(&p) {
            return Err(Error::Forbidden(
                "Policy doesn't allow volume_extension:quotas:show to be performed.".into(),
            ));
        }
        Ok(self.store.read(move |c| sql::limits(c, &p)).await?)
    }

    pub async fn usage(&self, ctx: &Context, project: &str) -> Result<VolumeUsage> {
        let p = ProjectId::new(project);
        if !ctx.can_read(&p) {
            return Err(Error::Forbidden(
                "Policy doesn't allow volume_extension:quotas:show to be performed.".into(),
            ));
        }
        Ok(self.store.read(move |c| sql::usage(c, &p)).await?)
    }

    pub fn quota_defaults(&self) -> Vec<(&'static str, i64)> {
        model::volume::QUOTA_DEFAULTS.to_vec()
    }

    /// Sets limits (admins only); unknown resources are refused.
    pub async fn set_quota(
        &self,
        ctx: &Context,
        project: &str,
        limits: Vec<(String, i64)>,
    ) -> Result<Vec<(&'static str, i64)>> {
        admin_only(ctx, "volume_extension:quotas:update")?;
        for (k, v) in &limits {
            if !model::volume::QUOTA_DEFAULTS.iter().any(|(n, _)| n == k) {
                return Err(Error::BadRequest(format!(
                    "Invalid input received: Bad key(s) in quota set: {k}"
                )));
            }
            if *v < -1 {
                return Err(Error::BadRequest(format!(
                    "Invalid input for field/attribute {k}. Value: {v}. {v} is less than the minimum of -1"
                )));
            }
        }
        let p = ProjectId::new(project);
        Ok(self
            .store
            .write(move |tx| {
                for (k, v) in &limits {
                    sql::set_limit(tx, &p, k, *v)?;
                }
                sql::limits(tx, &p)
            })
            .await?)
    }

    pub async fn reset_quota(&self, ctx: &Context, project: &str) -> Result<()> {
        admin_only(ctx, "volume_extension:quotas:delete")?;
        let p = ProjectId::new(project);
        Ok(self
            .store
            .write(move |tx| sql::clear_limits(tx, &p))
            .await?)
    }
}
