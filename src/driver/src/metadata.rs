//! What a guest reads about itself: the documents of OpenStack's metadata service and config
//! drive (`openstack/<version>/meta_data.json`, `user_data`, `network_data.json`,
//! `vendor_data.json`, `vendor_data2.json`) and the EC2-compatible tree
//! (`<version>/meta-data/…`, `<version>/user-data`). The metadata service and the config
//! drive serve the same documents, built here from the [`InstanceSpec`].
//!
//! These are guest-facing formats (what cloud-init reads), not the Compute API, so they live
//! beside the driver interface that both the service and the backends use.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::{Value, json};

use crate::InstanceSpec;

/// The OpenStack metadata versions offered; each serves the same documents.
pub const OPENSTACK_VERSIONS: &[&str] = &[
    "2012-08-10",
    "2013-04-04",
    "2013-10-17",
    "2015-10-15",
    "2016-06-30",
    "2016-10-06",
    "2017-02-22",
    "2018-08-27",
    "2020-10-14",
    "latest",
];

/// The EC2 metadata versions offered.
pub const EC2_VERSIONS: &[&str] = &["2009-04-04", "latest"];

fn netmask(prefix: u8) -> Ipv4Addr {
    let bits = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    };
    Ipv4Addr::from(bits)
}

fn prefix_of(cidr: &str) -> u8 {
    cidr.split_once('/')
        .and_then(|(_, p)| p.parse().ok())
        .filter(|p| *p <= 32)
        .unwrap_or(24)
}

/// The guest's own interface name for a port, as Nova names links (`tap` + port prefix).
fn link_id(i: usize, mac: &str) -> String {
    format!("tap{}{}", i, mac.replace(':', "").get(6..).unwrap_or(""))
}

/// `openstack/<version>/meta_data.json`.
pub fn meta_data(spec: &InstanceSpec) -> Value {
    let mut public_keys = serde_json::Map::new();
    let mut keys = Vec::new();
    if let (Some(name), Some(data)) = (&spec.key_name, &spec.key_data) {
        public_keys.insert(name.clone(), Value::String(data.clone()));
        keys.push(json!({"name": name, "type": "ssh", "data": data}));
    }
    let mut doc = json!({
        "uuid": spec.id.as_str(),
        "name": spec.name,
        "hostname": spec.hostname,
        "launch_index": spec.launch_index,
        "availability_zone": spec.availability_zone,
        "project_id": spec.project_id,
        "meta": spec.metadata,
        "devices": [],
        "dedicated_cpus": [],
    });
    if !keys.is_empty() {
        doc["public_keys"] = Value::Object(public_keys);
        doc["keys"] = Value::Array(keys);
    }
    // Only a config drive written for a rebuild or a rescue carries a password, as Nova's
    // does; the metadata service's specs never have one.
    if let Some(p) = &spec.admin_pass {
        doc["admin_pass"] = Value::String(p.clone());
    }
    doc
}

/// `openstack/<version>/network_data.json`: one link per port, its IPv4 network with the
/// gateway as default route.
pub fn network_data(spec: &InstanceSpec) -> Value {
    let mut links = Vec::new();
    let mut networks = Vec::new();
    let mut services = Vec::new();
    for (i, p) in spec.ports.iter().enumerate() {
        let link = link_id(i, &p.mac);
        let vif = if p.port_id.is_empty() {
            format!("{}-{}", spec.id, i)
        } else {
            p.port_id.clone()
        };
        links.push(json!({
            "id": link,
            "vif_id": vif,
            "type": "bridge",
            "mtu": if p.mtu == 0 { 1500 } else { p.mtu },
            "ethernet_mac_address": p.mac,
        }));
        networks.push(json!({
            "id": format!("network{i}"),
            "type": "ipv4",
            "link": link,
            "ip_address": p.address,
            "netmask": netmask(prefix_of(&p.cidr)).to_string(),
            "routes": routes(p),
            "network_id": p.network_id,
            "services": p.dns_nameservers.iter().map(|d| json!({"type": "dns", "address": d})).collect::<Vec<_>>(),
        }));
        for d in &p.dns_nameservers {
            let s = json!({"type": "dns", "address": d});
            if !services.contains(&s) {
                services.push(s);
            }
        }
    }
    json!({"links": links, "networks": networks, "services": services})
}

/// A port's routes in `network_data.json`: the subnet's host routes, then the default
/// route through the gateway.
fn routes(p: &crate::Port) -> Vec<Value> {
    let mut out: Vec<Value> = p
        .host_routes
        .iter()
        .filter_map(|(dest, hop)| {
            let (net, len) = dest.split_once('/')?;
            let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
            Some(json!({"network": net, "netmask": netmask(len).to_string(), "gateway": hop}))
        })
        .collect();
    out.push(json!({"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": p.gateway}));
    out
}

