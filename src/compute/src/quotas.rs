//! Quotas: limits per project (defaults unless set), and usage.

use std::collections::BTreeMap;

use model::ProjectId;
use model::compute::{QUOTA_DEFAULTS, Usage};
use store::compute as sql;

use model::Context;

use crate::{Compute, Error, Result};

/// The class whose limits are the defaults of every project without its own.
pub const DEFAULT_CLASS: &str = "default";

/// The limits of quota class `class`: Nova's built-in defaults, overridden by what was set
/// for the class.
pub fn class_limits(
    c: &store::Connection,
    class: &str,
) -> store::Result<BTreeMap<&'static str, i64>> {
    let set = sql::quota_class_values(c, class)?;
    Ok(QUOTA_DEFAULTS
        .iter()
        .map(|(r, d)| {
            let v = set.iter().find(|(o, _)| o == r).map_or(*d, |(_, l)| *l);
            (*r, v)
        })
        .collect())
}

/// The default limit of one resource: the `default` class's.
pub fn default_limit(c: &store::Connection, resource: &str) -> store::Result<i64> {
    Ok(class_limits(c, DEFAULT_CLASS)?
        .get(resource)
        .copied()
        .unwrap_or(-1))
}

/// The limit of one resource for a project, inside a transaction or read.
pub fn limit_of(c: &store::Connection, p: &ProjectId, resource: &str) -> store::Result<i64> {
    match sql::quota_overrides(c, p)?
        .into_iter()
        .find(|(r, _)| r == resource)
    {
        Some((_, l)) => Ok(l),
        None => default_limit(c, resource),
    }
}

/// Every limit of a project: its own where set, else the `default` class's.
pub fn limits_of(
    c: &store::Connection,
    p: &ProjectId,
) -> store::Result<BTreeMap<&'static str, i64>> {
    let overrides = sql::quota_overrides(c, p)?;
    let mut limits = class_limits(c, DEFAULT_CLASS)?;
    for (r, v) in limits.iter_mut() {
        if let Some((_, l)) = overrides.iter().find(|(o, _)| o == r) {
            *v = *l;
        }
    }
    Ok(limits)
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

    /// The default limits of every project (the `default` quota class), for anyone.
    pub async fn quota_defaults(&self) -> Result<BTreeMap<&'static str, i64>> {
        Ok(self.store.read(|c| class_limits(c, DEFAULT_CLASS)).await?)
    }

    /// The limits of a quota class (admin). Any name answers; only `default` is used.
    pub async fn quota_class(
        &self,
        ctx: &Context,
        class: &str,
    ) -> Result<BTreeMap<&'static str, i64>> {
        if !ctx.is_admin() {
            return Err(crate::common::policy(
                "os_compute_api:os-quota-class-sets:show",
            ));
        }
        let class = class.to_owned();
        Ok(self.store.read(move |c| class_limits(c, &class)).await?)
    }

    /// Sets limits of a quota class (admin); the class's limits after.
    pub async fn update_quota_class(
        &self,
        ctx: &Context,
        class: &str,
        values: Vec<(&'static str, i64)>,
    ) -> Result<BTreeMap<&'static str, i64>> {
        if !ctx.is_admin() {
            return Err(crate::common::policy(
                "os_compute_api:os-quota-class-sets:update",
            ));
        }
        let n = class.chars().count();
        if n > 255 {
            return Err(Error::BadRequest(format!(
                "quota_class_name has {n} characters, more than 255."
            )));
        }
        let class = class.to_owned();
        Ok(self
            .store
            .write(move |tx| {
                for (r, v) in &values {
                    sql::set_quota_class(tx, &class, r, *v)?;
                }
                class_limits(tx, &class)
            })
            .await?)
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
