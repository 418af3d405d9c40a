//! Nova's JSON shapes, microversion by microversion.

use chrono::{DateTime, Utc};
use model::compute::{Flavor, Keypair, Server, ServerFault};
use serde_json::{Value, json};
use sha2::{Digest, Sha224};

use super::Links;
use crate::microversion::ApiVersion;

/// `2013-09-03T04:01:32Z`: Nova's resource timestamps.
pub fn nova_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `2013-09-23T13:37:00.880302`: Nova's naive timestamps (usage fields, keypairs).
pub fn naive_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

pub fn flavor_brief(l: &Links, v: ApiVersion, f: &Flavor) -> Value {
    let mut o = json!({
        "id": f.id.0,
        "name": f.name,
        "links": l.pair("flavors", &f.id.0),
    });
    if v.at_least(55) {
        o["description"] = json!(f.description);
    }
    o
}

pub fn flavor(l: &Links, v: ApiVersion, f: &Flavor) -> Value {
    let mut o = flavor_brief(l, v, f);
    o["ram"] = json!(f.ram_mb);
    o["vcpus"] = json!(f.vcpus);
    o["disk"] = json!(f.disk_gb);
    o["OS-FLV-EXT-DATA:ephemeral"] = json!(f.ephemeral_gb);
    // Before 2.75 a flavor without swap shows `""`, as Nova's database default did.
    o["swap"] = if f.swap_mb == 0 && !v.at_least(75) {
        json!("")
    } else {
        json!(f.swap_mb)
    };
    // 2.102 removed the two fields nothing used any more.
    if !v.at_least(102) {
        o["rxtx_factor"] = json!(f.rxtx_factor);
        o["OS-FLV-DISABLED:disabled"] = json!(f.disabled);
    }
    o["os-flavor-access:is_public"] = json!(f.is_public);
    if v.at_least(61) {
        o["extra_specs"] = json!(f.extra_specs);
    }
    o
}

pub fn keypair_brief(v: ApiVersion, k: &Keypair) -> Value {
    let mut o = json!({
        "name": k.name,
        "public_key": k.public_key,
        "fingerprint": k.fingerprint,
    });
    if v.at_least(2) {
        o["type"] = json!(k.kind.as_str());
    }
    o
}

pub fn keypair_full(v: ApiVersion, k: &Keypair, id: i64) -> Value {
    let mut o = keypair_brief(v, k);
    o["user_id"] = json!(k.user_id.as_str());
    o["deleted"] = json!(false);
    o["created_at"] = json!(naive_time(k.created_at));
    o["updated_at"] = Value::Null;
    o["deleted_at"] = Value::Null;
    o["id"] = json!(id);
    o
}