/// `vendor_data.json` and `vendor_data2.json`: onebox adds nothing of its own.
pub fn vendor_data() -> Value {
    json!({})
}

/// The files of a config drive, by path within it: `openstack/<version>/…` for each
/// version Nova writes and `ec2/<version>/…`.
pub fn config_drive_files(spec: &InstanceSpec) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let files = openstack_files(spec);
    for v in [
        "latest",
        "2012-08-10",
        "2013-04-04",
        "2013-10-17",
        "2016-06-30",
        "2018-08-27",
    ] {
        for (name, body) in &files {
            out.push((format!("openstack/{v}/{name}"), body.clone()));
        }
    }
    let ec2 = serde_json::to_vec(&ec2_meta_data_json(spec)).unwrap_or_default();
    for v in ["latest", "2009-04-04"] {
        out.push((format!("ec2/{v}/meta-data.json"), ec2.clone()));
        if let Some(u) = &spec.user_data {
            out.push((format!("ec2/{v}/user-data"), user_data_bytes(u)));
        }
    }
    out
}

/// The files of one OpenStack version directory, by name.
pub fn openstack_files(spec: &InstanceSpec) -> BTreeMap<&'static str, Vec<u8>> {
    let mut f = BTreeMap::new();
    let pretty = |v: Value| serde_json::to_vec(&v).unwrap_or_default();
    f.insert("meta_data.json", pretty(meta_data(spec)));
    f.insert("network_data.json", pretty(network_data(spec)));
    f.insert("vendor_data.json", pretty(vendor_data()));
    f.insert("vendor_data2.json", pretty(vendor_data()));
    if let Some(u) = &spec.user_data {
        f.insert("user_data", user_data_bytes(u));
    }
    f
}

/// The user data as the guest receives it. The API stores it base64-encoded, as Nova
/// receives it; a value that is not base64 is passed through unchanged.
pub fn user_data_bytes(stored: &str) -> Vec<u8> {
    decode_base64(stored).unwrap_or_else(|| stored.as_bytes().to_vec())
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut pad = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                pad += 1;
                continue;
            }
            b'\n' | b'\r' | b' ' => continue,
            _ => return None,
        };
        if pad > 0 {
            return None;
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// The EC2 `meta-data/` tree as paths (relative to `meta-data/`) and their values.
pub fn ec2_meta_data(spec: &InstanceSpec) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let short = spec.id.as_str().replace('-', "");
    let instance_id = format!("i-{}", &short[..8.min(short.len())]);
    let local_ip = spec
        .ports
        .first()
        .map(|p| p.address.clone())
        .unwrap_or_default();
    m.insert("ami-id".into(), "ami-00000001".into());
    m.insert("ami-launch-index".into(), spec.launch_index.to_string());
    m.insert("ami-manifest-path".into(), "FIXME".into());
    m.insert("hostname".into(), spec.hostname.clone());
    m.insert("instance-action".into(), "none".into());
    m.insert("instance-id".into(), instance_id);
    m.insert("instance-type".into(), spec.flavor_name.clone());
    m.insert("local-hostname".into(), spec.hostname.clone());
    m.insert("local-ipv4".into(), local_ip);
    m.insert("public-hostname".into(), spec.hostname.clone());
    m.insert("public-ipv4".into(), String::new());
    m.insert(
        "reservation-id".into(),
        format!("r-{}", &short[8.min(short.len())..16.min(short.len())]),
    );
    m.insert("security-groups".into(), "default".into());
    m.insert(
        "placement/availability-zone".into(),
        spec.availability_zone.clone(),
    );
    m.insert("block-device-mapping/ami".into(), "vda".into());
    m.insert("block-device-mapping/root".into(), "/dev/vda".into());
    if let (Some(name), Some(data)) = (&spec.key_name, &spec.key_data) {
        m.insert(format!("public-keys/0={name}"), String::new());
        m.insert("public-keys/0/openssh-key".into(), data.clone());
    }
    m
}

/// The EC2 tree as one JSON document (the config drive's `ec2/<version>/meta-data.json`).
pub fn ec2_meta_data_json(spec: &InstanceSpec) -> Value {
    let mut root = serde_json::Map::new();
    for (path, value) in ec2_meta_data(spec) {
        if path.starts_with("public-keys/0=") {
            continue;
        }
        let parts: Vec<&str> = path.split('/').collect();
        let mut node = &mut root;
        for p in &parts[..parts.len() - 1] {
            node = node
                .entry(p.to_string())
                .or_insert_with(|| Value::Object(serde_json::Map::new()))
                .as_object_mut()
                .expect("EC2 paths never make a value a directory");
        }
        node.insert(parts[parts.len() - 1].to_string(), Value::String(value));
    }
    if let (Some(name), Some(data)) = (&spec.key_name, &spec.key_data) {
        root.insert(
            "public-keys".into(),
            json!({"0": {"_name": format!("0={name}"), "openssh-key": data}}),
        );
    }
    Value::Object(root)
}

