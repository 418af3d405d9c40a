//! Server actions beyond power: rebuild, resize with its confirmation or revert, the admin
//! password, crash dumps, os-resetState, soft delete with restore and forceDelete; and the
//! periodic work that confirms resizes, offloads shelved servers and reclaims soft-deleted
//! ones when their time has come, and prunes the backends' image caches.
//!
//! Every action takes the task state in the transaction that records its instance action
//! (see [`Compute::begin`]), and its background work moves the server only from the task
//! state it expects. A driver failure leaves the server where Nova would: ERROR with a fault
//! when the guest is in doubt (rebuild, resize and its confirmation or revert), else back in
//! the state the action started from.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use identity::Context;
use model::UserId;
use model::compute::{Flavor, FlavorId, PowerState, Server, ServerId, TaskState, VmState};
use store::compute as sql;

use crate::actions::Action;
use crate::common::policy;
use crate::steps::power_of;
use crate::sysmeta::{OLD_FLAVOR, OLD_VM_STATE, RESIZED_AT, SHELVED_AT, SOFT_DELETED_AT};
use crate::{Compute, Error, Result};

/// What a rebuild changes. `None` leaves a field as it is; `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct RebuildRequest {
    pub image_ref: String,
    pub name: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub admin_pass: Option<String>,
    pub key_name: Option<Option<String>>,
    pub user_data: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub hostname: Option<String>,
    pub access_ipv4: Option<Option<String>>,
    pub access_ipv6: Option<Option<String>>,
    /// Keep the ephemeral disk (onebox's backends have none to keep; accepted as Nova does).
    pub preserve_ephemeral: bool,
}

fn request_id() -> String {
    format!("req-{}", uuid::Uuid::new_v4().hyphenated())
}

impl Compute {
    // ---- rebuild -------------------------------------------------------------------------

    /// Starts a rebuild; returns the server as it now is and its new admin password.
    pub async fn rebuild(
        &self,
        ctx: &Context,
        id: &str,
        req: RebuildRequest,
        request_id: &str,
    ) -> Result<(Server, String)> {
        let s = self.get_server(ctx, id).await?;
        self.may_act(ctx, &s, Action::Rebuild)?;
        let image = self
            .find_bootable(ctx, &req.image_ref)
            .await
            .map_err(|id| crate::imagefit::image_not_found(&id))?;
        self.check_image_fits(ctx, &s.flavor, &image)?;
        let kind = Self::select_backend(&s.flavor, Some(&image))?;
        if kind != s.backend {
            return Err(Error::BadRequest(format!(
                "Image {} needs a {} backend; instance {} runs on a {} backend.",
                image.id,
                kind.as_str(),
                s.id,
                s.backend.as_str()
            )));
        }
        let mut new = s.clone();
        new.image_id = Some(image.id.clone());
        if let Some(n) = req.name {
            new.name = n;
        }
        if let Some(m) = req.metadata {
            self.check_metadata_quota(&s.project_id, m.len()).await?;
            new.metadata = m;
        }
        match req.key_name {
            Some(Some(k)) => {
                let kp = self
                    .get_keypair(ctx.user_id.clone(), &k)
                    .await
                    .map_err(|_| Error::BadRequest("Invalid key_name provided.".into()))?;
                new.key_name = Some(k);
                new.key_data = Some(kp.public_key);
            }
            Some(None) => {
                new.key_name = None;
                new.key_data = None;
            }
            None => {}
        }
        if let Some(u) = req.user_data {
            new.user_data = u;
        }
        if let Some(d) = req.description {
            new.description = d;
        }
        if let Some(h) = req.hostname {
            new.hostname = h;
        }
        if let Some(a) = req.access_ipv4 {
            new.access_ipv4 = a;
        }
        if let Some(a) = req.access_ipv6 {
            new.access_ipv6 = a;
        }
        let admin_pass = req
            .admin_pass
            .unwrap_or_else(crate::common::random_password);
        let action = self
            .begin(
                &s,
                Action::Rebuild,
                TaskState::Rebuilding,
                request_id,
                &ctx.user_id,
                move |tx| sql::update_rebuilt(tx, &new),
            )
            .await?;
        let (sid, pass, from_vm) = (s.id.clone(), admin_pass.clone(), s.vm_state);
        self.run(&s.id, move |c| async move {
            c.run_rebuild(sid, action, pass, from_vm).await
        });
        Ok((self.get_server(ctx, id).await?, admin_pass))
    }

