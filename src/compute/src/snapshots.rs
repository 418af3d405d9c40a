//! Snapshots of servers into the image service: createImage, createBackup (with rotation),
//! and shelving (a snapshot, then the backend instance is let go) with unshelve.
//!
//! The image is created `queued` when the request is accepted, so it is visible at once;
//! the driver then writes the server's disk to a scratch file, which is uploaded through the
//! image service (checked, hashed, counted against the owner's quota) and the image becomes
//! active. A failure deletes the image and returns the server to where it was.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::Utc;
use model::Context;
use model::ProjectId;
use model::compute::{PowerState, Server, ServerId, TaskState, VmState};
use store::compute as sql;

use crate::actions::Action;
use crate::images::{CatalogError, SnapshotImage};
use crate::sysmeta::{SHELVED_AT, SHELVED_IMAGE};
use crate::{Compute, Error, Result};

/// A backup's rotation: keep the newest `rotation` backups of this type.
#[derive(Clone, Debug)]
pub(crate) struct Backup {
    pub backup_type: String,
    pub rotation: u32,
}

pub(crate) struct SnapshotWork {
    pub ctx: Box<Context>,
    /// The server's project, which owns the snapshot (and the backups rotation counts).
    pub owner: ProjectId,
    pub image_id: String,
    pub backup: Option<Backup>,
    pub from_vm: VmState,
}

pub(crate) struct ShelveWork {
    pub ctx: Box<Context>,
    pub image_id: Option<String>,
    pub from_vm: VmState,
}

fn catalog_error(e: CatalogError) -> Error {
    match e {
        CatalogError::QuotaExceeded(m) => Error::QuotaExceeded(m),
        CatalogError::NotFound(m) => Error::BadRequest(m),
        CatalogError::Failed(m) => Error::Task(m),
    }
}

/// Base-image properties a snapshot does not inherit (prefixes): Nova's
/// `non_inheritable_image_properties`, the data hashes of the base image, and onebox's record
/// of the payload an image was imported from.
const NON_INHERITABLE: &[&str] = &[
    "cache_in_nova",
    "bittorrent",
    "img_signature",
    "os_hash_",
    "os_hidden",
    "onebox_payload_sha256",
];

