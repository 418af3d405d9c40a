//! `/servers`: create, list, show, update, delete; metadata, tags and addresses.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{Extensions, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use compute::servers::ServerPatch;
use compute::{CreateRequest, NetworkRequest, ServerQuery, SortKey};
use model::ProjectId;
use model::compute::{FlavorId, PowerState, Server, states_for_status};
use regex::Regex;
use serde_json::{Map, Value, json};
use store::compute::SqlValue;

use super::validate as v;
use super::views::{self, ServerView, ViewKind};
use super::{Links, request_id};
use crate::extract::{AnyJson, Caller, JsonBody, Path, QueryPairs};
use crate::microversion::ApiVersion;
use crate::{AppState, Fault};

/// The last path segment of an id-or-URL reference (`imageRef`, `flavorRef`).
pub(crate) fn id_from_ref(r: &str) -> String {
    r.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(r)
        .to_owned()
}

pub(crate) fn view(ver: ApiVersion, c: &identity::Context, kind: ViewKind) -> ServerView {
    ServerView {
        version: ver,
        admin: c.is_admin(),
        kind,
    }
}

// ---- create --------------------------------------------------------------------------------

fn parse_networks(ver: ApiVersion, nv: Option<&Value>) -> Result<NetworkRequest, Fault> {
    let Some(nv) = nv else {
        if ver.at_least(37) {
            return Err(v::invalid(
                "server",
                &Value::Null,
                "'networks' is a required property",
            ));
        }
        return Ok(NetworkRequest::Auto);
    };
    match nv {
        Value::String(s) if ver.at_least(37) && s == "auto" => Ok(NetworkRequest::Auto),
        Value::String(s) if ver.at_least(37) && s == "none" => Ok(NetworkRequest::None),
        Value::Array(items) => {
            let mut ids = Vec::new();
            for item in items {
                v::only("networks", item, &["uuid", "fixed_ip", "port", "tag"])?;
                let o = v::object("networks", item)?;
                if o.contains_key("port") {
                    return Err(Fault::bad_request(
                        "Ports are not supported by onebox; name a network by its uuid.",
                    ));
                }
                if o.contains_key("fixed_ip") {
                    return Err(Fault::bad_request(
                        "Requesting a fixed IP is not supported by onebox; addresses are allocated.",
                    ));
                }
                let Some(u) = o.get("uuid") else {
                    return Err(Fault::bad_request(
                        "Bad networks format: network uuid is not in proper format",
                    ));
                };
                let u = v::string("uuid", u, 1, 255)?;
                if ver.at_least(37) && uuid::Uuid::parse_str(&u).is_err() {
                    return Err(v::invalid(
                        "uuid",
                        &json!(u),
                        &format!("'{u}' is not a 'uuid'"),
                    ));
                }
                ids.push(u);
            }
            Ok(NetworkRequest::List(ids))
        }
        other => Err(v::invalid(
            "networks",
            other,
            &format!(
                "{} is not valid under any of the given schemas",
                v::py_repr(other)
            ),
        )),
    }
}

/// The image to boot from: `imageRef`, or the image→local mapping of
/// `block_device_mapping_v2` with boot index 0. Volumes need a volume service onebox does
/// not have.
fn parse_image(o: &Map<String, Value>) -> Result<Option<String>, Fault> {
    if let Some(bdms) = o.get("block_device_mapping_v2") {
        let list = bdms
            .as_array()
            .ok_or_else(|| v::invalid("block_device_mapping_v2", bdms, "not of type 'array'"))?;
        let mut image = None;
        for b in list {
            let bo = v::object("block_device_mapping_v2", b)?;
            let src = bo.get("source_type").and_then(Value::as_str).unwrap_or("");
            let dst = bo
                .get("destination_type")
                .and_then(Value::as_str)
                .unwrap_or("local");
            match (src, dst) {
                ("image", "local") => {
                    image = bo.get("uuid").and_then(Value::as_str).map(str::to_owned);
                }
                ("blank", "local") => {}
                _ => {
                    return Err(Fault::bad_request(
                        "Block Device Mapping is Invalid: only image-to-local boot disks are supported; onebox has no volume service.",
                    ));
                }
            }
        }
        if image.is_some() {
            return Ok(image);
        }
    }
    if o.contains_key("block_device_mapping") {
        return Err(Fault::bad_request(
            "Block Device Mapping is Invalid: onebox has no volume service.",
        ));
    }
    match o.get("imageRef") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(x) => Ok(Some(id_from_ref(&v::string("imageRef", x, 1, 2048)?))),
    }
}

