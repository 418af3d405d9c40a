//! The guest's admin password (changePassword), the password the guest posted
//! (os-server-password), its crash dump (trigger_crash_dump) and os-resetState: actions
//! carried out at once rather than by a background task.

use model::Context;
use model::compute::{TaskState, VmState};
use store::compute as sql;

use crate::actions::Action;
use crate::common::policy;
use crate::{Compute, Error, Result};

impl Compute {
    /// The encrypted password the guest posted to the metadata service, or empty, for
    /// anyone who may see the server.
    pub async fn server_password(&self, ctx: &Context, id: &str) -> Result<String> {
        let s = self.get_server(ctx, id).await?;
        let sid = s.id.clone();
        Ok(self
            .store
            .read(move |c| sql::get_sysmeta(c, &sid, crate::sysmeta::PASSWORD))
            .await?
            .unwrap_or_default())
    }

    /// The password the guest at server `id` posted, or empty (the metadata service's
    /// `password` file).
    pub async fn guest_password(&self, id: &model::compute::ServerId) -> Result<String> {
        let sid = id.clone();
        Ok(self
            .store
            .read(move |c| sql::get_sysmeta(c, &sid, crate::sysmeta::PASSWORD))
            .await?
            .unwrap_or_default())
    }

    /// Keeps the password a guest posts to the metadata service (encrypted with its key
    /// pair), once: a second post while one is kept is a conflict, as in Nova.
    pub async fn post_guest_password(
        &self,
        id: &model::compute::ServerId,
        password: String,
    ) -> Result<()> {
        let sid = id.clone();
        self.store
            .write(move |tx| {
                let kept = sql::get_sysmeta(tx, &sid, crate::sysmeta::PASSWORD)?;
                if kept.is_some_and(|p| !p.is_empty()) {
                    return Ok(Err(Error::Conflict("a password is already set".into())));
                }
                sql::set_sysmeta(tx, &sid, crate::sysmeta::PASSWORD, &password)?;
                Ok(Ok(()))
            })
            .await?
    }

    /// Forgets the posted password (the guest's own password is not changed); members of
    /// the server's project and admins.
    pub async fn clear_server_password(&self, ctx: &Context, id: &str) -> Result<()> {
        let s = self
            .server_for_write(ctx, id, "os_compute_api:os-server-password:clear")
            .await?;
        let sid = s.id.clone();
        self.store
            .write(move |tx| sql::delete_sysmeta(tx, &sid, crate::sysmeta::PASSWORD))
            .await?;
        Ok(())
    }

    /// Sets the guest's admin password through the backend (synchronously, as Nova does).
    pub async fn change_password(
        &self,
        ctx: &Context,
        id: &str,
        password: String,
        request_id: &str,
    ) -> Result<()> {
        let s = self.get_server(ctx, id).await?;
        self.may_act(ctx, &s, Action::ChangePassword)?;
        let unsupported = || Error::NotImplemented("Unable to set password on instance".into());
        if !self
            .backends
            .get(s.backend)
            .capabilities()
            .set_admin_password
        {
            return Err(unsupported());
        }
        let action = self
            .begin(
                &s,
                Action::ChangePassword,
                TaskState::UpdatingPassword,
                request_id,
                &ctx.user_id,
                |_| Ok(()),
            )
            .await?;
        let event = self.event(action, "compute_set_admin_password").await;
        let sid = s.id.clone();
        let result = self
            .blocking(&s.id, move |d| d.set_admin_password(&sid, &password))
            .await;
        self.step(
            &s.id,
            Some(TaskState::UpdatingPassword),
            VmState::Active,
            None,
            None,
        )
        .await;
        match result {
            Ok(()) => {
                self.finish(event, true, None).await;
                Ok(())
            }
            Err(e) => {
                self.finish(event, false, Some(e.to_string())).await;
                match e {
                    driver::DriverError::NotSupported(_) => Err(unsupported()),
                    // The backend's words go to the instance action's event (for
                    // admins) and the log; the caller gets Nova's generic reason.
                    e => {
                        tracing::warn!(server_id = %s.id, error = %e, "setting the admin password failed");
                        Err(Error::Conflict(format!(
                            "Failed to set admin password on {} because error setting admin password",
                            s.id
                        )))
                    }
                }
            }
        }
    }

    /// Asks the backend for a crash dump of the guest (an NMI), microversion 2.17.
    pub async fn trigger_crash_dump(
        &self,
        ctx: &Context,
        id: &str,
        request_id: &str,
    ) -> Result<()> {
        let s = self.get_server(ctx, id).await?;
        self.may_act(ctx, &s, Action::TriggerCrashDump)?;
        let unsupported = || Error::BadRequest("Triggering crash dump is not supported".into());
        if !self
            .backends
            .get(s.backend)
            .capabilities()
            .trigger_crash_dump
        {
            return Err(unsupported());
        }
        let (sid, rid, project, user, host) = (
            s.id.clone(),
            request_id.to_owned(),
            s.project_id.clone(),
            ctx.user_id.clone(),
            self.cfg.host.clone(),
        );
        let bound_by_lock = !ctx.is_admin();
        let event = self
            .store
            .write(move |tx| {
                if bound_by_lock {
                    crate::common::refuse_if_locked(tx, &sid)?;
                }
                let a = sql::start_action(tx, &sid, &rid, "trigger_crash_dump", &project, &user)?;
                sql::start_event(tx, a, "compute_trigger_crash_dump", &host)
            })
            .await?;
        let sid = s.id.clone();
        let result = self
            .blocking(&s.id, move |d| d.trigger_crash_dump(&sid))
            .await;
        self.finish(
            Some(event),
            result.is_ok(),
            result.as_ref().err().map(ToString::to_string),
        )
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(driver::DriverError::NotSupported(_)) => Err(unsupported()),
            Err(e) => Err(Error::Task(e.to_string())),
        }
    }

    /// os-resetState (admin): sets the vm state to `active` or `error` and clears the task,
    /// whatever the server was doing. A task still running finds its state gone and stops.
    pub async fn reset_state(&self, ctx: &Context, id: &str, vm: VmState) -> Result<()> {
        if !ctx.is_admin() {
            return Err(policy("os_compute_api:os-admin-actions:reset_state"));
        }
        let s = self.get_server(ctx, id).await?;
        let sid = s.id.clone();
        self.store
            .write(move |tx| sql::reset_state(tx, &sid, vm))
            .await?;
        Ok(())
    }
}
