//! Address allocation on project networks, kept in SQLite.
//!
//! Each project gets a network named `private` the first time one of its servers needs one:
//! a /16 out of 10.0.0.0/8 (10.1.0.0/16 first, so up to 255 projects with networks), its
//! gateway at .0.1, and guest addresses handed out from .0.10 upward (65,000 per project).
//! MAC addresses use OpenStack's `fa:16:3e` prefix. The bridges, DHCP and metadata service
//! that give these addresses to real guests belong to the backends.
//!
//! A box with real backends also skips the /16s that the host already routes (its LAN, a
//! VPN, another onebox's bridges): a project network there would take the host's traffic
//! for those addresses. Only when every free /16 is routed does it take one anyway, with a
//! warning.

use std::net::Ipv4Addr;

use model::ProjectId;
use model::compute::{Address, ServerId};
use model::network::{Cidr, FixedIp, NetworkRec, PortRec, Stamp, SubnetRec, new_id, owner};
use store::network::{self as net, Allocation, Scope};

use crate::{Error, abort};

type Result<T> = store::Result<T>;

pub const DEFAULT_NETWORK: &str = "private";

/// An IPv4 prefix: network address and length.
pub(crate) type Prefix = (Ipv4Addr, u8);

/// Whether two prefixes share any address.
fn overlaps(a: Prefix, b: Prefix) -> bool {
    let len = a.1.min(b.1);
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(a.0) & mask == u32::from(b.0) & mask
}

/// The prefixes in the host's main IPv4 routing table (`/proc/net/route`), the default route
/// left out. Empty when the table cannot be read.
pub(crate) fn host_routes() -> Vec<Prefix> {
    std::fs::read_to_string("/proc/net/route")
        .map(|t| parse_routes(&t))
        .unwrap_or_default()
}

/// Parses `/proc/net/route`: destination and mask are the kernel's network-order words
/// printed in hex as native integers.
fn parse_routes(table: &str) -> Vec<Prefix> {
    let word = |h: &str| u32::from_str_radix(h, 16).ok().map(u32::to_ne_bytes);
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dest = Ipv4Addr::from(word(f.get(1)?)?);
            let mask = u32::from(Ipv4Addr::from(word(f.get(7)?)?));
            let len = mask.leading_ones() as u8;
            (len > 0).then_some((dest, len))
        })
        .collect()
}

/// The project's default network, created on first use with its subnet and the project's
/// `default` security group, on a free /16 that none of `routed` (the host's routes)
/// overlaps if there is one.
pub(crate) fn default_network(
    c: &store::Connection,
    project: &ProjectId,
    routed: &[Prefix],
) -> Result<NetworkRec> {
    if let Some(n) = net::default_network(c, project)? {
        return Ok(n);
    }
    let taken: Vec<Cidr> = net::all_subnet_cidrs(c)?;
    let free: Vec<u8> = (1..=255u8)
        .filter(|i| {
            let c16 = Cidr {
                addr: Ipv4Addr::new(10, *i, 0, 0),
                len: 16,
            };
            !taken.iter().any(|t| t.overlaps(&c16))
        })
        .collect();
    let unrouted = free.iter().copied().find(|&i| {
        !routed
            .iter()
            .any(|&r| overlaps(r, (Ipv4Addr::new(10, i, 0, 0), 16)))
    });
    let pick = match (unrouted, free.first()) {
        (Some(i), _) => i,
        (None, Some(&i)) => {
            tracing::warn!(
                cidr = %format!("10.{i}.0.0/16"),
                "every free /16 of 10.0.0.0/8 is routed on the host already; taking one anyway"
            );
            i
        }
        (None, None) => {
            return Err(abort(Error::Conflict(
                "No address space is left for a new network.".into(),
            )));
        }
    };
    let cidr = Cidr {
        addr: Ipv4Addr::new(10, pick, 0, 0),
        len: 16,
    };
    let t = chrono::Utc::now();
    let stamp = Stamp {
        revision: 1,
        created_at: t,
        updated_at: t,
    };
    let n = NetworkRec {
        id: new_id(),
        project_id: project.clone(),
        name: DEFAULT_NETWORK.into(),
        description: String::new(),
        admin_state_up: true,
        shared: false,
        external: false,
        mtu: 1500,
        port_security: true,
        is_default: true,
        subnets: Vec::new(),
        tags: Vec::new(),
        stamp: stamp.clone(),
    };
    net::insert_network(c, &n)?;
    let gateway = Ipv4Addr::new(10, pick, 0, 1);
    let s = SubnetRec {
        id: new_id(),
        network_id: n.id.clone(),
        project_id: project.clone(),
        name: format!("{DEFAULT_NETWORK}-subnet"),
        description: String::new(),
        ip_version: 4,
        cidr,
        gateway_ip: Some(gateway),
        enable_dhcp: true,
        // Guests from .0.10 up, as onebox has always handed them out.
        allocation_pools: vec![model::network::Pool {
            start: Ipv4Addr::new(10, pick, 0, 10),
            end: Ipv4Addr::new(10, pick, 255, 254),
        }],
        dns_nameservers: Vec::new(),
        host_routes: Vec::new(),
        tags: Vec::new(),
        stamp,
    };
    net::insert_subnet(c, &s)?;
    net::ensure_default_group(c, project)?;
    tracing::info!(project_id = %project, cidr = %cidr, "project network created");
    Ok(NetworkRec {
        subnets: vec![s.id],
        ..n
    })
}

