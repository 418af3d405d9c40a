//! The block storage service (Cinder's resources): volumes, volume types, snapshots and
//! quotas, decided here, kept by `store::volume`, their data held by a [`StorageBackend`].
//!
//! A create is one transaction (policy, quota, the row in `creating`); the backend's work
//! then runs on a blocking thread and the volume moves to `available` or `error` only from
//! the status it was left in, so a delete that came first wins. [`Volumes::reconcile`] runs
//! at start: no volume stays in a transitional status and no file without a row survives.

mod actions;
pub mod backend;
mod quotas;
mod snapshots;
pub use snapshots::SnapshotCreate;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

pub use actions::{HookFuture, OnlineExtend};
pub use backend::{BackendError, FileBackend, GIB, StorageBackend};
use chrono::Utc;
use model::volume::{SnapshotRec, VolumeRec, VolumeType, status};
use model::{Context, Persona, ProjectId};
pub(crate) use quotas::check_quota;
use store::volume as sql;

/// The one availability zone of the box's volumes (Cinder's default).
pub const ZONE: &str = "nova";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 413, Cinder's quota faults.
    #[error("{0}")]
    OverQuota(String),
    #[error("backend: {0}")]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Store(#[from] store::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

fn unwrap_abort<T>(r: store::Result<T>) -> Result<T> {
    r.map_err(|e| match e {
        store::Error::Abort(b) => match b.downcast::<Error>() {
            Ok(e) => *e,
            Err(b) => Error::Store(store::Error::Abort(b)),
        },
        other => Error::Store(other),
    })
}

pub(crate) fn not_found(id: &str) -> Error {
    Error::NotFound(format!("Volume {id} could not be found."))
}

/// An image a volume is made from, resolved by the caller as the volume's project sees it.
#[derive(Clone, Debug)]
pub struct SourceImage {
    pub id: String,
    pub path: PathBuf,
    /// The declared disk format (`qemu-img convert -f` is given it, never a probe).
    pub disk_format: String,
    pub size: u64,
    pub virtual_size: Option<u64>,
    pub min_disk_gb: u64,
    /// What the volume shows as `volume_image_metadata`.
    pub metadata: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub enum Source {
    Blank,
    Image(SourceImage),
    Volume(String),
    Snapshot(String),
}

#[derive(Clone, Debug)]
pub struct VolumeCreate {
    /// `None`: the source's size.
    pub size_gb: Option<u64>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub volume_type: Option<String>,
    pub availability_zone: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub bootable: bool,
    pub source: Source,
}

#[derive(Clone, Debug, Default)]
pub struct VolumeUpdate {
    pub name: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Clone)]
pub struct Volumes {
    store: store::Store,
    backend: Arc<dyn StorageBackend>,
    online: Arc<std::sync::OnceLock<Arc<dyn OnlineExtend>>>,
}

/// May the caller change `project`'s volumes? Another project's are 404s (checked first by
/// the read), a reader's writes 403s.
fn may_write(ctx: &Context, project: &ProjectId, action: &str) -> Result<()> {
    if ctx.can_write(project) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "Policy doesn't allow {action} to be performed."
        )))
    }
}

fn admin_only(ctx: &Context, action: &str) -> Result<()> {
    if ctx.is_admin() {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "Policy doesn't allow {action} to be performed."
        )))
    }
}

/// Statuses a volume may be deleted from.
const DELETABLE: &[&str] = &[
    status::AVAILABLE,
    status::ERROR,
    "error_restoring",
    status::ERROR_EXTENDING,
    "error_managing",
];

