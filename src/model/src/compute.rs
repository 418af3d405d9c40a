//! Domain types of the compute service: servers, their states, flavors, keypairs, quotas.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::{ProjectId, UserId};

mod actions;
mod query;

pub use actions::{ActionEvent, InstanceAction};
pub use query::{FlavorSortKey, ServerFilter, ServerSortKey};

/// A server's id: a UUID in its hyphenated form, as Nova shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId(String);

impl ServerId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    /// Accepts only a UUID; returns it in canonical lower-case hyphenated form.
    pub fn parse(s: &str) -> Option<Self> {
        uuid::Uuid::parse_str(s)
            .ok()
            .map(|u| Self(u.hyphenated().to_string()))
    }

    /// Wraps a value read back from the store.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A flavor's public id (`flavorid`), chosen by its creator or generated.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlavorId(pub String);

impl fmt::Display for FlavorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The exact string Nova uses on the wire and in its database.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

wire_enum!(
    /// The stable state of a server (`OS-EXT-STS:vm_state`).
    VmState {
        Active = "active",
        Building = "building",
        Paused = "paused",
        Suspended = "suspended",
        Stopped = "stopped",
        Rescued = "rescued",
        Resized = "resized",
        SoftDeleted = "soft-delete",
        Deleted = "deleted",
        Error = "error",
        Shelved = "shelved",
        ShelvedOffloaded = "shelved_offloaded",
    }
);

wire_enum!(
    /// The transition a server is in (`OS-EXT-STS:task_state`); `None` when idle.
    TaskState {
        Scheduling = "scheduling",
        BlockDeviceMapping = "block_device_mapping",
        Networking = "networking",
        Spawning = "spawning",
        ImageSnapshot = "image_snapshot",
        ImageSnapshotPending = "image_snapshot_pending",
        ImagePendingUpload = "image_pending_upload",
        ImageUploading = "image_uploading",
        ImageBackup = "image_backup",
        UpdatingPassword = "updating_password",
        ResizePrep = "resize_prep",
        ResizeMigrating = "resize_migrating",
        ResizeMigrated = "resize_migrated",
        ResizeFinish = "resize_finish",
        ResizeReverting = "resize_reverting",
        ResizeConfirming = "resize_confirming",
        Rebooting = "rebooting",
        RebootPending = "reboot_pending",
        RebootStarted = "reboot_started",
        RebootingHard = "rebooting_hard",
        RebootPendingHard = "reboot_pending_hard",
        RebootStartedHard = "reboot_started_hard",
        Pausing = "pausing",
        Unpausing = "unpausing",
        Suspending = "suspending",
        Resuming = "resuming",
        PoweringOff = "powering-off",
        PoweringOn = "powering-on",
        Rescuing = "rescuing",
        Unrescuing = "unrescuing",
        Rebuilding = "rebuilding",
        RebuildBlockDeviceMapping = "rebuild_block_device_mapping",
        RebuildSpawning = "rebuild_spawning",
        Migrating = "migrating",
        Deleting = "deleting",
        SoftDeleting = "soft-deleting",
        Restoring = "restoring",
        Shelving = "shelving",
        ShelvingImagePendingUpload = "shelving_image_pending_upload",
        ShelvingImageUploading = "shelving_image_uploading",
        ShelvingOffloading = "shelving_offloading",
        Unshelving = "unshelving",
    }
);

/// The hypervisor's view of a server (`OS-EXT-STS:power_state`), an integer on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PowerState {
    NoState = 0,
    Running = 1,
    Paused = 3,
    Shutdown = 4,
    Crashed = 6,
    Suspended = 7,
}

impl PowerState {
    pub fn code(self) -> i64 {
        self as i64
    }

    pub fn from_code(c: i64) -> Self {
        match c {
            1 => PowerState::Running,
            3 => PowerState::Paused,
            4 => PowerState::Shutdown,
            6 => PowerState::Crashed,
            7 => PowerState::Suspended,
            _ => PowerState::NoState,
        }
    }
}

