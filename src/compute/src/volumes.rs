//! A server's volumes (Nova's `os-volume_attachments`): a volume of the server's project is
//! reserved (`available` → `attaching`, with its attachment row, in one transaction), the
//! backend plugs it, and it becomes `in-use`; a backend failure gives it back (`available`,
//! no row). Detaching runs the other way. Compute speaks to `store::volume` directly, as it
//! does to `store::network`: it never depends on the volume crate.

use model::Context;
use model::volume::{AttachmentRec, status};
use store::volume as vsql;

use crate::actions::Action;
use crate::common::policy;
use crate::{Compute, Error, Result};

/// What a client asks to attach.
#[derive(Clone, Debug, Default)]
pub struct VolumeAttach {
    pub volume_id: String,
    pub device: Option<String>,
    pub tag: Option<String>,
    pub delete_on_termination: bool,
}

fn volume_missing(id: &str) -> Error {
    Error::NotFound(format!("Volume {id} could not be found."))
}

fn driver_volume(a: &AttachmentRec, path: Option<String>, read_only: bool) -> driver::Volume {
    driver::Volume {
        volume_id: a.volume_id.clone(),
        path: path.unwrap_or_default().into(),
        format: "raw".into(),
        device: a.device.clone().unwrap_or_default(),
        mount_path: String::new(),
        read_only: read_only || a.attach_mode == "ro",
        boot_index: a.boot_index,
    }
}

impl Compute {
    /// The volumes the backend must give the server: its attachments, with their files.
    pub(crate) async fn spec_volumes(&self, id: &model::compute::ServerId) -> Vec<driver::Volume> {
        let sid = id.to_string();
        self.store
            .read(move |c| {
                let mut out = Vec::new();
                for a in vsql::attachments_of_server(c, &sid)? {
                    if let Some(v) = vsql::get_volume(c, &a.volume_id)? {
                        out.push(driver_volume(&a, v.path.clone(), v.read_only));
                    }
                }
                Ok(out)
            })
            .await
            .unwrap_or_else(|e| {
                tracing::error!(server_id = %id, error = %e, "reading volumes");
                Vec::new()
            })
    }

    /// The attachments of a server the caller may read.
    pub async fn volume_attachments(&self, ctx: &Context, id: &str) -> Result<Vec<AttachmentRec>> {
        let s = self.get_server(ctx, id).await?;
        let sid = s.id.to_string();
        Ok(self
            .store
            .read(move |c| vsql::attachments_of_server(c, &sid))
            .await?)
    }

    /// The attachments of servers the caller has already been shown (a listing's page).
    pub async fn attachments_of_servers(
        &self,
        servers: &[model::compute::Server],
    ) -> Result<std::collections::HashMap<String, Vec<AttachmentRec>>> {
        let ids: Vec<String> = servers.iter().map(|s| s.id.to_string()).collect();
        Ok(self
            .store
            .read(move |c| vsql::attachments_of_servers(c, &ids))
            .await?)
    }

