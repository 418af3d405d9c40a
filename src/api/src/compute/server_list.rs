//! `GET /servers` and `/servers/detail`: the query a listing takes, and its pages.

use axum::Json;
use axum::extract::State;
use compute::ServerQuery;
use model::ProjectId;
use model::compute::{PowerState, ServerFilter, ServerSortKey, states_for_status};
use regex::Regex;
use serde_json::{Value, json};

use super::Links;
use super::servers::{id_from_ref, view};
use super::validate as v;
use super::views::{self, ViewKind};
use crate::extract::{Caller, QueryPairs};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

fn regex_filter(s: &str) -> Result<Regex, Fault> {
    Regex::new(s).map_err(|_| Fault::bad_request(format!("Invalid filter regular expression: {s}")))
}

/// A query parameter of Nova's schema in the `regex` format, refused in jsonschema's words.
fn regex_param(param: &str, s: &str) -> Result<Regex, Fault> {
    Regex::new(s).map_err(|_| {
        Fault::bad_request(format!(
            "Invalid input for query parameters {param}. Value: {s}. {} is not a 'regex'",
            v::py_repr(&serde_json::Value::String(s.to_owned()))
        ))
    })
}

/// The query parameters Nova's list schema knows at this microversion.
fn known_params(ver: ApiVersion) -> Vec<&'static str> {
    let mut k = vec![
        "all_tenants",
        "tenant_id",
        "project_id",
        "user_id",
        "name",
        "status",
        "image",
        "flavor",
        "ip",
        "ip6",
        "changes-since",
        "reservation_id",
        "deleted",
        "soft_deleted",
        "host",
        "node",
        "limit",
        "marker",
        "sort_key",
        "sort_dir",
        "availability_zone",
        "config_drive",
        "key_name",
        "created_at",
        "launched_at",
        "terminated_at",
        "power_state",
        "task_state",
        "vm_state",
        "progress",
        "access_ip_v4",
        "access_ip_v6",
        "hostname",
        "uuid",
        "launch_index",
        "locked_by",
        "display_name",
        "display_description",
        "description",
        "kernel_id",
        "ramdisk_id",
        "root_device_name",
        "instance_type_id",
        "image_ref",
        "auto_disk_config",
        "updated_at",
        "metadata",
        "system_metadata",
        "pci_devices",
        "block_device_mapping",
        "services",
        "info_cache",
        "security_groups",
    ];
    if ver.at_least(26) {
        k.extend(["tags", "tags-any", "not-tags", "not-tags-any"]);
    }
    if ver.at_least(66) {
        k.push("changes-before");
    }
    if ver.at_least(73) {
        k.push("locked");
    }
    k
}

