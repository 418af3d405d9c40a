//! `/servers` and `/servers/{id}`: create, show, update and delete a server. Listing is in
//! `server_list`, actions in `server_actions`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{Extensions, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use compute::servers::ServerPatch;
use compute::{CreateRequest, NetworkRequest};
use model::compute::{FlavorId, Server};
use serde_json::{Map, Value, json};

use super::server_tags::parse_tags;
use super::validate as v;
use super::views::{self, ServerView, ViewKind};
use super::{Links, request_id};
use crate::extract::{AnyJson, Caller, JsonBody, Path};
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

/// The server `id` as the caller may see it (404 for one that is not theirs).
pub(super) async fn server(s: &AppState, c: &identity::Context, id: &str) -> Result<Server, Fault> {
    Ok(s.compute.get_server(c, id).await?)
}

/// `user_data`: base 64, at most 64 KiB of it; kept as given.
pub(super) fn user_data(u: &Value) -> Result<String, Fault> {
    let s = v::string("user_data", u, 0, 65535)?;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|_| {
            v::invalid(
                "user_data",
                u,
                &format!("{} is not a 'base64'", v::py_repr(u)),
            )
        })?;
    Ok(s)
}

/// An image id as Nova's `uuid` format reads it (any case, with or without hyphens, braces
/// or `urn:uuid:`), in its canonical form.
pub(crate) fn image_uuid(s: &str) -> Option<String> {
    uuid::Uuid::parse_str(s)
        .ok()
        .map(|u| u.hyphenated().to_string())
}

// ---- create --------------------------------------------------------------------------------

fn parse_networks(
    ver: ApiVersion,
    sv: &Value,
    nv: Option<&Value>,
) -> Result<NetworkRequest, Fault> {
    let Some(nv) = nv else {
        if ver.at_least(37) {
            return Err(v::invalid(
                "server",
                sv,
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
                let mut nic = compute::NicRequest::default();
                if let Some(p) = o.get("port").filter(|p| !p.is_null()) {
                    let p = v::string("port", p, 1, 255)?;
                    if uuid::Uuid::parse_str(&p).is_err() {
                        return Err(v::invalid(
                            "port",
                            &json!(p),
                            &format!("'{p}' is not a 'uuid'"),
                        ));
                    }
                    nic.port = Some(p);
                }
                if let Some(f) = o.get("fixed_ip").filter(|f| !f.is_null()) {
                    let f = v::string("fixed_ip", f, 1, 255)?;
                    match model::network::parse_v4(&f) {
                        Some(a) => nic.fixed_ip = Some(a),
                        None => {
                            return Err(v::invalid(
                                "fixed_ip",
                                &json!(f),
                                &format!("'{f}' is not a 'ipv4'"),
                            ));
                        }
                    }
                }
                match o.get("uuid").filter(|u| !u.is_null()) {
                    Some(u) => {
                        let u = v::string("uuid", u, 1, 255)?;
                        if ver.at_least(37) && uuid::Uuid::parse_str(&u).is_err() {
                            return Err(v::invalid(
                                "uuid",
                                &json!(u),
                                &format!("'{u}' is not a 'uuid'"),
                            ));
                        }
                        nic.network = Some(u);
                    }
                    None if nic.port.is_none() => {
                        return Err(Fault::bad_request(
                            "Bad networks format: network uuid is not in proper format",
                        ));
                    }
                    None => {}
                }
                ids.push(nic);
            }
            Ok(NetworkRequest::List(ids))
        }
        // Before 2.37 the schema is an array; from 2.37 one of an array, "auto" or "none".
        other if !ver.at_least(37) => Err(v::invalid(
            "networks",
            other,
            &format!("{} is not of type 'array'", v::py_repr(other)),
        )),
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

/// `imageRef`: a UUID, or absent, null or empty (a server booting from a volume).
fn parse_image_ref(o: &Map<String, Value>) -> Result<Option<String>, Fault> {
    match o.get("imageRef") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        // Nova's schema: a UUID, or the empty string (boot from volume).
        Some(x) => match x.as_str().and_then(image_uuid) {
            Some(id) => Ok(Some(id)),
            None => Err(v::invalid(
                "imageRef",
                x,
                &format!(
                    "{} is not valid under any of the given schemas",
                    v::py_repr(x)
                ),
            )),
        },
    }
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
        // Nova's patterns: a single label before 2.94, its FQDN pattern from 2.94 (onebox's
        // label rule is stricter than the latter; its own words where the pattern matches).
        let pattern = if ver.at_least(94) {
            (!h.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)))
            .then_some("^[a-zA-Z0-9-._]*$")
        } else {
            Some("^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$")
        };
        let reason = match pattern {
            Some(p) => format!(
                "{} does not match {}",
                v::py_repr(val),
                v::py_repr(&Value::String(p.into()))
            ),
            None => format!("{} does not match the hostname format", v::py_repr(val)),
        };
        return Err(v::invalid("hostname", val, &reason));
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
            // Kept in canonical form (an IPv6 address compressed, in lower case), as Nova
            // stores and shows it.
            let canonical = if six {
                s.parse::<std::net::Ipv6Addr>().ok().map(|a| a.to_string())
            } else {
                s.parse::<std::net::Ipv4Addr>().ok().map(|a| a.to_string())
            };
            match canonical {
                Some(c) => Ok(Some(c)),
                None => {
                    let family = if six { "ipv6" } else { "ipv4" };
                    Err(v::invalid(
                        k,
                        x,
                        &format!("{} is not a '{family}'", v::py_repr(x)),
                    ))
                }
            }
        }
    }
}

