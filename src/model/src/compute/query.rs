//! What a listing of servers or flavors may filter and sort on, in the API's words. The
//! store maps each of these to its columns; nothing above the store names a column.

/// An exact-match filter on a server listing (`GET /servers?image=…`). The values are the
/// client's, and the store binds them, never splices them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerFilter {
    /// `image`: booted from this image.
    ImageId(String),
    /// `flavor`: of this flavor.
    FlavorId(String),
    ReservationId(String),
    /// `locked` (2.73): locked by anyone, or not locked.
    Locked(bool),
    AvailabilityZone(String),
    UserId(String),
    /// `vm_state` as the client wrote it: a name no state has matches no server.
    VmState(String),
    /// `task_state` as the client wrote it.
    TaskState(String),
    /// `power_state` by Nova's code; a code no state has matches no server.
    PowerState(i64),
    ConfigDrive(bool),
    /// Matches no server (before 2.38, a `status` Nova does not know).
    Nothing,
}

/// A key a server listing may be sorted on, named after Nova's `sort_key` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerSortKey {
    AccessIpv4,
    AccessIpv6,
    AvailabilityZone,
    ConfigDrive,
    CreatedAt,
    /// `display_description`
    Description,
    /// `display_name`
    Name,
    /// `host` or `node` (one box: the same).
    Host,
    Hostname,
    /// `image_ref`
    Image,
    /// `instance_type_id`
    Flavor,
    KeyName,
    LaunchIndex,
    LaunchedAt,
    /// `locked` (2.73) or `locked_by`
    Locked,
    PowerState,
    Progress,
    ProjectId,
    TaskState,
    TerminatedAt,
    UpdatedAt,
    UserId,
    /// `uuid`
    Id,
    VmState,
    /// Keys Nova accepts that onebox keeps no value for (`kernel_id`, `ramdisk_id`,
    /// `root_device_name`, `auto_disk_config`): the order servers were made in.
    CreationOrder,
}

impl ServerSortKey {
    /// Nova's `sort_key` name; `None` for keys Nova's schema refuses.
    pub fn parse(key: &str) -> Option<Self> {
        Some(match key {
            "access_ip_v4" => Self::AccessIpv4,
            "access_ip_v6" => Self::AccessIpv6,
            "availability_zone" => Self::AvailabilityZone,
            "config_drive" => Self::ConfigDrive,
            "created_at" => Self::CreatedAt,
            "display_description" => Self::Description,
            "display_name" => Self::Name,
            "host" | "node" => Self::Host,
            "hostname" => Self::Hostname,
            "image_ref" => Self::Image,
            "instance_type_id" => Self::Flavor,
            "key_name" => Self::KeyName,
            "launch_index" => Self::LaunchIndex,
            "launched_at" => Self::LaunchedAt,
            "locked" | "locked_by" => Self::Locked,
            "power_state" => Self::PowerState,
            "progress" => Self::Progress,
            "project_id" => Self::ProjectId,
            "task_state" => Self::TaskState,
            "terminated_at" => Self::TerminatedAt,
            "updated_at" => Self::UpdatedAt,
            "user_id" => Self::UserId,
            "uuid" => Self::Id,
            "vm_state" => Self::VmState,
            "kernel_id" | "ramdisk_id" | "root_device_name" | "auto_disk_config" => {
                Self::CreationOrder
            }
            _ => return None,
        })
    }
}

/// A key a flavor listing may be sorted on, named after Nova's `sort_key` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FlavorSortKey {
    /// `created_at`, and `updated_at` (flavors are never updated in place).
    CreatedAt,
    Description,
    Disabled,
    EphemeralGb,
    /// `flavorid` or `id`, the default; also `vcpu_weight`, which onebox does not keep.
    #[default]
    FlavorId,
    IsPublic,
    MemoryMb,
    Name,
    RootGb,
    RxtxFactor,
    Swap,
    Vcpus,
}

impl FlavorSortKey {
    /// Nova's `sort_key` name; `None` for keys Nova refuses.
    pub fn parse(key: &str) -> Option<Self> {
        Some(match key {
            "created_at" | "updated_at" => Self::CreatedAt,
            "description" => Self::Description,
            "disabled" => Self::Disabled,
            "ephemeral_gb" => Self::EphemeralGb,
            "flavorid" | "id" | "vcpu_weight" => Self::FlavorId,
            "is_public" => Self::IsPublic,
            "memory_mb" => Self::MemoryMb,
            "name" => Self::Name,
            "root_gb" => Self::RootGb,
            "rxtx_factor" => Self::RxtxFactor,
            "swap" => Self::Swap,
            "vcpus" => Self::Vcpus,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nova_sort_key_names() {
        assert_eq!(ServerSortKey::parse("node"), Some(ServerSortKey::Host));
        assert_eq!(ServerSortKey::parse("locked"), Some(ServerSortKey::Locked));
        assert_eq!(
            ServerSortKey::parse("kernel_id"),
            Some(ServerSortKey::CreationOrder)
        );
        assert_eq!(ServerSortKey::parse("deleted"), None);
        assert_eq!(FlavorSortKey::parse("id"), Some(FlavorSortKey::FlavorId));
        assert_eq!(
            FlavorSortKey::parse("updated_at"),
            Some(FlavorSortKey::CreatedAt)
        );
        assert_eq!(FlavorSortKey::parse("ram_mb"), None);
        assert_eq!(FlavorSortKey::default(), FlavorSortKey::FlavorId);
    }
}
