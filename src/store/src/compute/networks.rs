//! The networks and ports of servers, as compute and the backends need them, read from the
//! networking service's tables (`store::network`).

use super::*;
use crate::network as net;

/// A network as a backend builds it: its first IPv4 subnet's CIDR and gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub project_id: Option<ProjectId>,
    pub cidr: String,
    pub gateway: String,
    pub mtu: u32,
    pub dns_nameservers: Vec<String>,
    /// (destination CIDR, next hop)
    pub host_routes: Vec<(String, String)>,
    pub enable_dhcp: bool,
}

fn backend_view(n: &model::network::NetworkRec, s: &model::network::SubnetRec) -> Network {
    Network {
        id: n.id.clone(),
        name: n.name.clone(),
        project_id: Some(n.project_id.clone()),
        cidr: s.cidr.to_string(),
        gateway: s.gateway_or_first().to_string(),
        mtu: n.mtu,
        dns_nameservers: s.dns_nameservers.clone(),
        host_routes: s.route_pairs(),
        enable_dhcp: s.enable_dhcp,
    }
}

/// The networks a project may attach servers to (its own, shared ones), each with a subnet.
pub fn project_networks(c: &Connection, p: &ProjectId) -> Result<Vec<Network>> {
    let mut out = Vec::new();
    for n in net::list_networks(c, &net::Scope::Project(p.clone()))? {
        if n.external && n.project_id != *p && !n.shared {
            continue;
        }
        if let Some(s) = net::network_subnets(c, &n.id)?.first() {
            out.push(backend_view(&n, s));
        }
    }
    Ok(out)
}

/// Every subnet CIDR on the box.
pub fn network_cidrs(c: &Connection) -> Result<Vec<String>> {
    Ok(net::all_subnet_cidrs(c)?
        .iter()
        .map(ToString::to_string)
        .collect())
}

/// A server's port with its network, as a backend needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRow {
    pub port_id: String,
    pub network: Network,
    pub address: String,
    pub mac: String,
    pub port_security: bool,
    /// (IPv4 address or CIDR, MAC)
    pub allowed_address_pairs: Vec<(String, String)>,
}

/// The ports of a server in attachment order (those with an IPv4 address).
pub fn server_ports(c: &Connection, server: &ServerId) -> Result<Vec<PortRow>> {
    let mut out = Vec::new();
    for p in net::device_ports(c, server.as_str())? {
        let Some(ip) = p.fixed_ips.first() else {
            continue;
        };
        let Some(n) = net::get_network(c, &net::Scope::All, &p.network_id)? else {
            continue;
        };
        let Some(s) = net::get_subnet(c, &net::Scope::All, &ip.subnet_id)? else {
            continue;
        };
        out.push(PortRow {
            port_id: p.id.clone(),
            network: backend_view(&n, &s),
            address: ip.ip_address.to_string(),
            mac: p.mac_address.clone(),
            port_security: p.port_security,
            allowed_address_pairs: p
                .allowed_address_pairs
                .iter()
                .map(|a| (a.ip_address.clone(), a.mac_address.clone()))
                .collect(),
        });
    }
    Ok(out)
}

/// Every network with a subnet, for backends that build one bridge per network.
pub fn all_networks(c: &Connection) -> Result<Vec<Network>> {
    let mut out = Vec::new();
    for n in net::list_networks(c, &net::Scope::All)? {
        if n.external {
            continue;
        }
        if let Some(s) = net::network_subnets(c, &n.id)?.first() {
            out.push(backend_view(&n, s));
        }
    }
    Ok(out)
}

/// A server's ports let go: those compute made are deleted, the others unbound.
pub fn release_ports(c: &Connection, server: &ServerId) -> Result<()> {
    net::release_device_ports(c, server.as_str())
}

/// The live server holding a port with this address, and the port's MAC.
pub fn server_by_port_address(c: &Connection, addr: &str) -> Result<Option<(ServerId, String)>> {
    Ok(net::device_by_address(c, addr)?.map(|(s, m)| (ServerId::from_stored(s), m)))
}