/// The fields a create's `server` may hold at this microversion.
fn create_fields(ver: ApiVersion) -> Vec<&'static str> {
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
    allowed
}

/// A `POST /servers` body as a [`CreateRequest`], and whether the caller asked for the
/// reservation id instead of the server. The steps run in this order so that a body with
/// several faults gets the same one every time.
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
    v::only("server", sv, &create_fields(ver))?;
    let o = v::object("server", sv)?;
    let mut req = what_to_boot(ver, sv, o)?;
    describe(ver, o, &mut req)?;
    (req.min_count, req.max_count) = counts(o)?;
    let return_reservation = match o.get("return_reservation_id") {
        Some(x) => v::boolean("return_reservation_id", x)?,
        None => false,
    };
    req.admin_pass = v::opt_string("adminPass", o.get("adminPass"), 0, 255)?;
    refuse_unsupported(c, o)?;
    req.security_groups = security_groups(o)?;
    if req.image_ref.is_none() && req.block_devices.is_empty() {
        return Err(Fault::bad_request("Missing imageRef attribute"));
    }
    req.scheduler_hints = scheduler_hints(root)?;
    Ok((req, return_reservation))
}

/// The name, flavor, image, networks, metadata and user data; the rest left at defaults.
fn what_to_boot(
    ver: ApiVersion,
    sv: &Value,
    o: &Map<String, Value>,
) -> Result<CreateRequest, Fault> {
    let name = v::name("name", v::required_in("server", sv, o, "name")?)?;
    let flavor_ref = match v::required_in("server", sv, o, "flavorRef")? {
        Value::Number(n) => n.to_string(),
        x => id_from_ref(&v::string("flavorRef", x, 1, 255)?),
    };
    let (image_ref, block_devices) = super::block_devices::parse(ver, o, parse_image_ref(o)?)?;
    let networks = parse_networks(ver, sv, o.get("networks"))?;
    let metadata = match o.get("metadata") {
        Some(m) => v::metadata("metadata", m)?,
        None => BTreeMap::new(),
    };
    let user_data = match o.get("user_data") {
        None | Some(Value::Null) => None,
        Some(u) => Some(user_data(u)?),
    };
    Ok(CreateRequest {
        name,
        image_ref,
        flavor_ref: FlavorId(flavor_ref),
        networks,
        security_groups: Vec::new(),
        metadata,
        user_data,
        key_name: None,
        availability_zone: None,
        config_drive: false,
        description: None,
        tags: Vec::new(),
        hostname: None,
        access_ipv4: None,
        access_ipv6: None,
        min_count: 1,
        max_count: 1,
        admin_pass: None,
        scheduler_hints: BTreeMap::new(),
        block_devices,
        auto_disk_config: None,
    })
}