    async fn run_rebuild(&self, id: ServerId, action: i64, admin_pass: String, from_vm: VmState) {
        use TaskState as T;
        let event = self.event(action, "compute_rebuild_instance").await;
        for (from, to) in [
            (T::Rebuilding, T::RebuildBlockDeviceMapping),
            (T::RebuildBlockDeviceMapping, T::RebuildSpawning),
        ] {
            if !self.step(&id, Some(from), from_vm, Some(to), None).await {
                self.finish(
                    event,
                    false,
                    Some("the server changed during the rebuild".into()),
                )
                .await;
                return;
            }
        }
        let Some(server) = self.load(&id).await else {
            self.finish(event, false, Some("the server is gone".into()))
                .await;
            return;
        };
        let mut spec = self.instance_spec(&server).await;
        spec.admin_pass = Some(admin_pass);
        let stop = from_vm == VmState::Stopped;
        let result = self
            .blocking(&id, move |d| {
                match d.rebuild(&spec) {
                    // A backend without an in-place rebuild gets Nova's default: destroy,
                    // then spawn again from the new image.
                    Err(driver::DriverError::NotSupported(_)) => {
                        d.destroy(&spec.id)?;
                        d.spawn(&spec)?;
                    }
                    r => r?,
                }
                if stop {
                    d.power_off(&spec.id)?;
                }
                Ok(())
            })
            .await;
        match result {
            Ok(()) => {
                let end = if stop {
                    VmState::Stopped
                } else {
                    VmState::Active
                };
                self.settle(
                    &id,
                    event,
                    T::RebuildSpawning,
                    (end, power_of(end)),
                    |tx, id| sql::set_launched(tx, id, Utc::now()),
                )
                .await;
            }
            Err(e) => {
                self.fail_to_error(
                    &id,
                    T::RebuildSpawning,
                    event,
                    format!("Rebuild of instance {id} failed: {e}"),
                )
                .await;
            }
        }
    }

    // ---- resize --------------------------------------------------------------------------

    /// Starts a resize to flavor `flavor_ref`. Growth is checked against the cores and RAM
    /// quotas, which count the larger flavor until the resize is confirmed or reverted.
    pub async fn resize(
        &self,
        ctx: &Context,
        id: &str,
        flavor_ref: &str,
        request_id: &str,
    ) -> Result<()> {
        let s = self.get_server(ctx, id).await?;
        self.may_act(ctx, &s, Action::Resize)?;
        let new = self
            .get_flavor(ctx, &FlavorId(flavor_ref.to_owned()))
            .await
            .map_err(|_| Error::BadRequest("Unable to locate requested flavor.".into()))?;
        if new.id == s.flavor.id {
            return Err(Error::BadRequest(
                "When resizing, instances must change flavor!".into(),
            ));
        }
        if new.disabled {
            return Err(Error::BadRequest("Flavor is disabled.".into()));
        }
        if new.disk_gb == 0 && s.flavor.disk_gb != 0 {
            return Err(Error::BadRequest(
                "Resize to zero disk flavor is not allowed.".into(),
            ));
        }
        if new.disk_gb < s.flavor.disk_gb {
            return Err(Error::BadRequest(
                "Resize error: Unable to resize disk down.".into(),
            ));
        }
        let image = match &s.image_id {
            Some(i) => self.images.find(ctx, i).await,
            None => None,
        };
        if let Some(img) = &image {
            self.check_image_fits(ctx, &new, img)?;
        }
        let kind = Self::select_backend(&new, image.as_ref())?;
        if kind != s.backend {
            return Err(Error::BadRequest(format!(
                "Flavor {} needs a {} backend; instance {} runs on a {} backend.",
                new.id,
                kind.as_str(),
                s.id,
                s.backend.as_str()
            )));
        }
        if !self.backends.get(s.backend).capabilities().resize {
            return Err(Error::BadRequest(format!(
                "resize is not supported by the backend of instance {}.",
                s.id
            )));
        }
        let (old, new2, sid, project, from_vm) = (
            s.flavor.clone(),
            new.clone(),
            s.id.clone(),
            s.project_id.clone(),
            s.vm_state,
        );
        let action = self
            .begin(
                &s,
                Action::Resize,
                TaskState::ResizePrep,
                request_id,
                &ctx.user_id,
                move |tx| {
                    let dc = i64::from(new2.vcpus) - i64::from(old.vcpus);
                    let dr = new2.ram_mb as i64 - old.ram_mb as i64;
                    if dc > 0 || dr > 0 {
                        let limits = crate::quotas::limits_of(tx, &project)?;
                        let usage = sql::usage(tx, &project)?;
                        for (res, delta, used) in
                            [("cores", dc, usage.cores), ("ram", dr, usage.ram)]
                        {
                            let limit = limits.get(res).copied().unwrap_or(-1);
                            if delta > 0 && crate::common::exceeds(limit, used, delta) {
                                return Err(crate::abort(crate::common::quota_exceeded(
                                    res, delta, used, limit,
                                )));
                            }
                        }
                    }
                    sql::set_held_resources(
                        tx,
                        &sid,
                        old.vcpus.max(new2.vcpus),
                        old.ram_mb.max(new2.ram_mb),
                    )?;
                    sql::set_sysmeta(tx, &sid, OLD_FLAVOR, &sql::flavor_json(&old))?;
                    sql::set_sysmeta(tx, &sid, OLD_VM_STATE, from_vm.as_str())?;
                    sql::delete_sysmeta(tx, &sid, RESIZED_AT)
                },
            )
            .await?;
        let sid = s.id.clone();
        self.run(&s.id, move |c| async move {
            c.run_resize(sid, action, from_vm, new).await
        });
        Ok(())
    }