impl Volumes {
    pub fn new(store: store::Store, backend: Arc<dyn StorageBackend>) -> Self {
        Self {
            store,
            backend,
            online: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// Sets what attached volumes' extends tell (without it, only unattached volumes grow).
    /// Set once.
    pub fn set_online_extend(&self, hook: Arc<dyn OnlineExtend>) {
        let _ = self.online.set(hook);
    }

    pub fn store(&self) -> &store::Store {
        &self.store
    }

    /// A volume the caller may see, else the 404 of an unknown one.
    pub async fn get(&self, ctx: &Context, id: &str) -> Result<VolumeRec> {
        let key = id.to_owned();
        let v = self.store.read(move |c| sql::get_volume(c, &key)).await?;
        match v {
            Some(v) if ctx.can_read(&v.project_id) => Ok(v),
            _ => Err(not_found(id)),
        }
    }

    /// The caller's project's volumes; every project's for an admin asking for all.
    pub async fn list(&self, ctx: &Context, all_projects: bool) -> Result<Vec<VolumeRec>> {
        let project = if all_projects && ctx.is_admin() {
            None
        } else {
            match &ctx.project_id {
                Some(p) if ctx.has(Persona::Reader) || ctx.is_admin() => Some(p.clone()),
                _ => return Ok(Vec::new()),
            }
        };
        Ok(self
            .store
            .read(move |c| sql::list_volumes(c, project.as_ref()))
            .await?)
    }

    /// The statuses a volume went through, oldest first (its audit trail).
    pub async fn history(&self, ctx: &Context, id: &str) -> Result<Vec<String>> {
        self.get(ctx, id).await?;
        let key = id.to_owned();
        Ok(self
            .store
            .read(move |c| sql::status_history(c, &key))
            .await?)
    }

    pub async fn types(&self) -> Result<Vec<VolumeType>> {
        Ok(self.store.read(sql::list_types).await?)
    }

    pub async fn default_type(&self) -> Result<VolumeType> {
        self.store
            .read(sql::default_type)
            .await?
            .ok_or_else(|| Error::NotFound("Default volume type can not be found.".into()))
    }

    /// Creates a volume in `creating` and starts its data on a blocking thread.
    pub async fn create(&self, ctx: &Context, req: VolumeCreate) -> Result<VolumeRec> {
        let project = ctx
            .project_id
            .clone()
            .ok_or_else(|| Error::Forbidden("A project-scoped token is required.".into()))?;
        may_write(ctx, &project, "volume:create")?;
        if let Some(az) = &req.availability_zone
            && az != ZONE
        {
            return Err(Error::BadRequest(format!(
                "Invalid input received: Availability zone '{az}' is invalid."
            )));
        }
        // The source, as the caller sees it.
        let (source_path, source_size) = match &req.source {
            Source::Blank => (None, None),
            Source::Image(img) => {
                let vs = img.virtual_size.unwrap_or(img.size);
                (None, Some(vs.div_ceil(GIB).max(img.min_disk_gb).max(1)))
            }
            Source::Volume(id) => {
                let v = self
                    .get(ctx, id)
                    .await
                    .map_err(|_| Error::NotFound(format!("Volume {id} could not be found.")))?;
                if !matches!(v.status.as_str(), status::AVAILABLE | status::IN_USE) {
                    return Err(Error::BadRequest(
                        "Invalid volume: Source volume status must be available or in-use.".into(),
                    ));
                }
                (v.path.clone(), Some(v.size_gb))
            }
            Source::Snapshot(id) => {
                let s = self.get_snapshot(ctx, id).await?;
                if s.status != status::AVAILABLE {
                    return Err(Error::BadRequest("Invalid snapshot: Originating snapshot status must be one of 'available' values".to_string()));
                }
                (s.path.clone(), Some(s.size_gb))
            }
        };
        let size = match (req.size_gb, source_size) {
            (Some(s), _) => s,
            (None, Some(s)) if !matches!(req.source, Source::Image(_)) => s,
            _ => {
                return Err(Error::BadRequest(
                    "Invalid input received: Size must be specified when not creating from a source."
                        .into(),
                ));
            }
        };
        if size == 0 {
            return Err(Error::BadRequest(
                "Invalid input for field/attribute size. Value: 0. 0 is less than the minimum of 1"
                    .into(),
            ));
        }
        match &req.source {
            Source::Image(img) => {
                let vs = img.virtual_size.unwrap_or(img.size);
                if vs > size * GIB {
                    return Err(Error::BadRequest(format!(
                        "Invalid input received: Image virtual size is {}GB and doesn't fit in a volume of size {size}GB.",
                        vs.div_ceil(GIB)
                    )));
                }
                if img.min_disk_gb > size {
                    return Err(Error::BadRequest(format!(
                        "Invalid input received: Volume size {size}GB cannot be smaller than the image minDisk size {}GB.",
                        img.min_disk_gb
                    )));
                }
            }
            Source::Volume(_) | Source::Snapshot(_) => {
                if size < source_size.unwrap_or(0) {
                    return Err(Error::BadRequest(format!(
                        "Invalid input received: Volume size '{size}'GB cannot be smaller than the source size '{}'GB.",
                        source_size.unwrap_or(0)
                    )));
                }
            }
            Source::Blank => {}
        }
        let now = Utc::now();
        let (image_id, image_metadata, bootable) = match &req.source {
            Source::Image(img) => (Some(img.id.clone()), img.metadata.clone(), true),
            _ => (None, BTreeMap::new(), req.bootable),
        };
        let rec = VolumeRec {
            id: uuid::Uuid::new_v4().to_string(),
            project_id: project.clone(),
            user_id: ctx.user_id.clone(),
            name: req.name.clone(),
            description: req.description.clone(),
            size_gb: size,
            status: status::CREATING.into(),
            volume_type_id: String::new(),
            volume_type_name: String::new(),
            availability_zone: ZONE.into(),
            bootable,
            read_only: false,
            metadata: req.metadata.clone(),
            image_metadata,
            source_volid: match &req.source {
                Source::Volume(id) => Some(id.clone()),
                _ => None,
            },
            snapshot_id: match &req.source {
                Source::Snapshot(id) => Some(id.clone()),
                _ => None,
            },
            image_id,
            path: None,
            format: "raw".into(),
            created_at: now,
            updated_at: None,
            attachments: Vec::new(),
        };
        let wanted_type = req.volume_type.clone();
        let mut row = rec.clone();
        let id = rec.id.clone();
        let created = unwrap_abort(
            self.store
                .write(move |tx| {
                    let types = sql::list_types(tx)?;
                    let t = match &wanted_type {
                        None => sql::default_type(tx)?,
                        Some(w) => types.into_iter().find(|t| t.id == *w || t.name == *w),
                    }
                    .ok_or_else(|| {
                        store::abort(Error::NotFound(format!(
                            "Volume type with name {} could not be found.",
                            wanted_type.clone().unwrap_or_default()
                        )))
                    })?;
                    row.volume_type_id = t.id;
                    check_quota(tx, &row.project_id, 1, 0, row.size_gb as i64)
                        .map_err(store::abort)?;
                    sql::insert_volume(tx, &row)?;
                    sql::get_volume(tx, &row.id)
                })
                .await,
        )?
        .ok_or_else(|| not_found(&id))?;
        let this = self.clone();
        let source = req.source.clone();
        tokio::spawn(async move {
            this.fill(id, size, source, source_path).await;
        });
        Ok(created)
    }

    /// The backend's part of a create; ends in `available` or `error`.
    async fn fill(&self, id: String, size: u64, source: Source, source_path: Option<String>) {
        let from = [status::CREATING, status::DOWNLOADING];
        if matches!(source, Source::Image(_)) {
            let key = id.clone();
            let _ = self
                .store
                .write(move |tx| {
                    sql::set_status(tx, &key, &[status::CREATING], status::DOWNLOADING)
                })
                .await;
        }
        let backend = self.backend.clone();
        let vid = id.clone();
        let made = tokio::task::spawn_blocking(move || match source {
            Source::Blank => backend.create_empty(&vid, size),
            Source::Image(img) => {
                backend.create_from_image(&vid, size, &img.path, &img.disk_format)
            }
            Source::Volume(_) | Source::Snapshot(_) => match source_path {
                Some(p) => backend.copy_from(&vid, size, std::path::Path::new(&p)),
                None => Err(BackendError::Invalid("the source has no data".into())),
            },
        })
        .await
        .unwrap_or_else(|e| Err(BackendError::Io(e.to_string())));
        match made {
            Ok(path) => {
                let key = id.clone();
                let p = path.to_string_lossy().into_owned();
                let done = self
                    .store
                    .write(move |tx| {
                        let moved = sql::set_status(tx, &key, &from, status::AVAILABLE)?;
                        if moved {
                            sql::set_path(tx, &key, &p)?;
                        }
                        Ok(moved)
                    })
                    .await;
                if !matches!(done, Ok(true)) {
                    // Deleted (or reset) while its data was made: the data is nobody's.
                    let b = self.backend.clone();
                    let _ = tokio::task::spawn_blocking(move || b.delete(&path)).await;
                }
            }
            Err(e) => {
                tracing::warn!(volume_id = %id, error = %e, "volume create failed");
                let key = id.clone();
                let _ = self
                    .store
                    .write(move |tx| sql::set_status(tx, &key, &from, status::ERROR))
                    .await;
            }
        }
    }

    pub async fn update(&self, ctx: &Context, id: &str, u: VolumeUpdate) -> Result<VolumeRec> {
        let mut v = self.get(ctx, id).await?;
        may_write(ctx, &v.project_id, "volume:update")?;
        if let Some(n) = u.name {
            v.name = n;
        }
        if let Some(d) = u.description {
            v.description = d;
        }
        if let Some(m) = u.metadata {
            v.metadata = m;
        }
        self.save(v).await
    }

    async fn save(&self, v: VolumeRec) -> Result<VolumeRec> {
        let id = v.id.clone();
        self.store
            .write(move |tx| {
                sql::update_volume(tx, &v)?;
                sql::get_volume(tx, &v.id)
            })
            .await?
            .ok_or_else(|| not_found(&id))
    }

    /// Merges (or, with `replace`, replaces) the volume's metadata; returns the result.
    pub async fn set_metadata(
        &self,
        ctx: &Context,
        id: &str,
        meta: BTreeMap<String, String>,
        replace: bool,
    ) -> Result<BTreeMap<String, String>> {
        let mut v = self.get(ctx, id).await?;
        may_write(ctx, &v.project_id, "volume:update_volume_metadata")?;
        if replace {
            v.metadata = meta;
        } else {
            v.metadata.extend(meta);
        }
        Ok(self.save(v).await?.metadata)
    }

    pub async fn delete_metadata_key(&self, ctx: &Context, id: &str, key: &str) -> Result<()> {
        let mut v = self.get(ctx, id).await?;
        may_write(ctx, &v.project_id, "volume:delete_volume_metadata")?;
        if v.metadata.remove(key).is_none() {
            return Err(Error::NotFound(format!(
                "Volume {id} has no metadata with key {key}."
            )));
        }
        self.save(v).await?;
        Ok(())
    }

    /// Deletes a volume: refused while attached or with snapshots (unless `cascade`); an
    /// admin's `force` skips the status check.
    pub async fn delete(&self, ctx: &Context, id: &str, cascade: bool, force: bool) -> Result<()> {
        let v = self.get(ctx, id).await?;
        if force {
            admin_only(ctx, "volume_extension:volume_admin_actions:force_delete")?;
        } else {
            may_write(ctx, &v.project_id, "volume:delete")?;
        }
        let key = id.to_owned();
        let snaps = unwrap_abort(
            self.store
                .write(move |tx| {
                    let v = sql::get_volume(tx, &key)?
                        .ok_or_else(|| store::abort(not_found(&key)))?;
                    let snaps = sql::list_snapshots(tx, None, Some(&key))?;
                    let blocked = !v.attachments.is_empty()
                        || (!snaps.is_empty() && !cascade)
                        || (!force && !DELETABLE.contains(&v.status.as_str()));
                    if blocked {
                        return Err(store::abort(Error::BadRequest(
                            "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.".into(),
                        )));
                    }
                    sql::set_status(tx, &key, &[], status::DELETING)?;
                    for s in &snaps {
                        sql::set_snapshot_status(tx, &s.id, &[], status::DELETING, None)?;
                    }
                    Ok(snaps)
                })
                .await,
        )?;
        let this = self.clone();
        let vid = id.to_owned();
        tokio::spawn(async move {
            this.finish_delete(vid, v.path, snaps).await;
        });
        Ok(())
    }

    async fn finish_delete(&self, id: String, path: Option<String>, snaps: Vec<SnapshotRec>) {
        let b = self.backend.clone();
        let paths: Vec<String> = snaps
            .iter()
            .filter_map(|s| s.path.clone())
            .chain(path)
            .collect();
        let r = tokio::task::spawn_blocking(move || {
            for p in paths {
                b.delete(std::path::Path::new(&p))?;
            }
            Ok::<_, BackendError>(())
        })
        .await
        .unwrap_or_else(|e| Err(BackendError::Io(e.to_string())));
        let key = id.clone();
        let ok = r.is_ok();
        if let Err(e) = &r {
            tracing::warn!(volume_id = %id, error = %e, "volume delete failed");
        }
        let _ = self
            .store
            .write(move |tx| {
                if ok {
                    for s in &snaps {
                        sql::delete_snapshot(tx, &s.id)?;
                    }
                    sql::delete_volume(tx, &key)
                } else {
                    sql::set_status(tx, &key, &[status::DELETING], status::ERROR_DELETING)
                        .map(|_| ())
                }
            })
            .await;
    }

    pub async fn set_bootable(&self, ctx: &Context, id: &str, bootable: bool) -> Result<()> {
        let mut v = self.get(ctx, id).await?;
        may_write(
            ctx,
            &v.project_id,
            "volume_extension:volume_actions:set_bootable",
        )?;
        v.bootable = bootable;
        self.save(v).await?;
        Ok(())
    }

    pub async fn set_read_only(&self, ctx: &Context, id: &str, read_only: bool) -> Result<()> {
        let mut v = self.get(ctx, id).await?;
        may_write(
            ctx,
            &v.project_id,
            "volume_extension:volume_actions:update_readonly_flag",
        )?;
        if v.status != status::AVAILABLE {
            return Err(Error::BadRequest(
                "Invalid volume: Volume status must be available to update readonly flag."
                    .to_string(),
            ));
        }
        v.read_only = read_only;
        self.save(v).await?;
        Ok(())
    }

    /// An admin's `os-reset_status`.
    pub async fn reset_status(&self, ctx: &Context, id: &str, to: &str) -> Result<()> {
        self.get(ctx, id).await?;
        admin_only(ctx, "volume_extension:volume_admin_actions:reset_status")?;
        if !status::ALL.contains(&to) {
            return Err(Error::BadRequest(
                "Invalid input received: Must specify a valid status".to_string(),
            ));
        }
        let key = id.to_owned();
        let to = to.to_owned();
        self.store
            .write(move |tx| sql::set_status(tx, &key, &[], &to))
            .await?;
        Ok(())
    }

    /// Start-up: no volume or snapshot stays in a transitional status (creates in flight
    /// end in `error`, deletes in flight finish, attaches roll back, extends fail), and files
    /// without a row are removed.
    pub async fn reconcile(&self) -> Result<ReconcileReport> {
        let all = self.store.read(|c| sql::list_volumes(c, None)).await?;
        let mut report = ReconcileReport::default();
        for v in all {
            let to = match v.status.as_str() {
                status::CREATING | status::DOWNLOADING => status::ERROR,
                status::ATTACHING if v.attachments.is_empty() => status::AVAILABLE,
                status::ATTACHING => status::IN_USE,
                status::DETACHING => status::IN_USE,
                status::UPLOADING if v.attachments.is_empty() => status::AVAILABLE,
                status::UPLOADING => status::IN_USE,
                status::EXTENDING => status::ERROR_EXTENDING,
                status::DELETING => {
                    let snaps = self
                        .store
                        .read({
                            let id = v.id.clone();
                            move |c| sql::list_snapshots(c, None, Some(&id))
                        })
                        .await?;
                    self.finish_delete(v.id.clone(), v.path.clone(), snaps)
                        .await;
                    report.deleted += 1;
                    continue;
                }
                _ => continue,
            };
            let (id, from) = (v.id.clone(), v.status.clone());
            self.store
                .write(move |tx| sql::set_status(tx, &id, &[from.as_str()], to))
                .await?;
            report.resolved += 1;
        }
        let snaps = self
            .store
            .read(|c| sql::list_snapshots(c, None, None))
            .await?;
        for s in snaps {
            let to = match s.status.as_str() {
                status::CREATING => status::ERROR,
                status::DELETING => status::ERROR_DELETING,
                _ => continue,
            };
            let id = s.id.clone();
            self.store
                .write(move |tx| sql::set_snapshot_status(tx, &id, &[], to, None))
                .await?;
            report.resolved += 1;
        }
        let known: HashSet<String> = self.store.read(sql::known_ids).await?.into_iter().collect();
        let b = self.backend.clone();
        let removed = tokio::task::spawn_blocking(move || b.sweep(&known))
            .await
            .map_err(|e| Error::Backend(BackendError::Io(e.to_string())))??;
        report.orphans_removed = removed.len();
        Ok(report)
    }
}

/// What [`Volumes::reconcile`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub resolved: usize,
    pub deleted: usize,
    pub orphans_removed: usize,
}
