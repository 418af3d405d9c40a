//! The networking quotas of a project: limits, usage, defaults.

use model::network::QUOTA_DEFAULTS;
use model::{Context, ProjectId};
use store::network as sql;

use crate::{Error, Network, Result};

fn may_read(ctx: &Context, project: &ProjectId) -> Result<()> {
    if ctx.can_read(project) {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "rule:get_quota is disallowed by policy".into(),
        ))
    }
}

impl Network {
    /// Each resource's limit for the project.
    pub async fn quota(&self, ctx: &Context, project: &str) -> Result<Vec<(&'static str, i64)>> {
        let p = ProjectId::new(project);
        may_read(ctx, &p)?;
        Ok(self.store.read(move |c| sql::net_limits(c, &p)).await?)
    }

    /// Each resource's limit and use.
    pub async fn quota_details(
        &self,
        ctx: &Context,
        project: &str,
    ) -> Result<Vec<(&'static str, i64, i64)>> {
        let p = ProjectId::new(project);
        may_read(ctx, &p)?;
        Ok(self
            .store
            .read(move |c| {
                let mut out = Vec::new();
                for (k, l) in sql::net_limits(c, &p)? {
                    out.push((k, l, sql::net_usage(c, &p, k)?));
                }
                Ok(out)
            })
            .await?)
    }

    pub fn quota_defaults(&self) -> Vec<(&'static str, i64)> {
        QUOTA_DEFAULTS.to_vec()
    }

    /// Sets limits (admins only); unknown resources are refused.
    pub async fn set_quota(
        &self,
        ctx: &Context,
        project: &str,
        limits: Vec<(String, i64)>,
    ) -> Result<Vec<(&'static str, i64)>> {
        if !ctx.is_admin() {
            return Err(Error::Forbidden(
                "rule:update_quota is disallowed by policy".into(),
            ));
        }
        for (k, v) in &limits {
            if !QUOTA_DEFAULTS.iter().any(|(d, _)| d == k) {
                return Err(Error::invalid(format!("Unrecognized attribute(s) '{k}'")));
            }
            if *v < -1 {
                return Err(Error::invalid(format!(
                    "'{v}' should be greater than or equal to -1"
                )));
            }
        }
        let p = ProjectId::new(project);
        self.store
            .write(move |c| {
                for (k, v) in &limits {
                    sql::set_net_limit(c, &p, k, *v)?;
                }
                sql::net_limits(c, &p)
            })
            .await
            .map_err(Error::from)
    }

    pub async fn reset_quota(&self, ctx: &Context, project: &str) -> Result<()> {
        if !ctx.is_admin() {
            return Err(Error::Forbidden(
                "rule:delete_quota is disallowed by policy".into(),
            ));
        }
        let p = ProjectId::new(project);
        self.store
            .write(move |c| sql::reset_net_limits(c, &p))
            .await?;
        Ok(())
    }
}
