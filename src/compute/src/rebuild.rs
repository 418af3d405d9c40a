//! Rebuild: the server boots again from an image (the same or another), keeping its id,
//! addresses and flavor, with the changes the request asks for. A driver failure leaves the
//! server in ERROR with a fault (the guest is in doubt).

use std::collections::BTreeMap;

use chrono::Utc;
use model::Context;
use model::compute::{Server, ServerId, TaskState, VmState};
use store::compute as sql;

use crate::actions::Action;
use crate::steps::power_of;
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
    /// `OS-DCF:diskConfig` (`Some(true)` for `AUTO`); `None` takes the new image's
    /// `auto_disk_config` property, as Nova does.
    pub auto_disk_config: Option<bool>,
}

impl Compute {
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
        crate::block_devices::refuse_volume_backed(&s, "rebuilt")?;
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
        new.auto_disk_config =
            crate::imagefit::auto_disk_config(Some(&image), req.auto_disk_config)?;
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
                crate::steps::stop_if(d, &spec.id, stop)
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
}
