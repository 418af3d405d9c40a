//! How the compute service finds images: through the image service, behind a trait so that
//! the compute service does not depend on its storage.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use model::Context;

/// What the compute service needs to know of an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub id: String,
    pub name: String,
    pub min_disk_gb: u64,
    pub min_ram_mb: u64,
    pub size_bytes: u64,
    /// The size of the disk the image holds (`qemu-img info`), when known.
    pub virtual_size_bytes: Option<u64>,
    pub properties: Vec<(String, String)>,
}

impl ImageInfo {
    /// Whether the image is a container root filesystem (the `onebox_rootfs` property, or
    /// Nova's libvirt-LXC convention `hypervisor_type=lxc`).
    pub fn is_rootfs(&self) -> bool {
        self.properties.iter().any(|(k, v)| {
            (k == model::image::ROOTFS_PROPERTY && v.eq_ignore_ascii_case("true"))
                || (k == "hypervisor_type" && v.eq_ignore_ascii_case("lxc"))
        })
    }

    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A snapshot image to create (Nova's `createImage`, `createBackup` and shelve): queued
/// until the server's disk is uploaded into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotImage {
    pub name: String,
    /// The project that owns the image (the server's).
    pub owner: model::ProjectId,
    pub min_disk_gb: u64,
    pub min_ram_mb: u64,
    pub properties: BTreeMap<String, String>,
}

/// Why the image service refused a snapshot step.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The owner's image storage quota would be exceeded.
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

pub type Op<'a, T> = Pin<Box<dyn Future<Output = Result<T, CatalogError>> + Send + 'a>>;

pub type Lookup<'a> = Pin<Box<dyn Future<Output = Option<ImageInfo>> + Send + 'a>>;
pub type FileLookup<'a> = Pin<Box<dyn Future<Output = Option<driver::ImageFile>> + Send + 'a>>;

pub trait ImageCatalog: Send + Sync {
    /// The image `id` if the caller may boot it (visibility and membership respected) and it
    /// is active.
    fn find<'a>(&'a self, ctx: &'a Context, id: &'a str) -> Lookup<'a>;

    /// The image `id` that a bootable image links to (its `kernel_id` or `ramdisk_id`) if
    /// the caller may see it and it is active; kernels and ramdisks suit no backend of their
    /// own, so this asks less than [`ImageCatalog::find`].
    fn find_linked<'a>(&'a self, ctx: &'a Context, id: &'a str) -> Lookup<'a> {
        self.find(ctx, id)
    }

    /// The data of active image `id`, for a backend; no caller check (the caller was
    /// checked when the server was created). `None` when the catalog keeps no data.
    fn file<'a>(&'a self, id: &'a str) -> FileLookup<'a> {
        let _ = id;
        Box::pin(async { None })
    }

    /// The data of active image `id` if project `owner` may see it: for the images a
    /// server's image links to and its rescue image, which are resolved in the background
    /// with the server owner's visibility, never the box's.
    fn file_for<'a>(&'a self, owner: &'a model::ProjectId, id: &'a str) -> FileLookup<'a> {
        let _ = owner;
        self.file(id)
    }

    /// Creates a queued image for a snapshot; returns its id.
    fn create_snapshot<'a>(&'a self, ctx: &'a Context, image: SnapshotImage) -> Op<'a, String> {
        let _ = (ctx, image);
        Box::pin(async { Err(CatalogError::Failed("this box has no image service".into())) })
    }

    /// Uploads a snapshot file written by a driver into queued image `id`, which becomes
    /// active. On failure the image is left killed (the caller deletes it).
    fn upload_snapshot<'a>(
        &'a self,
        ctx: &'a Context,
        id: &'a str,
        file: &'a Path,
        disk_format: &'a str,
        container_format: &'a str,
    ) -> Op<'a, ()> {
        let _ = (ctx, id, file, disk_format, container_format);
        Box::pin(async { Err(CatalogError::Failed("this box has no image service".into())) })
    }

    /// Bytes `owner` may still store under its image quota; `None`: no limit.
    fn quota_left<'a>(&'a self, owner: &'a model::ProjectId) -> Op<'a, Option<u64>> {
        let _ = owner;
        Box::pin(async { Ok(None) })
    }

    /// Deletes an image the compute service made (a failed snapshot, a rotated backup, the
    /// image of an unshelved server).
    fn delete_image<'a>(&'a self, ctx: &'a Context, id: &'a str) -> Op<'a, ()> {
        let _ = (ctx, id);
        Box::pin(async { Ok(()) })
    }

    /// The backups of `server` of type `backup_type` that `owner` (the server's project)
    /// owns, oldest first.
    fn backups<'a>(
        &'a self,
        server: &'a str,
        owner: &'a model::ProjectId,
        backup_type: &'a str,
    ) -> Op<'a, Vec<String>> {
        let _ = (server, owner, backup_type);
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Where a driver writes a snapshot before it is uploaded (on the same file system as
    /// the image store when there is one). Scratch files are named `.tmp-snapshot-…`, which
    /// the image store removes at start if a crash left one behind.
    fn scratch_dir(&self) -> PathBuf {
        std::env::temp_dir()
    }
}

