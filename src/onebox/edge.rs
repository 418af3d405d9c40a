//! The host side of the networking service on a box with real backends: routers and
//! floating IPs as `hostnet::edge` rules and addresses (`<data_dir>/hostnet/edge`).

use std::collections::HashSet;
use std::path::PathBuf;

use hostnet::edge::{EdgeState, External, FloatingDef, RouterDef};
use network::EdgeRecords;

use crate::config::ExternalNet;

/// Applies what the networking service says to the host.
pub struct HostEdge {
    /// `<data_dir>/hostnet`.
    pub state_dir: PathBuf,
    pub rules: hostnet::nat::HostRules,
    pub external: Option<ExternalNet>,
    /// The security groups' table.
    pub sg: crate::nethost::NetHost,
    /// The project bridges' dnsmasq (`<data_dir>/dhcp`), shared with the VM backend.
    #[cfg(feature = "vm")]
    pub dhcp: driver_libvirt::dhcp::Dhcp,
}

impl network::Host for HostEdge {
    fn apply_security_groups(&self, s: &network::Enforcement) -> Result<(), String> {
        self.sg.apply(s)
    }

    fn apply_edge(&self, s: &EdgeRecords) -> Result<(), String> {
        let state = edge_state(self.external.as_ref(), s);
        hostnet::edge::apply(&self.state_dir, &self.rules, &state).map_err(|e| e.to_string())
    }

