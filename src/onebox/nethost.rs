//! The networking service's host side on a box with real backends: security groups
//! ([`network::Enforcement`], the database's ports and rules) turned into
//! [`hostnet::sg::SgState`] and applied to `table inet onebox_sg`.

use std::sync::atomic::{AtomicBool, Ordering};

use hostnet::sg::{Direction, SgPort, SgRule, SgState};
use model::network::{self as m, PORTED_PROTOCOLS, protocol_number};

/// Applies security groups to this host's kernel. The first apply of the process replaces
/// the whole table (whatever a previous run or a hand edit left); later ones write only
/// what changed.
#[derive(Default)]
pub struct NetHost {
    applied_once: AtomicBool,
}

impl NetHost {
    pub fn new() -> Self {
        Self::default()
    }
}

/// A rule's conntrack mark: its `seq` folded into 1..=65535 (seq counts up and never
/// repeats, so a new rule takes a deleted one's mark only after 65535 more rules).
pub fn mark(seq: i64) -> u16 {
    ((seq.max(1) - 1) % 65535 + 1) as u16
}

/// The kernel's view of the database's ports and rules. A port is listed once per IPv4
/// address (ports without one are left out: nothing of theirs can be recognised); IPv6
/// rules are kept as such (hostnet accepts and does not enforce them).
pub fn sg_state(e: &network::Enforcement) -> SgState {
    let mut ports = Vec::new();
    for p in &e.ports {
        for f in &p.fixed_ips {
            ports.push(SgPort {
                id: p.id.clone(),
                address: f.ip_address,
                groups: p.security_groups.clone(),
                enabled: p.port_security,
            });
        }
    }
    // An allowed address pair's single address is filtered with its port's groups, when no
    // other port has it (a VRRP address shared by two ports, a CIDR: not filtered).
    let mut claims: std::collections::HashMap<std::net::Ipv4Addr, Vec<&m::PortRec>> =
        std::collections::HashMap::new();
    for p in &e.ports {
        for a in &p.allowed_address_pairs {
            if let Some(ip) = m::parse_v4(&a.ip_address)
                .or_else(|| a.ip_address.strip_suffix("/32").and_then(m::parse_v4))
            {
                claims.entry(ip).or_default().push(p);
            }
        }
    }
    let mut pairs: Vec<SgPort> = claims
        .into_iter()
        .filter(|(ip, by)| by.len() == 1 && !ports.iter().any(|q| q.address == *ip))
        .map(|(ip, by)| SgPort {
            id: by[0].id.clone(),
            address: ip,
            groups: by[0].security_groups.clone(),
            enabled: by[0].port_security,
        })
        .collect();
    pairs.sort_by_key(|p| p.address);
    ports.extend(pairs);
    let rules = e
        .rules
        .iter()
        .map(|r| {
            let ipv6 = r.ethertype == "IPv6";
            let protocol = r.protocol.as_deref().and_then(protocol_number);
            // Ports or ICMP type and code mean something for these only (the API refuses
            // them elsewhere, but ICMPv6's number on an IPv4 rule gets here).
            let ranged = protocol.is_some_and(|p| PORTED_PROTOCOLS.contains(&p) || p == 1);
            let bound = |v: Option<u32>| v.filter(|_| ranged).and_then(|v| u16::try_from(v).ok());
            SgRule {
                id: r.id.clone(),
                group: r.security_group_id.clone(),
                direction: match r.direction {
                    m::Direction::Ingress => Direction::Ingress,
                    m::Direction::Egress => Direction::Egress,
                },
                mark: mark(r.seq),
                protocol,
                port_min: bound(r.port_range_min),
                port_max: bound(r.port_range_max),
                remote_prefix: if ipv6 {
                    None
                } else {
                    r.remote_ip_prefix
                        .as_deref()
                        .and_then(|p| hostnet::nat::parse_prefix(p).ok())
                },
                remote_group: r.remote_group_id.clone(),
                ipv6,
            }
        })
        .collect();
    SgState { ports, rules }
}