/// A snapshot the stand-in catalog holds in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSnapshot {
    pub id: String,
    pub image: SnapshotImage,
    /// `queued`, `active` or `killed`.
    pub status: String,
    pub data: Vec<u8>,
    pub disk_format: String,
    pub container_format: String,
}

/// A fixed list of images, until the image service answers for itself.
#[derive(Clone, Debug, Default)]
pub struct StandinImages {
    pub images: Vec<ImageInfo>,
    /// Snapshots made by servers, kept in memory.
    pub snapshots: Arc<Mutex<Vec<StoredSnapshot>>>,
    /// Largest snapshot accepted, in bytes (`None`: no limit), to exercise the quota path.
    pub quota_bytes: Option<u64>,
}

impl StandinImages {
    pub fn new(images: Vec<ImageInfo>) -> Self {
        Self {
            images,
            ..Self::default()
        }
    }

    /// The snapshots held now.
    pub fn snapshots(&self) -> Vec<StoredSnapshot> {
        self.snapshots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn with_snapshots<T>(&self, f: impl FnOnce(&mut Vec<StoredSnapshot>) -> T) -> T {
        f(&mut self.snapshots.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl ImageCatalog for StandinImages {
    fn find<'a>(&'a self, _ctx: &'a Context, id: &'a str) -> Lookup<'a> {
        let found = self
            .images
            .iter()
            .find(|i| i.id == id)
            .cloned()
            .or_else(|| {
                self.with_snapshots(|s| {
                    s.iter()
                        .find(|x| x.id == id && x.status == "active")
                        .map(|x| ImageInfo {
                            id: x.id.clone(),
                            name: x.image.name.clone(),
                            min_disk_gb: x.image.min_disk_gb,
                            min_ram_mb: x.image.min_ram_mb,
                            size_bytes: x.data.len() as u64,
                            virtual_size_bytes: None,
                            properties: x.image.properties.clone().into_iter().collect(),
                        })
                })
            });
        Box::pin(async move { found })
    }

    fn create_snapshot<'a>(&'a self, _ctx: &'a Context, image: SnapshotImage) -> Op<'a, String> {
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        self.with_snapshots(|s| {
            s.push(StoredSnapshot {
                id: id.clone(),
                image,
                status: "queued".into(),
                data: Vec::new(),
                disk_format: String::new(),
                container_format: String::new(),
            })
        });
        Box::pin(async move { Ok(id) })
    }

    fn upload_snapshot<'a>(
        &'a self,
        _ctx: &'a Context,
        id: &'a str,
        file: &'a Path,
        disk_format: &'a str,
        container_format: &'a str,
    ) -> Op<'a, ()> {
        Box::pin(async move {
            let data = tokio::fs::read(file)
                .await
                .map_err(|e| CatalogError::Failed(format!("reading the snapshot: {e}")))?;
            let over = self.quota_bytes.is_some_and(|q| data.len() as u64 > q);
            self.with_snapshots(|s| {
                let x = s.iter_mut().find(|x| x.id == id).ok_or_else(|| {
                    CatalogError::NotFound(format!("No image found with ID {id}"))
                })?;
                if over {
                    x.status = "killed".into();
                    return Err(CatalogError::QuotaExceeded(
                        "Image storage quota exceeded.".into(),
                    ));
                }
                x.status = "active".into();
                x.data = data;
                x.disk_format = disk_format.into();
                x.container_format = container_format.into();
                Ok(())
            })
        })
    }

