//! The networking service's records (Neutron's resources) and the address arithmetic they
//! share. No SQL and no API JSON: `store` keeps them, `api::network` shows them.

use std::net::{IpAddr, Ipv4Addr};

use chrono::{DateTime, Utc};

use crate::ProjectId;

/// The device owners onebox itself sets (Neutron's names).
pub mod owner {
    pub const COMPUTE: &str = "compute:nova";
    pub const ROUTER_INTERFACE: &str = "network:router_interface";
    pub const ROUTER_GATEWAY: &str = "network:router_gateway";
    pub const FLOATING_IP: &str = "network:floatingip";
    pub const DHCP: &str = "network:dhcp";
}

/// What every resource carries: revision and times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub revision: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkRec {
    pub id: String,
    pub project_id: ProjectId,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub shared: bool,
    pub external: bool,
    pub mtu: u32,
    pub port_security: bool,
    /// The project's `private` network, made by onebox on first need.
    pub is_default: bool,
    pub subnets: Vec<String>,
    pub tags: Vec<String>,
    pub stamp: Stamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRoute {
    pub destination: String,
    pub nexthop: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetRec {
    pub id: String,
    pub network_id: String,
    pub project_id: ProjectId,
    pub name: String,
    pub description: String,
    pub ip_version: u8,
    pub cidr: Cidr,
    pub gateway_ip: Option<Ipv4Addr>,
    pub enable_dhcp: bool,
    pub allocation_pools: Vec<Pool>,
    pub dns_nameservers: Vec<String>,
    pub host_routes: Vec<HostRoute>,
    pub tags: Vec<String>,
    pub stamp: Stamp,
}

impl SubnetRec {
    /// The gateway guests use: `gateway_ip`, else the subnet's first address (the bridge's
    /// own address is always there).
    pub fn gateway_or_first(&self) -> Ipv4Addr {
        self.gateway_ip
            .unwrap_or_else(|| Ipv4Addr::from(self.cidr.first() + 1))
    }

    /// `host_routes` as (destination, next hop).
    pub fn route_pairs(&self) -> Vec<(String, String)> {
        self.host_routes
            .iter()
            .map(|r| (r.destination.clone(), r.nexthop.clone()))
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedIp {
    pub subnet_id: String,
    pub ip_address: Ipv4Addr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressPair {
    pub ip_address: String,
    pub mac_address: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRec {
    pub id: String,
    pub network_id: String,
    pub project_id: ProjectId,
    pub name: String,
    pub description: String,
    pub mac_address: String,
    pub admin_state_up: bool,
    pub status: String,
    pub device_id: String,
    pub device_owner: String,
    pub port_security: bool,
    pub fixed_ips: Vec<FixedIp>,
    pub security_groups: Vec<String>,
    pub allowed_address_pairs: Vec<AddressPair>,
    /// Made by compute for a server (deleted with it; Nova's `delete_on_termination`).
    pub compute_owned: bool,
    /// Order among a server's interfaces.
    pub position: u32,
    pub tags: Vec<String>,
    pub stamp: Stamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ingress" => Some(Direction::Ingress),
            "egress" => Some(Direction::Egress),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgRuleRec {
    pub id: String,
    /// A stable number for the kernel's rules (connection marks), unique over all rules.
    pub seq: i64,
    pub project_id: ProjectId,
    pub security_group_id: String,
    pub direction: Direction,
    /// `IPv4` or `IPv6`.
    pub ethertype: String,
    /// As given: a name (`tcp`) or a number (`6`); `None` for any.
    pub protocol: Option<String>,
    pub port_range_min: Option<u32>,
    pub port_range_max: Option<u32>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
    pub description: String,
    pub stamp: Stamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroupRec {
    pub id: String,
    pub project_id: ProjectId,
    pub name: String,
    pub description: String,
    pub stateful: bool,
    pub rules: Vec<SgRuleRec>,
    pub tags: Vec<String>,
    pub stamp: Stamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterRec {
    pub id: String,
    pub project_id: ProjectId,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub external_network_id: Option<String>,
    pub enable_snat: bool,
    /// The router's addresses on the external network (its gateway port's).
    pub external_fixed_ips: Vec<FixedIp>,
    pub tags: Vec<String>,
    pub stamp: Stamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloatingIpRec {
    pub id: String,
    pub project_id: ProjectId,
    pub floating_network_id: String,
    pub floating_port_id: String,
    pub floating_ip_address: Ipv4Addr,
    pub port_id: Option<String>,
    pub fixed_ip_address: Option<Ipv4Addr>,
    pub router_id: Option<String>,
    pub description: String,
    pub tags: Vec<String>,
    pub stamp: Stamp,
}

/// The resources the networking service counts against a project's quota, with Neutron's
/// defaults.
pub const QUOTA_DEFAULTS: [(&str, i64); 7] = [
    ("network", 100),
    ("subnet", 100),
    ("port", 500),
    ("router", 10),
    ("floatingip", 50),
    ("security_group", 10),
    ("security_group_rule", 100),
];

/// An IPv4 prefix in canonical form (host bits zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`; `None` for anything else. Host bits must be zero unless
    /// `strict` is false, in which case they are cleared.
    pub fn parse(s: &str, strict: bool) -> Option<Cidr> {
        let (a, l) = s.split_once('/')?;
        let addr: Ipv4Addr = a.parse().ok()?;
        if l.is_empty() || l.len() > 2 || !l.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let len: u8 = l.parse().ok()?;
        if len > 32 {
            return None;
        }
        let c = Cidr {
            addr: Ipv4Addr::from(u32::from(addr) & mask(len)),
            len,
        };
        (!strict || c.addr == addr).then_some(c)
    }

    pub fn first(&self) -> u32 {
        u32::from(self.addr)
    }

    pub fn last(&self) -> u32 {
        self.first() | !mask(self.len)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.len) == self.first()
    }

    pub fn overlaps(&self, o: &Cidr) -> bool {
        let len = self.len.min(o.len);
        self.first() & mask(len) == o.first() & mask(len)
    }

    /// Neutron's default gateway: the first address.
    pub fn default_gateway(&self) -> Option<Ipv4Addr> {
        (self.len < 31).then(|| Ipv4Addr::from(self.first() + 1))
    }

    /// Neutron's default pool: every address but the network, broadcast and gateway ones.
    pub fn default_pools(&self, gateway: Option<Ipv4Addr>) -> Vec<Pool> {
        if self.len >= 31 {
            return vec![Pool {
                start: Ipv4Addr::from(self.first()),
                end: Ipv4Addr::from(self.last()),
            }];
        }
        let (lo, hi) = (self.first() + 1, self.last() - 1);
        split_pool(lo, hi, gateway.map(u32::from))
    }
}

/// `lo..=hi` without `hole`, as one or two pools.
fn split_pool(lo: u32, hi: u32, hole: Option<u32>) -> Vec<Pool> {
    let p = |a: u32, b: u32| Pool {
        start: Ipv4Addr::from(a),
        end: Ipv4Addr::from(b),
    };
    match hole {
        Some(h) if (lo..=hi).contains(&h) => {
            let mut v = Vec::new();
            if h > lo {
                v.push(p(lo, h - 1));
            }
            if h < hi {
                v.push(p(h + 1, hi));
            }
            v
        }
        _ => vec![p(lo, hi)],
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

pub fn mask(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

/// The lowest address of `pools` not in `used`.
pub fn first_free(pools: &[Pool], used: &std::collections::HashSet<u32>) -> Option<Ipv4Addr> {
    pools.iter().find_map(|p| {
        (u32::from(p.start)..=u32::from(p.end))
            .find(|a| !used.contains(a))
            .map(Ipv4Addr::from)
    })
}

/// Whether `ip` lies in one of `pools`.
pub fn in_pools(pools: &[Pool], ip: Ipv4Addr) -> bool {
    let a = u32::from(ip);
    pools
        .iter()
        .any(|p| (u32::from(p.start)..=u32::from(p.end)).contains(&a))
}

/// Parses an address that must be IPv4 (onebox's networks are IPv4).
pub fn parse_v4(s: &str) -> Option<Ipv4Addr> {
    match s.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

/// A random MAC with OpenStack's `fa:16:3e` prefix.
pub fn random_mac() -> String {
    let mut b = [0u8; 3];
    getrandom::fill(&mut b).expect("the OS random number generator failed");
    format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// The IP protocol names a security group rule may give (Neutron's), with their numbers.
pub const PROTOCOLS: [(&str, u8); 25] = [
    ("ah", 51),
    ("dccp", 33),
    ("egp", 8),
    ("esp", 50),
    ("gre", 47),
    ("hopopt", 0),
    ("icmp", 1),
    ("igmp", 2),
    ("ip", 0),
    ("ipip", 4),
    ("ipv6-encap", 41),
    ("ipv6-frag", 44),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ipv6-route", 43),
    ("ospf", 89),
    ("pgm", 113),
    ("rsvp", 46),
    ("sctp", 132),
    ("tcp", 6),
    ("udp", 17),
    ("udplite", 136),
    ("vrrp", 112),
];

/// A rule's protocol (a name or a number, 0 to 255) as its number.
pub fn protocol_number(p: &str) -> Option<u8> {
    PROTOCOLS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(p))
        .map(|(_, v)| *v)
        .or_else(|| p.parse::<u8>().ok())
}

/// The protocols whose rules take a destination port range (DCCP, SCTP, TCP, UDP, UDPLITE).
pub const PORTED_PROTOCOLS: [u8; 5] = [33, 132, 6, 17, 136];

/// A new resource id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_canonically_and_pools_skip_the_gateway() {
        assert!(Cidr::parse("10.0.0.300/24", true).is_none());
        assert!(Cidr::parse("10.0.0.1/24", true).is_none());
        assert_eq!(
            Cidr::parse("10.0.0.1/24", false).map(|c| c.to_string()),
            Some("10.0.0.0/24".into())
        );
        let c = Cidr::parse("10.0.0.0/24", true).expect("cidr");
        assert_eq!(c.default_gateway(), Some(Ipv4Addr::new(10, 0, 0, 1)));
        let pools = c.default_pools(c.default_gateway());
        assert_eq!(
            pools,
            vec![Pool {
                start: Ipv4Addr::new(10, 0, 0, 2),
                end: Ipv4Addr::new(10, 0, 0, 254)
            }]
        );
        let mid = c.default_pools(Some(Ipv4Addr::new(10, 0, 0, 100)));
        assert_eq!(mid.len(), 2);
        assert!(c.overlaps(&Cidr::parse("10.0.0.128/25", true).expect("cidr")));
        assert!(!c.overlaps(&Cidr::parse("10.0.1.0/24", true).expect("cidr")));
    }
}