/// One answer of the EC2 tree for `path` below `meta-data/`: a value, or a directory
/// listing (one entry a line, directories with a trailing `/`). `None` when absent.
pub fn ec2_lookup(spec: &InstanceSpec, path: &str) -> Option<String> {
    let tree = ec2_meta_data(spec);
    let path = path.trim_matches('/');
    if let Some(v) = tree.get(path) {
        return Some(v.clone());
    }
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let mut entries: Vec<String> = Vec::new();
    for k in tree.keys() {
        let Some(rest) = k.strip_prefix(&prefix) else {
            continue;
        };
        // `public-keys/0=name` is the listing entry of key 0, not a path of its own.
        let entry = match rest.split_once('/') {
            Some((dir, _)) => format!("{dir}/"),
            None => rest.to_string(),
        };
        let entry = if path == "public-keys" {
            match rest.split_once('=') {
                Some(_) => rest.to_string(),
                None => continue,
            }
        } else if rest.contains('=') {
            continue;
        } else {
            entry
        };
        if !entries.contains(&entry) {
            entries.push(entry);
        }
    }
    if entries.is_empty() {
        return None;
    }
    Some(entries.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Port;

    fn spec() -> InstanceSpec {
        InstanceSpec {
            name: "web".into(),
            hostname: "web".into(),
            key_name: Some("k".into()),
            key_data: Some("ssh-ed25519 AAAA k".into()),
            user_data: Some("IyEvYmluL3NoCmVjaG8gaGk=".into()),
            ports: vec![Port {
                network_id: "n".into(),
                network_name: "private".into(),
                cidr: "10.1.0.0/16".into(),
                gateway: "10.1.0.1".into(),
                address: "10.1.0.10".into(),
                mac: "fa:16:3e:00:00:01".into(),
                ..Default::default()
            }],
            ..InstanceSpec::default()
        }
    }

    #[test]
    fn documents() {
        let s = spec();
        let md = meta_data(&s);
        assert_eq!(md["public_keys"]["k"], "ssh-ed25519 AAAA k");
        assert_eq!(md["hostname"], "web");
        let nd = network_data(&s);
        assert_eq!(nd["networks"][0]["netmask"], "255.255.0.0");
        assert_eq!(nd["networks"][0]["ip_address"], "10.1.0.10");
        assert_eq!(
            nd["networks"][0]["routes"],
            json!([{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.1.0.1"}])
        );
        let mut routed = spec();
        routed.ports[0].host_routes = vec![("192.168.7.0/24".into(), "10.1.0.254".into())];
        assert_eq!(
            network_data(&routed)["networks"][0]["routes"][0],
            json!({"network": "192.168.7.0", "netmask": "255.255.255.0", "gateway": "10.1.0.254"})
        );
        assert_eq!(
            user_data_bytes("IyEvYmluL3NoCmVjaG8gaGk="),
            b"#!/bin/sh\necho hi"
        );
        assert_eq!(user_data_bytes("not base64!"), b"not base64!");
        let files = openstack_files(&s);
        assert_eq!(files["user_data"], b"#!/bin/sh\necho hi");
        assert!(md.get("admin_pass").is_none());
        let mut rescue = spec();
        rescue.admin_pass = Some("pw".into());
        assert_eq!(meta_data(&rescue)["admin_pass"], "pw");
    }

    #[test]
    fn ec2_tree() {
        let s = spec();
        assert_eq!(ec2_lookup(&s, "local-ipv4").as_deref(), Some("10.1.0.10"));
        assert_eq!(ec2_lookup(&s, "public-keys/").as_deref(), Some("0=k"));
        assert_eq!(
            ec2_lookup(&s, "public-keys/0/openssh-key").as_deref(),
            Some("ssh-ed25519 AAAA k")
        );
        let root = ec2_lookup(&s, "").expect("root listing");
        assert!(root.lines().any(|l| l == "placement/"));
        assert!(root.lines().any(|l| l == "public-keys/"));
        assert!(ec2_lookup(&s, "nothing").is_none());
        let j = ec2_meta_data_json(&s);
        assert_eq!(j["placement"]["availability-zone"], "");
        assert_eq!(j["public-keys"]["0"]["openssh-key"], "ssh-ed25519 AAAA k");
    }
}
