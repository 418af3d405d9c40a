//! A server's block device mapping with volumes (Nova's `block_device_mapping_v2` entries
//! whose destination is a volume): boot from a volume, and data volumes made or named in the
//! create request.
//!
//! - The create checks the mapping and, in its own transaction, reserves the existing
//!   volumes it names (`available` → `attaching`, an attachment row in `reserved`), so two
//!   servers can never take one volume.
//! - The build's block-device step has the volumes the mapping asks to be made (from an
//!   image, a snapshot, or blank) made by the [`VolumeProvider`] in the owner's project (its
//!   quota, its images), waits until each is `available` and reserves it the same way; the
//!   backend then boots from the one with boot index 0 (the server has no image disk).
//! - A spawned server's reserved attachments become `attached` and their volumes `in-use`.
//! - A deleted server's volumes are `available` again, except those asked to be deleted on
//!   termination, which the provider deletes.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use model::compute::{Backend, Server, ServerId};
use model::volume::{AttachmentRec, status};
use model::{Context, ProjectId};
use store::volume as vsql;

use crate::{Compute, Error, Result};

/// Where a mapped volume comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BdmSource {
    /// Made from this image.
    Image(String),
    /// This existing volume.
    Volume(String),
    /// Made from this volume snapshot.
    Snapshot(String),
    /// Made empty.
    Blank,
}

/// One volume of a create's block device mapping.
#[derive(Clone, Debug)]
pub struct BlockDevice {
    pub source: BdmSource,
    /// GiB; required for image and blank sources.
    pub volume_size: Option<u64>,
    /// 0: the disk the server boots from; `None`: a data disk.
    pub boot_index: Option<u32>,
    pub delete_on_termination: bool,
    pub device_name: Option<String>,
    pub tag: Option<String>,
}

/// A volume the build asks the volume service to make for a server.
#[derive(Clone, Debug)]
pub struct NewVolume {
    pub name: String,
    pub size_gb: Option<u64>,
    /// Never [`BdmSource::Volume`].
    pub source: BdmSource,
}

/// What [`VolumeProvider`]'s calls return.
pub type ProviderFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// The volume service as compute needs it: making a volume and deleting one, each as the
/// caller's context allows (the owner's project quota and images, never another's).
pub trait VolumeProvider: Send + Sync {
    /// Starts making a volume; returns its id (it is `creating` until the volume service
    /// moves it to `available` or `error`).
    fn create<'a>(&'a self, ctx: &'a Context, v: NewVolume) -> ProviderFuture<'a, String>;
    /// Deletes an unattached volume.
    fn delete<'a>(&'a self, ctx: &'a Context, id: &'a str) -> ProviderFuture<'a, ()>;
}

/// How long the build waits for a volume it asked for (Nova's default
/// `block_device_allocate_retries` × `block_device_allocate_retries_interval`).
const VOLUME_WAIT: Duration = Duration::from_secs(180);

fn invalid(why: impl std::fmt::Display) -> Error {
    Error::BadRequest(format!("Block Device Mapping is Invalid: {why}"))
}

/// Nova's checks of a mapping that do not need the database: sizes where a volume is made,
/// one boot disk, a boot disk when there is no image, no volume shared by several servers.
pub fn check_mapping(bdms: &[BlockDevice], has_image: bool, max_count: u32) -> Result<()> {
    for b in bdms {
        match (&b.source, b.volume_size) {
            (BdmSource::Image(_), None | Some(0)) => {
                return Err(invalid(
                    "Images with destination_type 'volume' need to have a non-zero size specified",
                ));
            }
            (BdmSource::Blank, None | Some(0)) => {
                return Err(invalid(
                    "Blank volumes (source: 'blank', dest: 'volume') need to have non-zero size",
                ));
            }
            _ => {}
        }
    }
    let boots = bdms.iter().filter(|b| b.boot_index == Some(0)).count();
    if boots > 1 || (boots == 1 && has_image) {
        return Err(invalid(
            "Boot sequence for the instance and image/block device mapping combination is not valid.",
        ));
    }
    if boots == 0 && !has_image {
        return Err(invalid(
            "Boot sequence for the instance and image/block device mapping combination is not valid.",
        ));
    }
    if max_count > 1
        && bdms
            .iter()
            .any(|b| matches!(b.source, BdmSource::Volume(_)))
    {
        return Err(Error::BadRequest(
            "Cannot attach one or more volumes to multiple instances".into(),
        ));
    }
    Ok(())
}

/// What the box cannot do to a server booted from a volume (its root disk is a volume, not
/// a disk of its own): rebuild it with an image, rescue it, snapshot it into an image.
pub(crate) fn refuse_volume_backed(s: &Server, what: &str) -> Result<()> {
    if s.image_id.is_none() {
        return Err(Error::BadRequest(format!(
            "Instance {} boots from a volume and cannot be {what}; its root volume can be snapshotted or uploaded to an image through the volume API.",
            s.id
        )));
    }
    Ok(())
}

