//! Quotas: limits per project (defaults unless set), and usage.

use std::collections::BTreeMap;

use model::ProjectId;
use model::compute::{QUOTA_DEFAULTS, Usage};
use store::compute as sql;

use model::Context;

use crate::{Compute, Error, Result};

pub fn default_limit(resource: &str) -> i64 {
    QUOTA_DEFAULTS
        .iter()
        .find(|(r, _)| *r == resource)
        .map_or(-1, |(_, l)| *l)
}

/// The limit of one resource for a project, inside a transaction or read.
pub fn limit_of(c: &store::Connection, p: &ProjectId, resource: &str) -> store::Result<i64> {
    Ok(sql::quota_overrides(c, p)?
        .into_iter()
        .find(|(r, _)| r == resource)
        .map_or_else(|| default_limit(resource), |(_, l)| l))
}

/// Every limit of a project.
pub fn limits_of(
    c: &store::Connection,
    p: &ProjectId,
) -> store::Result<BTreeMap<&'static str, i64>> {
    let overrides = sql::quota_overrides(c, p)?;
    Ok(QUOTA_DEFAULTS
        .iter()
        .map(|(r, d)| {
            let v = overrides
                .iter()
                .find(|(o, _)| o == r)
                .map_or(*d, |(_, l)| *l);
            (*r, v)
        })
        .collect())
}

/// A project's limits and what it uses now.
#[derive(Clone, Debug)]
pub struct QuotaReport {
    pub limits: BTreeMap<&'static str, i64>,
    pub usage: Usage,
}

impl Compute {
    /// Quotas of `project`: the caller's own, or any for an admin.
    pub async fn quotas(&self, ctx: &Context, project: &ProjectId) -> Result<QuotaReport> {
        if !ctx.is_admin() && !ctx.in_project(project) {
            return Err(Error::Forbidden(
                "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed.".into(),
            ));
        }
        let p = project.clone();
        let user = ctx.user_id.clone();
        Ok(self
            .store
            .read(move |c| {
                let limits = limits_of(c, &p)?;
                let mut usage = sql::usage(c, &p)?;
                usage.key_pairs = sql::count_keypairs(c, &user)?;
                Ok(QuotaReport { limits, usage })
            })
            .await?)
    }

    /// Sets limits (admin). Without `force`, a limit below current usage is refused.
    pub async fn update_quotas(
        &self,
        ctx: &Context,
        project: &ProjectId,
        values: Vec<(&'static str, i64)>,
        force: bool,
    ) -> Result<QuotaReport> {
        if !ctx.is_admin() {
            return Err(Error::Forbidden(
                "Policy doesn't allow os_compute_api:os-quota-sets:update to be performed.".into(),
            ));
        }
        let p = project.clone();
        self.store
            .write(move |tx| {
                let usage = sql::usage(tx, &p)?;
                for (r, v) in &values {
                    let used = match *r {
                        "instances" => usage.instances,
                        "cores" => usage.cores,
                        "ram" => usage.ram,
                        _ => 0,
                    };
                    if !force && *v >= 0 && *v < used {
                        return Ok(Err(Error::BadRequest(format!(
                            "Quota limit {v} for {r} must be greater than or equal to already used and reserved {used}."
                        ))));
                    }
                }
                for (r, v) in &values {
                    sql::set_quota(tx, &p, r, *v)?;
                }
                Ok(Ok(()))
            })
            .await??;
        self.quotas(ctx, project).await
    }

    /// Reverts a project to the default limits (admin).
    pub async fn delete_quotas(&self, ctx: &Context, project: &ProjectId) -> Result<()> {
        if !ctx.is_admin() {
            return Err(Error::Forbidden(
                "Policy doesn't allow os_compute_api:os-quota-sets:delete to be performed.".into(),
            ));
        }
        let p = project.clone();
        self.store
            .write(move |tx| sql::delete_quotas(tx, &p))
            .await?;
        Ok(())
    }
}
