//! The JSON of each networking resource, as Neutron shows it.

use ::network::FloatingIp;
use chrono::{DateTime, SecondsFormat, Utc};
use model::network::{
    NetworkRec, PortRec, RouterRec, SecurityGroupRec, SgRuleRec, Stamp, SubnetRec,
};
use serde_json::{Value, json};

fn t(d: &DateTime<Utc>) -> String {
    d.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn stamp(o: &mut Value, s: &Stamp) {
    o["created_at"] = json!(t(&s.created_at));
    o["updated_at"] = json!(t(&s.updated_at));
    o["revision_number"] = json!(s.revision);
}

pub const NETWORK_ATTRS: &[&str] = &[
    "id",
    "name",
    "tenant_id",
    "project_id",
    "admin_state_up",
    "mtu",
    "status",
    "subnets",
    "shared",
    "port_security_enabled",
    "router:external",
    "is_default",
    "description",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
    "availability_zone_hints",
    "availability_zones",
    "ipv4_address_scope",
    "ipv6_address_scope",
    "vlan_transparent",
    "provider:network_type",
    "provider:physical_network",
    "provider:segmentation_id",
];

pub fn network(n: &NetworkRec, admin: bool) -> Value {
    let mut o = json!({
        "id": n.id,
        "name": n.name,
        "tenant_id": n.project_id.as_str(),
        "project_id": n.project_id.as_str(),
        "admin_state_up": n.admin_state_up,
        "mtu": n.mtu,
        "status": "ACTIVE",
        "subnets": n.subnets,
        "shared": n.shared,
        "port_security_enabled": n.port_security,
        "router:external": n.external,
        "vlan_transparent": false,
        "is_default": n.is_default,
        "availability_zone_hints": [],
        "availability_zones": ["nova"],
        "ipv4_address_scope": null,
        "ipv6_address_scope": null,
        "description": n.description,
        "tags": n.tags,
    });
    if admin {
        o["provider:network_type"] = json!(if n.external { "flat" } else { "local" });
        o["provider:physical_network"] = json!(if n.external { Some("uplink") } else { None });
        o["provider:segmentation_id"] = Value::Null;
    }
    stamp(&mut o, &n.stamp);
    o
}

pub const SUBNET_ATTRS: &[&str] = &[
    "id",
    "name",
    "tenant_id",
    "project_id",
    "network_id",
    "ip_version",
    "subnetpool_id",
    "enable_dhcp",
    "ipv6_ra_mode",
    "ipv6_address_mode",
    "gateway_ip",
    "cidr",
    "allocation_pools",
    "host_routes",
    "dns_nameservers",
    "description",
    "service_types",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
    "router:external",
];

pub fn subnet(s: &SubnetRec, external: bool) -> Value {
    let mut o = json!({
        "id": s.id,
        "name": s.name,
        "tenant_id": s.project_id.as_str(),
        "project_id": s.project_id.as_str(),
        "network_id": s.network_id,
        "ip_version": s.ip_version,
        "subnetpool_id": null,
        "enable_dhcp": s.enable_dhcp,
        "ipv6_ra_mode": null,
        "ipv6_address_mode": null,
        "gateway_ip": s.gateway_ip.map(|g| g.to_string()),
        "cidr": s.cidr.to_string(),
        "allocation_pools": s.allocation_pools.iter().map(|p| json!({"start": p.start.to_string(), "end": p.end.to_string()})).collect::<Vec<_>>(),
        "host_routes": s.host_routes.iter().map(|r| json!({"destination": r.destination, "nexthop": r.nexthop})).collect::<Vec<_>>(),
        "dns_nameservers": s.dns_nameservers,
        "description": s.description,
        "service_types": [],
        "router:external": external,
        "tags": s.tags,
    });
    stamp(&mut o, &s.stamp);
    o
}

pub const PORT_ATTRS: &[&str] = &[
    "id",
    "name",
    "network_id",
    "tenant_id",
    "project_id",
    "mac_address",
    "admin_state_up",
    "status",
    "device_id",
    "device_owner",
    "fixed_ips",
    "port_security_enabled",
    "security_groups",
    "allowed_address_pairs",
    "binding:vnic_type",
    "binding:host_id",
    "binding:vif_type",
    "binding:vif_details",
    "binding:profile",
    "extra_dhcp_opts",
    "description",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
    "ip_allocation",
    "dns_name",
    "dns_assignment",
];

pub fn port(p: &PortRec, host: &str) -> Value {
    let bound = !p.device_id.is_empty() && p.device_owner.starts_with("compute:");
    let mut o = json!({
        "id": p.id,
        "name": p.name,
        "network_id": p.network_id,
        "tenant_id": p.project_id.as_str(),
        "project_id": p.project_id.as_str(),
        "mac_address": p.mac_address,
        "admin_state_up": p.admin_state_up,
        "status": p.status,
        "device_id": p.device_id,
        "device_owner": p.device_owner,
        "fixed_ips": p.fixed_ips.iter().map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address.to_string()})).collect::<Vec<_>>(),
        "port_security_enabled": p.port_security,
        "security_groups": p.security_groups,
        "allowed_address_pairs": p.allowed_address_pairs.iter().map(|a| json!({"ip_address": a.ip_address, "mac_address": a.mac_address})).collect::<Vec<_>>(),
        "binding:vnic_type": "normal",
        "binding:host_id": if bound { host } else { "" },
        "binding:vif_type": if bound { "bridge" } else { "unbound" },
        "binding:vif_details": {},
        "binding:profile": {},
        "extra_dhcp_opts": [],
        "ip_allocation": "immediate",
        "dns_name": "",
        "dns_assignment": [],
        "description": p.description,
        "tags": p.tags,
    });
    stamp(&mut o, &p.stamp);
    o
}