impl NetHost {
    /// Applies the groups: the whole table the first time (at start), then what changed.
    pub fn apply(&self, state: &network::Enforcement) -> Result<(), String> {
        let s = sg_state(state);
        let r = if self.applied_once.swap(true, Ordering::SeqCst) {
            hostnet::sg::apply(&s)
        } else {
            hostnet::sg::apply_full(&s)
        };
        r.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::Ipv4Addr;

    use chrono::Utc;
    use model::ProjectId;
    use model::network::{FixedIp, PortRec, SgRuleRec, Stamp};

    use super::*;

    pub(crate) fn stamp() -> Stamp {
        Stamp {
            revision: 1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    pub(crate) fn port(id: &str, ips: &[Ipv4Addr], groups: &[&str]) -> PortRec {
        PortRec {
            id: id.into(),
            network_id: "n".into(),
            project_id: ProjectId::new("p"),
            name: String::new(),
            description: String::new(),
            mac_address: "fa:16:3e:00:00:01".into(),
            admin_state_up: true,
            status: "ACTIVE".into(),
            device_id: String::new(),
            device_owner: String::new(),
            port_security: true,
            fixed_ips: ips
                .iter()
                .map(|a| FixedIp {
                    subnet_id: "s".into(),
                    ip_address: *a,
                })
                .collect(),
            security_groups: groups.iter().map(|g| g.to_string()).collect(),
            allowed_address_pairs: Vec::new(),
            compute_owned: false,
            position: 0,
            tags: Vec::new(),
            stamp: stamp(),
        }
    }

    fn rule(seq: i64, eth: &str, proto: Option<&str>) -> SgRuleRec {
        SgRuleRec {
            id: format!("r{seq}"),
            seq,
            project_id: ProjectId::new("p"),
            security_group_id: "g".into(),
            direction: m::Direction::Ingress,
            ethertype: eth.into(),
            protocol: proto.map(str::to_owned),
            port_range_min: None,
            port_range_max: None,
            remote_ip_prefix: None,
            remote_group_id: None,
            description: String::new(),
            stamp: stamp(),
        }
    }

    #[test]
    fn marks_fold_seq_into_sixteen_bits_without_zero() {
        assert_eq!(mark(1), 1);
        assert_eq!(mark(65535), 65535);
        assert_eq!(mark(65536), 1);
        assert_eq!(mark(131072), 2);
    }

    #[test]
    fn records_become_the_kernels_state() {
        let a = Ipv4Addr::new(10, 0, 0, 5);
        let b = Ipv4Addr::new(10, 0, 0, 6);
        let mut tcp = rule(7, "IPv4", Some("tcp"));
        tcp.port_range_min = Some(22);
        tcp.port_range_max = Some(22);
        tcp.remote_ip_prefix = Some("192.168.1.7/24".into());
        tcp.direction = m::Direction::Egress;
        let mut icmp6 = rule(8, "IPv6", Some("ipv6-icmp"));
        icmp6.remote_ip_prefix = Some("2001:db8::/32".into());
        let mut icmp6_on_v4 = rule(11, "IPv4", Some("58"));
        icmp6_on_v4.port_range_min = Some(1);
        let mut by_group = rule(65535 + 9, "IPv4", Some("132"));
        by_group.remote_group_id = Some("g2".into());
        let mut off = port("p3", &[Ipv4Addr::new(10, 0, 0, 9)], &["g"]);
        off.port_security = false;
        let e = network::Enforcement {
            ports: vec![
                port("p1", &[a, b], &["g", "g2"]),
                port("p2", &[], &["g"]),
                off,
            ],
            rules: vec![tcp, icmp6, by_group, rule(10, "IPv4", None), icmp6_on_v4],
        };
        let s = sg_state(&e);
        assert_eq!(s.ports.len(), 3);
        assert_eq!(s.ports[0].address, a);
        assert_eq!(s.ports[1].address, b);
        assert_eq!(s.ports[0].groups, ["g", "g2"]);
        assert!(s.ports.iter().all(|p| p.id != "p2"));
        assert!(!s.ports[2].enabled);
        let r = &s.rules[0];
        assert_eq!(r.direction, Direction::Egress);
        assert_eq!(r.mark, 7);
        assert_eq!(r.protocol, Some(6));
        assert_eq!((r.port_min, r.port_max), (Some(22), Some(22)));
        assert_eq!(r.remote_prefix, Some((Ipv4Addr::new(192, 168, 1, 0), 24)));
        assert!(!r.ipv6);
        let r = &s.rules[1];
        assert!(r.ipv6);
        assert_eq!(r.protocol, Some(58));
        assert_eq!(r.remote_prefix, None);
        let r = &s.rules[2];
        assert_eq!(r.mark, 9);
        assert_eq!(r.protocol, Some(132));
        assert_eq!(r.remote_group.as_deref(), Some("g2"));
        assert_eq!(s.rules[3].protocol, None);
        assert_eq!((s.rules[4].protocol, s.rules[4].port_min), (Some(58), None));
        // hostnet takes it.
        hostnet::sg::ruleset(&s).expect("a valid ruleset");
    }

    #[test]
    fn a_pairs_own_address_is_filtered_with_its_ports_groups() {
        let pair = |ip: &str| m::AddressPair {
            ip_address: ip.into(),
            mac_address: "fa:16:3e:00:00:01".into(),
        };
        let mut p1 = port("p1", &[Ipv4Addr::new(10, 0, 0, 5)], &["g1"]);
        p1.allowed_address_pairs = vec![
            pair("10.0.0.100"),
            pair("10.0.0.200/32"),
            pair("10.0.1.0/24"),
            pair("10.0.0.50"),
            pair("10.0.0.6"),
        ];
        let mut p2 = port("p2", &[Ipv4Addr::new(10, 0, 0, 6)], &["g2"]);
        p2.allowed_address_pairs = vec![pair("10.0.0.50")];
        let s = sg_state(&network::Enforcement {
            ports: vec![p1, p2],
            rules: Vec::new(),
        });
        let of = |a: [u8; 4]| {
            s.ports
                .iter()
                .filter(|p| p.address == Ipv4Addr::from(a))
                .map(|p| p.id.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(of([10, 0, 0, 100]), ["p1"]);
        assert_eq!(of([10, 0, 0, 200]), ["p1"]);
        assert!(of([10, 0, 0, 50]).is_empty(), "shared by two ports");
        assert_eq!(
            of([10, 0, 0, 6]),
            ["p2"],
            "another port's own address stays its"
        );
        assert_eq!(s.ports.len(), 4);
        hostnet::sg::ruleset(&s).expect("a valid ruleset");
    }
}