impl Compute {
    /// The queued image a snapshot of `s` goes to, with the properties Nova sets.
    async fn snapshot_image(
        &self,
        ctx: &Context,
        s: &Server,
        name: String,
        metadata: BTreeMap<String, String>,
        backup: Option<&Backup>,
    ) -> Result<String> {
        let base = s.image_id.clone().unwrap_or_default();
        let base_info = self.images.find(ctx, &base).await;
        // As in Nova, a snapshot inherits its base image's properties (so a container's
        // snapshot is a container root filesystem again, a VM's keeps its kernel and hardware
        // hints), save the ones that describe the base image's own data; the request's
        // metadata and Nova's own keys come on top.
        let mut properties: BTreeMap<String, String> = base_info
            .as_ref()
            .map(|i| {
                i.properties
                    .iter()
                    .filter(|(k, _)| !NON_INHERITABLE.iter().any(|n| k.starts_with(n)))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        properties.extend(metadata);
        properties.insert(
            "image_type".into(),
            if backup.is_some() {
                "backup"
            } else {
                "snapshot"
            }
            .into(),
        );
        properties.insert("instance_uuid".into(), s.id.to_string());
        properties.insert("base_image_ref".into(), base);
        properties.insert("user_id".into(), s.user_id.to_string());
        properties.insert("owner_id".into(), s.project_id.to_string());
        if let Some(b) = backup {
            properties.insert("backup_type".into(), b.backup_type.clone());
        }
        self.images
            .create_snapshot(
                ctx,
                SnapshotImage {
                    name,
                    owner: s.project_id.clone(),
                    min_disk_gb: s.flavor.disk_gb,
                    min_ram_mb: base_info.map_or(0, |i| i.min_ram_mb),
                    properties,
                },
            )
            .await
            .map_err(catalog_error)
    }

    /// Whether a snapshot of `s` is possible at all on this box.
    fn can_snapshot(&self, s: &Server) -> Result<()> {
        if s.image_id.is_none() {
            return Err(Error::BadRequest(format!(
                "Instance {} is volume-backed; onebox has no volume service to snapshot it.",
                s.id
            )));
        }
        if !self.backends.get(s.backend).capabilities().snapshot {
            return Err(Error::BadRequest(format!(
                "snapshot is not supported by the backend of instance {}.",
                s.id
            )));
        }
        Ok(())
    }

    /// createImage: returns the new image's id.
    pub async fn create_image(
        &self,
        ctx: &Context,
        id: &str,
        name: String,
        metadata: BTreeMap<String, String>,
        request_id: &str,
    ) -> Result<String> {
        self.snapshot(ctx, id, name, metadata, None, request_id)
            .await
    }

    /// createBackup: a snapshot that rotation keeps at most `rotation` of per type.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_backup(
        &self,
        ctx: &Context,
        id: &str,
        name: String,
        backup_type: String,
        rotation: u32,
        metadata: BTreeMap<String, String>,
        request_id: &str,
    ) -> Result<String> {
        self.snapshot(
            ctx,
            id,
            name,
            metadata,
            Some(Backup {
                backup_type,
                rotation,
            }),
            request_id,
        )
        .await
    }

    async fn snapshot(
        &self,
        ctx: &Context,
        id: &str,
        name: String,
        metadata: BTreeMap<String, String>,
        backup: Option<Backup>,
        request_id: &str,
    ) -> Result<String> {
        let s = self.get_server(ctx, id).await?;
        let (action, task) = match backup {
            Some(_) => (Action::CreateBackup, TaskState::ImageBackup),
            None => (Action::CreateImage, TaskState::ImageSnapshot),
        };
        self.may_act(ctx, &s, action)?;
        crate::block_devices::refuse_volume_backed(&s, "snapshotted into an image")?;
        self.can_snapshot(&s)?;
        let image_id = self
            .snapshot_image(ctx, &s, name, metadata, backup.as_ref())
            .await?;
        let begun = self
            .begin(&s, action, task, request_id, &ctx.user_id, |_| Ok(()))
            .await;
        let action_id = match begun {
            Ok(a) => a,
            Err(e) => {
                let _ = self.images.delete_image(ctx, &image_id).await;
                return Err(e);
            }
        };
        let (sid, work) = (
            s.id.clone(),
            SnapshotWork {
                ctx: Box::new(ctx.clone()),
                owner: s.project_id.clone(),
                image_id: image_id.clone(),
                backup,
                from_vm: s.vm_state,
            },
        );
        self.run(&s.id, move |c| async move {
            c.run_snapshot(sid, action_id, work).await
        });
        Ok(image_id)
    }

    fn scratch_file(&self, id: &ServerId) -> PathBuf {
        self.images.scratch_dir().join(format!(
            ".tmp-snapshot-{id}-{}",
            uuid::Uuid::new_v4().simple()
        ))
    }

    /// Writes the server's disk to a scratch file and uploads it into `image_id`, moving the
    /// task state through `tasks` (pending upload, uploading) on the way.
    async fn snapshot_and_upload(
        &self,
        ctx: &Context,
        id: &ServerId,
        image_id: &str,
        from_vm: VmState,
        task: &mut TaskState,
        tasks: &[TaskState],
    ) -> std::result::Result<(), String> {
        // A project at its image quota gets no scratch data written on its behalf: the
        // upload could only be refused after the host's disk took the whole snapshot.
        let owner = self.load(id).await.map(|s| s.project_id);
        if let Some(owner) = &owner
            && self.images.quota_left(owner).await.ok().flatten() == Some(0)
        {
            return Err(format!(
                "Upload of the snapshot of instance {id} failed: Image storage quota exceeded."
            ));
        }
        let path = self.scratch_file(id);
        let (id2, p2) = (id.clone(), path.clone());
        let snap = self
            .blocking(id, move |d| d.snapshot(&id2, &p2))
            .await
            .map_err(|e| {
                let _ = std::fs::remove_file(&path);
                format!("Snapshot of instance {id} failed: {e}")
            })?;
        for &next in tasks {
            if !self.step(id, Some(*task), from_vm, Some(next), None).await {
                let _ = std::fs::remove_file(&path);
                return Err("the server changed during the snapshot".into());
            }
            *task = next;
        }
        let up = self
            .images
            .upload_snapshot(
                ctx,
                image_id,
                &path,
                &snap.disk_format,
                &snap.container_format,
            )
            .await;
        let _ = tokio::fs::remove_file(&path).await;
        up.map_err(|e| format!("Upload of the snapshot of instance {id} failed: {e}"))
    }

    pub(crate) async fn run_snapshot(&self, id: ServerId, action: i64, w: SnapshotWork) {
        use TaskState as T;
        let event = self
            .event(
                action,
                if w.backup.is_some() {
                    "compute_backup_instance"
                } else {
                    "compute_snapshot_instance"
                },
            )
            .await;
        let mut task = if w.backup.is_some() {
            T::ImageBackup
        } else {
            T::ImageSnapshot
        };
        if w.backup.is_none() {
            if !self
                .step(
                    &id,
                    Some(task),
                    w.from_vm,
                    Some(T::ImageSnapshotPending),
                    None,
                )
                .await
            {
                let _ = self.images.delete_image(&w.ctx, &w.image_id).await;
                self.finish(event, false, Some("the server changed".into()))
                    .await;
                return;
            }
            task = T::ImageSnapshotPending;
        }
        let result = self
            .snapshot_and_upload(
                &w.ctx,
                &id,
                &w.image_id,
                w.from_vm,
                &mut task,
                &[T::ImagePendingUpload, T::ImageUploading],
            )
            .await;
        match result {
            Ok(()) => {
                self.step(&id, Some(task), w.from_vm, None, None).await;
                if let Some(b) = &w.backup {
                    self.rotate_backups(&w.ctx, &id, &w.owner, b).await;
                }
                self.finish(event, true, None).await;
            }
            Err(msg) => {
                if let Err(e) = self.images.delete_image(&w.ctx, &w.image_id).await {
                    tracing::warn!(image = %w.image_id, error = %e, "deleting a failed snapshot");
                }
                self.fail_back(&id, task, w.from_vm, event, msg).await;
            }
        }
    }

    /// Deletes the oldest backups of this type beyond `rotation`: only the server's own
    /// project's images count, whoever asked (an admin's rotation must not reach an image
    /// another project made to look like a backup of this server).
    async fn rotate_backups(&self, ctx: &Context, id: &ServerId, owner: &ProjectId, b: &Backup) {
        let ids = match self
            .images
            .backups(id.as_str(), owner, &b.backup_type)
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(server_id = %id, error = %e, "listing backups to rotate");
                return;
            }
        };
        let excess = ids.len().saturating_sub(b.rotation as usize);
        for old in ids.iter().take(excess) {
            tracing::info!(server_id = %id, image = %old, "rotating out a backup");
            if let Err(e) = self.images.delete_image(ctx, old).await {
                tracing::warn!(image = %old, error = %e, "deleting a rotated backup");
            }
        }
    }

    // ---- shelve --------------------------------------------------------------------------

    /// Shelves a server: a snapshot named `<name>-shelved`, the guest powered off; then, after
    /// `shelved_offload_time` (at once by default), the backend instance is let go.
    pub async fn shelve(&self, ctx: &Context, id: &str, request_id: &str) -> Result<()> {
        let s = self.get_server(ctx, id).await?;
        self.may_act(ctx, &s, Action::Shelve)?;
        let image_id =
            if s.image_id.is_some() && self.backends.get(s.backend).capabilities().snapshot {
                Some(
                    self.snapshot_image(
                        ctx,
                        &s,
                        format!("{}-shelved", s.name),
                        BTreeMap::new(),
                        None,
                    )
                    .await?,
                )
            } else {
                None
            };
        let begun = self
            .begin(
                &s,
                Action::Shelve,
                TaskState::Shelving,
                request_id,
                &ctx.user_id,
                |_| Ok(()),
            )
            .await;
        let action = match begun {
            Ok(a) => a,
            Err(e) => {
                if let Some(i) = &image_id {
                    let _ = self.images.delete_image(ctx, i).await;
                }
                return Err(e);
            }
        };
        let (sid, work) = (
            s.id.clone(),
            ShelveWork {
                ctx: Box::new(ctx.clone()),
                image_id,
                from_vm: s.vm_state,
            },
        );
        self.run(&s.id, move |c| async move {
            c.run_shelve(sid, action, work).await
        });
        Ok(())
    }

    pub(crate) async fn run_shelve(&self, id: ServerId, action: i64, w: ShelveWork) {
        use TaskState as T;
        let event = self.event(action, "compute_shelve_instance").await;
        let mut task = T::Shelving;
        let was_running = w.from_vm != VmState::Stopped;
        let id2 = id.clone();
        let mut result = self
            .blocking(&id, move |d| match d.power_off(&id2) {
                // Nothing to power off is as good as powered off.
                Err(driver::DriverError::NotFound(_)) => Ok(()),
                r => r,
            })
            .await
            .map_err(|e| format!("Powering off instance {id} failed: {e}"));
        if result.is_ok()
            && let Some(image) = &w.image_id
        {
            if self
                .step(
                    &id,
                    Some(task),
                    w.from_vm,
                    Some(T::ShelvingImagePendingUpload),
                    None,
                )
                .await
            {
                task = T::ShelvingImagePendingUpload;
                result = self
                    .snapshot_and_upload(
                        &w.ctx,
                        &id,
                        image,
                        w.from_vm,
                        &mut task,
                        &[T::ShelvingImageUploading],
                    )
                    .await;
            } else {
                result = Err("the server changed during the shelve".into());
            }
        }
        if let Err(msg) = result {
            if let Some(image) = &w.image_id {
                let _ = self.images.delete_image(&w.ctx, image).await;
            }
            // The guest goes back to running if it was.
            let back = if was_running {
                let id2 = id.clone();
                match self.blocking(&id, move |d| d.power_on(&id2)).await {
                    Ok(()) => VmState::Active,
                    Err(_) => VmState::Stopped,
                }
            } else {
                VmState::Stopped
            };
            self.step(
                &id,
                Some(task),
                back,
                None,
                Some(if back == VmState::Active {
                    PowerState::Running
                } else {
                    PowerState::Shutdown
                }),
            )
            .await;
            self.finish(event, false, Some(msg)).await;
            return;
        }
        let image = w.image_id.clone();
        let moved = self
            .settle(
                &id,
                event,
                task,
                (VmState::Shelved, PowerState::Shutdown),
                move |tx, id| {
                    match &image {
                        Some(i) => sql::set_sysmeta(tx, id, SHELVED_IMAGE, i)?,
                        None => sql::delete_sysmeta(tx, id, SHELVED_IMAGE)?,
                    }
                    sql::set_sysmeta(tx, id, SHELVED_AT, &store::ts(Utc::now()))
                },
            )
            .await;
        if moved && self.cfg.shelved_offload_time == 0 {
            let id2 = id.clone();
            if self
                .store
                .write(move |tx| {
                    sql::set_task_state(
                        tx,
                        &id2,
                        VmState::Shelved,
                        None,
                        Some(T::ShelvingOffloading),
                    )
                })
                .await
                .unwrap_or(false)
            {
                self.clone().run_offload(id, action).await;
            }
        }
    }

    /// shelveOffload: lets go of a shelved server's backend instance now.
    pub async fn shelve_offload(&self, ctx: &Context, id: &str, request_id: &str) -> Result<()> {
        self.start_work(
            ctx,
            id,
            (Action::ShelveOffload, TaskState::ShelvingOffloading),
            request_id,
            Compute::run_offload,
        )
        .await
    }

    /// Destroys the backend instance of a server in `shelving_offloading`.
    pub(crate) async fn run_offload(self, id: ServerId, action: i64) {
        let event = self.event(action, "compute_shelve_offload_instance").await;
        let id2 = id.clone();
        match self.blocking(&id, move |d| d.destroy(&id2)).await {
            Ok(()) => {
                self.settle(
                    &id,
                    event,
                    TaskState::ShelvingOffloading,
                    (VmState::ShelvedOffloaded, PowerState::NoState),
                    |_, _| Ok(()),
                )
                .await;
            }
            Err(e) => {
                self.fail_back(
                    &id,
                    TaskState::ShelvingOffloading,
                    VmState::Shelved,
                    event,
                    e.to_string(),
                )
                .await
            }
        }
    }

    /// Unshelves a server: powered on again if its backend instance is still there, else
    /// spawned from its shelved image, which is then deleted. `availability_zone` (2.77;
    /// `Some(None)` unpins, 2.91) and `host` (2.91, admin) are for offloaded servers only and
    /// may only name this box.
    pub async fn unshelve(
        &self,
        ctx: &Context,
        id: &str,
        availability_zone: Option<Option<String>>,
        host: Option<String>,
        request_id: &str,
    ) -> Result<()> {
        let s = self.get_server(ctx, id).await?;
        self.may_act(ctx, &s, Action::Unshelve)?;
        if (availability_zone.is_some() || host.is_some())
            && s.vm_state != VmState::ShelvedOffloaded
        {
            return Err(Error::Conflict(format!(
                "Specifying an availability zone or a host when unshelving server {} with status {} is not supported. The server status must be SHELVED_OFFLOADED.",
                s.id,
                s.status()
            )));
        }
        if let Some(Some(az)) = &availability_zone
            && *az != self.host_zone().await?
        {
            return Err(Error::BadRequest(
                "The requested availability zone is not available".into(),
            ));
        }
        if let Some(h) = &host {
            if !ctx.is_admin() {
                return Err(Error::Forbidden(
                    "Policy doesn't allow os_compute_api:os-shelve:unshelve_to_host to be performed."
                        .into(),
                ));
            }
            if *h != self.cfg.host {
                return Err(Error::BadRequest(format!(
                    "Compute host {h} could not be found."
                )));
            }
        }
        // An offloaded server is spawned again from its shelved image: it, and what it links
        // to, must be images the caller may boot now.
        if s.vm_state == VmState::ShelvedOffloaded
            && let Some(image) = self.sysmeta(&s.id, SHELVED_IMAGE).await
        {
            self.find_bootable(ctx, &image)
                .await
                .map_err(|id| crate::imagefit::image_not_found(&id))?;
        }
        let (ctx2, from_vm) = (ctx.clone(), s.vm_state);
        self.start(
            &s,
            (Action::Unshelve, TaskState::Unshelving),
            request_id,
            &ctx.user_id,
            move |c, id, action| async move { c.run_unshelve(id, action, ctx2, from_vm).await },
        )
        .await?;
        // The zone an unshelve names pins the server to it; a null zone (2.91) unpins it.
        if let Some(zone) = availability_zone {
            let sid = s.id.clone();
            self.store
                .write(move |tx| sql::set_pinned_zone(tx, &sid, zone.as_deref()))
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn run_unshelve(
        &self,
        id: ServerId,
        action: i64,
        ctx: Context,
        from_vm: VmState,
    ) {
        let event = self.event(action, "compute_unshelve_instance").await;
        let image = self.sysmeta(&id, SHELVED_IMAGE).await;
        let Some(mut server) = self.load(&id).await else {
            self.finish(event, false, Some("the server is gone".into()))
                .await;
            return;
        };
        let result = if from_vm == VmState::Shelved {
            let id2 = id.clone();
            self.blocking(&id, move |d| d.power_on(&id2)).await
        } else {
            if image.is_some() {
                server.image_id = image.clone();
            }
            let spec = self.instance_spec(&server).await;
            self.blocking(&id, move |d| d.spawn(&spec)).await
        };
        match result {
            Ok(()) => {
                let moved = self
                    .settle(
                        &id,
                        event,
                        TaskState::Unshelving,
                        (VmState::Active, PowerState::Running),
                        |tx, id| {
                            sql::delete_sysmeta(tx, id, SHELVED_IMAGE)?;
                            sql::delete_sysmeta(tx, id, SHELVED_AT)
                        },
                    )
                    .await;
                if moved
                    && let Some(i) = &image
                    && let Err(e) = self.images.delete_image(&ctx, i).await
                {
                    tracing::warn!(image = %i, error = %e, "deleting the image of an unshelved server");
                }
            }
            Err(e) => {
                self.fault(&id, format!("Unshelve of instance {id} failed: {e}"))
                    .await;
                self.fail_back(&id, TaskState::Unshelving, from_vm, event, e.to_string())
                    .await
            }
        }
    }
}