/// Key pair, zone, config drive, description, tags, hostname and access addresses.
fn describe(ver: ApiVersion, o: &Map<String, Value>, req: &mut CreateRequest) -> Result<(), Fault> {
    req.key_name = v::opt_string("key_name", o.get("key_name"), 1, 255)?;
    req.auto_disk_config = super::server_actions::disk_config(o)?;
    req.availability_zone = v::opt_string("availability_zone", o.get("availability_zone"), 1, 255)?;
    req.config_drive = match o.get("config_drive") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s.is_empty() => false,
        Some(x) => v::boolean("config_drive", x)?,
    };
    if ver.at_least(19) {
        req.description = v::opt_string("description", o.get("description"), 0, 255)?;
    }
    if let Some(t) = o.get("tags") {
        req.tags = parse_tags("tags", t)?;
    }
    if let Some(h) = o.get("hostname") {
        req.hostname = Some(hostname(ver, h)?);
    }
    let ip = |k: &str, six: bool| match o.get(k) {
        Some(x) => access_ip(k, x, six),
        None => Ok(None),
    };
    req.access_ipv4 = ip("accessIPv4", false)?;
    req.access_ipv6 = ip("accessIPv6", true)?;
    Ok(())
}

/// `min_count` and `max_count` (which defaults to `min_count`).
fn counts(o: &Map<String, Value>) -> Result<(u32, u32), Fault> {
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
    Ok((min_count, max_count))
}

/// The security groups a create names (`[{"name": …}]`, a name or an id each).
fn security_groups(o: &Map<String, Value>) -> Result<Vec<String>, Fault> {
    let Some(sgs) = o.get("security_groups") else {
        return Ok(Vec::new());
    };
    let list = sgs
        .as_array()
        .ok_or_else(|| v::invalid("security_groups", sgs, "is not of type 'array'"))?;
    let mut out = Vec::new();
    for sg in list {
        v::only("security_groups", sg, &["name"])?;
        let so = v::object("security_groups", sg)?;
        let n = match so.get("name") {
            Some(n) => v::string("name", n, 1, 255)?,
            None => {
                return Err(v::invalid(
                    "security_groups",
                    sg,
                    "'name' is a required property",
                ));
            }
        };
        out.push(n);
    }
    Ok(out)
}

/// What onebox refuses: image certificates, and (for all but admins) a requested host.
fn refuse_unsupported(c: &identity::Context, o: &Map<String, Value>) -> Result<(), Fault> {
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
    Ok(())
}

/// `os:scheduler_hints` (or its old name), each hint as a list of strings.
fn scheduler_hints(root: &Map<String, Value>) -> Result<BTreeMap<String, Vec<String>>, Fault> {
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
    Ok(scheduler_hints)
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
        "OS-DCF:diskConfig": if first.auto_disk_config { "AUTO" } else { "MANUAL" },
        "security_groups": [{"name": "default"}],
        "adminPass": made.admin_pass,
    }});
    let mut resp = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
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
    let mut out = views::server(&l, view(ver, &c, ViewKind::Show), &sv);
    if out.get("os-extended-volumes:volumes_attached").is_some() {
        let atts = s.compute.volume_attachments(&c, &id).await?;
        out["os-extended-volumes:volumes_attached"] = views::volumes_attached(ver, &atts);
    }
    Ok(Json(json!({ "server": out })))
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
    if ver.at_least(104) {
        allowed.push("pinned_availability_zone");
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
    patch.auto_disk_config = super::server_actions::disk_config(o)?;
    if let Some(z) = o.get("pinned_availability_zone") {
        patch.pinned_availability_zone = Some(match z {
            Value::Null => None,
            Value::String(t) if (1..=255).contains(&t.chars().count()) => Some(t.clone()),
            z => {
                return Err(v::invalid(
                    "pinned_availability_zone",
                    z,
                    &format!(
                        "{} is not valid under any of the given schemas",
                        v::py_repr(z)
                    ),
                ));
            }
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_ips_are_kept_in_canonical_form() {
        let six = |s: &str| access_ip("accessIPv6", &json!(s), true);
        assert_eq!(
            six("2001:0DB8:0000:0000:0000:0000:0000:0001").expect("v6"),
            Some("2001:db8::1".to_owned())
        );
        assert_eq!(
            six("::FFFF:1.2.3.4").expect("v6"),
            Some("::ffff:1.2.3.4".to_owned())
        );
        assert_eq!(six("").expect("empty"), None);
        assert!(six("1.2.3.4").is_err());
        assert_eq!(
            access_ip("accessIPv4", &json!("10.0.0.1"), false).expect("v4"),
            Some("10.0.0.1".to_owned())
        );
        assert!(access_ip("accessIPv4", &json!("010.0.0.1"), false).is_err());
    }
}
