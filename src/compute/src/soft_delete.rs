//! Soft delete (with `reclaim_instance_interval` above 0 a delete only powers the server off
//! and marks it SOFT_DELETED), restore, and forceDelete. The periodic work reclaims a
//! soft-deleted server when its time has come (see `periodic`).

use chrono::Utc;
use model::Context;
use model::compute::{PowerState, Server, ServerId, TaskState, VmState};
use store::compute as sql;

use crate::actions::Action;
use crate::sysmeta::SOFT_DELETED_AT;
use crate::{Compute, Result};

impl Compute {
    /// Whether a delete of `s` only soft-deletes it now (`reclaim_instance_interval` > 0, the
    /// server booted once, not already soft-deleted and not in a task).
    pub(crate) fn soft_deletes(&self, s: &Server) -> bool {
        self.cfg.reclaim_instance_interval > 0
            && s.launched_at.is_some()
            && s.task_state.is_none()
            && !matches!(s.vm_state, VmState::SoftDeleted | VmState::Building)
    }

    pub(crate) async fn soft_delete(
        &self,
        ctx: &Context,
        s: &Server,
        request_id: &str,
    ) -> Result<()> {
        let action = self
            .begin_named(
                s,
                ("delete", true),
                TaskState::SoftDeleting,
                request_id,
                &ctx.user_id,
                |_| Ok(()),
            )
            .await?;
        let (sid, from_vm) = (s.id.clone(), s.vm_state);
        self.run(&s.id, move |c| async move {
            c.run_soft_delete(sid, action, from_vm).await
        });
        Ok(())
    }

    async fn run_soft_delete(&self, id: ServerId, action: i64, from_vm: VmState) {
        let event = self.event(action, "compute_soft_delete_instance").await;
        let id2 = id.clone();
        let result = self
            .blocking(&id, move |d| match d.power_off(&id2) {
                Err(driver::DriverError::NotFound(_)) => Ok(()),
                r => r,
            })
            .await;
        match result {
            Ok(()) => {
                self.settle(
                    &id,
                    event,
                    TaskState::SoftDeleting,
                    (VmState::SoftDeleted, PowerState::Shutdown),
                    |tx, id| sql::set_sysmeta(tx, id, SOFT_DELETED_AT, &store::ts(Utc::now())),
                )
                .await;
            }
            Err(e) => {
                self.fail_back(&id, TaskState::SoftDeleting, from_vm, event, e.to_string())
                    .await
            }
        }
    }

    /// Brings a soft-deleted server back (owner or admin).
    pub async fn restore(&self, ctx: &Context, id: &str, request_id: &str) -> Result<()> {
        self.start_work(
            ctx,
            id,
            (Action::Restore, TaskState::Restoring),
            request_id,
            Compute::run_restore,
        )
        .await
    }

    pub(crate) async fn run_restore(self, id: ServerId, action: i64) {
        let event = self.event(action, "compute_restore_instance").await;
        let id2 = id.clone();
        match self.blocking(&id, move |d| d.power_on(&id2)).await {
            Ok(()) => {
                self.settle(
                    &id,
                    event,
                    TaskState::Restoring,
                    (VmState::Active, PowerState::Running),
                    |tx, id| sql::delete_sysmeta(tx, id, SOFT_DELETED_AT),
                )
                .await;
            }
            Err(e) => {
                self.fail_back(
                    &id,
                    TaskState::Restoring,
                    VmState::SoftDeleted,
                    event,
                    e.to_string(),
                )
                .await
            }
        }
    }

    /// Deletes a server now, soft-deleted or not.
    pub async fn force_delete(&self, ctx: &Context, id: &str, request_id: &str) -> Result<()> {
        self.delete_now(ctx, id, request_id).await
    }
}