    /// Undoes what a resize request holds (the larger flavor's resources, the system
    /// metadata) when it fails or is reverted.
    pub(crate) async fn drop_resize_state(&self, id: &ServerId, keep: &Flavor) {
        let (id2, vcpus, ram) = (id.clone(), keep.vcpus, keep.ram_mb);
        if let Err(e) = self
            .store
            .write(move |tx| {
                sql::set_held_resources(tx, &id2, vcpus, ram)?;
                for k in [OLD_FLAVOR, OLD_VM_STATE, RESIZED_AT] {
                    sql::delete_sysmeta(tx, &id2, k)?;
                }
                Ok(())
            })
            .await
        {
            tracing::error!(server_id = %id, error = %e, "clearing a resize");
        }
    }

    async fn run_resize(&self, id: ServerId, action: i64, from_vm: VmState, new: Flavor) {
        use TaskState as T;
        for (name, from, to) in [
            ("compute_prep_resize", T::ResizePrep, T::ResizeMigrating),
            (
                "compute_resize_instance",
                T::ResizeMigrating,
                T::ResizeMigrated,
            ),
        ] {
            let event = self.event(action, name).await;
            if !self.step(&id, Some(from), from_vm, Some(to), None).await {
                self.finish(
                    event,
                    false,
                    Some("the server changed during the resize".into()),
                )
                .await;
                return;
            }
            self.finish(event, true, None).await;
        }
        let event = self.event(action, "compute_finish_resize").await;
        if !self
            .step(
                &id,
                Some(T::ResizeMigrated),
                from_vm,
                Some(T::ResizeFinish),
                None,
            )
            .await
        {
            self.finish(
                event,
                false,
                Some("the server changed during the resize".into()),
            )
            .await;
            return;
        }
        let Some(mut server) = self.load(&id).await else {
            self.finish(event, false, Some("the server is gone".into()))
                .await;
            return;
        };
        let old = server.flavor.clone();
        server.flavor = new.clone();
        let spec = self.instance_spec(&server).await;
        let stop = from_vm == VmState::Stopped;
        let result = self
            .blocking(&id, move |d| {
                d.resize(&spec)?;
                if stop {
                    d.power_off(&spec.id)?;
                }
                Ok(())
            })
            .await;
        match result {
            Ok(()) => {
                let held = (old.vcpus.max(new.vcpus), old.ram_mb.max(new.ram_mb));
                let power = if stop {
                    PowerState::Shutdown
                } else {
                    PowerState::Running
                };
                self.settle(
                    &id,
                    event,
                    T::ResizeFinish,
                    (VmState::Resized, power),
                    move |tx, id| {
                        sql::set_flavor(tx, id, &new, held)?;
                        sql::set_sysmeta(tx, id, RESIZED_AT, &store::ts(Utc::now()))
                    },
                )
                .await;
            }
            Err(e) => {
                self.drop_resize_state(&id, &old).await;
                self.fail_to_error(
                    &id,
                    T::ResizeFinish,
                    event,
                    format!("Resize of instance {id} failed: {e}"),
                )
                .await;
            }
        }
    }

