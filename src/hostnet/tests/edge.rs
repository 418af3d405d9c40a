//! Routers and floating IPs against the real kernel, as root, entirely inside network
//! namespaces this test makes (nothing leaves the box, the host's own namespace is not
//! touched):
//!
//! ```text
//!  guest1 10.251.1.10 (fip .210) ─┐
//!  guest2 10.251.1.11 ────────────┴ obrA (router r1, .200) ┐
//!                                                          edge: up0 198.18.0.1 ── wan0 198.18.0.2: outside
//!  guest3 10.251.2.10 ───────────── obrB (no router) ──────┘                       └ 203.0.113.1 (far)
//! ```
//!
//! `edge` plays the onebox host with `nat_uplink = "up0"`; the external network is the
//! uplink's LAN 198.18.0.0/24 (the outside at .2 is its router), and routers and floating
//! IPs take addresses from it. The outside has no route to the guests' addresses.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hostnet::edge::{EdgeState, External, FloatingDef, RouterDef};
use hostnet::nat::HostRules;

mod common;
#[path = "common/netns.rs"]
mod netns;
use common::{required, uid};
use netns::{Netns, accepted, net, plug};

/// A state directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        Self::new_named("obt-edge")
    }
    fn new_named(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("state dir");
        Self(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The next connection the (non-blocking) listener gets within a few seconds, blocking with
/// a read timeout.
fn accept_stream(l: &TcpListener) -> Option<TcpStream> {
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        if let Ok((s, _)) = l.accept() {
            s.set_nonblocking(false).expect("blocking");
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

fn ip(s: &str) -> std::net::Ipv4Addr {
    s.parse().expect("ip")
}

fn uplink_addresses(edge: &Netns) -> String {
    edge.sh(&["ip", "-4", "-o", "addr", "show", "dev", "up0"])
}

/// The handle of the rule in `chain` whose comment is exactly `comment`.
fn handle(edge: &Netns, chain: &str, comment: &str) -> String {
    let listing = edge.sh(&["nft", "-a", "list", "chain", "inet", "onebox", chain]);
    let line = listing
        .lines()
        .find(|l| l.contains(&format!("comment \"{comment}\" ")))
        .unwrap_or_else(|| panic!("no rule {comment:?} in {listing}"));
    line.rsplit("# handle ")
        .next()
        .expect("handle")
        .trim()
        .into()
}

#[test]
fn attack_floating_ips_and_routers_open_only_what_they_map() {
    if uid() != 0 {
        assert!(!required(), "this test needs root");
        eprintln!("skipped: needs root");
        return;
    }
    if !hostnet::nat::nft_available() {
        assert!(!required(), "this test needs the nft tool (nftables)");
        eprintln!("skipped: no nft tool (apt-get install nftables)");
        return;
    }
    let dir = TempDir::new();
    let edge = Netns::new();
    let outside = Netns::new();
    let guest1 = Netns::new();
    let guest2 = Netns::new();
    let guest3 = Netns::new();

    let outside_pid = outside.pid().to_string();
    edge.sh(&[
        "ip",
        "link",
        "add",
        "up0",
        "type",
        "veth",
        "peer",
        "name",
        "wan0",
        "netns",
        &outside_pid,
    ]);
    edge.sh(&["ip", "addr", "add", "198.18.0.1/24", "dev", "up0"]);
    edge.sh(&["ip", "link", "set", "up0", "up"]);
    outside.sh(&["ip", "addr", "add", "198.18.0.2/24", "dev", "wan0"]);
    outside.sh(&["ip", "link", "set", "wan0", "up"]);
    outside.sh(&["ip", "addr", "add", "203.0.113.1/32", "dev", "lo"]);
    edge.sh(&["ip", "route", "add", "default", "via", "198.18.0.2"]);
    // An address the operator put on the uplink: onebox neither takes nor removes it.
    edge.sh(&["ip", "addr", "add", "198.18.0.5/32", "dev", "up0"]);

    let host = HostRules {
        uplink: Some("up0".into()),
        blocked: edge.run(hostnet::nat::host_routes),
        ..HostRules::default()
    };
    edge.run(|| hostnet::nat::apply(&host).expect("host table"));
    let net_a = net("a0a0a0a0-0000-4000-8000-00000000000a", 1, true);
    let net_b = net("b0b0b0b0-0000-4000-8000-00000000000b", 2, true);
    let bridge_a = edge.run(|| hostnet::ensure_bridge(&net_a).expect("bridge A"));
    let bridge_b = edge.run(|| hostnet::ensure_bridge(&net_b).expect("bridge B"));
    plug(&edge, &guest1, &bridge_a, "obtg1", &net_a, 10);
    plug(&edge, &guest2, &bridge_a, "obtg2", &net_a, 11);
    plug(&edge, &guest3, &bridge_b, "obtg3", &net_b, 10);

    let external = External {
        uplink: "up0".into(),
        cidr: (ip("198.18.0.0"), 24),
        gateway: ip("198.18.0.2"),
    };
    let router = RouterDef {
        id: "r1".into(),
        external_ip: Some(ip("198.18.0.200")),
        snat: true,
        subnets: vec![(bridge_a.clone(), (ip("10.251.1.0"), 24))],
    };
    let fip = FloatingDef {
        id: "f1".into(),
        address: ip("198.18.0.210"),
        fixed: ip("10.251.1.10"),
        bridge: bridge_a.clone(),
    };
    let with_fip = EdgeState {
        external: Some(external.clone()),
        routers: vec![router.clone()],
        floating: vec![fip.clone()],
    };
    let apply = |s: &EdgeState| {
        let (d, h, s) = (dir.path(), &host, s.clone());
        edge.run(move || hostnet::edge::apply(d, h, &s))
    };
    apply(&with_fip).expect("apply");
    apply(&with_fip).expect("apply again: the same");
    let addrs = uplink_addresses(&edge);
    assert_eq!(addrs.matches("198.18.0.210/32").count(), 1, "{addrs}");
    assert_eq!(addrs.matches("198.18.0.200/32").count(), 1, "{addrs}");

    let far_listener = outside.listen(sa("0.0.0.0:7000"));
    let far = sa("203.0.113.1:7000");
    let g1_listener = guest1.listen(sa("0.0.0.0:8000"));
    let g2_listener = guest2.listen(sa("0.0.0.0:8000"));
    let g3_listener = guest3.listen(sa("0.0.0.0:8000"));
    let to_fip = sa("198.18.0.210:8000");
    let outside_ip: IpAddr = "198.18.0.2".parse().expect("ip");

    // (1) The LAN reaches the guest on its floating IP, and the guest sees who it is.
    outside
        .connect(to_fip)
        .expect("the floating IP is reachable");
    assert_eq!(accepted(&g1_listener).map(|p| p.ip()), Some(outside_ip));
    // (2) The guest goes out as its floating IP, (3) its neighbour as the router.
    guest1.connect(far).expect("guest 1 goes out");
    assert_eq!(
        accepted(&far_listener).map(|p| p.ip()),
        Some("198.18.0.210".parse().expect("ip"))
    );
    guest2.connect(far).expect("guest 2 goes out");
    assert_eq!(
        accepted(&far_listener).map(|p| p.ip()),
        Some("198.18.0.200".parse().expect("ip"))
    );
    // A network on no router keeps the box's default NAT.
    guest3.connect(far).expect("guest 3 goes out");
    assert_eq!(
        accepted(&far_listener).map(|p| p.ip()),
        Some("198.18.0.1".parse().expect("ip"))
    );
    // A floating IP opens no way to the private LAN from the guest.
    assert!(guest1.connect(sa("198.18.0.2:7000")).is_err(), "LAN closed");
    assert!(accepted(&far_listener).is_none());

    // (5) Nothing else is reachable from outside, even with a route to the guests.
    outside.sh(&["ip", "route", "add", "10.251.0.0/16", "via", "198.18.0.1"]);
    assert!(
        outside.connect(sa("10.251.2.10:8000")).is_err(),
        "no router"
    );
    assert!(outside.connect(sa("10.251.1.11:8000")).is_err(), "no FIP");
    assert!(
        outside.connect(sa("10.251.1.10:8000")).is_err(),
        "only via the FIP"
    );
    assert!(accepted(&g2_listener).is_none() && accepted(&g3_listener).is_none());
    assert!(accepted(&g1_listener).is_none());
    // The host's own services are not reachable on the router's or floating addresses.
    let host_listener = edge.listen(sa("0.0.0.0:8001"));
    assert!(outside.connect(sa("198.18.0.200:8001")).is_err());
    assert!(outside.connect(sa("198.18.0.210:8001")).is_err());
    assert!(accepted(&host_listener).is_none());
    outside
        .connect(sa("198.18.0.1:8001"))
        .expect("while the host's own address is");
    accepted(&host_listener).expect("the host's connection");

    // Hairpin: guests reach the floating IP from inside, from another network and the same.
    guest3
        .connect(to_fip)
        .expect("hairpin from another network");
    assert_eq!(
        accepted(&g1_listener).map(|p| p.ip()),
        Some("10.251.1.1".parse().expect("ip")),
        "masqueraded to the bridge's gateway"
    );
    guest2
        .connect(to_fip)
        .expect("hairpin from the same network");
    accepted(&g1_listener).expect("guest 2's connection");

    // (6) Teeth: without the DNAT rule the floating IP leads nowhere.
    let h = handle(&edge, "prerouting", "fip f1");
    edge.sh(&[
        "nft",
        "delete",
        "rule",
        "inet",
        "onebox",
        "prerouting",
        "handle",
        &h,
    ]);
    assert!(outside.connect(to_fip).is_err(), "no DNAT, no way in");
    assert!(accepted(&g1_listener).is_none());
    apply(&with_fip).expect("apply again");
    outside.connect(to_fip).expect("back");
    accepted(&g1_listener).expect("the connection");

    // (7) Restore after the table is flushed (and the addresses lost, as after a reboot).
    edge.sh(&["nft", "flush", "table", "inet", "onebox"]);
    edge.sh(&["ip", "addr", "del", "198.18.0.210/32", "dev", "up0"]);
    assert!(outside.connect(to_fip).is_err(), "flushed");
    assert!(accepted(&g1_listener).is_none());
    let (d, hr) = (dir.path(), &host);
    edge.run(move || hostnet::edge::restore(d, hr).expect("restore"));
    outside.connect(to_fip).expect("restored");
    accepted(&g1_listener).expect("the connection");

    // An address onebox did not add is refused, and stays.
    let mut taken = with_fip.clone();
    taken.floating[0].address = ip("198.18.0.5");
    assert!(apply(&taken).is_err(), "the operator's address");
    assert!(uplink_addresses(&edge).contains("198.18.0.5/32"));

    // A connection held across the disassociation.
    let mut held = outside
        .run(|| TcpStream::connect_timeout(&to_fip, Duration::from_millis(1500)))
        .expect("a connection to the floating IP");
    let mut inside = accept_stream(&g1_listener).expect("the guest's end");
    let mut buf = [0u8; 8];
    held.write_all(b"one").expect("write");
    assert_eq!(inside.read(&mut buf).ok(), Some(3), "it carries data");

    // (4) Disassociated: new connections fail, the guest goes out as the router again.
    let without = EdgeState {
        floating: Vec::new(),
        ..with_fip.clone()
    };
    apply(&without).expect("disassociate");
    held.write_all(b"two").expect("write (queued)");
    assert!(
        inside.read(&mut buf).is_err(),
        "an established connection is cut too"
    );
    assert!(!uplink_addresses(&edge).contains("198.18.0.210"));
    assert!(outside.connect(to_fip).is_err(), "disassociated");
    assert!(accepted(&g1_listener).is_none());
    guest1.connect(far).expect("guest 1 goes out");
    assert_eq!(
        accepted(&far_listener).map(|p| p.ip()),
        Some("198.18.0.200".parse().expect("ip"))
    );

    // A router without SNAT: no way out for its subnets.
    let no_snat = EdgeState {
        routers: vec![RouterDef {
            snat: false,
            ..router.clone()
        }],
        ..without.clone()
    };
    apply(&no_snat).expect("no snat");
    assert!(guest2.connect(far).is_err(), "no SNAT, no way out");
    assert!(accepted(&far_listener).is_none());

    // Removal: nothing of ours is left, the operator's address stays.
    edge.run(|| hostnet::edge::remove(dir.path()).expect("remove"));
    edge.run(|| hostnet::edge::remove(dir.path()).expect("remove again"));
    let addrs = uplink_addresses(&edge);
    assert!(!addrs.contains("198.18.0.200") && !addrs.contains("198.18.0.210"));
    assert!(addrs.contains("198.18.0.5/32") && addrs.contains("198.18.0.1/24"));
    assert_eq!(edge.sh(&["nft", "list", "tables"]).trim(), "");
    assert!(edge.sh(&["ip", "neigh", "show", "proxy"]).trim().is_empty());
    assert!(!dir.path().join("edge/state").exists());
    assert!(!dir.path().join("edge/addresses").exists());
}

#[test]
fn attack_without_default_nat_only_routers_and_floating_ips_lead_out() {
    if uid() != 0 || !hostnet::nat::nft_available() {
        assert!(!required(), "this test needs root and the nft tool");
        eprintln!("skipped: needs root and nft");
        return;
    }
    let dir = TempDir::new_named("obt-edge-nonat");
    let edge = Netns::new();
    let outside = Netns::new();
    let guest1 = Netns::new();
    let guest3 = Netns::new();
    let outside_pid = outside.pid().to_string();
    edge.sh(&[
        "ip",
        "link",
        "add",
        "up0",
        "type",
        "veth",
        "peer",
        "name",
        "wan0",
        "netns",
        &outside_pid,
    ]);
    edge.sh(&["ip", "addr", "add", "198.18.0.1/24", "dev", "up0"]);
    edge.sh(&["ip", "link", "set", "up0", "up"]);
    outside.sh(&["ip", "addr", "add", "198.18.0.2/24", "dev", "wan0"]);
    outside.sh(&["ip", "link", "set", "wan0", "up"]);
    outside.sh(&["ip", "addr", "add", "203.0.113.1/32", "dev", "lo"]);
    edge.sh(&["ip", "route", "add", "default", "via", "198.18.0.2"]);

    // No nat_uplink: project networks are isolated unless a router takes them out.
    let host = HostRules {
        blocked: edge.run(hostnet::nat::host_routes),
        ..HostRules::default()
    };
    edge.run(|| hostnet::nat::apply(&host).expect("host table"));
    let net_a = net("a0a0a0a0-0000-4000-8000-00000000000a", 1, false);
    let net_b = net("b0b0b0b0-0000-4000-8000-00000000000b", 2, false);
    let bridge_a = edge.run(|| hostnet::ensure_bridge(&net_a).expect("bridge A"));
    let bridge_b = edge.run(|| hostnet::ensure_bridge(&net_b).expect("bridge B"));
    plug(&edge, &guest1, &bridge_a, "obtg1", &net_a, 10);
    plug(&edge, &guest3, &bridge_b, "obtg3", &net_b, 10);
    let s = EdgeState {
        external: Some(External {
            uplink: "up0".into(),
            cidr: (ip("198.18.0.0"), 24),
            gateway: ip("198.18.0.2"),
        }),
        routers: vec![RouterDef {
            id: "r1".into(),
            external_ip: Some(ip("198.18.0.200")),
            snat: true,
            subnets: vec![(bridge_a.clone(), (ip("10.251.1.0"), 24))],
        }],
        floating: vec![FloatingDef {
            id: "f1".into(),
            address: ip("198.18.0.210"),
            fixed: ip("10.251.1.10"),
            bridge: bridge_a.clone(),
        }],
    };
    let (d, h) = (dir.path(), &host);
    edge.run(move || hostnet::edge::apply(d, h, &s).expect("apply"));
    let fwd = |ifname: &str| edge.read(&format!("/proc/sys/net/ipv4/conf/{ifname}/forwarding"));
    assert_eq!(fwd(&bridge_a), "1", "the router's bridge forwards");
    assert_eq!(fwd(&bridge_b), "0", "a bridge on no router stays isolated");
    assert_eq!(fwd("up0"), "1");
    assert_eq!(edge.read("/proc/sys/net/ipv4/ip_forward"), "0");

    let far_listener = outside.listen(sa("0.0.0.0:7000"));
    let far = sa("203.0.113.1:7000");
    let g1_listener = guest1.listen(sa("0.0.0.0:8000"));
    outside
        .connect(sa("198.18.0.210:8000"))
        .expect("the floating IP");
    assert_eq!(
        accepted(&g1_listener).map(|p| p.ip()),
        Some("198.18.0.2".parse().expect("ip"))
    );
    guest1.connect(far).expect("out as the floating IP");
    assert_eq!(
        accepted(&far_listener).map(|p| p.ip()),
        Some("198.18.0.210".parse().expect("ip"))
    );
    assert!(guest3.connect(far).is_err(), "no router, no default NAT");
    assert!(
        guest3.connect(sa("10.251.1.10:8000")).is_err(),
        "nor the other network"
    );
    assert!(accepted(&far_listener).is_none() && accepted(&g1_listener).is_none());
    edge.run(|| hostnet::edge::remove(dir.path()).expect("remove"));
    assert_eq!(fwd(&bridge_a), "0");
    let addrs = uplink_addresses(&edge);
    assert!(!addrs.contains("198.18.0.200") && !addrs.contains("198.18.0.210"));
}