    /// The server an attached volume belongs to, and its attachment.
    async fn holder(&self, volume_id: &str) -> Result<(model::compute::Server, AttachmentRec)> {
        let vid = volume_id.to_owned();
        let att = self
            .store
            .read(move |c| vsql::attachments_of_volume(c, &vid))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| volume_missing(volume_id))?;
        let sid = model::compute::ServerId::parse(&att.server_id)
            .ok_or_else(|| volume_missing(volume_id))?;
        let s = self
            .store
            .read(move |c| store::compute::get_server(c, &sid))
            .await?
            .ok_or_else(|| volume_missing(volume_id))?;
        Ok((s, att))
    }

    /// Whether an attached volume may be extended while attached: its server's backend
    /// tells a guest about a grown disk (VMs do; a container's file system does not grow).
    pub async fn may_grow_online(&self, volume_id: &str) -> Result<()> {
        let (s, _) = self.holder(volume_id).await?;
        if s.backend != driver::Backend::Vm {
            return Err(Error::BadRequest(format!(
                "Invalid volume: volume {volume_id} is attached to a {} server, which cannot see it grow; detach it first.",
                s.backend.as_str()
            )));
        }
        Ok(())
    }

    /// After an attached volume's file grew: the server's backend gives the guest the new
    /// size (Nova's `volume-extended` event).
    pub async fn volume_grown(&self, volume_id: &str, new_bytes: u64) -> Result<()> {
        let (s, att) = self.holder(volume_id).await?;
        let vid = volume_id.to_owned();
        let (path, ro) = self
            .store
            .read(move |c| {
                Ok(vsql::get_volume(c, &vid)?
                    .map(|v| (v.path, v.read_only))
                    .unwrap_or((None, false)))
            })
            .await?;
        let spec = self.instance_spec(&s).await;
        let dv = driver_volume(&att, path, ro);
        self.blocking(&s.id, move |d| d.extend_volume(&spec, &dv, new_bytes))
            .await
            .map_err(|e| Error::Conflict(format!("Failed to extend volume {volume_id}: {e}")))
    }

    /// Attaches a volume of the server's project.
    pub async fn attach_volume(
        &self,
        ctx: &Context,
        id: &str,
        req: VolumeAttach,
    ) -> Result<AttachmentRec> {
        let s = self.get_server(ctx, id).await?;
        if !ctx.can_write(&s.project_id) {
            return Err(policy("os_compute_api:os-volumes-attachments:create"));
        }
        self.may_act(ctx, &s, Action::AttachVolume)?;
        if self.backend_of(&s.id).await == driver::Backend::BareMetal {
            return Err(Error::BadRequest(
                "Volume attach is not supported for bare metal instances.".into(),
            ));
        }
        let project = s.project_id.clone();
        let sid = s.id.to_string();
        let (att, path, ro) = self
            .store
            .write(move |tx| {
                let vid = req.volume_id.clone();
                let v = match vsql::get_volume(tx, &vid)? {
                    Some(v) if v.project_id == project => v,
                    _ => return Err(store::abort(volume_missing(&vid))),
                };
                if v.attachments.iter().any(|a| a.server_id == sid) {
                    return Err(store::abort(Error::Conflict(format!(
                        "volume {vid} already attached"
                    ))));
                }
                if v.status != status::AVAILABLE {
                    return Err(store::abort(Error::BadRequest(format!(
                        "Invalid volume: volume {vid} status must be 'available'. Currently in '{}'",
                        v.status
                    ))));
                }
                let taken = vsql::attachments_of_server(tx, &sid)?;
                let att = AttachmentRec {
                    id: uuid::Uuid::new_v4().to_string(),
                    volume_id: vid.clone(),
                    server_id: sid.clone(),
                    device: Some(req.device.clone().unwrap_or_else(|| crate::block_devices::free_device(&taken))),
                    attach_mode: if v.read_only { "ro" } else { "rw" }.into(),
                    tag: req.tag.clone(),
                    delete_on_termination: req.delete_on_termination,
                    status: "reserved".into(),
                    attached_at: chrono::Utc::now(),
                    boot_index: None,
                };
                if !vsql::set_status(tx, &vid, &[status::AVAILABLE], status::ATTACHING)? {
                    return Err(store::abort(Error::Conflict(format!(
                        "Volume {vid} is changing"
                    ))));
                }
                vsql::insert_attachment(tx, &att)?;
                Ok((att, v.path.clone(), v.read_only))
            })
            .await
            .map_err(unwrap)?;
        let spec = self.instance_spec(&s).await;
        let dv = driver_volume(&att, path, ro);
        let r = self
            .blocking(&s.id, move |d| d.attach_volume(&spec, &dv))
            .await;
        let ok = r.is_ok();
        let a2 = att.clone();
        self.store
            .write(move |tx| {
                if ok {
                    vsql::set_attachment_status(tx, &a2.id, "attached")?;
                    vsql::set_status(tx, &a2.volume_id, &[status::ATTACHING], status::IN_USE)?;
                } else {
                    vsql::delete_attachment(tx, &a2.id)?;
                    vsql::set_status(tx, &a2.volume_id, &[status::ATTACHING], status::AVAILABLE)?;
                }
                Ok(())
            })
            .await?;
        if let Err(e) = r {
            tracing::warn!(server_id = %s.id, error = %e, "attaching a volume failed");
            return Err(match e {
                driver::DriverError::NotSupported(_) => Error::BadRequest(format!(
                    "The backend of server {} cannot attach volumes.",
                    s.id
                )),
                _ => Error::Conflict(format!(
                    "Failed to attach volume {} to {}",
                    att.volume_id, s.id
                )),
            });
        }
        tracing::info!(server_id = %s.id, volume_id = %att.volume_id, "volume attached");
        Ok(AttachmentRec {
            status: "attached".into(),
            ..att
        })
    }

    /// Detaches a volume from the server: `in-use` → `detaching` → `available`.
    pub async fn detach_volume(&self, ctx: &Context, id: &str, volume_id: &str) -> Result<()> {
        let s = self.get_server(ctx, id).await?;
        if !ctx.can_write(&s.project_id) {
            return Err(policy("os_compute_api:os-volumes-attachments:delete"));
        }
        self.may_act(ctx, &s, Action::DetachVolume)?;
        let sid = s.id.to_string();
        let vid = volume_id.to_owned();
        let (att, path, ro) = self
            .store
            .write(move |tx| {
                let att = vsql::attachments_of_server(tx, &sid)?
                    .into_iter()
                    .find(|a| a.volume_id == vid)
                    .ok_or_else(|| {
                        store::abort(Error::NotFound(format!(
                            "volume_id not found: {vid}"
                        )))
                    })?;
                if att.boot_index == Some(0) {
                    return Err(store::abort(Error::BadRequest(
                        "Cannot detach a root device volume".into(),
                    )));
                }
                let v = vsql::get_volume(tx, &vid)?
                    .ok_or_else(|| store::abort(volume_missing(&vid)))?;
                if !vsql::set_status(tx, &vid, &[status::IN_USE], status::DETACHING)? {
                    return Err(store::abort(Error::BadRequest(format!(
                        "Invalid volume: Unable to detach volume. Volume status must be 'in-use' and attach_status must be 'attached' to detach. Currently in '{}'",
                        v.status
                    ))));
                }
                Ok((att, v.path.clone(), v.read_only))
            })
            .await
            .map_err(unwrap)?;
        let mut after = self.instance_spec(&s).await;
        after.volumes.retain(|v| v.volume_id != att.volume_id);
        let dv = driver_volume(&att, path, ro);
        let r = self
            .blocking(&s.id, move |d| d.detach_volume(&after, &dv))
            .await;
        let ok = matches!(r, Ok(()) | Err(driver::DriverError::NotFound(_)));
        let a2 = att.clone();
        self.store
            .write(move |tx| {
                if ok {
                    vsql::delete_attachment(tx, &a2.id)?;
                    vsql::set_status(tx, &a2.volume_id, &[status::DETACHING], status::AVAILABLE)?;
                } else {
                    vsql::set_status(tx, &a2.volume_id, &[status::DETACHING], status::IN_USE)?;
                }
                Ok(())
            })
            .await?;
        if !ok {
            return Err(Error::Conflict(format!(
                "Failed to detach volume {} from {}",
                att.volume_id, s.id
            )));
        }
        tracing::info!(server_id = %s.id, volume_id = %att.volume_id, "volume detached");
        Ok(())
    }
}

/// A compute error raised inside a write comes back out as itself.
fn unwrap(e: store::Error) -> Error {
    match e {
        store::Error::Abort(b) => match b.downcast::<Error>() {
            Ok(e) => *e,
            Err(b) => Error::Store(store::Error::Abort(b)),
        },
        other => Error::from(other),
    }
}
