//! Rescue and unrescue: the server boots a rescue system from a fresh disk of an image
//! (`rescue_image_ref`, else the server's own image) with its own disk attached second, and
//! later boots from its own disk again.
//!
//! As in Nova, rescue is legal from `active`, `stopped` and `error` and runs in task state
//! `rescuing` to `rescued` (status RESCUE, powered on); unrescue is legal from `rescued` only
//! and runs in `unrescuing` to `active`. A driver failure in either leaves the guest in doubt:
//! ERROR with a fault, from which a new rescue (which keeps what the first one kept) and its
//! unrescue bring the server back.

use chrono::Utc;
use driver::{ImageFile, RescueImage};
use model::Context;
use model::ProjectId;
use model::compute::{PowerState, ServerId, TaskState, VmState};
use store::compute as sql;

use crate::actions::Action;
use crate::{Compute, Error, Result};

impl Compute {
    /// Starts a rescue; returns the rescue system's admin password (`admin_pass`, or a new
    /// one). The image must be one the caller may boot on the server's backend, else 400
    /// with Nova's `Requested rescue image '…' is not supported`.
    pub async fn rescue(
        &self,
        ctx: &Context,
        id: &str,
        admin_pass: Option<String>,
        rescue_image_ref: Option<String>,
        request_id: &str,
    ) -> Result<String> {
        let s = self.get_server(ctx, id).await?;
        self.may_act(ctx, &s, Action::Rescue)?;
        crate::block_devices::refuse_volume_backed(&s, "rescued")?;
        if !self.backends.get(s.backend).capabilities().rescue {
            return Err(Error::BadRequest(format!(
                "Instance {} cannot be rescued: its {} backend has no rescue mode.",
                s.id,
                s.backend.as_str()
            )));
        }
        let image_ref = rescue_image_ref
            .or_else(|| s.image_id.clone())
            .ok_or_else(|| {
                Error::BadRequest(format!(
                    "Instance {} cannot be rescued: it has no image to rescue it with.",
                    s.id
                ))
            })?;
        let unsupported = || {
            Error::BadRequest(format!(
                "Requested rescue image '{image_ref}' is not supported"
            ))
        };
        // The rescue image and what it links to, as the caller sees them.
        let image = self
            .find_bootable(ctx, &image_ref)
            .await
            .map_err(|_| unsupported())?;
        if Self::select_backend(&s.flavor, Some(&image)).ok() != Some(s.backend) {
            return Err(unsupported());
        }
        let admin_pass = admin_pass.unwrap_or_else(crate::common::random_password);
        let pass = admin_pass.clone();
        self.start(
            &s,
            (Action::Rescue, TaskState::Rescuing),
            request_id,
            &ctx.user_id,
            move |c, id, action| async move { c.run_rescue(id, action, pass, image.id).await },
        )
        .await?;
        Ok(admin_pass)
    }

    /// Starts an unrescue.
    pub async fn unrescue(&self, ctx: &Context, id: &str, request_id: &str) -> Result<()> {
        self.start_work(
            ctx,
            id,
            (Action::Unrescue, TaskState::Unrescuing),
            request_id,
            Compute::run_unrescue,
        )
        .await
    }

    /// The rescue image's data with the kernel and ramdisk it names, resolved as a spec's
    /// image is.
    /// Everything is resolved with the server owner's visibility: what the owner cannot see
    /// (another project's private kernel, say) is not handed to the backend.
    async fn rescue_image(&self, owner: &ProjectId, image_id: &str) -> RescueImage {
        let image = self.images.file_for(owner, image_id).await;
        let linked = |key: &str| {
            image
                .as_ref()
                .and_then(|i: &ImageFile| i.properties.get(key).cloned())
                .filter(|v| !v.is_empty())
        };
        let (kernel_id, ramdisk_id) = (linked("kernel_id"), linked("ramdisk_id"));
        let kernel = match kernel_id {
            Some(k) => self.images.file_for(owner, &k).await,
            None => None,
        };
        let ramdisk = match ramdisk_id {
            Some(r) => self.images.file_for(owner, &r).await,
            None => None,
        };
        RescueImage {
            image_id: image_id.to_owned(),
            image,
            kernel,
            ramdisk,
        }
    }

    pub(crate) async fn run_rescue(
        &self,
        id: ServerId,
        action: i64,
        admin_pass: String,
        image_id: String,
    ) {
        let event = self.event(action, "compute_rescue_instance").await;
        let Some(server) = self.load(&id).await else {
            self.finish(event, false, Some("the server is gone".into()))
                .await;
            return;
        };
        let spec = self.instance_spec(&server).await;
        let rescue = self.rescue_image(&server.project_id, &image_id).await;
        let result = self
            .blocking(&id, move |d| d.rescue(&spec, &rescue, &admin_pass))
            .await;
        match result {
            Ok(()) => {
                // Nova records the rescue's boot as the server's launch.
                self.settle(
                    &id,
                    event,
                    TaskState::Rescuing,
                    (VmState::Rescued, PowerState::Running),
                    |tx, id| sql::set_launched(tx, id, Utc::now()),
                )
                .await;
            }
            Err(e) => {
                self.fail_to_error(
                    &id,
                    TaskState::Rescuing,
                    event,
                    format!("Instance {id} cannot be rescued: Driver Error: {e}"),
                )
                .await;
            }
        }
    }

    pub(crate) async fn run_unrescue(self, id: ServerId, action: i64) {
        let event = self.event(action, "compute_unrescue_instance").await;
        let Some(server) = self.load(&id).await else {
            self.finish(event, false, Some("the server is gone".into()))
                .await;
            return;
        };
        let spec = self.instance_spec(&server).await;
        match self.blocking(&id, move |d| d.unrescue(&spec)).await {
            Ok(()) => {
                self.settle(
                    &id,
                    event,
                    TaskState::Unrescuing,
                    (VmState::Active, PowerState::Running),
                    |_, _| Ok(()),
                )
                .await;
            }
            Err(e) => {
                self.fail_to_error(
                    &id,
                    TaskState::Unrescuing,
                    event,
                    format!("Unrescuing instance {id} failed: {e}"),
                )
                .await;
            }
        }
    }
}