fn parse_tags(field: &str, val: &Value) -> Result<Vec<String>, Fault> {
    let list = val.as_array().ok_or_else(|| {
        v::invalid(
            field,
            val,
            &format!("{} is not of type 'array'", v::py_repr(val)),
        )
    })?;
    if list.len() > 50 {
        return Err(v::invalid(field, val, "is too long"));
    }
    list.iter().map(tag).collect()
}

fn tag(val: &Value) -> Result<String, Fault> {
    let t = v::string("tags", val, 1, 60)?;
    if t.contains('/') || t.contains(',') {
        return Err(v::invalid(
            "tags",
            val,
            &format!("{} does not match '^[^,/]*$'", v::py_repr(val)),
        ));
    }
    Ok(t)
}

pub(crate) fn hostname(ver: ApiVersion, val: &Value) -> Result<String, Fault> {
    let max = if ver.at_least(94) { 255 } else { 63 };
    let h = v::string("hostname", val, 1, max)?;
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
    };
    let ok = if ver.at_least(94) {
        h.split('.').all(label_ok)
    } else {
        label_ok(&h)
    };
    if !ok {
        return Err(v::invalid(
            "hostname",
            val,
            &format!("{} does not match the hostname format", v::py_repr(val)),
        ));
    }
    Ok(h)
}

/// An access IP (`accessIPv4`/`accessIPv6`): null or empty clears it, anything else must be
/// an address of that family.
pub(crate) fn access_ip(k: &str, x: &Value, six: bool) -> Result<Option<String>, Fault> {
    match x {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        x => {
            let s = v::string(k, x, 1, 64)?;
            let ok = if six {
                s.parse::<std::net::Ipv6Addr>().is_ok()
            } else {
                s.parse::<std::net::Ipv4Addr>().is_ok()
            };
            if !ok {
                let family = if six { "ipv6" } else { "ipv4" };
                return Err(v::invalid(
                    k,
                    x,
                    &format!("{} is not a '{family}'", v::py_repr(x)),
                ));
            }
            Ok(Some(s))
        }
    }
}