fn csv(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A listing's query string as a [`ServerQuery`]. Each step reads its own parameters; they
/// run in this order so that a query with several faults gets the same one every time.
fn parse_query(
    ver: ApiVersion,
    c: &identity::Context,
    q: &QueryPairs,
) -> Result<ServerQuery, Fault> {
    regex_formats(q)?;
    refuse_unknown(ver, q)?;
    let admin = c.is_admin();
    let mut query = ServerQuery::default();
    project_scope(q, admin, &mut query)?;
    status_filters(ver, q, admin, &mut query)?;
    time_filters(ver, q, admin, &mut query)?;
    pattern_filters(ver, q, admin, &mut query)?;
    exact_filters(ver, q, &mut query)?;
    // 2.83 opened these to everyone; admins could always use them.
    if ver.at_least(83) || admin {
        opened_filters(q, &mut query)?;
    }
    if ver.at_least(26) {
        let t = |k: &str| q.get(k).map(csv).unwrap_or_default();
        query.tags = t("tags");
        query.tags_any = t("tags-any");
        query.not_tags = t("not-tags");
        query.not_tags_any = t("not-tags-any");
    }
    query.sort = sort_keys(ver, q, admin)?;
    let (limit, marker) = v::paging(q)?;
    query.limit = limit;
    query.marker = marker;
    Ok(query)
}

/// The parameters of Nova's list schema in the `regex` format, in its order: every value is
/// checked for everyone, whether or not the filter applies to the caller.
const REGEX_PARAMS: &[&str] = &[
    "kernel_id",
    "ramdisk_id",
    "hostname",
    "key_name",
    "power_state",
    "node",
    "flavor",
    "reservation_id",
    "launched_at",
    "terminated_at",
    "availability_zone",
    "name",
    "display_name",
    "description",
    "display_description",
    "locked_by",
    "root_device_name",
    "config_drive",
    "access_ip_v4",
    "access_ip_v6",
    "auto_disk_config",
    "progress",
    "ip",
    "ip6",
    "created_at",
];

fn regex_formats(q: &QueryPairs) -> Result<(), Fault> {
    for p in REGEX_PARAMS {
        for (_, val) in q.0.iter().filter(|(k, _)| k == p) {
            regex_param(p, val)?;
        }
    }
    Ok(())
}

/// From 2.75 parameters the schema does not know are refused; filters on joined tables
/// always are.
fn refuse_unknown(ver: ApiVersion, q: &QueryPairs) -> Result<(), Fault> {
    if ver.at_least(75) {
        v::query_only_or_underscore(&q.0, &known_params(ver))?;
    }
    for joined in [
        "block_device_mapping",
        "services",
        "metadata",
        "system_metadata",
        "info_cache",
        "security_groups",
        "pci_devices",
    ] {
        if q.get(joined).is_some() {
            return Err(Fault::bad_request(format!(
                "Invalid input for query parameters {joined}."
            )));
        }
    }
    Ok(())
}

/// `all_tenants` (admins only) and, with it, `project_id`/`tenant_id`.
fn project_scope(q: &QueryPairs, admin: bool, query: &mut ServerQuery) -> Result<(), Fault> {
    if let Some(a) = q.get("all_tenants") {
        let on = a.is_empty() || v::query_bool(a).unwrap_or(false);
        if on && !admin {
            return Err(Fault::forbidden(
                "Policy doesn't allow os_compute_api:servers:index:get_all_tenants to be performed.",
            ));
        }
        query.all_projects = on;
        if on {
            query.project = q
                .get("project_id")
                .or_else(|| q.get("tenant_id"))
                .map(ProjectId::new);
        }
    }
    Ok(())
}

/// Every `status` given, resolved to the states it stands for.
fn status_filters(
    ver: ApiVersion,
    q: &QueryPairs,
    admin: bool,
    query: &mut ServerQuery,
) -> Result<(), Fault> {
    for (k, val) in &q.0 {
        if k != "status" {
            continue;
        }
        match states_for_status(val) {
            Some(st) => {
                if val.eq_ignore_ascii_case("DELETED") {
                    if !admin {
                        return Err(Fault::forbidden(
                            "Only administrators may list deleted instances",
                        ));
                    }
                    query.deleted = Some(true);
                }
                query.statuses.push(st);
            }
            None if ver.at_least(38) => {
                return Err(Fault::bad_request("Invalid status value"));
            }
            // Before 2.38 an unknown status matches nothing.
            None => query.filters.push(ServerFilter::Nothing),
        }
    }
    Ok(())
}

/// `deleted` (admins only), `changes-since` and (from 2.66) `changes-before`.
fn time_filters(
    ver: ApiVersion,
    q: &QueryPairs,
    admin: bool,
    query: &mut ServerQuery,
) -> Result<(), Fault> {
    if let Some(d) = q.get("deleted")
        && admin
    {
        query.deleted = Some(v::query_bool(d).unwrap_or(false));
    }
    if let Some(t) = q.get("changes-since") {
        query.changes_since = Some(v::parse_time("changes-since", t)?);
    }
    if ver.at_least(66)
        && let Some(t) = q.get("changes-before")
    {
        query.changes_before = Some(v::parse_time("changes-before", t)?);
    }
    if let (Some(a), Some(b)) = (query.changes_since, query.changes_before)
        && b < a
    {
        return Err(Fault::bad_request(
            "The value of changes-since must be less than or equal to changes-before.",
        ));
    }
    Ok(())
}

/// The regular-expression filters: `name`, `hostname` (2.90) and `ip`/`ip6`.
fn pattern_filters(
    ver: ApiVersion,
    q: &QueryPairs,
    admin: bool,
    query: &mut ServerQuery,
) -> Result<(), Fault> {
    if let Some((p, n)) = q
        .get("name")
        .map(|n| ("name", n))
        .or_else(|| q.get("display_name").map(|n| ("display_name", n)))
    {
        query.name = Some(regex_param(p, n)?);
    }
    if ver.at_least(90)
        && let Some(h) = q.get("hostname")
    {
        query.hostname = Some(regex_param("hostname", h)?);
    }
    if let Some(ip) = q
        .get("ip")
        .or_else(|| q.get("ip6").filter(|_| ver.at_least(5) || admin))
    {
        query.ip = Some(regex_filter(ip)?);
    }
    Ok(())
}

/// The exact filters everyone may use: `image`, `flavor`, `reservation_id`, `locked` (2.73).
fn exact_filters(ver: ApiVersion, q: &QueryPairs, query: &mut ServerQuery) -> Result<(), Fault> {
    if let Some(img) = q.get("image") {
        query.filters.push(ServerFilter::ImageId(id_from_ref(img)));
    }
    if let Some(f) = q.get("flavor") {
        query.filters.push(ServerFilter::FlavorId(id_from_ref(f)));
    }
    if let Some(r) = q.get("reservation_id") {
        query
            .filters
            .push(ServerFilter::ReservationId(r.to_owned()));
    }
    if ver.at_least(73)
        && let Some(l) = q.get("locked")
    {
        let on = v::query_bool(l).ok_or_else(|| {
            Fault::bad_request(format!("Unrecognized value '{l}', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"))
        })?;
        query.filters.push(ServerFilter::Locked(on));
    }
    Ok(())
}

/// The filters 2.83 opened to everyone (admins could always use them).
fn opened_filters(q: &QueryPairs, query: &mut ServerQuery) -> Result<(), Fault> {
    if let Some(az) = q.get("availability_zone") {
        query
            .filters
            .push(ServerFilter::AvailabilityZone(az.to_owned()));
    }
    if let Some(u) = q.get("user_id") {
        query.filters.push(ServerFilter::UserId(u.to_owned()));
    }
    if let Some(k) = q.get("key_name") {
        query.key_name = Some(regex_param("key_name", k)?);
    }
    if let Some(vs) = q.get("vm_state") {
        query.filters.push(ServerFilter::VmState(vs.to_owned()));
    }
    if let Some(ts) = q.get("task_state") {
        query.filters.push(ServerFilter::TaskState(ts.to_owned()));
    }
    if let Some(p) = q.get("power_state") {
        query
            .filters
            .push(ServerFilter::PowerState(power_state_code(p)?));
    }
    if let Some(cd) = q.get("config_drive") {
        let on = v::query_bool(cd).unwrap_or(false);
        query.filters.push(ServerFilter::ConfigDrive(on));
    }
    Ok(())
}

/// A `power_state` filter: Nova's code, or the name of a state.
fn power_state_code(p: &str) -> Result<i64, Fault> {
    p.parse::<i64>()
        .ok()
        .or_else(|| {
            [
                ("pending", PowerState::NoState),
                ("running", PowerState::Running),
                ("paused", PowerState::Paused),
                ("shutdown", PowerState::Shutdown),
                ("crashed", PowerState::Crashed),
                ("suspended", PowerState::Suspended),
            ]
            .iter()
            .find(|(n, _)| *n == p)
            .map(|(_, s)| s.code())
        })
        .ok_or_else(|| Fault::bad_request(format!("Invalid power_state filter [{p}]")))
}

/// The `sort_key` values Nova's schema takes before 2.75, in the order its refusal lists them:
/// the keys it sorts on, then those it accepts and ignores.
const SORT_KEYS_BEFORE_2_75: &[&str] = &[
    "access_ip_v4",
    "access_ip_v6",
    "auto_disk_config",
    "availability_zone",
    "config_drive",
    "created_at",
    "display_description",
    "display_name",
    "host",
    "hostname",
    "image_ref",
    "instance_type_id",
    "kernel_id",
    "key_name",
    "launch_index",
    "launched_at",
    "locked_by",
    "node",
    "power_state",
    "progress",
    "project_id",
    "ramdisk_id",
    "root_device_name",
    "task_state",
    "terminated_at",
    "updated_at",
    "user_id",
    "uuid",
    "vm_state",
    "architecture",
    "cell_name",
    "cleaned",
    "default_ephemeral_device",
    "default_swap_device",
    "deleted",
    "deleted_at",
    "disable_terminate",
    "ephemeral_gb",
    "ephemeral_key_uuid",
    "id",
    "key_data",
    "launched_on",
    "locked",
    "memory_mb",
    "os_type",
    "reservation_id",
    "root_gb",
    "shutdown_terminate",
    "user_data",
    "vcpus",
    "vm_mode",
];

/// `sort_key` and `sort_dir`, paired by position (a missing direction is `desc`), checked in
/// Nova's order: every key against the schema, then the admin-only keys, then directions.
fn sort_keys(
    ver: ApiVersion,
    q: &QueryPairs,
    admin: bool,
) -> Result<Vec<(ServerSortKey, bool)>, Fault> {
    let keys: Vec<&str> =
        q.0.iter()
            .filter(|(k, _)| k == "sort_key")
            .map(|(_, v)| v.as_str())
            .collect();
    let dirs: Vec<&str> =
        q.0.iter()
            .filter(|(k, _)| k == "sort_dir")
            .map(|(_, v)| v.as_str())
            .collect();
    let parse = |k: &str| ServerSortKey::parse(k).filter(|_| k != "locked" || ver.at_least(73));
    for k in &keys {
        if ver.at_least(75) {
            if parse(k).is_none() {
                return Err(Fault::bad_request(format!(
                    "Invalid input for query parameters sort_key. Value: {k}. '{k}' is not one of the allowed sort keys"
                )));
            }
        } else if !SORT_KEYS_BEFORE_2_75.contains(k) {
            let list = SORT_KEYS_BEFORE_2_75
                .iter()
                .map(|k| format!("'{k}'"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Fault::bad_request(format!(
                "Invalid input for query parameters sort_key. Value: {k}. '{k}' is not one of [{list}]"
            )));
        }
    }
    if let Some(k) = keys.iter().find(|k| matches!(**k, "host" | "node"))
        && !admin
    {
        return Err(Fault::forbidden(format!(
            "Only administrators can sort servers by {k}"
        )));
    }
    if dirs.iter().any(|d| !matches!(*d, "asc" | "desc")) {
        return Err(Fault::bad_request(
            "Invalid input received: Unknown sort direction, must be 'desc' or 'asc'",
        ));
    }
    let mut sort = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        // Keys the schema takes and Nova ignores.
        let Some(key) = parse(k) else { continue };
        sort.push((key, dirs.get(i).copied() == Some("asc")));
    }
    Ok(sort)
}

async fn listing(
    s: &AppState,
    c: &identity::Context,
    ver: ApiVersion,
    l: &Links,
    q: &QueryPairs,
    detail: bool,
) -> Result<Json<Value>, Fault> {
    let query = parse_query(ver, c, q)?;
    let limit = query
        .limit
        .unwrap_or(s.compute.config().max_limit)
        .min(s.compute.config().max_limit);
    let servers = s.compute.list_servers(c, query).await?;
    let attachments = if detail {
        s.compute.attachments_of_servers(&servers).await?
    } else {
        Default::default()
    };
    let items: Vec<Value> = servers
        .iter()
        .map(|sv| {
            if detail {
                let mut o = views::server(l, view(ver, c, ViewKind::Detail), sv);
                if let Some(atts) = attachments.get(sv.id.as_str())
                    && o.get("os-extended-volumes:volumes_attached").is_some()
                {
                    o["os-extended-volumes:volumes_attached"] = views::volumes_attached(ver, atts);
                }
                o
            } else {
                views::server_brief(l, sv)
            }
        })
        .collect();
    let mut body = json!({ "servers": items });
    if servers.len() == limit
        && limit > 0
        && let Some(last) = servers.last()
    {
        let path = if detail { "servers/detail" } else { "servers" };
        body["servers_links"] = l.next(path, &q.0, last.id.as_str());
    }
    Ok(Json(body))
}

pub async fn list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    listing(&s, &c, ver, &l, &q, false).await
}

pub async fn detail(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    q: QueryPairs,
) -> Result<Json<Value>, Fault> {
    listing(&s, &c, ver, &l, &q, true).await
}