/// The first data disk name (`/dev/vdb` on) a server's attachments do not use: `vda` is
/// always the boot disk, an image's or a volume's.
pub(crate) fn free_device(taken: &[AttachmentRec]) -> String {
    for c in b'b'..=b'z' {
        let d = format!("/dev/vd{}", c as char);
        if !taken
            .iter()
            .any(|a| a.device.as_deref() == Some(d.as_str()))
        {
            return d;
        }
    }
    "/dev/vdz".into()
}

/// Reserves `volume` for `server` inside a transaction: the owner's, `available`, and, as
/// a boot disk, bootable. A volume that is not the project's is "not found", as Nova says.
pub(crate) fn reserve(
    tx: &store::Connection,
    project: &ProjectId,
    server: &ServerId,
    volume: &str,
    b: &BlockDevice,
) -> Result<AttachmentRec> {
    let v = match vsql::get_volume(tx, volume)? {
        Some(v) if &v.project_id == project => v,
        _ => return Err(invalid(format!("failed to get volume {volume}."))),
    };
    if b.boot_index == Some(0) && !v.bootable {
        return Err(Error::BadRequest(format!(
            "Block Device {volume} is not bootable."
        )));
    }
    if v.status != status::AVAILABLE || !v.attachments.is_empty() {
        return Err(Error::BadRequest(format!(
            "Invalid volume: volume {volume} status must be 'available'. Currently in '{}'",
            v.status
        )));
    }
    let sid = server.to_string();
    let taken = vsql::attachments_of_server(tx, &sid)?;
    let device = match &b.device_name {
        Some(d) if !d.is_empty() => {
            if d.starts_with("/dev/") {
                d.clone()
            } else {
                format!("/dev/{d}")
            }
        }
        _ if b.boot_index == Some(0) => "/dev/vda".into(),
        _ => free_device(&taken),
    };
    let att = AttachmentRec {
        device: Some(device),
        attach_mode: if v.read_only { "ro" } else { "rw" }.into(),
        tag: b.tag.clone(),
        delete_on_termination: b.delete_on_termination,
        boot_index: b.boot_index,
        ..placeholder(volume, &sid)
    };
    if !vsql::set_status(tx, volume, &[status::AVAILABLE], status::ATTACHING)? {
        return Err(Error::Conflict(format!("Volume {volume} is changing")));
    }
    vsql::insert_attachment(tx, &att)?;
    Ok(att)
}

/// Reserves, for a server being created, the existing volumes its mapping names, and
/// checks the snapshots it names are the project's and ready.
pub(crate) fn reserve_named(
    tx: &store::Connection,
    project: &ProjectId,
    server: &ServerId,
    bdms: &[BlockDevice],
) -> store::Result<()> {
    for b in bdms {
        match &b.source {
            BdmSource::Volume(v) => {
                reserve(tx, project, server, v, b).map_err(store::abort)?;
            }
            BdmSource::Snapshot(id) => match vsql::get_snapshot(tx, id)? {
                Some(snap) if &snap.project_id == project && snap.status == status::AVAILABLE => {}
                _ => {
                    return Err(store::abort(invalid(format!(
                        "failed to get snapshot {id}."
                    ))));
                }
            },
            BdmSource::Image(_) | BdmSource::Blank => {}
        }
    }
    Ok(())
}

/// The entries of a mapping the build makes volumes for.
pub(crate) fn to_make(bdms: &[BlockDevice]) -> Vec<BlockDevice> {
    bdms.iter()
        .filter(|b| !matches!(b.source, BdmSource::Volume(_)))
        .cloned()
        .collect()
}

/// Whether `backend` can run a server with this mapping: a VM boots from a volume and
/// takes data volumes; a container takes data volumes but boots from its image; bare metal
/// takes none (its disks are the machine's).
pub(crate) fn backend_takes(backend: Backend, bdms: &[BlockDevice]) -> Result<()> {
    if bdms.is_empty() {
        return Ok(());
    }
    match backend {
        Backend::BareMetal => Err(invalid(
            "volumes are not supported for bare metal instances.",
        )),
        Backend::Container if bdms.iter().any(|b| b.boot_index == Some(0)) => Err(invalid(
            "a container server boots from its image, never from a volume.",
        )),
        _ => Ok(()),
    }
}

fn placeholder(volume: &str, server: &str) -> AttachmentRec {
    AttachmentRec {
        id: uuid::Uuid::new_v4().to_string(),
        volume_id: volume.to_owned(),
        server_id: server.to_owned(),
        device: None,
        attach_mode: "rw".into(),
        tag: None,
        delete_on_termination: false,
        status: "reserved".into(),
        attached_at: chrono::Utc::now(),
        boot_index: None,
    }
}

impl Compute {
    /// Sets the volume service the builds of volume-backed servers use. Set once.
    pub fn set_volume_provider(&self, p: std::sync::Arc<dyn VolumeProvider>) {
        let _ = self.volume_provider.set(p);
    }

    fn provider(&self) -> Result<&std::sync::Arc<dyn VolumeProvider>> {
        self.volume_provider
            .get()
            .ok_or_else(|| invalid("this box serves no volumes."))
    }