fn parse_create(
    ver: ApiVersion,
    c: &identity::Context,
    body: &Value,
) -> Result<(CreateRequest, bool), Fault> {
    let root = v::root(body)?;
    let sv = v::required(root, "server")?;
    v::only(
        "",
        body,
        &["server", "os:scheduler_hints", "OS-SCH-HNT:scheduler_hints"],
    )?;
    let mut allowed = vec![
        "name",
        "imageRef",
        "flavorRef",
        "adminPass",
        "metadata",
        "networks",
        "OS-DCF:diskConfig",
        "accessIPv4",
        "accessIPv6",
        "availability_zone",
        "block_device_mapping",
        "block_device_mapping_v2",
        "config_drive",
        "key_name",
        "min_count",
        "max_count",
        "return_reservation_id",
        "security_groups",
        "user_data",
    ];
    if !ver.at_least(57) {
        allowed.push("personality");
    }
    if ver.at_least(19) {
        allowed.push("description");
    }
    if ver.at_least(52) {
        allowed.push("tags");
    }
    if ver.at_least(63) {
        allowed.push("trusted_image_certificates");
    }
    if ver.at_least(74) {
        allowed.extend(["host", "hypervisor_hostname"]);
    }
    if ver.at_least(90) {
        allowed.push("hostname");
    }
    v::only("server", sv, &allowed)?;
    let o = v::object("server", sv)?;
    let name = v::name("name", v::required_in("server", sv, o, "name")?)?;
    let flavor_ref = match v::required_in("server", sv, o, "flavorRef")? {
        Value::Number(n) => n.to_string(),
        x => id_from_ref(&v::string("flavorRef", x, 1, 255)?),
    };
    let image_ref = parse_image(o)?;
    let networks = parse_networks(ver, o.get("networks"))?;
    let metadata = match o.get("metadata") {
        Some(m) => v::metadata("metadata", m)?,
        None => BTreeMap::new(),
    };
    let user_data = match o.get("user_data") {
        None | Some(Value::Null) => None,
        Some(u) => {
            let s = v::string("user_data", u, 0, 65535)?;
            base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|_| Fault::bad_request("User data needs to be valid base 64."))?;
            Some(s)
        }
    };
    let key_name = v::opt_string("key_name", o.get("key_name"), 1, 255)?;
    let availability_zone = v::opt_string("availability_zone", o.get("availability_zone"), 1, 255)?;
    let config_drive = match o.get("config_drive") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s.is_empty() => false,
        Some(x) => v::boolean("config_drive", x)?,
    };
    let description = if ver.at_least(19) {
        v::opt_string("description", o.get("description"), 0, 255)?
    } else {
        None
    };
    let tags = match o.get("tags") {
        Some(t) => parse_tags("tags", t)?,
        None => Vec::new(),
    };
    let hostname = match o.get("hostname") {
        Some(h) => Some(hostname(ver, h)?),
        None => None,
    };
    let ip = |k: &str, six: bool| match o.get(k) {
        Some(x) => access_ip(k, x, six),
        None => Ok(None),
    };
    let access_ipv4 = ip("accessIPv4", false)?;
    let access_ipv6 = ip("accessIPv6", true)?;
    let min_count = match o.get("min_count") {
        Some(x) => v::integer("min_count", x, 1, 1000)? as u32,
        None => 1,
    };
    let max_count = match o.get("max_count") {
        Some(x) => v::integer("max_count", x, 1, 1000)? as u32,
        None => min_count,
    };
    if min_count > max_count {
        return Err(Fault::bad_request("min_count must be <= max_count"));
    }
    let return_reservation = match o.get("return_reservation_id") {
        Some(x) => v::boolean("return_reservation_id", x)?,
        None => false,
    };
    let admin_pass = v::opt_string("adminPass", o.get("adminPass"), 0, 255)?;
    if let Some(sgs) = o.get("security_groups") {
        let list = sgs
            .as_array()
            .ok_or_else(|| v::invalid("security_groups", sgs, "is not of type 'array'"))?;
        for sg in list {
            let so = v::object("security_groups", sg)?;
            let n = so.get("name").and_then(Value::as_str).unwrap_or_default();
            if n != "default" {
                return Err(Fault::bad_request(format!(
                    "Security group {n} not found for project {}.",
                    c.project_id
                        .as_ref()
                        .map(|p| p.as_str())
                        .unwrap_or_default()
                )));
            }
        }
    }
    if let Some(t) = o.get("trusted_image_certificates")
        && !t.is_null()
    {
        return Err(Fault::bad_request(
            "Image certificate validation is not enabled.",
        ));
    }
    for k in ["host", "hypervisor_hostname"] {
        if o.contains_key(k) && !c.is_admin() {
            return Err(Fault::forbidden(
                "Policy doesn't allow compute:servers:create:requested_destination to be performed.",
            ));
        }
    }
    if image_ref.is_none() {
        return Err(Fault::bad_request("Missing imageRef attribute"));
    }
    let hints_v = root
        .get("os:scheduler_hints")
        .or_else(|| root.get("OS-SCH-HNT:scheduler_hints"));
    let mut scheduler_hints = BTreeMap::new();
    if let Some(h) = hints_v {
        for (k, val) in v::object("os:scheduler_hints", h)? {
            let vals = match val {
                Value::Array(a) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| x.to_string())
                    })
                    .collect(),
                Value::String(s) => vec![s.clone()],
                other => vec![other.to_string()],
            };
            scheduler_hints.insert(k.clone(), vals);
        }
    }
    Ok((
        CreateRequest {
            name,
            image_ref,
            flavor_ref: FlavorId(flavor_ref),
            networks,
            metadata,
            user_data,
            key_name,
            availability_zone,
            config_drive,
            description,
            tags,
            hostname,
            access_ipv4,
            access_ipv6,
            min_count,
            max_count,
            admin_pass,
            scheduler_hints,
        },
        return_reservation,
    ))
}

pub async fn create(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    ext: Extensions,
    JsonBody(body): AnyJson,
) -> Result<Response, Fault> {
    let (req, return_reservation) = parse_create(ver, &c, &body)?;
    let made = s.compute.create_servers(&c, req, &request_id(&ext)).await?;
    if return_reservation {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"reservation_id": made.reservation_id})),
        )
            .into_response());
    }
    let first = made
        .servers
        .first()
        .ok_or_else(|| Fault::internal(&"create made no server"))?;
    let location = l.href(&format!("servers/{}", first.id));
    let body = json!({"server": {
        "id": first.id.as_str(),
        "links": l.pair("servers", first.id.as_str()),
        "OS-DCF:diskConfig": "MANUAL",
        "security_groups": [{"name": "default"}],
        "adminPass": made.admin_pass,
    }});
    let mut resp = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