    /// Confirms a resize awaiting confirmation (VERIFY_RESIZE).
    pub async fn confirm_resize(&self, ctx: &Context, id: &str, request_id: &str) -> Result<()> {
        let s = self.get_server(ctx, id).await?;
        self.may_act(ctx, &s, Action::ConfirmResize)?;
        self.start_confirm(&s, request_id, &ctx.user_id).await
    }

    async fn start_confirm(&self, s: &Server, request_id: &str, user: &UserId) -> Result<()> {
        let action = self
            .begin(
                s,
                Action::ConfirmResize,
                TaskState::ResizeConfirming,
                request_id,
                user,
                |_| Ok(()),
            )
            .await?;
        let sid = s.id.clone();
        self.run(&s.id, move |c| async move {
            c.run_confirm_resize(sid, action).await
        });
        Ok(())
    }

    async fn run_confirm_resize(&self, id: ServerId, action: i64) {
        let event = self.event(action, "compute_confirm_resize").await;
        let back = self
            .sysmeta(&id, OLD_VM_STATE)
            .await
            .and_then(|v| VmState::parse(&v))
            .unwrap_or(VmState::Active);
        let id2 = id.clone();
        match self.blocking(&id, move |d| d.confirm_resize(&id2)).await {
            Ok(()) => {
                if let Some(s) = self.load(&id).await {
                    self.drop_resize_state(&id, &s.flavor).await;
                }
                self.settle(
                    &id,
                    event,
                    TaskState::ResizeConfirming,
                    (back, power_of(back)),
                    |_, _| Ok(()),
                )
                .await;
            }
            Err(e) => {
                self.fail_to_error(
                    &id,
                    TaskState::ResizeConfirming,
                    event,
                    format!("Confirming the resize of instance {id} failed: {e}"),
                )
                .await;
            }
        }
    }

    /// Reverts a resize awaiting confirmation: the server returns to its old flavor.
    pub async fn revert_resize(&self, ctx: &Context, id: &str, request_id: &str) -> Result<()> {
        self.start_work(
            ctx,
            id,
            (Action::RevertResize, TaskState::ResizeReverting),
            request_id,
            |c, id, action| async move { c.run_revert_resize(id, action).await },
        )
        .await
    }

    async fn run_revert_resize(&self, id: ServerId, action: i64) {
        let event = self.event(action, "compute_revert_resize").await;
        let back = self
            .sysmeta(&id, OLD_VM_STATE)
            .await
            .and_then(|v| VmState::parse(&v))
            .unwrap_or(VmState::Active);
        let old = self
            .sysmeta(&id, OLD_FLAVOR)
            .await
            .and_then(|j| sql::flavor_from_json(&j).ok());
        let (Some(old), Some(mut server)) = (old, self.load(&id).await) else {
            self.fail_to_error(
                &id,
                TaskState::ResizeReverting,
                event,
                "the flavor before the resize is not known".into(),
            )
            .await;
            return;
        };
        server.flavor = old.clone();
        let spec = self.instance_spec(&server).await;
        let stop = back == VmState::Stopped;
        let result = self
            .blocking(&id, move |d| {
                d.revert_resize(&spec)?;
                if stop {
                    d.power_off(&spec.id)?;
                }
                Ok(())
            })
            .await;
        match result {
            Ok(()) => {
                let old2 = old.clone();
                self.drop_resize_state(&id, &old).await;
                self.settle(
                    &id,
                    event,
                    TaskState::ResizeReverting,
                    (back, power_of(back)),
                    move |tx, id| sql::set_flavor(tx, id, &old2, (old2.vcpus, old2.ram_mb)),
                )
                .await;
            }
            Err(e) => {
                self.fail_to_error(
                    &id,
                    TaskState::ResizeReverting,
                    event,
                    format!("Reverting the resize of instance {id} failed: {e}"),
                )
                .await;
            }
        }
    }

    // ---- password, crash dump, reset state -------------------------------------------------

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

