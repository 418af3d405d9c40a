//! The columns behind the API's listing vocabulary: each server filter and sort key, and
//! each flavor sort key, mapped to SQL here and nowhere else. Values are bound, never
//! spliced; the column names are fixed strings of this file.

use model::compute::{FlavorSortKey, ServerFilter, ServerSortKey};
use rusqlite::types::Value;

/// The condition on `servers` for `f`, binding its value with `bind` (which returns the
/// placeholder, e.g. `?3`).
pub(crate) fn server_condition(f: &ServerFilter, bind: impl FnOnce(Value) -> String) -> String {
    let (col, v) = match f {
        ServerFilter::ImageId(x) => ("image_id", Value::Text(x.clone())),
        ServerFilter::FlavorId(x) => ("flavorid", Value::Text(x.clone())),
        ServerFilter::ReservationId(x) => ("reservation_id", Value::Text(x.clone())),
        ServerFilter::Locked(on) => ("(locked_by IS NOT NULL)", Value::Integer(i64::from(*on))),
        ServerFilter::AvailabilityZone(x) => ("availability_zone", Value::Text(x.clone())),
        ServerFilter::UserId(x) => ("user_id", Value::Text(x.clone())),
        ServerFilter::VmState(x) => ("vm_state", Value::Text(x.clone())),
        ServerFilter::TaskState(x) => ("task_state", Value::Text(x.clone())),
        ServerFilter::PowerState(code) => ("power_state", Value::Integer(*code)),
        ServerFilter::ConfigDrive(on) => ("config_drive", Value::Integer(i64::from(*on))),
        ServerFilter::Nothing => return "0".into(),
    };
    format!("{col} IS {}", bind(v))
}

/// The `servers` column a sort key orders by.
pub(crate) fn server_sort_column(k: ServerSortKey) -> &'static str {
    match k {
        ServerSortKey::AccessIpv4 => "access_ipv4",
        ServerSortKey::AccessIpv6 => "access_ipv6",
        ServerSortKey::AvailabilityZone => "availability_zone",
        ServerSortKey::ConfigDrive => "config_drive",
        ServerSortKey::CreatedAt => "created_at",
        ServerSortKey::Description => "description",
        ServerSortKey::Name => "name",
        ServerSortKey::Host => "host",
        ServerSortKey::Hostname => "hostname",
        ServerSortKey::Image => "image_id",
        ServerSortKey::Flavor => "flavorid",
        ServerSortKey::KeyName => "key_name",
        ServerSortKey::LaunchIndex => "launch_index",
        ServerSortKey::LaunchedAt => "launched_at",
        ServerSortKey::Locked => "locked_by",
        ServerSortKey::PowerState => "power_state",
        ServerSortKey::Progress => "progress",
        ServerSortKey::ProjectId => "project_id",
        ServerSortKey::TaskState => "task_state",
        ServerSortKey::TerminatedAt => "terminated_at",
        ServerSortKey::UpdatedAt => "updated_at",
        ServerSortKey::UserId => "user_id",
        ServerSortKey::Id => "id",
        ServerSortKey::VmState => "vm_state",
        ServerSortKey::CreationOrder => "seq",
    }
}

/// The `flavors` column a sort key orders by.
pub(crate) fn flavor_sort_column(k: FlavorSortKey) -> &'static str {
    match k {
        FlavorSortKey::CreatedAt => "created_at",
        FlavorSortKey::Description => "description",
        FlavorSortKey::Disabled => "disabled",
        FlavorSortKey::EphemeralGb => "ephemeral_gb",
        FlavorSortKey::FlavorId => "flavorid",
        FlavorSortKey::IsPublic => "is_public",
        FlavorSortKey::MemoryMb => "ram_mb",
        FlavorSortKey::Name => "name",
        FlavorSortKey::RootGb => "disk_gb",
        FlavorSortKey::RxtxFactor => "rxtx_factor",
        FlavorSortKey::Swap => "swap_mb",
        FlavorSortKey::Vcpus => "vcpus",
    }
}
