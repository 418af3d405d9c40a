//! The image service: image records, their sharing, and the content store that holds their
//! data under `<data_dir>/images/`.
//!
//! Records live in SQLite (through `store`); data lives in one file per image, named by the
//! image id. An upload is streamed into a temporary file in the same directory while its MD5
//! and SHA-512 are computed, probed with `qemu-img`, synced and then renamed into place, so a
//! file under its final name is always complete and checked. An upload that fails for any
//! reason leaves no file behind and the image `killed`, as Glance does. See [`content`].
//!
//! Policy follows Glance's defaults under secure RBAC, decided with [`model::Context`]:
//! anyone in a project reads what it may see (own images, public and community ones, and those
//! shared with it); members of the owning project change them; only the cloud administrator
//! makes an image public or gives it to another project. An image the caller may not see is
//! reported as missing (404), never as forbidden, so its existence does not leak.

pub mod content;
pub mod list;
mod probe;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use model::Context;
use model::image::{
    ContainerFormat, DiskFormat, Image, ImageId, ImageMember, ImageStatus, MemberStatus, Visibility,
};
use model::{Persona, ProjectId};
use store::Store;
use store::image as sql;

pub use content::{ByteRange, Content};
pub use list::{ListQuery, MemberFilter, Page, SortDir, SortKey, TimeOp, VisibilityFilter};