    fn apply_plugged(&self, plugged: &[network::Plugged]) -> Result<(), String> {
        let ports = hostnet::ports::Ports::new(self.state_dir.clone());
        let mut errors = Vec::new();
        #[cfg_attr(not(feature = "vm"), allow(unused_variables, unused_mut))]
        let mut subnets = std::collections::BTreeMap::new();
        for p in plugged {
            let (pin, bridge, subnet) = plugged_view(p);
            if let Err(e) = ports.update(&p.port.mac_address, &pin) {
                errors.push(format!("port {}: {e}", p.port.id));
            }
            #[cfg(feature = "vm")]
            if let Err(e) = self
                .dhcp
                .set_address(&bridge, &p.port.mac_address, pin.address)
            {
                errors.push(format!("port {}: {e}", p.port.id));
            }
            subnets.insert(bridge, subnet);
        }
        #[cfg(feature = "vm")]
        for (bridge, subnet) in subnets {
            let sub = driver_libvirt::dhcp::Subnet::of(&subnet);
            // Only the subnet a bridge's dnsmasq serves (a network's first) is offered.
            if self
                .dhcp
                .subnet(&bridge)
                .is_some_and(|s| s.cidr == sub.cidr)
                && let Err(e) = self.dhcp.set_subnet(&bridge, &sub)
            {
                errors.push(format!("bridge {bridge}: {e}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// What the host makes of a plugged port: its pinning (the interface and server are the
/// recorded ones), its network's bridge and its subnet as a backend sees it.
fn plugged_view(p: &network::Plugged) -> (hostnet::ports::PortDef, String, driver::Port) {
    let s = &p.subnet;
    let address = p
        .port
        .fixed_ips
        .first()
        .map(|f| f.ip_address)
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
    let pairs: Vec<(String, String)> = p
        .port
        .allowed_address_pairs
        .iter()
        .map(|a| (a.ip_address.clone(), a.mac_address.clone()))
        .collect();
    let pin = hostnet::ports::PortDef {
        pairs: hostnet::ports::PortDef::parse_pairs(&pairs),
        secured: p.port.port_security,
        ..hostnet::ports::PortDef::new("", "", &p.port.mac_address, address)
    };
    let port = driver::Port {
        cidr: s.cidr.to_string(),
        gateway: s.gateway_or_first().to_string(),
        dns_nameservers: s.dns_nameservers.clone(),
        host_routes: s.route_pairs(),
        dhcp: s.enable_dhcp,
        ..Default::default()
    };
    (pin, hostnet::bridge_name(&p.port.network_id), port)
}

/// The host's definition of the records: only what lies on the configured external network
/// (`public`) and in its floating range goes out; a router's subnets are its project
/// bridges; a disabled router (`admin_state_up` false) has no way out.
pub fn edge_state(ext: Option<&ExternalNet>, s: &EdgeRecords) -> EdgeState {
    let external = ext.and_then(|e| {
        Some(External {
            uplink: e.uplink.clone()?,
            cidr: (e.edge.cidr.addr, e.edge.cidr.len),
            gateway: e.edge.gateway,
        })
    });
    let on_public = |net: Option<&String>| {
        external.is_some() && net.is_some() && net == s.public_network.as_ref()
    };
    let allowed = |a| ext.is_some_and(|e| e.edge.allows(a));
    let mut attached = HashSet::new();
    let mut routers = Vec::new();
    for r in &s.rows.routers {
        let external_ip = r
            .external_fixed_ips
            .first()
            .map(|f| f.ip_address)
            .filter(|a| {
                r.admin_state_up && on_public(r.external_network_id.as_ref()) && allowed(*a)
            });
        let mut subnets = Vec::new();
        for (router, network, cidr) in &s.rows.interfaces {
            let bridge = hostnet::bridge_name(network);
            if router == &r.id && attached.insert(bridge.clone()) {
                subnets.push((bridge, (cidr.addr, cidr.len)));
            }
        }
        routers.push(RouterDef {
            id: r.id.clone(),
            external_ip,
            snat: r.enable_snat,
            subnets,
        });
    }
    let up: HashSet<&str> = routers
        .iter()
        .filter(|r| r.external_ip.is_some())
        .map(|r| r.id.as_str())
        .collect();
    let mut fixed = HashSet::new();
    let floating = s
        .rows
        .floating
        .iter()
        .filter_map(|(f, network)| {
            let a = f.fixed_ip_address?;
            let routed = f.router_id.as_deref().is_some_and(|r| up.contains(r));
            (routed
                && on_public(Some(&f.floating_network_id))
                && allowed(f.floating_ip_address)
                && fixed.insert(a))
            .then(|| FloatingDef {
                id: f.id.clone(),
                address: f.floating_ip_address,
                fixed: a,
                bridge: hostnet::bridge_name(network),
            })
        })
        .collect();
    EdgeState {
        external,
        routers,
        floating,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::ProjectId;
    use model::network::{Cidr, FixedIp, FloatingIpRec, Pool, RouterRec, Stamp};
    use std::net::Ipv4Addr;

    fn stamp() -> Stamp {
        let t = chrono::Utc::now();
        Stamp {
            revision: 1,
            created_at: t,
            updated_at: t,
        }
    }

    fn router(id: &str, ip: &str, net: &str) -> RouterRec {
        RouterRec {
            id: id.into(),
            project_id: ProjectId::new("p"),
            name: String::new(),
            description: String::new(),
            admin_state_up: true,
            external_network_id: Some(net.into()),
            enable_snat: true,
            external_fixed_ips: vec![FixedIp {
                subnet_id: "s".into(),
                ip_address: ip.parse().expect("ip"),
            }],
            tags: Vec::new(),
            stamp: stamp(),
        }
    }

    fn fip(id: &str, addr: &str, fixed: &str, router: &str) -> FloatingIpRec {
        FloatingIpRec {
            id: id.into(),
            project_id: ProjectId::new("p"),
            floating_network_id: "pub".into(),
            floating_port_id: "fp".into(),
            floating_ip_address: addr.parse().expect("ip"),
            port_id: Some("port".into()),
            fixed_ip_address: Some(fixed.parse().expect("ip")),
            router_id: Some(router.into()),
            description: String::new(),
            tags: Vec::new(),
            stamp: stamp(),
        }
    }

    #[test]
    fn records_map_to_the_hosts_edge() {
        let ext = ExternalNet {
            edge: network::EdgeConfig {
                cidr: Cidr::parse("192.0.2.0/24", true).expect("cidr"),
                gateway: Ipv4Addr::new(192, 0, 2, 1),
                range: Pool {
                    start: Ipv4Addr::new(192, 0, 2, 100),
                    end: Ipv4Addr::new(192, 0, 2, 120),
                },
            },
            uplink: Some("eth0".into()),
        };
        let net_a = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
        let net_b = "12345678-9abc-def0-1234-56789abcdef0";
        let cidr = |s: &str| Cidr::parse(s, true).expect("cidr");
        let mut off = router("r3", "192.0.2.103", "pub");
        off.admin_state_up = false;
        let rec = EdgeRecords {
            public_network: Some("pub".into()),
            rows: store::network::EdgeRows {
                routers: vec![
                    router("r1", "192.0.2.100", "pub"),
                    // Another external network, and an address outside the range: no way out.
                    router("r2", "192.0.2.5", "other"),
                    off,
                ],
                interfaces: vec![
                    ("r1".into(), net_a.into(), cidr("10.1.0.0/16")),
                    // A second subnet of the same network: one bridge, attached once.
                    ("r1".into(), net_a.into(), cidr("10.9.0.0/24")),
                    ("r2".into(), net_b.into(), cidr("10.2.0.0/16")),
                ],
                floating: vec![
                    (fip("f1", "192.0.2.101", "10.1.0.5", "r1"), net_a.into()),
                    // Through a router without a way out: not on the host.
                    (fip("f2", "192.0.2.102", "10.2.0.5", "r2"), net_b.into()),
                    // Outside the floating range: not on the host.
                    (fip("f3", "192.0.2.7", "10.1.0.6", "r1"), net_a.into()),
                ],
            },
        };
        let s = edge_state(Some(&ext), &rec);
        assert_eq!(
            s.external,
            Some(External {
                uplink: "eth0".into(),
                cidr: (Ipv4Addr::new(192, 0, 2, 0), 24),
                gateway: Ipv4Addr::new(192, 0, 2, 1),
            })
        );
        assert_eq!(s.routers.len(), 3);
        assert_eq!(
            s.routers[0].external_ip,
            Some(Ipv4Addr::new(192, 0, 2, 100))
        );
        assert!(s.routers[0].snat);
        assert_eq!(
            s.routers[0].subnets,
            vec![(
                "obraaaaaaaabbb".to_owned(),
                (Ipv4Addr::new(10, 1, 0, 0), 16)
            )]
        );
        assert_eq!(s.routers[1].external_ip, None);
        assert_eq!(s.routers[1].subnets[0].0, "obr123456789ab");
        assert_eq!(s.routers[2].external_ip, None);
        assert_eq!(
            s.floating,
            vec![FloatingDef {
                id: "f1".into(),
                address: Ipv4Addr::new(192, 0, 2, 101),
                fixed: Ipv4Addr::new(10, 1, 0, 5),
                bridge: "obraaaaaaaabbb".into(),
            }]
        );
        // What the host would be told is consistent.
        let rules = hostnet::nat::HostRules {
            uplink: Some("eth0".into()),
            nat_allow: Vec::new(),
            blocked: Vec::new(),
            metadata: None,
            dns: false,
        };
        s.check(&rules).expect("a consistent definition");
        // No external network configured (or none on this box): routers keep their subnets
        // (isolated), nothing goes out.
        let none = edge_state(None, &rec);
        assert_eq!(none.external, None);
        assert!(none.routers.iter().all(|r| r.external_ip.is_none()));
        assert!(none.floating.is_empty());
        none.check(&rules).expect("consistent");
    }

    #[test]
    fn a_plugged_port_is_pinned_and_offered_as_its_records_say() {
        use model::network::{AddressPair, HostRoute, SubnetRec};
        let mut port = crate::nethost::tests::port("port", &[Ipv4Addr::new(10, 9, 0, 5)], &[]);
        port.network_id = "5f2a1c3e-9b7d-4e0a-8c6f-0123456789ab".into();
        port.device_id = "server".into();
        port.device_owner = "compute:nova".into();
        port.allowed_address_pairs = vec![AddressPair {
            ip_address: "10.9.0.100".into(),
            mac_address: "fa:16:3e:00:00:01".into(),
        }];
        let subnet = SubnetRec {
            id: "s".into(),
            network_id: port.network_id.clone(),
            project_id: ProjectId::new("p"),
            name: String::new(),
            description: String::new(),
            ip_version: 4,
            cidr: Cidr::parse("10.9.0.0/24", true).expect("cidr"),
            gateway_ip: None,
            enable_dhcp: false,
            allocation_pools: Vec::new(),
            dns_nameservers: vec!["10.9.0.53".into()],
            host_routes: vec![HostRoute {
                destination: "192.168.7.0/24".into(),
                nexthop: "10.9.0.254".into(),
            }],
            tags: Vec::new(),
            stamp: stamp(),
        };
        let (pin, bridge, view) = plugged_view(&network::Plugged { port, subnet });
        assert_eq!(pin.address, Ipv4Addr::new(10, 9, 0, 5));
        assert_eq!(
            pin.pairs,
            vec![(
                (Ipv4Addr::new(10, 9, 0, 100), 32),
                "fa:16:3e:00:00:01".into()
            )]
        );
        assert!(pin.secured);
        assert_eq!(
            bridge,
            hostnet::bridge_name("5f2a1c3e-9b7d-4e0a-8c6f-0123456789ab")
        );
        assert_eq!(view.gateway, "10.9.0.1", "no gateway_ip: the first address");
        assert_eq!(view.dns_nameservers, vec!["10.9.0.53".to_string()]);
        assert_eq!(
            view.host_routes,
            vec![("192.168.7.0/24".to_string(), "10.9.0.254".to_string())]
        );
        assert!(!view.dhcp);
    }
}
