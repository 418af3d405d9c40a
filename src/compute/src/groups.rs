//! Server groups, and the scheduling decision a single host makes for a new server.
//!
//! The box is one host. A server that names a group in its scheduler hints joins it when it
//! is created (within the create's transaction, so `server_group_members` cannot be
//! overshot). When its build starts, [`Compute::schedule`] decides whether the host is a
//! valid one: not when the compute service is disabled or forced down, and not when the
//! group's policy is `anti-affinity` and other members already hold `max_server_per_host`
//! places on it. Soft policies and affinity always fit on one host. A server without a valid
//! host goes to ERROR with Nova's `No valid host was found.` fault.

use chrono::Utc;
use model::Context;
use model::{Persona, ProjectId};
use store::operator::{self as sql, ServerGroup};

use crate::common::policy;
use crate::{Compute, Error, Result};

pub const POLICIES: &[&str] = &[
    "affinity",
    "anti-affinity",
    "soft-affinity",
    "soft-anti-affinity",
];

/// Nova's fault message when the scheduler finds no host.
pub const NO_VALID_HOST: &str = "No valid host was found. ";

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("Instance group {id} could not be found."))
}

/// A validated `POST /os-server-groups`.
#[derive(Clone, Debug)]
pub struct NewGroup {
    pub name: String,
    pub policy: String,
    pub max_server_per_host: Option<i64>,
}

/// Inside a server create's transaction: checks the group named by a `group` hint and adds
/// the new servers to it.
pub(crate) fn join(
    tx: &store::Connection,
    project: &ProjectId,
    group: &str,
    servers: &[String],
) -> store::Result<()> {
    if uuid::Uuid::parse_str(group).is_err() {
        return Err(crate::abort(Error::BadRequest(format!(
            "Invalid input for field/attribute group. Value: {group}. '{group}' is not valid under any of the given schemas"
        ))));
    }
    let Some(g) = sql::get_group(tx, group)? else {
        return Err(crate::abort(Error::BadRequest(format!(
            "Instance group {group} could not be found."
        ))));
    };
    if g.project_id != project.as_str() {
        return Err(crate::abort(Error::BadRequest(format!(
            "Instance group {group} could not be found."
        ))));
    }
    let limit = crate::quotas::limit_of(tx, project, "server_group_members")?;
    if limit >= 0 && (g.members.len() + servers.len()) as i64 > limit {
        return Err(crate::abort(Error::QuotaExceeded(
            "Quota exceeded, too many servers in group".into(),
        )));
    }
    for s in servers {
        sql::add_member(tx, group, s)?;
    }
    Ok(())
}

impl Compute {
    pub async fn create_group(&self, ctx: &Context, g: NewGroup) -> Result<ServerGroup> {
        let project = ctx
            .project_id
            .clone()
            .ok_or_else(|| policy("os_compute_api:os-server-groups:create"))?;
        if !ctx.has(Persona::Member) {
            return Err(policy("os_compute_api:os-server-groups:create"));
        }
        let group = ServerGroup {
            id: uuid::Uuid::new_v4().to_string(),
            name: g.name,
            project_id: project.to_string(),
            user_id: ctx.user_id.to_string(),
            policy: g.policy,
            max_server_per_host: g.max_server_per_host,
            created_at: Utc::now(),
            members: Vec::new(),
        };
        let g2 = group.clone();
        self.store
            .write(move |tx| {
                let limit = crate::quotas::limit_of(tx, &project, "server_groups")?;
                if limit >= 0 && sql::count_groups(tx, &project)? >= limit {
                    return Err(crate::abort(Error::QuotaExceeded(
                        "Quota exceeded, too many server groups.".into(),
                    )));
                }
                sql::insert_group(tx, &g2)
            })
            .await?;
        tracing::info!(group_id = %group.id, policy = %group.policy, "server group created");
        Ok(group)
    }

