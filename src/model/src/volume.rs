//! Block storage records: volumes, their types, snapshots, attachments and quotas.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::{ProjectId, UserId};

/// Cinder's volume statuses that onebox uses.
pub mod status {
    pub const CREATING: &str = "creating";
    pub const DOWNLOADING: &str = "downloading";
    pub const AVAILABLE: &str = "available";
    pub const ATTACHING: &str = "attaching";
    pub const IN_USE: &str = "in-use";
    pub const DETACHING: &str = "detaching";
    pub const DELETING: &str = "deleting";
    pub const EXTENDING: &str = "extending";
    /// Being copied to an image (`os-volume_upload_image`).
    pub const UPLOADING: &str = "uploading";
    pub const ERROR: &str = "error";
    pub const ERROR_DELETING: &str = "error_deleting";
    pub const ERROR_EXTENDING: &str = "error_extending";
    /// Every status a volume may be reset to (`os-reset_status`).
    pub const ALL: &[&str] = &[
        CREATING,
        DOWNLOADING,
        AVAILABLE,
        ATTACHING,
        IN_USE,
        DETACHING,
        DELETING,
        EXTENDING,
        UPLOADING,
        ERROR,
        ERROR_DELETING,
        ERROR_EXTENDING,
        "maintenance",
        "reserved",
        "error_restoring",
        "error_managing",
    ];
    /// Statuses a restart must not leave behind.
    pub const TRANSITIONAL: &[&str] = &[
        CREATING,
        DOWNLOADING,
        ATTACHING,
        DETACHING,
        DELETING,
        EXTENDING,
        UPLOADING,
    ];
}

/// The id of the default volume type, `__DEFAULT__`, made by the migration.
pub const DEFAULT_TYPE_ID: &str = "5d1a4c2e-7f3b-4e6a-9c8d-0b1a2c3d4e5f";
pub const DEFAULT_TYPE_NAME: &str = "__DEFAULT__";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeType {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub is_public: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeRec {
    pub id: String,
    pub project_id: ProjectId,
    pub user_id: UserId,
    pub name: Option<String>,
    pub description: Option<String>,
    pub size_gb: u64,
    pub status: String,
    pub volume_type_id: String,
    pub volume_type_name: String,
    pub availability_zone: String,
    pub bootable: bool,
    pub read_only: bool,
    pub metadata: BTreeMap<String, String>,
    pub image_metadata: BTreeMap<String, String>,
    pub source_volid: Option<String>,
    pub snapshot_id: Option<String>,
    pub image_id: Option<String>,
    /// Where the backend keeps it (the provider location); never shown to members.
    pub path: Option<String>,
    pub format: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub attachments: Vec<AttachmentRec>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentRec {
    pub id: String,
    pub volume_id: String,
    pub server_id: String,
    pub device: Option<String>,
    /// `rw` or `ro`.
    pub attach_mode: String,
    pub tag: Option<String>,
    pub delete_on_termination: bool,
    /// `reserved`, `attached`, `detaching`.
    pub status: String,
    pub attached_at: DateTime<Utc>,
    /// The place in the server's boot order (Nova's `boot_index`): 0 is the disk a
    /// volume-backed server boots from; `None` a data disk.
    pub boot_index: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRec {
    pub id: String,
    pub project_id: ProjectId,
    pub user_id: UserId,
    pub volume_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub size_gb: u64,
    pub status: String,
    pub metadata: BTreeMap<String, String>,
    pub path: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// The volume quota resources and their defaults (Cinder's).
pub const QUOTA_DEFAULTS: &[(&str, i64)] = &[
    ("volumes", 10),
    ("snapshots", 10),
    ("gigabytes", 1000),
    ("per_volume_gigabytes", -1),
    ("backups", 10),
    ("backup_gigabytes", 1000),
    ("groups", 10),
];

/// What a project holds: volumes, gigabytes (volumes and snapshots), snapshots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VolumeUsage {
    pub volumes: i64,
    pub gigabytes: i64,
    pub snapshots: i64,
}