// ---- list ----------------------------------------------------------------------------------

pub(crate) fn parse_time(name: &str, s: &str) -> Result<chrono::DateTime<chrono::Utc>, Fault> {
    let bad = || {
        Fault::bad_request(format!(
            "Invalid input for query parameters {name}. Value: {s}. '{s}' is not a 'date-time'"
        ))
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc());
        }
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z"] {
        if let Ok(t) = chrono::DateTime::parse_from_str(s, f) {
            return Ok(t.with_timezone(&chrono::Utc));
        }
    }
    Err(bad())
}

fn regex_filter(s: &str) -> Result<Regex, Fault> {
    Regex::new(s).map_err(|_| Fault::bad_request(format!("Invalid filter regular expression: {s}")))
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

fn parse_query(
    ver: ApiVersion,
    c: &identity::Context,
    q: &QueryPairs,
) -> Result<ServerQuery, Fault> {
    if ver.at_least(75) {
        v::query_only(&q.0, &known_params(ver))?;
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
    let admin = c.is_admin();
    let mut query = ServerQuery::default();
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
    for (k, val) in &q.0 {
        if k == "status" {
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
                None => query.exact.push(("vm_state", SqlValue::Text("-".into()))),
            }
        }
    }
    if let Some(d) = q.get("deleted")
        && admin
    {
        query.deleted = Some(v::query_bool(d).unwrap_or(false));
    }
    if let Some(t) = q.get("changes-since") {
        query.changes_since = Some(parse_time("changes-since", t)?);
    }
    if ver.at_least(66)
        && let Some(t) = q.get("changes-before")
    {
        query.changes_before = Some(parse_time("changes-before", t)?);
    }
    if let (Some(a), Some(b)) = (query.changes_since, query.changes_before)
        && b < a
    {
        return Err(Fault::bad_request(
            "The value of changes-since must be less than or equal to changes-before.",
        ));
    }
    if let Some(n) = q.get("name").or_else(|| q.get("display_name")) {
        query.name = Some(regex_filter(n)?);
    }
    if ver.at_least(90)
        && let Some(h) = q.get("hostname")
    {
        query.hostname = Some(regex_filter(h)?);
    }
    if let Some(ip) = q
        .get("ip")
        .or_else(|| q.get("ip6").filter(|_| ver.at_least(5) || admin))
    {
        query.ip = Some(regex_filter(ip)?);
    }
    if let Some(img) = q.get("image") {
        query
            .exact
            .push(("image_id", SqlValue::Text(id_from_ref(img))));
    }
    if let Some(f) = q.get("flavor") {
        query
            .exact
            .push(("flavorid", SqlValue::Text(id_from_ref(f))));
    }
    if let Some(r) = q.get("reservation_id") {
        query
            .exact
            .push(("reservation_id", SqlValue::Text(r.to_owned())));
    }
    if ver.at_least(73)
        && let Some(l) = q.get("locked")
    {
        let on = v::query_bool(l).ok_or_else(|| {
            Fault::bad_request(format!("Unrecognized value '{l}', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"))
        })?;
        query
            .exact
            .push(("(locked_by IS NOT NULL)", SqlValue::Integer(i64::from(on))));
    }
    // 2.83 opened these to everyone; admins could always use them.
    if ver.at_least(83) || admin {
        if let Some(az) = q.get("availability_zone") {
            query
                .exact
                .push(("availability_zone", SqlValue::Text(az.to_owned())));
        }
        if let Some(u) = q.get("user_id") {
            query.exact.push(("user_id", SqlValue::Text(u.to_owned())));
        }
        if let Some(k) = q.get("key_name") {
            query.key_name = Some(regex_filter(k)?);
        }
        if let Some(vs) = q.get("vm_state") {
            query
                .exact
                .push(("vm_state", SqlValue::Text(vs.to_owned())));
        }
        if let Some(ts) = q.get("task_state") {
            query
                .exact
                .push(("task_state", SqlValue::Text(ts.to_owned())));
        }
        if let Some(p) = q.get("power_state") {
            let code = p
                .parse::<i64>()
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
                .ok_or_else(|| Fault::bad_request(format!("Invalid power_state filter [{p}]")))?;
            query.exact.push(("power_state", SqlValue::Integer(code)));
        }
        if let Some(cd) = q.get("config_drive") {
            let on = v::query_bool(cd).unwrap_or(false);
            query
                .exact
                .push(("config_drive", SqlValue::Integer(i64::from(on))));
        }
    }
    if ver.at_least(26) {
        let t = |k: &str| q.get(k).map(csv).unwrap_or_default();
        query.tags = t("tags");
        query.tags_any = t("tags-any");
        query.not_tags = t("not-tags");
        query.not_tags_any = t("not-tags-any");
    }
    // sort_key / sort_dir pair by position.
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
    for (i, k) in keys.iter().enumerate() {
        if matches!(*k, "host" | "node") && !admin {
            return Err(Fault::forbidden(
                "Only administrators can sort servers by host or node",
            ));
        }
        let Some(key) = SortKey::parse(k).filter(|_| *k != "locked" || ver.at_least(73)) else {
            if ver.at_least(75) {
                return Err(Fault::bad_request(format!(
                    "Invalid input for query parameters sort_key. Value: {k}. '{k}' is not one of the allowed sort keys"
                )));
            }
            continue;
        };
        let asc = match dirs.get(i).copied().unwrap_or("desc") {
            "asc" => true,
            "desc" => false,
            d => {
                return Err(Fault::bad_request(format!(
                    "Invalid input for query parameters sort_dir. Value: {d}. '{d}' is not one of ['asc', 'desc']"
                )));
            }
        };
        query.sort.push((key, asc));
    }
    let (limit, marker) = v::paging(q)?;
    query.limit = limit;
    query.marker = marker;
    Ok(query)
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
    let items: Vec<Value> = servers
        .iter()
        .map(|sv| {
            if detail {
                views::server(l, view(ver, c, ViewKind::Detail), sv)
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

// ---- one server ----------------------------------------------------------------------------

pub async fn show(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let sv = s.compute.get_server(&c, &id).await?;
    Ok(Json(
        json!({"server": views::server(&l, view(ver, &c, ViewKind::Show), &sv)}),
    ))
}

pub async fn update(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    Path(id): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    let root = v::root(&body)?;
    let sv = v::required(root, "server")?;
    v::only("", &body, &["server"])?;
    let mut allowed = vec!["name", "accessIPv4", "accessIPv6", "OS-DCF:diskConfig"];
    if ver.at_least(19) {
        allowed.push("description");
    }
    if ver.at_least(90) {
        allowed.push("hostname");
    }
    v::only("server", sv, &allowed)?;
    let o = v::object("server", sv)?;
    let mut patch = ServerPatch::default();
    if let Some(n) = o.get("name") {
        patch.name = Some(v::name("name", n)?);
    }
    if o.contains_key("description") {
        patch.description = Some(v::opt_string("description", o.get("description"), 0, 255)?);
    }
    if let Some(h) = o.get("hostname") {
        patch.hostname = Some(hostname(ver, h)?);
    }
    if let Some(x) = o.get("accessIPv4") {
        patch.access_ipv4 = Some(access_ip("accessIPv4", x, false)?);
    }
    if let Some(x) = o.get("accessIPv6") {
        patch.access_ipv6 = Some(access_ip("accessIPv6", x, true)?);
    }
    let sv = s.compute.update_server(&c, &id, patch).await?;
    Ok(Json(
        json!({"server": views::server(&l, view(ver, &c, ViewKind::Update), &sv)}),
    ))
}

pub async fn delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    ext: Extensions,
    Path(id): Path<String>,
) -> Result<StatusCode, Fault> {
    s.compute.delete_server(&c, &id, &request_id(&ext)).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- metadata ------------------------------------------------------------------------------

async fn server(s: &AppState, c: &identity::Context, id: &str) -> Result<Server, Fault> {
    Ok(s.compute.get_server(c, id).await?)
}

pub async fn metadata_list(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    Ok(Json(
        json!({"metadata": server(&s, &c, &id).await?.metadata}),
    ))
}

async fn set_all(
    s: &AppState,
    c: &identity::Context,
    id: &str,
    body: &Value,
    replace: bool,
) -> Result<Json<Value>, Fault> {
    let root = v::root(body)?;
    let m = v::required(root, "metadata")?;
    v::only("", body, &["metadata"])?;
    let items = v::metadata("metadata", m)?;
    let out = s.compute.set_metadata(c, id, items, replace).await?;
    Ok(Json(json!({ "metadata": out })))
}

pub async fn metadata_merge(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    set_all(&s, &c, &id, &body, false).await
}

pub async fn metadata_replace(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    set_all(&s, &c, &id, &body, true).await
}

pub async fn metadata_show(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, key)): Path<(String, String)>,
) -> Result<Json<Value>, Fault> {
    let sv = server(&s, &c, &id).await?;
    let val = sv
        .metadata
        .get(&key)
        .ok_or_else(|| Fault::not_found("Metadata item was not found"))?;
    Ok(Json(json!({"meta": { key: val }})))
}

pub async fn metadata_set(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, key)): Path<(String, String)>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    let root = v::root(&body)?;
    let m = v::required(root, "meta")?;
    v::only("", &body, &["meta"])?;
    let items = v::metadata("meta", m)?;
    if items.len() != 1 {
        return Err(Fault::bad_request("Request body contains too many items"));
    }
    if !items.contains_key(&key) {
        return Err(Fault::bad_request("Request body and URI mismatch"));
    }
    s.compute
        .set_metadata(&c, &id, items.clone(), false)
        .await?;
    Ok(Json(json!({ "meta": items })))
}

pub async fn metadata_delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode, Fault> {
    s.compute.delete_metadata_item(&c, &id, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- tags (2.26) ---------------------------------------------------------------------------

fn tags_version(ver: ApiVersion) -> Result<(), Fault> {
    if ver.at_least(26) {
        Ok(())
    } else {
        Err(Fault::not_found("The resource could not be found."))
    }
}

pub async fn tags_list(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    tags_version(ver)?;
    Ok(Json(json!({"tags": server(&s, &c, &id).await?.tags})))
}

pub async fn tags_replace(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
    JsonBody(body): AnyJson,
) -> Result<Json<Value>, Fault> {
    tags_version(ver)?;
    let root = v::root(&body)?;
    let t = v::required(root, "tags")?;
    v::only("", &body, &["tags"])?;
    let tags = parse_tags("tags", t)?;
    let out = s.compute.set_tags(&c, &id, tags).await?;
    Ok(Json(json!({ "tags": out })))
}

pub async fn tags_clear(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path(id): Path<String>,
) -> Result<StatusCode, Fault> {
    tags_version(ver)?;
    s.compute.set_tags(&c, &id, Vec::new()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn tag_check(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path((id, t)): Path<(String, String)>,
) -> Result<StatusCode, Fault> {
    tags_version(ver)?;
    let sv = server(&s, &c, &id).await?;
    if sv.tags.contains(&t) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Fault::not_found(format!(
            "Tag '{t}' could not be found for instance {id}."
        )))
    }
}

pub async fn tag_add(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    l: Links,
    Path((id, t)): Path<(String, String)>,
) -> Result<Response, Fault> {
    tags_version(ver)?;
    let t = tag(&json!(t))?;
    let created = s.compute.add_tag(&c, &id, &t).await?;
    let mut resp = if created {
        StatusCode::CREATED.into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&l.href(&format!("servers/{id}/tags/{t}"))) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

pub async fn tag_delete(
    State(s): State<AppState>,
    Caller(c): Caller,
    ver: ApiVersion,
    Path((id, t)): Path<(String, String)>,
) -> Result<StatusCode, Fault> {
    tags_version(ver)?;
    s.compute.delete_tag(&c, &id, &t).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- addresses -----------------------------------------------------------------------------

fn ip_list(sv: &Server) -> Value {
    // The ips API shows addresses without the OS-EXT-IPS keys.
    let mut m = Map::new();
    for a in &sv.addresses {
        let list = m
            .entry(a.network.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(v) = list {
            v.push(json!({"addr": a.addr, "version": a.version}));
        }
    }
    Value::Object(m)
}

pub async fn ips(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Fault> {
    let sv = server(&s, &c, &id).await?;
    Ok(Json(json!({"addresses": ip_list(&sv)})))
}

pub async fn ips_network(
    State(s): State<AppState>,
    Caller(c): Caller,
    Path((id, network)): Path<(String, String)>,
) -> Result<Json<Value>, Fault> {
    let sv = server(&s, &c, &id).await?;
    let all = ip_list(&sv);
    let list = all.get(&network).ok_or_else(|| {
        Fault::not_found("There are no fixed IP addresses assigned to this network.")
    })?;
    Ok(Json(json!({ network: list })))
}