    /// The caller's project's groups; an admin's `all_projects` lists every project's.
    pub async fn list_groups(&self, ctx: &Context, all_projects: bool) -> Result<Vec<ServerGroup>> {
        if !ctx.has(Persona::Reader) {
            return Err(policy("os_compute_api:os-server-groups:index"));
        }
        let project = if all_projects && ctx.is_admin() {
            None
        } else {
            Some(
                ctx.project_id
                    .clone()
                    .ok_or_else(|| policy("os_compute_api:os-server-groups:index"))?
                    .to_string(),
            )
        };
        Ok(self
            .store
            .read(move |c| sql::list_groups(c, project.as_deref()))
            .await?)
    }

    /// A group the caller may see; others' groups are the same 404 as unknown ones.
    pub async fn get_group(&self, ctx: &Context, id: &str) -> Result<ServerGroup> {
        let id2 = id.to_owned();
        let g = self
            .store
            .read(move |c| sql::get_group(c, &id2))
            .await?
            .ok_or_else(|| not_found(id))?;
        if !ctx.can_read(&ProjectId::new(g.project_id.clone())) {
            return Err(not_found(id));
        }
        Ok(g)
    }

    pub async fn delete_group(&self, ctx: &Context, id: &str) -> Result<()> {
        let g = self.get_group(ctx, id).await?;
        if !ctx.can_write(&ProjectId::new(g.project_id.clone())) {
            return Err(policy("os_compute_api:os-server-groups:delete"));
        }
        let id2 = g.id.clone();
        if !self
            .store
            .write(move |tx| sql::delete_group(tx, &id2))
            .await?
        {
            return Err(not_found(id));
        }
        tracing::info!(group_id = %g.id, "server group deleted");
        Ok(())
    }

    /// The scheduler of one host: `Err(reason)` when the box is not a valid host for the
    /// server (the reason is logged; the fault says only Nova's words).
    pub(crate) async fn schedule(&self, server: &model::compute::ServerId) -> Result<(), String> {
        let sid = server.as_str().to_owned();
        let verdict = self
            .store
            .read(move |c| {
                if !sql::compute_accepts_servers(c)? {
                    return Ok(Err("the compute service is disabled".to_owned()));
                }
                let Some(gid) = sql::group_of(c, &sid)? else {
                    return Ok(Ok(()));
                };
                let Some(g) = sql::get_group(c, &gid)? else {
                    return Ok(Ok(()));
                };
                if g.policy == "anti-affinity" {
                    let max = g.max_server_per_host.unwrap_or(1);
                    let placed = sql::placed_members(c, &gid, &sid)?;
                    if placed >= max {
                        return Ok(Err(format!(
                            "anti-affinity group {gid} already has {placed} server(s) on this host"
                        )));
                    }
                }
                Ok(Ok(()))
            })
            .await;
        match verdict {
            Ok(v) => v,
            Err(e) => Err(format!("scheduling: {e}")),
        }
    }

    /// Ends a build that found no valid host: ERROR with Nova's fault, and a failed
    /// scheduling event.
    pub(crate) async fn no_valid_host(
        &self,
        id: &model::compute::ServerId,
        action: i64,
        reason: &str,
    ) {
        use model::compute::{PowerState, ServerFault, TaskState, VmState};
        tracing::warn!(server_id = %id, reason, "no valid host");
        let event = self
            .event(action, "conductor_schedule_and_build_instances")
            .await;
        if self
            .step(
                id,
                Some(TaskState::Scheduling),
                VmState::Error,
                None,
                Some(PowerState::NoState),
            )
            .await
        {
            let id2 = id.clone();
            let _ = self
                .store
                .write(move |tx| {
                    store::compute::set_fault(
                        tx,
                        &id2,
                        &ServerFault {
                            code: 500,
                            message: NO_VALID_HOST.into(),
                            details: None,
                            created_at: Utc::now(),
                        },
                    )
                })
                .await;
        }
        self.finish(event, false, Some(NO_VALID_HOST.into())).await;
    }
}