/// One interface a create asked for (Nova's `networks` items).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NicRequest {
    pub network: Option<String>,
    pub port: Option<String>,
    pub fixed_ip: Option<Ipv4Addr>,
}

/// An interface a server will get: a new port on a network, or an existing port.
#[derive(Clone, Debug)]
pub(crate) enum NicPlan {
    New {
        network: NetworkRec,
        fixed_ip: Option<Ipv4Addr>,
    },
    Existing(PortRec),
}

fn bad(m: String) -> store::Error {
    abort(Error::BadRequest(m))
}

/// Checks one requested interface as the project sees the networking service.
pub(crate) fn plan_nic(
    c: &store::Connection,
    project: &ProjectId,
    nic: &NicRequest,
) -> Result<NicPlan> {
    let scope = Scope::Project(project.clone());
    if let Some(pid) = &nic.port {
        let Some(p) = net::get_port(c, &scope, pid)?.filter(|p| p.project_id == *project) else {
            return Err(bad(format!("Port id {pid} could not be found.")));
        };
        if !p.device_id.is_empty() {
            return Err(abort(Error::Conflict(format!(
                "Port {pid} is still in use."
            ))));
        }
        if p.fixed_ips.is_empty() {
            return Err(bad(format!(
                "Port {pid} requires a FixedIP in order to be used."
            )));
        }
        return Ok(NicPlan::Existing(p));
    }
    let Some(id) = &nic.network else {
        return Err(bad(
            "Bad networks format: network uuid is not in proper format".into(),
        ));
    };
    let Some(network) = net::get_network(c, &scope, id)?
        .filter(|n| n.project_id == *project || (n.shared && !n.external))
    else {
        return Err(bad(format!("Network {id} could not be found.")));
    };
    if network.subnets.is_empty() {
        return Err(bad(format!(
            "Network {id} requires a subnet in order to boot instances on."
        )));
    }
    if let Some(ip) = nic.fixed_ip {
        let subnets = net::network_subnets(c, id)?;
        if !subnets.iter().any(|s| s.cidr.contains(ip)) {
            return Err(bad(format!("Fixed IP address {ip} is invalid.")));
        }
        if net::used_ips(c, id)?.contains(&u32::from(ip)) {
            return Err(bad(format!(
                "Fixed IP address {ip} is already in use on instance."
            )));
        }
    }
    Ok(NicPlan::New {
        network,
        fixed_ip: nic.fixed_ip,
    })
}

/// The default network as a plan.
pub(crate) fn auto_nic(
    c: &store::Connection,
    project: &ProjectId,
    routed: &[Prefix],
) -> Result<NicPlan> {
    Ok(NicPlan::New {
        network: default_network(c, project, routed)?,
        fixed_ip: None,
    })
}

/// Gives a server the interface `plan` describes at `position`, with `groups` on a new port.
pub(crate) fn attach(
    c: &store::Connection,
    project: &ProjectId,
    plan: &NicPlan,
    server: &ServerId,
    position: u32,
    groups: &[String],
) -> Result<Address> {
    let (port, network_name) = match plan {
        NicPlan::Existing(p) => {
            let mut p = p.clone();
            if !p.device_id.is_empty() {
                return Err(abort(Error::Conflict(format!(
                    "Port {} is still in use.",
                    p.id
                ))));
            }
            p.device_id = server.to_string();
            p.device_owner = owner::COMPUTE.into();
            p.position = position;
            p.status = "ACTIVE".into();
            net::update_port(c, &p)?;
            let name = net::get_network(c, &Scope::All, &p.network_id)?
                .map(|n| n.name)
                .unwrap_or_default();
            (p, name)
        }
        NicPlan::New { network, fixed_ip } => {
            if let Some(limit) = net::net_over_quota(c, project, "port", 1)? {
                return Err(abort(Error::QuotaExceeded(format!(
                    "Maximum number of ports exceeded (limit {limit})."
                ))));
            }
            let subnets = net::network_subnets(c, &network.id)?;
            let mut chosen = None;
            for s in &subnets {
                if fixed_ip.is_some_and(|ip| !s.cidr.contains(ip)) {
                    continue;
                }
                match net::allocate_ip(c, s, *fixed_ip)? {
                    Allocation::Address(a) => {
                        chosen = Some(FixedIp {
                            subnet_id: s.id.clone(),
                            ip_address: a,
                        });
                        break;
                    }
                    Allocation::Taken => {
                        return Err(bad(format!(
                            "Fixed IP address {} is already in use on instance.",
                            fixed_ip.map(|i| i.to_string()).unwrap_or_default()
                        )));
                    }
                    Allocation::Outside | Allocation::Exhausted => {}
                }
            }
            let Some(ip) = chosen else {
                return Err(abort(Error::Conflict(format!(
                    "No more IP addresses available on network {}.",
                    network.id
                ))));
            };
            let t = chrono::Utc::now();
            let groups = if network.port_security {
                groups.to_vec()
            } else {
                Vec::new()
            };
            let p = PortRec {
                id: new_id(),
                network_id: network.id.clone(),
                project_id: project.clone(),
                name: String::new(),
                description: String::new(),
                mac_address: net::free_mac(c)?,
                admin_state_up: true,
                status: "ACTIVE".into(),
                device_id: server.to_string(),
                device_owner: owner::COMPUTE.into(),
                port_security: network.port_security,
                fixed_ips: vec![ip],
                security_groups: groups,
                allowed_address_pairs: Vec::new(),
                compute_owned: true,
                position,
                tags: Vec::new(),
                stamp: Stamp {
                    revision: 1,
                    created_at: t,
                    updated_at: t,
                },
            };
            net::insert_port(c, &p)?;
            (p, network.name.clone())
        }
    };
    let addr = port
        .fixed_ips
        .first()
        .map(|f| f.ip_address.to_string())
        .unwrap_or_default();
    Ok(Address {
        network: network_name,
        addr,
        mac: port.mac_address,
        version: 4,
        floating: false,
    })
}