/// Nova's public status for a (vm_state, task_state) pair (`_STATE_MAP`).
pub fn status(vm: VmState, task: Option<TaskState>) -> &'static str {
    use TaskState as T;
    use VmState as V;
    match (vm, task) {
        (V::Active, Some(T::Rebooting | T::RebootPending | T::RebootStarted)) => "REBOOT",
        (V::Active, Some(T::RebootingHard | T::RebootPendingHard | T::RebootStartedHard)) => {
            "HARD_REBOOT"
        }
        (V::Active, Some(T::UpdatingPassword)) => "PASSWORD",
        (
            V::Active | V::Stopped | V::Error,
            Some(T::Rebuilding | T::RebuildBlockDeviceMapping | T::RebuildSpawning),
        ) => "REBUILD",
        (V::Active | V::Paused, Some(T::Migrating)) => "MIGRATING",
        (
            V::Active | V::Stopped,
            Some(T::ResizePrep | T::ResizeMigrating | T::ResizeMigrated | T::ResizeFinish),
        ) => "RESIZE",
        (V::Resized, Some(T::ResizeReverting)) => "REVERT_RESIZE",
        (V::Active, _) => "ACTIVE",
        (V::Building, _) => "BUILD",
        (V::Stopped, _) => "SHUTOFF",
        (V::Resized, _) => "VERIFY_RESIZE",
        (V::Paused, _) => "PAUSED",
        (V::Suspended, _) => "SUSPENDED",
        (V::Rescued, _) => "RESCUE",
        (V::Error, _) => "ERROR",
        (V::Deleted, _) => "DELETED",
        (V::SoftDeleted, _) => "SOFT_DELETED",
        (V::Shelved, _) => "SHELVED",
        (V::ShelvedOffloaded, _) => "SHELVED_OFFLOADED",
    }
}

/// The states a public status names: vm states, and the task states among them (`None`:
/// any task state, because the status is a vm state's default).
pub type StatusStates = (Vec<VmState>, Option<Vec<Option<TaskState>>>);

/// The (vm_state, task_state) pairs a public status names, for `GET /servers?status=`.
pub fn states_for_status(status: &str) -> Option<StatusStates> {
    let status = status.to_ascii_uppercase();
    let mut vms = Vec::new();
    let mut tasks: Vec<Option<TaskState>> = Vec::new();
    let mut any_task = false;
    for &vm in VmState::ALL {
        if self::status(vm, None) == status {
            vms.push(vm);
            any_task = true;
        }
        for &t in TaskState::ALL {
            if self::status(vm, Some(t)) == status && self::status(vm, None) != status {
                if !vms.contains(&vm) {
                    vms.push(vm);
                }
                tasks.push(Some(t));
            }
        }
    }
    if vms.is_empty() {
        return None;
    }
    Some((vms, if any_task { None } else { Some(tasks) }))
}

/// Which backend runs a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    Fake,
    Vm,
    Container,
    BareMetal,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Fake => "fake",
            Backend::Vm => "vm",
            Backend::Container => "container",
            Backend::BareMetal => "baremetal",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Backend::Fake,
            Backend::Vm,
            Backend::Container,
            Backend::BareMetal,
        ]
        .into_iter()
        .find(|b| b.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Flavor {
    pub id: FlavorId,
    pub name: String,
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
    pub ephemeral_gb: u64,
    pub swap_mb: u64,
    pub rxtx_factor: f64,
    pub is_public: bool,
    pub disabled: bool,
    pub description: Option<String>,
    pub extra_specs: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeypairType {
    Ssh,
    X509,
}

impl KeypairType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeypairType::Ssh => "ssh",
            KeypairType::X509 => "x509",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keypair {
    pub name: String,
    pub user_id: UserId,
    pub kind: KeypairType,
    pub public_key: String,
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
}

/// An address a server holds on a network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub network: String,
    pub addr: String,
    pub mac: String,
    pub version: u8,
    /// A floating IP mapped to the fixed address before it (`OS-EXT-IPS:type: floating`).
    pub floating: bool,
}

/// A fault recorded on a server that ended in ERROR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFault {
    pub code: u16,
    pub message: String,
    pub details: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Who locked a server: its owner, or an admin (whose lock the owner cannot undo).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockedBy {
    Owner,
    Admin,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    pub id: ServerId,
    pub name: String,
    pub project_id: ProjectId,
    pub user_id: UserId,
    /// The flavor as it was when the server was created (Nova's embedded flavor).
    pub flavor: Flavor,
    /// The image the root disk came from; `None` for a volume-backed server.
    pub image_id: Option<String>,
    pub vm_state: VmState,
    pub task_state: Option<TaskState>,
    pub power_state: PowerState,
    pub backend: Backend,
    pub availability_zone: String,
    pub key_name: Option<String>,
    pub key_data: Option<String>,
    pub user_data: Option<String>,
    pub config_drive: bool,
    pub description: Option<String>,
    pub hostname: String,
    pub access_ipv4: Option<String>,
    pub access_ipv6: Option<String>,
    pub locked_by: Option<LockedBy>,
    pub locked_reason: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub reservation_id: String,
    pub launch_index: u32,
    pub progress: u32,
    pub host: String,
    pub addresses: Vec<Address>,
    /// The names of the security groups of the server's ports (Nova's `security_groups`).
    pub security_groups: Vec<String>,
    pub scheduler_hints: BTreeMap<String, Vec<String>>,
    /// Nova's `auto_disk_config` (`OS-DCF:diskConfig` `AUTO` when true, `MANUAL` when not).
    pub auto_disk_config: bool,
    /// The availability zone the server is pinned to (Nova's request spec zone): the zone a
    /// create or unshelve asked for, or one set through `PUT /servers/{id}` from 2.104.
    pub pinned_availability_zone: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub launched_at: Option<DateTime<Utc>>,
    pub terminated_at: Option<DateTime<Utc>>,
    pub deleted: bool,
    pub fault: Option<ServerFault>,
}

impl Server {
    pub fn status(&self) -> &'static str {
        status(self.vm_state, self.task_state)
    }

    pub fn locked(&self) -> bool {
        self.locked_by.is_some()
    }
}

