//! Resize to another flavor, with its confirmation (by the owner, or by the periodic work
//! after `resize_confirm_window`) or revert. The cores and RAM quotas count the larger flavor
//! until the resize is confirmed or reverted; the facts a confirm or revert needs are kept
//! in system metadata. A driver failure leaves the server in ERROR with a fault.

use chrono::Utc;
use model::Context;
use model::compute::{Flavor, FlavorId, PowerState, ServerId, TaskState, VmState};
use store::compute as sql;

use crate::actions::Action;
use crate::steps::power_of;
use crate::sysmeta::{OLD_FLAVOR, OLD_VM_STATE, RESIZED_AT};
use crate::{Compute, Error, Result};

impl Compute {
    /// Starts a resize to flavor `flavor_ref`. Growth is checked against the cores and RAM
    /// quotas, which count the larger flavor until the resize is confirmed or reverted.
    pub async fn resize(
        &self,
        ctx: &Context,
        id: &str,
        flavor_ref: &str,
        auto_disk_config: Option<bool>,
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
        // Nova sets the disk config a resize asks for, and MANUAL when it asks for none.
        let auto = match auto_disk_config {
            Some(true) => crate::imagefit::auto_disk_config(image.as_ref(), Some(true))?,
            _ => false,
        };
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
                    sql::set_auto_disk_config(tx, &sid, auto)?;
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
                crate::steps::stop_if(d, &spec.id, stop)
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

    /// Where a confirm or revert returns the server: the vm state it was resized from.
    async fn vm_state_before_resize(&self, id: &ServerId) -> VmState {
        self.sysmeta(id, OLD_VM_STATE)
            .await
            .and_then(|v| VmState::parse(&v))
            .unwrap_or(VmState::Active)
    }

    /// Confirms a resize awaiting confirmation (VERIFY_RESIZE).
    pub async fn confirm_resize(&self, ctx: &Context, id: &str, request_id: &str) -> Result<()> {
        self.start_work(
            ctx,
            id,
            (Action::ConfirmResize, TaskState::ResizeConfirming),
            request_id,
            Compute::run_confirm_resize,
        )
        .await
    }

    pub(crate) async fn run_confirm_resize(self, id: ServerId, action: i64) {
        let event = self.event(action, "compute_confirm_resize").await;
        let back = self.vm_state_before_resize(&id).await;
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
            Compute::run_revert_resize,
        )
        .await
    }

    pub(crate) async fn run_revert_resize(self, id: ServerId, action: i64) {
        let event = self.event(action, "compute_revert_resize").await;
        let back = self.vm_state_before_resize(&id).await;
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
                crate::steps::stop_if(d, &spec.id, stop)
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
}