/// Nova's `hostId`: a hash of the project and host, so that a project can tell whether two
/// of its servers share a host without learning the host.
pub fn host_id(s: &Server) -> String {
    let mut h = Sha224::new();
    h.update(s.project_id.as_str().as_bytes());
    h.update(s.host.as_bytes());
    hex_lower(&h.finalize())
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn addresses(s: &Server, extended: bool) -> Value {
    let mut m = serde_json::Map::new();
    for a in &s.addresses {
        let list = m
            .entry(a.network.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(v) = list {
            let mut entry = json!({"addr": a.addr, "version": a.version});
            if extended {
                entry["OS-EXT-IPS:type"] = json!(if a.floating { "floating" } else { "fixed" });
                entry["OS-EXT-IPS-MAC:mac_addr"] = json!(a.mac);
            }
            v.push(entry);
        }
    }
    Value::Object(m)
}

pub fn addresses_of(s: &Server) -> Value {
    addresses(s, true)
}

/// Which server view Nova's view builder makes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ViewKind {
    Show,
    /// One entry of `GET /servers/detail`.
    Detail,
    /// The answer to `PUT /servers/{id}` (reduced before 2.75).
    Update,
}

/// Which parts of a server view to include.
#[derive(Clone, Copy)]
pub struct ServerView {
    pub version: ApiVersion,
    pub admin: bool,
    pub kind: ViewKind,
}

pub fn server(l: &Links, view: ServerView, s: &Server) -> Value {
    let v = view.version;
    // Before 2.75 `PUT` answers a reduced view; from 2.75 the full one.
    let full = view.kind != ViewKind::Update || v.at_least(75);
    let status = s.status();
    let mut o = json!({
        "id": s.id.as_str(),
        "name": s.name,
        "status": status,
        "tenant_id": s.project_id.as_str(),
        "user_id": s.user_id.as_str(),
        "metadata": s.metadata,
        "hostId": host_id(s),
        "image": image_ref(l, v, s),
        "flavor": flavor_ref(l, v, s),
        "created": nova_time(s.created_at),
        "updated": nova_time(s.updated_at),
        "addresses": addresses(s, full),
        "accessIPv4": s.access_ipv4.clone().unwrap_or_default(),
        "accessIPv6": s.access_ipv6.clone().unwrap_or_default(),
        "links": l.pair("servers", s.id.as_str()),
        "OS-DCF:diskConfig": if s.auto_disk_config { "AUTO" } else { "MANUAL" },
    });
    if matches!(
        status,
        "ACTIVE" | "BUILD" | "REBUILD" | "RESIZE" | "VERIFY_RESIZE" | "MIGRATING"
    ) {
        o["progress"] = json!(s.progress);
    }
    microversion_fields(&mut o, view, s);
    if !full {
        return o;
    }
    extended_fields(&mut o, s);
    if view.admin {
        admin_fields(&mut o, v, s);
    }
    if matches!(status, "ERROR" | "DELETED")
        && let Some(f) = &s.fault
    {
        o["fault"] = fault(view.admin, f);
    }
    o
}

/// The server's image: its id and link (with `properties` from 2.98), or `""` when it
/// booted from none.
fn image_ref(l: &Links, v: ApiVersion, s: &Server) -> Value {
    match &s.image_id {
        Some(id) => {
            let mut i = json!({"id": id, "links": [l.bookmark("images", id)]});
            if v.at_least(98) {
                i["properties"] = json!({});
            }
            i
        }
        None => json!(""),
    }
}

/// The server's flavor: a link up to 2.46, its contents from 2.47.
fn flavor_ref(l: &Links, v: ApiVersion, s: &Server) -> Value {
    if v.at_least(47) {
        json!({
            "vcpus": s.flavor.vcpus,
            "ram": s.flavor.ram_mb,
            "disk": s.flavor.disk_gb,
            "ephemeral": s.flavor.ephemeral_gb,
            "swap": s.flavor.swap_mb,
            "original_name": s.flavor.name,
            "extra_specs": s.flavor.extra_specs,
        })
    } else {
        json!({"id": s.flavor.id.0, "links": [l.bookmark("flavors", &s.flavor.id.0)]})
    }
}

/// The fields later microversions added to every view, brief update answers included.
fn microversion_fields(o: &mut Value, view: ServerView, s: &Server) {
    let v = view.version;
    if v.at_least(9) {
        o["locked"] = json!(s.locked());
    }
    if v.at_least(19) {
        o["description"] = json!(s.description);
    }
    if v.at_least(26) {
        o["tags"] = json!(s.tags);
    }
    if v.at_least(63) {
        o["trusted_image_certificates"] = Value::Null;
    }
    if v.at_least(73) {
        o["locked_reason"] = json!(s.locked_reason);
    }
    if v.at_least(90) {
        o["OS-EXT-SRV-ATTR:hostname"] = json!(s.hostname);
    }
    if v.at_least(96) {
        o["pinned_availability_zone"] = json!(s.pinned_availability_zone);
    }
    if v.at_least(100) {
        o["scheduler_hints"] = json!(s.scheduler_hints);
    }
    // Show, update and rebuild name the server's groups; list entries do not.
    // A server joins a group only through its `group` hint, at create time.
    if v.at_least(71) && view.kind != ViewKind::Detail {
        let groups: Vec<&String> = s
            .scheduler_hints
            .get("group")
            .map(|g| g.iter().take(1).collect())
            .unwrap_or_default();
        o["server_groups"] = json!(groups);
    }
}

/// The extension attributes of a full view (not of a pre-2.75 update answer).
fn extended_fields(o: &mut Value, s: &Server) {
    o["OS-EXT-AZ:availability_zone"] = json!(s.availability_zone);
    o["config_drive"] = json!(if s.config_drive { "True" } else { "" });
    o["key_name"] = json!(s.key_name);
    o["OS-SRV-USG:launched_at"] = json!(s.launched_at.map(naive_time));
    o["OS-SRV-USG:terminated_at"] = json!(s.terminated_at.map(naive_time));
    // Nova shows the groups of the server's ports, and the key only when there are some.
    if !s.security_groups.is_empty() {
        o["security_groups"] = json!(
            s.security_groups
                .iter()
                .map(|n| json!({ "name": n }))
                .collect::<Vec<_>>()
        );
    }
    o["OS-EXT-STS:task_state"] = json!(s.task_state.map(|t| t.as_str()));
    o["OS-EXT-STS:vm_state"] = json!(s.vm_state.as_str());
    o["OS-EXT-STS:power_state"] = json!(s.power_state.code());
    o["os-extended-volumes:volumes_attached"] = json!([]);
}

/// `os-extended-volumes:volumes_attached`: each volume, with `delete_on_termination`
/// from 2.3.
pub fn volumes_attached(ver: ApiVersion, atts: &[model::volume::AttachmentRec]) -> Value {
    json!(
        atts.iter()
            .map(|a| {
                let mut o = json!({ "id": a.volume_id });
                if ver.at_least(3) {
                    o["delete_on_termination"] = json!(a.delete_on_termination);
                }
                o
            })
            .collect::<Vec<_>>()
    )
}

/// The server attributes only admins see.
fn admin_fields(o: &mut Value, v: ApiVersion, s: &Server) {
    o["OS-EXT-SRV-ATTR:host"] = json!(s.host);
    o["OS-EXT-SRV-ATTR:hypervisor_hostname"] = json!(s.host);
    o["OS-EXT-SRV-ATTR:instance_name"] = json!(format!("instance-{}", &s.id.as_str()[..8]));
    if v.at_least(3) {
        o["OS-EXT-SRV-ATTR:hostname"] = json!(s.hostname);
        o["OS-EXT-SRV-ATTR:reservation_id"] = json!(s.reservation_id);
        o["OS-EXT-SRV-ATTR:launch_index"] = json!(s.launch_index);
        o["OS-EXT-SRV-ATTR:kernel_id"] = json!("");
        o["OS-EXT-SRV-ATTR:ramdisk_id"] = json!("");
        o["OS-EXT-SRV-ATTR:root_device_name"] = json!("/dev/vda");
        o["OS-EXT-SRV-ATTR:user_data"] = json!(s.user_data);
    }
    if v.at_least(16) {
        o["host_status"] = json!("UP");
    }
}

/// A failed server's fault. A member sees a backend's 500 without its details.
fn fault(admin: bool, f: &ServerFault) -> Value {
    let message = if admin || f.code != 500 {
        f.message.clone()
    } else {
        member_fault_message(&f.message)
    };
    let mut fault = json!({
        "code": f.code,
        "created": nova_time(f.created_at),
        "message": message,
    });
    if (admin || f.code != 500)
        && let Some(d) = &f.details
    {
        fault["details"] = json!(d);
    }
    fault
}

/// What a member reads of a failure to be carried out (a 500 fault's message, a failed
/// instance action event).
pub const BACKEND_FAILURE: &str = "The server's backend failed; an administrator can see why.";

/// A 500 fault's message as a member reads it. The compute service words a failure as
/// `<what failed>: <the backend's error>`, and the backend's error may hold host paths, tool
/// stderr or libvirt's words: a member reads what failed, and an admin the whole message and
/// the instance action events' details (Nova likewise shows a member only a foreign
/// exception's class, its text only to admins). What is left still naming a path, or over
/// one line, gives way to a generic message. The database keeps the whole message.
pub fn member_fault_message(message: &str) -> String {
    let head = message.split_once(": ").map_or(message, |(h, _)| h);
    let hostish =
        head.trim().is_empty() || head.contains(['/', '\\', '\n', '\r']) || head.len() > 255;
    if hostish {
        BACKEND_FAILURE.to_owned()
    } else {
        head.to_owned()
    }
}

pub fn server_brief(l: &Links, s: &Server) -> Value {
    json!({
        "id": s.id.as_str(),
        "name": s.name,
        "links": l.pair("servers", s.id.as_str()),
    })
}

#[cfg(test)]
mod tests {
    use super::{BACKEND_FAILURE, member_fault_message};

    #[test]
    fn a_member_reads_what_failed_and_never_the_backends_words() {
        assert_eq!(
            member_fault_message(
                "Rebuild of instance 1f2e failed: qemu-img: /var/lib/onebox/instances/1f2e/disk: Permission denied"
            ),
            "Rebuild of instance 1f2e failed"
        );
        assert_eq!(
            member_fault_message("onebox stopped while the server was in task state rebooting."),
            "onebox stopped while the server was in task state rebooting."
        );
        assert_eq!(
            member_fault_message("cannot open /var/lib/onebox/x"),
            BACKEND_FAILURE
        );
        assert_eq!(member_fault_message("line one\nline two"), BACKEND_FAILURE);
        assert_eq!(member_fault_message(""), BACKEND_FAILURE);
    }
}