pub const SG_ATTRS: &[&str] = &[
    "id",
    "name",
    "tenant_id",
    "project_id",
    "description",
    "stateful",
    "shared",
    "security_group_rules",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
];

pub fn security_group(g: &SecurityGroupRec) -> Value {
    let mut o = json!({
        "id": g.id,
        "name": g.name,
        "stateful": g.stateful,
        "tenant_id": g.project_id.as_str(),
        "project_id": g.project_id.as_str(),
        "description": g.description,
        "shared": false,
        "security_group_rules": g.rules.iter().map(|r| rule(r, g.name == "default")).collect::<Vec<_>>(),
        "tags": g.tags,
    });
    stamp(&mut o, &g.stamp);
    o
}

pub const RULE_ATTRS: &[&str] = &[
    "id",
    "tenant_id",
    "project_id",
    "security_group_id",
    "ethertype",
    "direction",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_address_group_id",
    "normalized_cidr",
    "remote_group_id",
    "belongs_to_default_sg",
    "description",
    "created_at",
    "updated_at",
    "revision_number",
];

pub fn rule(r: &SgRuleRec, in_default: bool) -> Value {
    let normalized = r.remote_ip_prefix.as_deref().map(|p| {
        model::network::Cidr::parse(p, false)
            .map(|c| c.to_string())
            .unwrap_or_else(|| p.to_owned())
    });
    let mut o = json!({
        "id": r.id,
        "tenant_id": r.project_id.as_str(),
        "project_id": r.project_id.as_str(),
        "security_group_id": r.security_group_id,
        "ethertype": r.ethertype,
        "direction": r.direction.as_str(),
        "protocol": r.protocol,
        "port_range_min": r.port_range_min,
        "port_range_max": r.port_range_max,
        "remote_ip_prefix": r.remote_ip_prefix,
        "remote_address_group_id": null,
        "normalized_cidr": normalized,
        "remote_group_id": r.remote_group_id,
        "belongs_to_default_sg": in_default,
        "description": r.description,
    });
    stamp(&mut o, &r.stamp);
    o
}

pub const ROUTER_ATTRS: &[&str] = &[
    "id",
    "name",
    "tenant_id",
    "project_id",
    "admin_state_up",
    "status",
    "external_gateway_info",
    "description",
    "availability_zones",
    "availability_zone_hints",
    "routes",
    "flavor_id",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
    "distributed",
    "ha",
];

pub fn router(r: &RouterRec, admin: bool) -> Value {
    let gateway = r.external_network_id.as_ref().map(|n| {
        json!({
            "network_id": n,
            "external_fixed_ips": r.external_fixed_ips.iter().map(|f| json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address.to_string()})).collect::<Vec<_>>(),
            "enable_snat": r.enable_snat,
        })
    });
    let mut o = json!({
        "id": r.id,
        "name": r.name,
        "tenant_id": r.project_id.as_str(),
        "project_id": r.project_id.as_str(),
        "admin_state_up": r.admin_state_up,
        "status": "ACTIVE",
        "external_gateway_info": gateway,
        "description": r.description,
        "availability_zones": ["nova"],
        "availability_zone_hints": [],
        "routes": [],
        "flavor_id": null,
        "tags": r.tags,
    });
    if admin {
        o["distributed"] = json!(false);
        o["ha"] = json!(false);
    }
    stamp(&mut o, &r.stamp);
    o
}

pub const FLOATINGIP_ATTRS: &[&str] = &[
    "id",
    "tenant_id",
    "project_id",
    "floating_ip_address",
    "floating_network_id",
    "router_id",
    "port_id",
    "fixed_ip_address",
    "status",
    "description",
    "port_details",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
];

/// A floating IP: `ACTIVE` when associated (its rules are on the host), else `DOWN`.
pub fn floating_ip(f: &FloatingIp) -> Value {
    let r = &f.rec;
    let details = f.port.as_ref().map(|p| {
        json!({
            "name": p.name,
            "network_id": p.network_id,
            "mac_address": p.mac_address,
            "admin_state_up": p.admin_state_up,
            "status": p.status,
            "device_id": p.device_id,
            "device_owner": p.device_owner,
        })
    });
    let mut o = json!({
        "id": r.id,
        "tenant_id": r.project_id.as_str(),
        "project_id": r.project_id.as_str(),
        "floating_ip_address": r.floating_ip_address.to_string(),
        "floating_network_id": r.floating_network_id,
        "router_id": r.router_id,
        "port_id": r.port_id,
        "fixed_ip_address": r.fixed_ip_address.map(|a| a.to_string()),
        "status": if r.port_id.is_some() { "ACTIVE" } else { "DOWN" },
        "description": r.description,
        "port_details": details,
        "tags": r.tags,
    });
    stamp(&mut o, &r.stamp);
    o
}