    /// A create's mapping checked as far as it can be before its transaction: its shape,
    /// and every image it makes a volume of visible to the caller. Returns the image the
    /// boot volume is made of, if any (it chooses the backend as an image would).
    pub(crate) async fn check_block_devices(
        &self,
        ctx: &Context,
        req: &crate::CreateRequest,
    ) -> Result<Option<crate::ImageInfo>> {
        if req.block_devices.is_empty() {
            return Ok(None);
        }
        check_mapping(&req.block_devices, req.image_ref.is_some(), req.max_count)?;
        let mut boot = None;
        for b in &req.block_devices {
            if let BdmSource::Image(i) = &b.source {
                let image = self
                    .find_bootable(ctx, i)
                    .await
                    .map_err(|id| crate::imagefit::image_not_found(&id))?;
                if b.boot_index == Some(0) {
                    boot = Some(image);
                }
            }
        }
        Ok(boot)
    }

    /// The build's block-device step: makes the volumes `to_make` asks for and reserves each.
    /// An error is the build's fault message.
    pub(crate) async fn make_volumes(
        &self,
        server: &Server,
        to_make: Vec<BlockDevice>,
    ) -> std::result::Result<(), String> {
        if to_make.is_empty() {
            return Ok(());
        }
        let provider = self.provider().map_err(|e| e.to_string())?.clone();
        let ctx = Context::acting_for(&server.project_id, &server.user_id);
        for (i, b) in to_make.into_iter().enumerate() {
            let new = NewVolume {
                name: format!("{}-blockdevice-{i}", server.id),
                size_gb: b.volume_size,
                source: b.source.clone(),
            };
            let id = provider
                .create(&ctx, new)
                .await
                .map_err(|e| format!("Failure prepping block device: {e}"))?;
            let final_status = self.wait_volume(&id).await?;
            if final_status != status::AVAILABLE {
                return Err(format!(
                    "Volume {id} did not finish being created even after we waited {} seconds or {} attempts. And its status is {final_status}.",
                    VOLUME_WAIT.as_secs(),
                    VOLUME_WAIT.as_secs() / 3
                ));
            }
            let project = server.project_id.clone();
            let sid = server.id.clone();
            self.store
                .write(move |tx| reserve(tx, &project, &sid, &id, &b).map_err(store::abort))
                .await
                .map_err(|e| Error::from(e).to_string())?;
        }
        Ok(())
    }

    /// Waits until volume `id` leaves `creating`/`downloading`; its status then.
    async fn wait_volume(&self, id: &str) -> std::result::Result<String, String> {
        let deadline = tokio::time::Instant::now() + VOLUME_WAIT;
        loop {
            let key = id.to_owned();
            let st = self
                .store
                .read(move |c| Ok(vsql::get_volume(c, &key)?.map(|v| v.status)))
                .await
                .map_err(|e| e.to_string())?
                .unwrap_or_else(|| "deleted".into());
            if st != status::CREATING && st != status::DOWNLOADING {
                return Ok(st);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(st);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The image metadata of the volume a server boots from (empty without one).
    pub(crate) async fn boot_volume_image_metadata(
        &self,
        id: &ServerId,
    ) -> std::collections::BTreeMap<String, String> {
        let sid = id.to_string();
        self.store
            .read(move |c| {
                for a in vsql::attachments_of_server(c, &sid)? {
                    if a.boot_index == Some(0)
                        && let Some(v) = vsql::get_volume(c, &a.volume_id)?
                    {
                        return Ok(v.image_metadata);
                    }
                }
                Ok(Default::default())
            })
            .await
            .unwrap_or_default()
    }

    /// After a spawn: the server's reserved volumes are attached and `in-use`.
    pub(crate) async fn volumes_attached(&self, id: &ServerId) {
        let sid = id.to_string();
        let r = self
            .store
            .write(move |tx| {
                for a in vsql::attachments_of_server(tx, &sid)? {
                    if a.status == "reserved" {
                        vsql::set_attachment_status(tx, &a.id, "attached")?;
                        vsql::set_status(tx, &a.volume_id, &[status::ATTACHING], status::IN_USE)?;
                    }
                }
                Ok(())
            })
            .await;
        if let Err(e) = r {
            tracing::error!(server_id = %id, error = %e, "marking volumes attached");
        }
    }

    /// After a server is gone: deletes the volumes released from it that were asked to be
    /// deleted on termination.
    pub(crate) async fn delete_released(&self, server: &Server, released: Vec<AttachmentRec>) {
        let doomed: Vec<AttachmentRec> = released
            .into_iter()
            .filter(|a| a.delete_on_termination)
            .collect();
        if doomed.is_empty() {
            return;
        }
        let Ok(provider) = self.provider() else {
            return;
        };
        let ctx = Context::acting_for(&server.project_id, &server.user_id);
        for a in doomed {
            match provider.delete(&ctx, &a.volume_id).await {
                Ok(()) => {
                    tracing::info!(server_id = %server.id, volume_id = %a.volume_id, "volume deleted on termination")
                }
                Err(e) => {
                    tracing::warn!(server_id = %server.id, volume_id = %a.volume_id, error = %e, "deleting a volume on termination")
                }
            }
        }
    }
}