    fn quota_left<'a>(&'a self, owner: &'a model::ProjectId) -> Op<'a, Option<u64>> {
        let used: u64 = self.with_snapshots(|s| {
            s.iter()
                .filter(|x| x.image.owner == *owner)
                .map(|x| x.data.len() as u64)
                .sum()
        });
        let left = self.quota_bytes.map(|q| q.saturating_sub(used));
        Box::pin(async move { Ok(left) })
    }

    fn delete_image<'a>(&'a self, _ctx: &'a Context, id: &'a str) -> Op<'a, ()> {
        self.with_snapshots(|s| s.retain(|x| x.id != id));
        Box::pin(async { Ok(()) })
    }

    fn backups<'a>(
        &'a self,
        server: &'a str,
        owner: &'a model::ProjectId,
        backup_type: &'a str,
    ) -> Op<'a, Vec<String>> {
        let ids = self.with_snapshots(|s| {
            s.iter()
                .filter(|x| {
                    let p = &x.image.properties;
                    x.image.owner == *owner
                        && p.get("instance_uuid").map(String::as_str) == Some(server)
                        && p.get("image_type").map(String::as_str) == Some("backup")
                        && p.get("backup_type").map(String::as_str) == Some(backup_type)
                })
                .map(|x| x.id.clone())
                .collect()
        });
        Box::pin(async move { Ok(ids) })
    }
}