/// The quota resources of a project. `-1` means unlimited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quotas {
    pub values: BTreeMap<&'static str, i64>,
}

/// Every quota resource Nova knows, with its default limit.
pub const QUOTA_DEFAULTS: &[(&str, i64)] = &[
    ("cores", 20),
    ("fixed_ips", -1),
    ("floating_ips", -1),
    ("injected_file_content_bytes", 10240),
    ("injected_file_path_bytes", 255),
    ("injected_files", 5),
    ("instances", 10),
    ("key_pairs", 100),
    ("metadata_items", 128),
    ("ram", 51200),
    ("security_group_rules", -1),
    ("security_groups", -1),
    ("server_group_members", 10),
    ("server_groups", 10),
];

/// Usage counted against quotas.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub instances: i64,
    pub cores: i64,
    pub ram: i64,
    pub key_pairs: i64,
    pub server_groups: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_map_follows_nova() {
        use TaskState as T;
        use VmState as V;
        assert_eq!(status(V::Active, None), "ACTIVE");
        assert_eq!(status(V::Active, Some(T::PoweringOff)), "ACTIVE");
        assert_eq!(status(V::Active, Some(T::RebootingHard)), "HARD_REBOOT");
        assert_eq!(status(V::Stopped, Some(T::PoweringOn)), "SHUTOFF");
        assert_eq!(status(V::Stopped, Some(T::Rebuilding)), "REBUILD");
        assert_eq!(status(V::Error, Some(T::ResizePrep)), "ERROR");
        assert_eq!(
            status(V::Resized, Some(T::ResizeReverting)),
            "REVERT_RESIZE"
        );
        assert_eq!(status(V::Building, Some(T::Spawning)), "BUILD");
        assert_eq!(status(V::SoftDeleted, None), "SOFT_DELETED");
    }

    #[test]
    fn reverse_status_map() {
        let (vms, tasks) = states_for_status("active").expect("ACTIVE");
        assert_eq!(vms, vec![VmState::Active]);
        assert!(tasks.is_none());
        let (vms, tasks) = states_for_status("REBOOT").expect("REBOOT");
        assert_eq!(vms, vec![VmState::Active]);
        assert_eq!(tasks.map(|t| t.len()), Some(3));
        let (vms, _) = states_for_status("RESIZE").expect("RESIZE");
        assert_eq!(vms, vec![VmState::Active, VmState::Stopped]);
        assert!(states_for_status("BOGUS").is_none());
    }

    #[test]
    fn wire_strings_round_trip() {
        for &v in VmState::ALL {
            assert_eq!(VmState::parse(v.as_str()), Some(v));
        }
        for &t in TaskState::ALL {
            assert_eq!(TaskState::parse(t.as_str()), Some(t));
        }
        assert!(ServerId::parse("not-a-uuid").is_none());
        let id = ServerId::generate();
        assert_eq!(ServerId::parse(&id.as_str().to_uppercase()), Some(id));
    }
}