/// The groups a create names (by name or id), as ids of the project's groups; the project's
/// `default` group when it names none.
pub(crate) fn resolve_groups(
    c: &store::Connection,
    project: &ProjectId,
    names: &[String],
) -> Result<Vec<String>> {
    if names.is_empty() {
        return Ok(vec![net::ensure_default_group(c, project)?]);
    }
    let scope = Scope::Project(project.clone());
    let mut out = Vec::new();
    for n in names {
        let id = if n == "default" {
            Some(net::ensure_default_group(c, project)?)
        } else if let Some(g) = net::get_security_group(c, &scope, n)? {
            Some(g.id)
        } else {
            net::security_group_by_name(c, project, n)?
        };
        match id {
            Some(id) if !out.contains(&id) => out.push(id),
            Some(_) => {}
            None => {
                return Err(bad(format!(
                    "Security group {n} not found for project {project}."
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_read_in_network_order_and_the_default_route_is_left_out() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            obr1\t0000010A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
            eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        if cfg!(target_endian = "little") {
            assert_eq!(
                parse_routes(table),
                vec![
                    (Ipv4Addr::new(10, 1, 0, 0), 16),
                    (Ipv4Addr::new(192, 0, 2, 0), 24)
                ]
            );
        }
    }

    #[tokio::test]
    async fn a_new_network_skips_what_the_host_routes() {
        let store = store::Store::open_in_memory().expect("store");
        let net = |project: &str, routed: Vec<Prefix>| {
            let project = ProjectId::new(project);
            store.write(move |tx| {
                let n = default_network(tx, &project, &routed)?;
                let cidr = net::network_subnets(tx, &n.id)?[0].cidr.to_string();
                Ok((n.id, cidr))
            })
        };
        let lan = (Ipv4Addr::new(10, 1, 0, 0), 24);
        let vpn = (Ipv4Addr::new(10, 2, 0, 0), 15);
        let a = net("0a000000000000000000000000000001", vec![lan, vpn])
            .await
            .expect("network");
        assert_eq!(
            a.1, "10.4.0.0/16",
            "10.1 (the LAN) and 10.2-10.3 (the VPN) are routed"
        );
        // Only routed /16s left among the free ones: the first free is taken anyway.
        let everything = vec![(Ipv4Addr::new(10, 0, 0, 0), 8)];
        let b = net("0a000000000000000000000000000002", everything)
            .await
            .expect("network");
        assert_eq!(b.1, "10.1.0.0/16");
        // A project keeps its network whatever the host routes later.
        let again = net("0a000000000000000000000000000001", vec![])
            .await
            .expect("network");
        assert_eq!(again.0, a.0);
    }

    #[test]
    fn prefixes_overlap_when_the_shorter_one_holds_the_other() {
        let p = |a: [u8; 4], l| (Ipv4Addr::from(a), l);
        assert!(overlaps(p([10, 1, 0, 0], 16), p([10, 1, 2, 0], 24)));
        assert!(overlaps(p([10, 0, 0, 0], 8), p([10, 7, 0, 0], 16)));
        assert!(!overlaps(p([10, 1, 0, 0], 16), p([10, 2, 0, 0], 16)));
        assert!(!overlaps(p([192, 168, 1, 0], 24), p([10, 1, 0, 0], 16)));
        assert!(overlaps(p([10, 1, 0, 0], 16), p([10, 1, 0, 0], 16)));
    }
}