    // ---- soft delete, restore, forceDelete --------------------------------------------------

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
            |c, id, action| async move { c.run_restore(id, action).await },
        )
        .await
    }

    async fn run_restore(&self, id: ServerId, action: i64) {
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

    // ---- periodic work -----------------------------------------------------------------------

    /// Servers whose system metadata `key` (a time) is older than `secs`.
    async fn expired(&self, key: &'static str, secs: u64) -> Vec<ServerId> {
        let now = Utc::now();
        let rows = self
            .store
            .read(move |c| sql::servers_with_sysmeta(c, key))
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "reading system metadata");
                Vec::new()
            });
        rows.into_iter()
            .filter(|(_, v)| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| (now - t.with_timezone(&Utc)).num_seconds() >= secs as i64)
                    .unwrap_or(false)
            })
            .map(|(id, _)| id)
            .collect()
    }

    /// Asks every backend of the box to prune its image cache of what no instance uses and
    /// has been unused for `image_cache_min_age_secs` (Nova's image cache manager), each on a
    /// blocking thread, one after the other. Returns how many cached images were removed.
    pub async fn prune_image_caches(&self) -> usize {
        let min_age = std::time::Duration::from_secs(self.cfg.image_cache_min_age_secs);
        let mut removed = 0;
        for (kinds, d) in self.backends.present() {
            let name = d.name();
            match tokio::task::spawn_blocking(move || d.prune_image_cache(min_age)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => {
                    tracing::info!(backend = name, ?kinds, removed = n, "image cache pruned");
                    removed += n;
                }
                Ok(Err(e)) => {
                    tracing::error!(backend = name, ?kinds, error = %e, "pruning the image cache");
                }
                Err(e) => {
                    tracing::error!(backend = name, ?kinds, error = %e, "pruning the image cache");
                }
            }
        }
        removed
    }

    /// Whether the image caches are due for a prune at `now` (every
    /// `image_cache_interval_secs`, never with 0); when they are, the next prune is due one
    /// interval later.
    fn image_cache_prune_due(&self, now: std::time::Instant) -> bool {
        let every = self.cfg.image_cache_interval_secs;
        if every == 0 {
            return false;
        }
        let mut due = self
            .image_cache_due
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if now < *due {
            return false;
        }
        *due = now + std::time::Duration::from_secs(every);
        true
    }

    /// Confirms resizes older than `resize_confirm_window_secs`, offloads servers shelved
    /// longer than `shelved_offload_time` and reclaims servers soft-deleted longer than
    /// `reclaim_instance_interval`, as Nova's periodic tasks do. Returns how many it started.
    /// Every `image_cache_interval_secs` it also starts a prune of the backends' image caches
    /// in the background ([`prune_image_caches`](Self::prune_image_caches)); a prune waits
    /// for an image being converted, and the other periodic work does not wait for it.
    pub async fn run_periodic_tasks(&self) -> usize {
        if self.image_cache_prune_due(std::time::Instant::now()) {
            let this = self.clone();
            tokio::spawn(async move {
                this.prune_image_caches().await;
            });
        }
        let mut started = 0;
        if self.cfg.resize_confirm_window_secs > 0 {
            for id in self
                .expired(RESIZED_AT, self.cfg.resize_confirm_window_secs)
                .await
            {
                if let Some(s) = self.load(&id).await
                    && s.vm_state == VmState::Resized
                    && s.task_state.is_none()
                    && self
                        .start_confirm(&s, &request_id(), &s.user_id)
                        .await
                        .is_ok()
                {
                    tracing::info!(server_id = %id, "resize confirmed automatically");
                    started += 1;
                }
            }
        }
        if self.cfg.shelved_offload_time > 0 {
            for id in self
                .expired(SHELVED_AT, self.cfg.shelved_offload_time as u64)
                .await
            {
                if let Some(s) = self.load(&id).await
                    && s.vm_state == VmState::Shelved
                    && s.task_state.is_none()
                    && self
                        .start_offload(&s, &request_id(), &s.user_id)
                        .await
                        .is_ok()
                {
                    started += 1;
                }
            }
        }
        if self.cfg.reclaim_instance_interval > 0 {
            for id in self
                .expired(SOFT_DELETED_AT, self.cfg.reclaim_instance_interval)
                .await
            {
                if let Some(s) = self.load(&id).await
                    && s.vm_state == VmState::SoftDeleted
                    && s.task_state.is_none()
                {
                    let (sid, rid, project, user) = (
                        s.id.clone(),
                        request_id(),
                        s.project_id.clone(),
                        s.user_id.clone(),
                    );
                    if let Ok(action) = self
                        .store
                        .write(move |tx| {
                            sql::mark_deleting(tx, &sid)?;
                            sql::start_action(tx, &sid, &rid, "delete", &project, &user)
                        })
                        .await
                    {
                        tracing::info!(server_id = %id, "soft-deleted server reclaimed");
                        let sid = s.id.clone();
                        self.run(&s.id, move |c| async move { c.destroy(sid, action).await });
                        started += 1;
                    }
                }
            }
        }
        started
    }
}
