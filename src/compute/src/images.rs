//! How the compute service finds images: through the image service, behind a trait so that
//! the compute service does not depend on its storage.

use std::future::Future;
use std::pin::Pin;

use identity::Context;

/// What the compute service needs to know of an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub id: String,
    pub name: String,
    pub min_disk_gb: u64,
    pub min_ram_mb: u64,
    pub size_bytes: u64,
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

pub type Lookup<'a> = Pin<Box<dyn Future<Output = Option<ImageInfo>> + Send + 'a>>;
pub type FileLookup<'a> = Pin<Box<dyn Future<Output = Option<driver::ImageFile>> + Send + 'a>>;

pub trait ImageCatalog: Send + Sync {
    /// The image `id` if the caller may boot it (visibility and membership respected) and it
    /// is active.
    fn find<'a>(&'a self, ctx: &'a Context, id: &'a str) -> Lookup<'a>;

    /// The data of active image `id`, for a backend; no caller check (the caller was
    /// checked when the server was created). `None` when the catalog keeps no data.
    fn file<'a>(&'a self, id: &'a str) -> FileLookup<'a> {
        let _ = id;
        Box::pin(async { None })
    }
}

/// A fixed list of images, until the image service answers for itself.
#[derive(Clone, Debug, Default)]
pub struct StandinImages {
    pub images: Vec<ImageInfo>,
}

impl ImageCatalog for StandinImages {
    fn find<'a>(&'a self, _ctx: &'a Context, id: &'a str) -> Lookup<'a> {
        let found = self.images.iter().find(|i| i.id == id).cloned();
        Box::pin(async move { found })
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
                properties: b.image.properties.into_iter().collect(),
            })
        })
    }

    fn file<'a>(&'a self, id: &'a str) -> FileLookup<'a> {
        Box::pin(async move {
            let id = model::image::ImageId::parse(id)?;
            let (img, path) = self.data_of(&id).await.ok()?;
            Some(driver::ImageFile {
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
                properties: img.properties.into_iter().collect(),
            })
        })
    }
}