/// The image service answers for the images a server may boot.
impl ImageCatalog for image::Images {
    fn find<'a>(&'a self, ctx: &'a Context, id: &'a str) -> Lookup<'a> {
        Box::pin(async move {
            let id = model::image::ImageId::parse(id)?;
            let b = self.bootable(ctx, &id).await.ok()?;
            Some(ImageInfo {
                id: b.image.id.to_string(),
                name: b.image.name.clone().unwrap_or_default(),
                min_disk_gb: b.image.min_disk,
                min_ram_mb: b.image.min_ram,
                size_bytes: b.image.size.unwrap_or(0),
                virtual_size_bytes: b.image.virtual_size,
                properties: b.image.properties.into_iter().collect(),
            })
        })
    }

    fn find_linked<'a>(&'a self, ctx: &'a Context, id: &'a str) -> Lookup<'a> {
        Box::pin(async move {
            let iid = model::image::ImageId::parse(id)?;
            let img = self.get(ctx, &iid).await.ok()?;
            (img.status == model::image::ImageStatus::Active).then(|| ImageInfo {
                id: img.id.to_string(),
                name: img.name.clone().unwrap_or_default(),
                min_disk_gb: img.min_disk,
                min_ram_mb: img.min_ram,
                size_bytes: img.size.unwrap_or(0),
                virtual_size_bytes: img.virtual_size,
                properties: img.properties.into_iter().collect(),
            })
        })
    }

    fn file<'a>(&'a self, id: &'a str) -> FileLookup<'a> {
        Box::pin(async move {
            let id = model::image::ImageId::parse(id)?;
            let (img, path) = self.data_of(&id).await.ok()?;
            Some(image_file(img, path))
        })
    }

    fn file_for<'a>(&'a self, owner: &'a model::ProjectId, id: &'a str) -> FileLookup<'a> {
        Box::pin(async move {
            let id = model::image::ImageId::parse(id)?;
            let (img, path) = self.data_for(owner, &id).await.ok()?;
            Some(image_file(img, path))
        })
    }

    fn create_snapshot<'a>(&'a self, ctx: &'a Context, image: SnapshotImage) -> Op<'a, String> {
        Box::pin(async move {
            let img = self
                .create(
                    ctx,
                    image::NewImage {
                        name: Some(image.name),
                        owner: Some(image.owner),
                        visibility: Some(model::image::Visibility::Private),
                        min_disk: image.min_disk_gb,
                        min_ram: image.min_ram_mb,
                        properties: image.properties.into_iter().collect(),
                        ..Default::default()
                    },
                )
                .await
                .map_err(catalog_error)?;
            Ok(img.id.to_string())
        })
    }

    fn upload_snapshot<'a>(
        &'a self,
        ctx: &'a Context,
        id: &'a str,
        file: &'a Path,
        disk_format: &'a str,
        container_format: &'a str,
    ) -> Op<'a, ()> {
        Box::pin(async move {
            let iid = model::image::ImageId::parse(id)
                .ok_or_else(|| CatalogError::NotFound(format!("No image found with ID {id}")))?;
            let disk = model::image::DiskFormat::parse(disk_format).ok_or_else(|| {
                CatalogError::Failed(format!("unknown disk format {disk_format}"))
            })?;
            let container =
                model::image::ContainerFormat::parse(container_format).ok_or_else(|| {
                    CatalogError::Failed(format!("unknown container format {container_format}"))
                })?;
            self.update(
                ctx,
                &iid,
                vec![
                    image::Change::DiskFormat(Some(disk)),
                    image::Change::ContainerFormat(Some(container)),
                ],
            )
            .await
            .map_err(catalog_error)?;
            self.upload_file(ctx, &iid, file)
                .await
                .map_err(catalog_error)?;
            Ok(())
        })
    }

    fn quota_left<'a>(&'a self, owner: &'a model::ProjectId) -> Op<'a, Option<u64>> {
        Box::pin(async move {
            self.quota_left(owner)
                .await
                .map(Some)
                .map_err(catalog_error)
        })
    }

    fn delete_image<'a>(&'a self, ctx: &'a Context, id: &'a str) -> Op<'a, ()> {
        Box::pin(async move {
            let iid = model::image::ImageId::parse(id)
                .ok_or_else(|| CatalogError::NotFound(format!("No image found with ID {id}")))?;
            self.delete(ctx, &iid).await.map_err(catalog_error)
        })
    }

    fn backups<'a>(
        &'a self,
        server: &'a str,
        owner: &'a model::ProjectId,
        backup_type: &'a str,
    ) -> Op<'a, Vec<String>> {
        Box::pin(async move {
            let ids = self
                .ids_with_properties(
                    owner,
                    vec![
                        ("instance_uuid".into(), server.into()),
                        ("image_type".into(), "backup".into()),
                        ("backup_type".into(), backup_type.into()),
                    ],
                )
                .await
                .map_err(catalog_error)?;
            Ok(ids.into_iter().map(|i| i.to_string()).collect())
        })
    }

    fn scratch_dir(&self) -> PathBuf {
        self.config().dir.clone()
    }
}

fn catalog_error(e: image::Error) -> CatalogError {
    match e {
        image::Error::OverLimit(m) => CatalogError::QuotaExceeded(m),
        image::Error::NotFound(m) => CatalogError::NotFound(m),
        other => CatalogError::Failed(other.to_string()),
    }
}

/// What a backend is given of an active image: its data, formats, properties and the hash of
/// its content, which every cache of image content is keyed by.
fn image_file(img: model::image::Image, path: PathBuf) -> driver::ImageFile {
    driver::ImageFile {
        id: img.id.to_string(),
        path,
        disk_format: img
            .disk_format
            .map_or("", model::image::DiskFormat::as_str)
            .into(),
        container_format: img
            .container_format
            .map_or("", model::image::ContainerFormat::as_str)
            .into(),
        content_hash: match (img.os_hash_algo, img.os_hash_value) {
            (Some(algo), Some(hash)) => format!("{algo}-{hash}"),
            _ => String::new(),
        },
        properties: img.properties.into_iter().collect(),
    }
}