/// Glance's default limits (`image_property_quota`, `image_tag_quota`, `image_member_quota`).
pub const MAX_PROPERTIES: usize = 128;
pub const MAX_TAGS: usize = 128;
pub const MAX_MEMBERS: u64 = 128;
/// Longest name, tag or property key Glance's schema allows.
pub const MAX_STRING: usize = 255;
/// Longest property value Glance stores.
pub const MAX_VALUE: usize = 65_535;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// A quota (bytes, properties, tags, members) would be exceeded.
    #[error("{0}")]
    OverLimit(String),
    /// A `Range` the data cannot satisfy; carries the data's size.
    #[error("requested range not satisfiable")]
    RangeNotSatisfiable(u64),
    /// The request body failed midway (the client went away or sent a broken stream).
    #[error("upload interrupted: {0}")]
    Interrupted(String),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("content store: {0}")]
    Io(#[from] std::io::Error),
    #[error("image probe failed: {0}")]
    Probe(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn not_found(id: &ImageId) -> Error {
    Error::NotFound(format!("No image found with ID {id}"))
}

fn forbidden() -> Error {
    Error::Forbidden("You are not authorized to complete this action.".into())
}

#[derive(Clone, Debug)]
pub struct ImageConfig {
    /// The content store: `<data_dir>/images`.
    pub dir: PathBuf,
    /// Total bytes of image data each project may store.
    pub quota_bytes: u64,
    /// The `qemu-img` used to probe uploads.
    pub qemu_img: PathBuf,
}

/// Default per-project quota: 100 GiB.
pub const DEFAULT_QUOTA_BYTES: u64 = 100 << 30;

#[derive(Clone)]
pub struct Images {
    store: Store,
    cfg: Arc<ImageConfig>,
    /// Bytes received so far by uploads in progress, per owning project. They count against
    /// the quota together with the stored images, so parallel uploads cannot overrun it.
    in_flight: Arc<Mutex<HashMap<ProjectId, u64>>>,
}

/// An active image ready to boot; see [`Images::bootable`].
#[derive(Clone, Debug)]
pub struct Bootable {
    pub image: Image,
    pub backend: model::image::Backend,
    pub path: PathBuf,
}

/// What a caller gives to create an image.
#[derive(Clone, Debug, Default)]
pub struct NewImage {
    pub id: Option<ImageId>,
    pub name: Option<String>,
    pub owner: Option<ProjectId>,
    pub visibility: Option<Visibility>,
    pub protected: bool,
    pub os_hidden: bool,
    pub disk_format: Option<DiskFormat>,
    pub container_format: Option<ContainerFormat>,
    pub min_disk: u64,
    pub min_ram: u64,
    pub tags: Vec<String>,
    pub properties: Vec<(String, String)>,
}

/// One change of an update (a JSON-patch operation once the API has read it).
#[derive(Clone, Debug)]
pub enum Change {
    Name(Option<String>),
    Visibility(Visibility),
    Protected(bool),
    OsHidden(bool),
    MinDisk(u64),
    MinRam(u64),
    DiskFormat(Option<DiskFormat>),
    ContainerFormat(Option<ContainerFormat>),
    Tags(Vec<String>),
    Owner(ProjectId),
    /// Sets a custom property; with `must_exist` (a JSON-patch `replace`) a missing one is a
    /// conflict.
    SetProperty {
        key: String,
        value: String,
        must_exist: bool,
    },
    RemoveProperty(String),
}

impl Images {
    /// Opens the content store, creating its directory, and reconciles it with the database:
    /// temporary files of interrupted uploads and files of images that hold no data are
    /// removed, and images left `saving` by a crash become `killed`.
    pub async fn open(store: Store, cfg: ImageConfig) -> Result<Self> {
        let images = Self {
            store,
            cfg: Arc::new(cfg),
            in_flight: Arc::default(),
        };
        let keep = images
            .store
            .write(|tx| {
                let n = sql::kill_interrupted_uploads(tx, Utc::now())?;
                if n > 0 {
                    tracing::warn!(images = n, "uploads interrupted by a restart marked killed");
                }
                sql::ids_with_data(tx)
            })
            .await?;
        let dir = images.cfg.dir.clone();
        tokio::task::spawn_blocking(move || content::reconcile(&dir, &keep))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))??;
        // Without qemu-img every disk image upload fails; say so at start, not at the first
        // upload.
        let probe = tokio::process::Command::new(&images.cfg.qemu_img)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await;
        if !probe.is_ok_and(|s| s.success()) {
            tracing::warn!(
                qemu_img = %images.cfg.qemu_img.display(),
                "qemu-img not found: image uploads will fail (install qemu-utils)"
            );
        }
        Ok(images)
    }

    pub fn config(&self) -> &ImageConfig {
        &self.cfg
    }

    // ---- records ------------------------------------------------------------------------

    pub async fn create(&self, ctx: &Context, new: NewImage) -> Result<Image> {
        let Some(project) = ctx.project_id.clone() else {
            return Err(forbidden());
        };
        if !ctx.has(Persona::Member) {
            return Err(forbidden());
        }
        let owner = match new.owner {
            Some(o) if o != project && !ctx.is_admin() => {
                return Err(Error::Forbidden(
                    "You are not permitted to create images owned by another project.".into(),
                ));
            }
            Some(o) => o,
            None => project,
        };
        // Glance's default visibility since Ocata: shareable, but shared with nobody yet.
        let visibility = new.visibility.unwrap_or(Visibility::Shared);
        check_visibility(ctx, visibility)?;
        let now = Utc::now();
        let mut img = Image {
            id: new.id.unwrap_or_else(ImageId::generate),
            name: new.name,
            owner,
            status: ImageStatus::Queued,
            visibility,
            protected: new.protected,
            os_hidden: new.os_hidden,
            disk_format: new.disk_format,
            container_format: new.container_format,
            min_disk: new.min_disk,
            min_ram: new.min_ram,
            size: None,
            virtual_size: None,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            created_at: now,
            updated_at: now,
            tags: Vec::new(),
            properties: new.properties.into_iter().collect(),
        };
        img.tags = normalize_tags(new.tags)?;
        validate(&img)?;
        let id = img.id.clone();
        let out = img.clone();
        self.store
            .write(move |tx| sql::insert_image(tx, &img))
            .await
            .map_err(|e| match e {
                store::Error::Conflict(_) => {
                    Error::Conflict(format!("Image with identifier {id} already exists!"))
                }
                e => e.into(),
            })?;
        Ok(out)
    }

    /// The image and the caller's membership in it, if the caller may see it.
    async fn visible(&self, ctx: &Context, id: &ImageId) -> Result<Image> {
        let (iid, project) = (id.clone(), ctx.project_id.clone());
        let (img, member) = self
            .store
            .read(move |c| {
                let img = sql::get_image(c, &iid)?;
                let member = match &project {
                    Some(p) => sql::get_member(c, &iid, p)?.map(|m| m.status),
                    None => None,
                };
                Ok((img, member))
            })
            .await?;
        match img {
            Some(img) if can_see(ctx, &img, member) => Ok(img),
            _ => Err(not_found(id)),
        }
    }

    pub async fn get(&self, ctx: &Context, id: &ImageId) -> Result<Image> {
        self.visible(ctx, id).await
    }

    /// Reads the image, lets `f` decide on it, and writes what `f` returns, all in one write
    /// transaction, so no concurrent change is lost between the check and the write.
    async fn modify<F>(&self, ctx: &Context, id: &ImageId, f: F) -> Result<Image>
    where
        F: FnOnce(&Context, Image) -> Result<Image> + Send + 'static,
    {
        let ctx = ctx.clone();
        let iid = id.clone();
        self.store
            .write(move |tx| {
                let project = ctx.project_id.clone();
                let Some(img) = sql::get_image(tx, &iid)? else {
                    return Ok(Err(not_found(&iid)));
                };
                let member = match &project {
                    Some(p) => sql::get_member(tx, &iid, p)?.map(|m| m.status),
                    None => None,
                };
                if !can_see(&ctx, &img, member) {
                    return Ok(Err(not_found(&iid)));
                }
                if !ctx.can_write(&img.owner) {
                    return Ok(Err(forbidden()));
                }
                match f(&ctx, img) {
                    Ok(mut new) => {
                        new.updated_at = Utc::now();
                        sql::update_image(tx, &new)?;
                        Ok(Ok(new))
                    }
                    Err(e) => Ok(Err(e)),
                }
            })
            .await?
    }

    pub async fn update(&self, ctx: &Context, id: &ImageId, changes: Vec<Change>) -> Result<Image> {
        self.modify(ctx, id, move |ctx, mut img| {
            for ch in changes {
                apply(ctx, &mut img, ch)?;
            }
            validate(&img)?;
            Ok(img)
        })
        .await
    }

    pub async fn delete(&self, ctx: &Context, id: &ImageId) -> Result<()> {
        let c = ctx.clone();
        let iid = id.clone();
        self.store
            .write(move |tx| {
                let Some(img) = sql::get_image(tx, &iid)? else {
                    return Ok(Err(not_found(&iid)));
                };
                let member = match &c.project_id {
                    Some(p) => sql::get_member(tx, &iid, p)?.map(|m| m.status),
                    None => None,
                };
                if !can_see(&c, &img, member) {
                    return Ok(Err(not_found(&iid)));
                }
                if !c.can_write(&img.owner) {
                    return Ok(Err(forbidden()));
                }
                if img.protected {
                    return Ok(Err(Error::Forbidden(format!(
                        "Image {iid} is protected and cannot be deleted."
                    ))));
                }
                sql::delete_image(tx, &iid)?;
                Ok(Ok(()))
            })
            .await??;
        // The record is gone first, so no reader can be sent to a half-deleted file. An upload
        // still running for this image notices the missing record and discards its data.
        let path = content::data_path(&self.cfg.dir, id);
        tokio::task::spawn_blocking(move || content::remove_quietly(&path))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        Ok(())
    }

    pub async fn deactivate(&self, ctx: &Context, id: &ImageId) -> Result<()> {
        self.modify(ctx, id, |_, mut img| match img.status {
            ImageStatus::Active | ImageStatus::Deactivated => {
                img.status = ImageStatus::Deactivated;
                Ok(img)
            }
            s => Err(Error::Forbidden(format!(
                "Not allowed to deactivate image in status '{s}'"
            ))),
        })
        .await
        .map(drop)
    }

    pub async fn reactivate(&self, ctx: &Context, id: &ImageId) -> Result<()> {
        self.modify(ctx, id, |_, mut img| match img.status {
            ImageStatus::Active | ImageStatus::Deactivated => {
                img.status = ImageStatus::Active;
                Ok(img)
            }
            s => Err(Error::Forbidden(format!(
                "Not allowed to reactivate image in status '{s}'"
            ))),
        })
        .await
        .map(drop)
    }

    pub async fn add_tag(&self, ctx: &Context, id: &ImageId, tag: String) -> Result<()> {
        self.modify(ctx, id, move |_, mut img| {
            if !img.tags.contains(&tag) {
                img.tags.push(tag);
            }
            img.tags = normalize_tags(std::mem::take(&mut img.tags))?;
            Ok(img)
        })
        .await
        .map(drop)
    }

    pub async fn remove_tag(&self, ctx: &Context, id: &ImageId, tag: String) -> Result<()> {
        self.modify(ctx, id, move |_, mut img| {
            let before = img.tags.len();
            img.tags.retain(|t| *t != tag);
            if img.tags.len() == before {
                return Err(Error::NotFound(format!("Tag {tag} not found")));
            }
            Ok(img)
        })
        .await
        .map(drop)
    }

    /// What a compute driver needs to boot from an image: the record, which backend it suits
    /// and the path of its checked data. Only an active image the caller may see qualifies.
    /// The file must be read with the image's declared format passed explicitly (never
    /// probed), the rule the upload check relies on.
    pub async fn bootable(&self, ctx: &Context, id: &ImageId) -> Result<Bootable> {
        let image = self.visible(ctx, id).await?;
        if image.status != ImageStatus::Active {
            return Err(Error::BadRequest(format!("Image {id} is not active.")));
        }
        let Some(backend) = image.backend() else {
            return Err(Error::BadRequest(format!(
                "Image {id} ({}/{}) suits no backend of this box.",
                image.disk_format.map_or("none", DiskFormat::as_str),
                image
                    .container_format
                    .map_or("none", ContainerFormat::as_str),
            )));
        };
        Ok(Bootable {
            path: content::data_path(&self.cfg.dir, id),
            backend,
            image,
        })
    }

    /// An active image's record and the path of its data, whoever owns it: for the compute
    /// service, which checked at create time that the caller may boot it, and for kernels
    /// and ramdisks that a bootable image names.
    pub async fn data_of(&self, id: &ImageId) -> Result<(Image, PathBuf)> {
        let iid = id.clone();
        let image = self
            .store
            .read(move |c| sql::get_image(c, &iid))
            .await?
            .ok_or_else(|| Error::NotFound(format!("No image found with ID {id}")))?;
        if image.status != ImageStatus::Active {
            return Err(Error::BadRequest(format!("Image {id} is not active.")));
        }
        Ok((image, content::data_path(&self.cfg.dir, id)))
    }

    /// An active image's record and the path of its data if project `owner` may see it (its
    /// own, public, community, or shared with it): for what a server's image links to and
    /// its rescue image, resolved in the background with the server owner's visibility.
    pub async fn data_for(&self, owner: &ProjectId, id: &ImageId) -> Result<(Image, PathBuf)> {
        let (iid, project) = (id.clone(), owner.clone());
        let (img, member) = self
            .store
            .read(move |c| {
                let img = sql::get_image(c, &iid)?;
                let member = sql::get_member(c, &iid, &project)?.map(|m| m.status);
                Ok((img, member))
            })
            .await?;
        let image = match img {
            Some(img)
                if img.owner == *owner
                    || matches!(img.visibility, Visibility::Public | Visibility::Community)
                    || (img.visibility == Visibility::Shared && member.is_some()) =>
            {
                img
            }
            _ => return Err(not_found(id)),
        };
        if image.status != ImageStatus::Active {
            return Err(Error::BadRequest(format!("Image {id} is not active.")));
        }
        Ok((image, content::data_path(&self.cfg.dir, id)))
    }

    /// Bytes `owner` may still store under its image quota (uploads under way count as
    /// stored).
    pub async fn quota_left(&self, owner: &ProjectId) -> Result<u64> {
        let o = owner.clone();
        let used = self.store.read(move |c| sql::usage(c, &o)).await?;
        Ok(self
            .cfg
            .quota_bytes
            .saturating_sub(used)
            .saturating_sub(self.in_flight(owner)))
    }

    /// Stores the data of queued image `id` from a file on this host (a server snapshot),
    /// with the same checks, hashing and quota as an upload; the file is left in place.
    pub async fn upload_file(
        &self,
        ctx: &Context,
        id: &ImageId,
        file: &std::path::Path,
    ) -> Result<Image> {
        let f = tokio::fs::File::open(file).await?;
        let len = f.metadata().await?.len();
        let body = futures_util::stream::unfold(Some(f), |f| async move {
            use tokio::io::AsyncReadExt;
            let mut f = f?;
            let mut buf = vec![0u8; 1 << 20];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(bytes::Bytes::from(buf)), Some(f)))
                }
                Err(e) => Some((Err(e), None)),
            }
        });
        self.upload(ctx, id, Some(len), body).await
    }

    /// The images of `owner` holding every property of `props`, oldest first (for the
    /// compute service's backup rotation, which must never count, nor delete, an image of
    /// another project that names the same server).
    pub async fn ids_with_properties(
        &self,
        owner: &ProjectId,
        props: Vec<(String, String)>,
    ) -> Result<Vec<ImageId>> {
        let owner = owner.clone();
        Ok(self
            .store
            .read(move |c| {
                let p: Vec<(&str, &str)> = props
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                sql::ids_with_properties(c, &owner, &p)
            })
            .await?)
    }

    // ---- members ------------------------------------------------------------------------

    /// The image, if the caller may see it and it is shared (the only kind with members).
    async fn shared(&self, ctx: &Context, id: &ImageId) -> Result<Image> {
        let img = self.visible(ctx, id).await?;
        if img.visibility != Visibility::Shared {
            return Err(Error::Forbidden("Only shared images have members.".into()));
        }
        Ok(img)
    }

    pub async fn add_member(
        &self,
        ctx: &Context,
        id: &ImageId,
        member: ProjectId,
    ) -> Result<ImageMember> {
        let img = self.shared(ctx, id).await?;
        if !ctx.can_write(&img.owner) {
            return Err(forbidden());
        }
        let now = Utc::now();
        let m = ImageMember {
            image_id: id.clone(),
            member,
            status: MemberStatus::Pending,
            created_at: now,
            updated_at: now,
        };
        let row = m.clone();
        self.store
            .write(move |tx| {
                if sql::get_member(tx, &row.image_id, &row.member)?.is_some() {
                    return Ok(Err(Error::Conflict(format!(
                        "Member {} already exists for image {}.",
                        row.member, row.image_id
                    ))));
                }
                if sql::count_members(tx, &row.image_id)? >= MAX_MEMBERS {
                    return Ok(Err(Error::OverLimit(format!(
                        "Maximum number of members ({MAX_MEMBERS}) reached for this image."
                    ))));
                }
                sql::insert_member(tx, &row)?;
                Ok(Ok(()))
            })
            .await??;
        Ok(m)
    }

    /// The owner sees every member; a member sees only itself.
    pub async fn list_members(&self, ctx: &Context, id: &ImageId) -> Result<Vec<ImageMember>> {
        let img = self.shared(ctx, id).await?;
        let iid = id.clone();
        let all = self.store.read(move |c| sql::list_members(c, &iid)).await?;
        if ctx.can_read(&img.owner) {
            return Ok(all);
        }
        Ok(all
            .into_iter()
            .filter(|m| ctx.project_id.as_ref() == Some(&m.member))
            .collect())
    }

    pub async fn get_member(
        &self,
        ctx: &Context,
        id: &ImageId,
        member: &ProjectId,
    ) -> Result<ImageMember> {
        let img = self.shared(ctx, id).await?;
        let missing = || Error::NotFound(format!("Member {member} not found for image {id}."));
        if !ctx.can_read(&img.owner) && ctx.project_id.as_ref() != Some(member) {
            return Err(missing());
        }
        let (iid, mid) = (id.clone(), member.clone());
        self.store
            .read(move |c| sql::get_member(c, &iid, &mid))
            .await?
            .ok_or_else(missing)
    }

    /// Accepting or rejecting is the member project's own decision, not the owner's.
    pub async fn update_member(
        &self,
        ctx: &Context,
        id: &ImageId,
        member: &ProjectId,
        status: MemberStatus,
    ) -> Result<ImageMember> {
        let mut m = self.get_member(ctx, id, member).await?;
        let is_member = ctx.project_id.as_ref() == Some(member) && ctx.has(Persona::Member);
        if !is_member && !ctx.is_admin() {
            return Err(Error::Forbidden(
                "Only the member project may change its membership status.".into(),
            ));
        }
        m.status = status;
        m.updated_at = Utc::now();
        let row = m.clone();
        self.store
            .write(move |tx| sql::update_member(tx, &row))
            .await?;
        Ok(m)
    }

    pub async fn remove_member(
        &self,
        ctx: &Context,
        id: &ImageId,
        member: &ProjectId,
    ) -> Result<()> {
        let img = self.shared(ctx, id).await?;
        if !ctx.can_write(&img.owner) {
            return Err(forbidden());
        }
        let (iid, mid) = (id.clone(), member.clone());
        let gone = self
            .store
            .write(move |tx| sql::delete_member(tx, &iid, &mid))
            .await?;
        if !gone {
            return Err(Error::NotFound(format!(
                "Member {member} not found for image {id}."
            )));
        }
        Ok(())
    }

    // ---- quota bookkeeping --------------------------------------------------------------

    fn in_flight(&self, owner: &ProjectId) -> u64 {
        self.in_flight
            .lock()
            .map(|m| m.get(owner).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

/// May the caller see this image? `member` is the caller's membership status, if any.
fn can_see(ctx: &Context, img: &Image, member: Option<MemberStatus>) -> bool {
    if ctx.is_admin() {
        return true;
    }
    if ctx.project_id.is_none() || !ctx.has(Persona::Reader) {
        return false;
    }
    ctx.can_read(&img.owner)
        || matches!(img.visibility, Visibility::Public | Visibility::Community)
        || (img.visibility == Visibility::Shared && member.is_some())
}

/// Only the cloud administrator publishes images to everyone (Glance's `publicize_image`).
fn check_visibility(ctx: &Context, v: Visibility) -> Result<()> {
    if v == Visibility::Public && !ctx.is_admin() {
        return Err(Error::Forbidden(
            "You are not authorized to complete publicize_image action.".into(),
        ));
    }
    Ok(())
}

fn apply(ctx: &Context, img: &mut Image, ch: Change) -> Result<()> {
    // Formats describe the data; once data is stored they are fixed, as in Glance.
    let formats_fixed = img.status != ImageStatus::Queued;
    match ch {
        Change::Name(n) => img.name = n,
        Change::Visibility(v) => {
            if v != img.visibility {
                check_visibility(ctx, v)?;
            }
            img.visibility = v;
        }
        Change::Protected(p) => img.protected = p,
        Change::OsHidden(h) => img.os_hidden = h,
        Change::MinDisk(v) => img.min_disk = v,
        Change::MinRam(v) => img.min_ram = v,
        Change::DiskFormat(f) => {
            if f != img.disk_format && formats_fixed {
                return Err(Error::Forbidden(
                    "Attribute disk_format can be only replaced for a queued image.".into(),
                ));
            }
            img.disk_format = f;
        }
        Change::ContainerFormat(f) => {
            if f != img.container_format && formats_fixed {
                return Err(Error::Forbidden(
                    "Attribute container_format can be only replaced for a queued image.".into(),
                ));
            }
            img.container_format = f;
        }
        Change::Tags(t) => img.tags = normalize_tags(t)?,
        Change::Owner(o) => {
            if o != img.owner && !ctx.is_admin() {
                return Err(Error::Forbidden(
                    "Only the cloud administrator may change an image's owner.".into(),
                ));
            }
            img.owner = o;
        }
        Change::SetProperty {
            key,
            value,
            must_exist,
        } => {
            if must_exist && !img.properties.contains_key(&key) {
                return Err(Error::Conflict(format!("Property {key} does not exist.")));
            }
            img.properties.insert(key, value);
        }
        Change::RemoveProperty(key) => {
            if img.properties.remove(&key).is_none() {
                return Err(Error::Conflict(format!("Property {key} does not exist.")));
            }
        }
    }
    Ok(())
}

/// Tags are a set: duplicates collapse, order is kept.
fn normalize_tags(tags: Vec<String>) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for t in tags {
        if t.is_empty() || t.chars().count() > MAX_STRING {
            return Err(Error::BadRequest(format!(
                "Invalid tag {t:?}: a tag is 1 to {MAX_STRING} characters."
            )));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.len() > MAX_TAGS {
        return Err(Error::OverLimit(format!(
            "Maximum number of tags exceeded. Attempted: {}, Maximum: {MAX_TAGS}",
            out.len()
        )));
    }
    Ok(out)
}

fn validate(img: &Image) -> Result<()> {
    if let Some(n) = &img.name
        && n.chars().count() > MAX_STRING
    {
        return Err(Error::BadRequest(format!(
            "Invalid name: longer than {MAX_STRING} characters."
        )));
    }
    if img.properties.len() > MAX_PROPERTIES {
        return Err(Error::OverLimit(format!(
            "Maximum number of properties exceeded. Attempted: {}, Maximum: {MAX_PROPERTIES}",
            img.properties.len()
        )));
    }
    for (k, v) in &img.properties {
        if k.is_empty() || k.chars().count() > MAX_STRING || v.len() > MAX_VALUE {
            return Err(Error::BadRequest(format!("Invalid property {k:?}.")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::image::ImageStatus;

    fn ctx(project: &str, persona: Persona) -> Context {
        Context {
            user_id: model::UserId::new("u"),
            user_name: "u".into(),
            user_domain_id: model::DomainId::default_domain(),
            project_id: Some(ProjectId::new(project)),
            roles: vec![],
            persona: Some(persona),
        }
    }

    async fn images(dir: &std::path::Path, store: Store) -> Images {
        Images::open(
            store,
            ImageConfig {
                dir: dir.join("images"),
                quota_bytes: 1 << 20,
                qemu_img: "qemu-img".into(),
            },
        )
        .await
        .expect("open")
    }

    fn chunks(
        n: usize,
        size: usize,
    ) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
        futures_util::stream::iter((0..n).map(move |i| Ok(bytes::Bytes::from(vec![i as u8; size]))))
    }

    #[tokio::test]
    async fn a_restart_kills_interrupted_uploads_and_removes_stray_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("db")).expect("db");
        let imgs = images(dir.path(), store.clone()).await;
        let c = ctx("p", Persona::Member);
        let new = || NewImage {
            name: Some("x".into()),
            disk_format: Some(DiskFormat::Raw),
            container_format: Some(ContainerFormat::Bare),
            ..Default::default()
        };
        let kept = imgs.create(&c, new()).await.expect("create");
        imgs.upload(&c, &kept.id, None, chunks(4, 1000))
            .await
            .expect("upload");
        // What a crash mid-upload leaves: an image `saving`, a temporary file, and the file of
        // an image that never became active.
        let cut = imgs.create(&c, new()).await.expect("create");
        let cut_id = cut.id.clone();
        store
            .write(move |tx| {
                let mut img = sql::get_image(tx, &cut_id)?.expect("image");
                img.status = ImageStatus::Saving;
                sql::update_image(tx, &img).map(drop)
            })
            .await
            .expect("saving");
        let images_dir = dir.path().join("images");
        std::fs::write(images_dir.join(format!(".tmp-{}-x", cut.id)), b"half").expect("tmp");
        std::fs::write(images_dir.join(cut.id.as_str()), b"orphan").expect("orphan");

        let imgs = images(dir.path(), store).await;
        assert_eq!(
            imgs.get(&c, &cut.id).await.expect("get").status,
            ImageStatus::Killed
        );
        let mut files: Vec<_> = std::fs::read_dir(&images_dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, vec![kept.id.to_string()]);
        let got = imgs.get(&c, &kept.id).await.expect("kept");
        assert_eq!((got.status, got.size), (ImageStatus::Active, Some(4000)));
        let boot = imgs.bootable(&c, &kept.id).await.expect("bootable");
        assert_eq!(boot.backend, model::image::Backend::Vm);
        assert_eq!(std::fs::metadata(&boot.path).expect("data").len(), 4000);
        assert!(matches!(
            imgs.bootable(&c, &cut.id).await,
            Err(Error::BadRequest(_))
        ));
    }

    #[tokio::test]
    async fn parallel_uploads_share_the_quota() {
        let dir = tempfile::tempdir().expect("tmp");
        let imgs = images(dir.path(), Store::open_in_memory().expect("db")).await;
        let c = ctx("p", Persona::Member);
        let mut ids = Vec::new();
        for _ in 0..2 {
            let img = imgs
                .create(
                    &c,
                    NewImage {
                        disk_format: Some(DiskFormat::Raw),
                        container_format: Some(ContainerFormat::Bare),
                        ..Default::default()
                    },
                )
                .await
                .expect("create");
            ids.push(img.id);
        }
        // Two uploads of 640 KiB each against a 1 MiB quota: they cannot both succeed.
        let (a, b) = tokio::join!(
            imgs.upload(&c, &ids[0], None, chunks(10, 64 * 1024)),
            imgs.upload(&c, &ids[1], None, chunks(10, 64 * 1024)),
        );
        assert!(a.is_ok() != b.is_ok(), "{a:?} / {b:?}");
        assert!(matches!(a.err().or(b.err()), Some(Error::OverLimit(_))));
        assert!(imgs.in_flight.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn deleting_an_image_during_its_upload_discards_the_data() {
        let dir = tempfile::tempdir().expect("tmp");
        let imgs = images(dir.path(), Store::open_in_memory().expect("db")).await;
        let c = ctx("p", Persona::Member);
        let img = imgs
            .create(
                &c,
                NewImage {
                    disk_format: Some(DiskFormat::Raw),
                    container_format: Some(ContainerFormat::Bare),
                    ..Default::default()
                },
            )
            .await
            .expect("create");
        // A body the test feeds by hand, so the delete lands mid-upload.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let up = {
            let (imgs, c, id) = (imgs.clone(), c.clone(), img.id.clone());
            tokio::spawn(async move { imgs.upload(&c, &id, None, body).await })
        };
        tx.send(Ok(bytes::Bytes::from(vec![1u8; 1000])))
            .await
            .expect("send");
        // Wait until the upload has begun (the image is `saving`).
        for _ in 0..100 {
            if imgs.get(&c, &img.id).await.expect("get").status == ImageStatus::Saving {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        imgs.delete(&c, &img.id).await.expect("delete");
        drop(tx);
        let r = up.await.expect("join");
        assert!(matches!(r, Err(Error::Conflict(_))), "{r:?}");
        let left = std::fs::read_dir(dir.path().join("images"))
            .expect("dir")
            .count();
        assert_eq!(left, 0);
    }

    #[tokio::test]
    async fn readers_read_and_strangers_see_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let imgs = images(dir.path(), Store::open_in_memory().expect("db")).await;
        let owner = ctx("p", Persona::Member);
        let img = imgs
            .create(&owner, NewImage::default())
            .await
            .expect("create");
        let reader = ctx("p", Persona::Reader);
        assert!(imgs.get(&reader, &img.id).await.is_ok());
        assert!(matches!(
            imgs.update(&reader, &img.id, vec![Change::Name(None)])
                .await,
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            imgs.create(&reader, NewImage::default()).await,
            Err(Error::Forbidden(_))
        ));
        let stranger = ctx("q", Persona::Member);
        assert!(matches!(
            imgs.get(&stranger, &img.id).await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            imgs.delete(&stranger, &img.id).await,
            Err(Error::NotFound(_))
        ));
    }
}
