//! Image records: what the image service stores about an image, independent of Glance's JSON.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::ProjectId;

/// The id of an image. Glance ids are hyphenated UUIDs, and the id also names the image's file
/// in the content store, so only a well-formed UUID is ever accepted as one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageId(String);

impl ImageId {
    /// A fresh random id in Glance's hyphenated form.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    /// Accepts only a UUID (in any of its spellings) and keeps its canonical hyphenated
    /// lower-case form, so the id is always safe to use as a file name.
    pub fn parse(s: &str) -> Option<Self> {
        uuid::Uuid::parse_str(s)
            .ok()
            .map(|u| Self(u.hyphenated().to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! str_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(
    /// Glance's image states. onebox never uses `uploading`/`importing` (no import API) nor
    /// `pending_delete` (deletes are immediate).
    ImageStatus {
        Queued = "queued",
        Saving = "saving",
        Active = "active",
        Killed = "killed",
        Deactivated = "deactivated",
        Deleted = "deleted",
    }
);

str_enum!(
    /// Who may see an image.
    Visibility {
        Public = "public",
        Community = "community",
        Shared = "shared",
        Private = "private",
    }
);

str_enum!(
    /// Glance's default `disk_formats`.
    DiskFormat {
        Ami = "ami",
        Ari = "ari",
        Aki = "aki",
        Vhd = "vhd",
        Vhdx = "vhdx",
        Vmdk = "vmdk",
        Raw = "raw",
        Qcow2 = "qcow2",
        Vdi = "vdi",
        Iso = "iso",
        Ploop = "ploop",
    }
);

str_enum!(
    /// Glance's default `container_formats`.
    ContainerFormat {
        Ami = "ami",
        Ari = "ari",
        Aki = "aki",
        Bare = "bare",
        Ovf = "ovf",
        Ova = "ova",
        Docker = "docker",
        Compressed = "compressed",
    }
);

str_enum!(
    /// A member project's answer to an image shared with it.
    MemberStatus {
        Pending = "pending",
        Accepted = "accepted",
        Rejected = "rejected",
    }
);

/// Which onebox backend can boot an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A disk for a virtual machine (qcow2 or raw).
    Vm,
    /// A root filesystem tarball for a container.
    Container,
}

/// The property that marks a raw, bare image as a container root filesystem tarball.
pub const ROOTFS_PROPERTY: &str = "onebox_rootfs";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub id: ImageId,
    pub name: Option<String>,
    pub owner: ProjectId,
    pub status: ImageStatus,
    pub visibility: Visibility,
    pub protected: bool,
    pub os_hidden: bool,
    pub disk_format: Option<DiskFormat>,
    pub container_format: Option<ContainerFormat>,
    pub min_disk: u64,
    pub min_ram: u64,
    /// Set once the data is stored; `None` before.
    pub size: Option<u64>,
    pub virtual_size: Option<u64>,
    /// The MD5 of the data, hex.
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub tags: Vec<String>,
    /// Custom properties: Glance shows them as top-level keys of the image.
    pub properties: BTreeMap<String, String>,
}

impl Image {
    /// The backend this image suits, if any. qcow2 and raw disks boot as VMs; a raw, bare
    /// image with `onebox_rootfs=true` is a root filesystem tarball and runs as a container.
    /// Every other format is stored and served but boots nowhere on this box.
    pub fn backend(&self) -> Option<Backend> {
        let bare = self.container_format == Some(ContainerFormat::Bare);
        // Nova's libvirt-LXC convention (`hypervisor_type=lxc`) marks a rootfs as well.
        let rootfs = self
            .properties
            .get(ROOTFS_PROPERTY)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || self
                .properties
                .get("hypervisor_type")
                .is_some_and(|v| v.eq_ignore_ascii_case("lxc"));
        match self.disk_format {
            Some(DiskFormat::Raw) if bare && rootfs => Some(Backend::Container),
            Some(DiskFormat::Raw | DiskFormat::Qcow2) if bare => Some(Backend::Vm),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageMember {
    pub image_id: ImageId,
    pub member: ProjectId,
    pub status: MemberStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_canonical_uuids() {
        let id = ImageId::parse("8A3C1B2E-0000-4000-8000-00000000000A").expect("uuid");
        assert_eq!(id.as_str(), "8a3c1b2e-0000-4000-8000-00000000000a");
        assert!(ImageId::parse("../../etc/passwd").is_none());
        assert!(ImageId::parse(ImageId::generate().as_str()).is_some());
    }

    #[test]
    fn backends_follow_formats_and_the_rootfs_property() {
        let mut img = Image {
            id: ImageId::generate(),
            name: None,
            owner: ProjectId::new("p"),
            status: ImageStatus::Queued,
            visibility: Visibility::Shared,
            protected: false,
            os_hidden: false,
            disk_format: Some(DiskFormat::Qcow2),
            container_format: Some(ContainerFormat::Bare),
            min_disk: 0,
            min_ram: 0,
            size: None,
            virtual_size: None,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            tags: vec![],
            properties: BTreeMap::new(),
        };
        assert_eq!(img.backend(), Some(Backend::Vm));
        img.disk_format = Some(DiskFormat::Raw);
        assert_eq!(img.backend(), Some(Backend::Vm));
        img.properties.insert(ROOTFS_PROPERTY.into(), "True".into());
        assert_eq!(img.backend(), Some(Backend::Container));
        // A qcow2 is a disk whatever its properties say.
        img.disk_format = Some(DiskFormat::Qcow2);
        assert_eq!(img.backend(), Some(Backend::Vm));
        img.disk_format = Some(DiskFormat::Iso);
        assert_eq!(img.backend(), None);
        img.disk_format = Some(DiskFormat::Raw);
        img.container_format = Some(ContainerFormat::Docker);
        assert_eq!(img.backend(), None);
    }
}
