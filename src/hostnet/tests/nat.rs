//! The NAT uplink against the real kernel, as root, entirely inside network namespaces this
//! test makes (nothing leaves the box, the host's own namespace is not touched):
//!
//! ```text
//!  guest1 ─┐
//!  guest3 ─┴ obrA ┐
//!                 edge: up0 198.18.0.1 ── wan0 198.18.0.2: outside (router)
//!  guest2 ── obrB ┘      lan0 198.19.0.1 ── eth0 198.19.0.2: lan      ├ 203.0.113.1 (far)
//!                                                                     └ 192.168.77.1 (private)
//! ```
//!
//! `edge` plays the onebox host; `up0` is its uplink, `lan0` another interface of the host
//! that is not. Behind the uplink sit the uplink's own LAN (198.18.0.0/24, the router at .2),
//! a public address (far) and a private network the host routes through the uplink (as a BMC
//! network or a neighbour's LAN would be). The outside has no route back to the
//! guests' addresses until the test adds one for the inbound check, so a guest reaching it at
//! all already needs the masquerade.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use hostnet::nat::HostRules;

mod common;
#[path = "common/netns.rs"]
mod netns;
use common::{required, uid};
use netns::{Netns, accepted, net, plug};

fn table_exists(edge: &Netns) -> bool {
    let pid = edge.pid().to_string();
    Command::new("nsenter")
        .args(["-t", &pid, "-n", "nft", "list", "table", "inet", "onebox"])
        .output()
        .expect("nft")
        .status
        .success()
}

#[test]
fn attack_nat_guests_reach_the_outside_but_not_the_lan_or_private_ranges() {
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
    let edge = Netns::new();
    let outside = Netns::new();
    let guest1 = Netns::new();
    let guest2 = Netns::new();
    let guest3 = Netns::new();
    let lan = Netns::new();

    // The uplink: a veth pair from the edge to the outside.
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
        &outside.pid().to_string(),
    ]);
    edge.sh(&["ip", "addr", "add", "198.18.0.1/24", "dev", "up0"]);
    edge.sh(&["ip", "link", "set", "up0", "up"]);
    outside.sh(&["ip", "addr", "add", "198.18.0.2/24", "dev", "wan0"]);
    outside.sh(&["ip", "link", "set", "wan0", "up"]);
    outside.sh(&["ip", "addr", "add", "203.0.113.1/32", "dev", "lo"]);
    outside.sh(&["ip", "addr", "add", "192.168.77.1/32", "dev", "lo"]);
    edge.sh(&["ip", "route", "add", "default", "via", "198.18.0.2"]);
    edge.sh(&["ip", "route", "add", "192.168.77.0/24", "via", "198.18.0.2"]);
    // Another interface of the host, to a network with a route back to the guests.
    edge.sh(&[
        "ip",
        "link",
        "add",
        "lan0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &lan.pid().to_string(),
    ]);
    edge.sh(&["ip", "addr", "add", "198.19.0.1/24", "dev", "lan0"]);
    edge.sh(&["ip", "link", "set", "lan0", "up"]);
    edge.sh(&[
        "sh",
        "-c",
        "echo 1 > /proc/sys/net/ipv4/conf/lan0/forwarding",
    ]);
    lan.sh(&["ip", "addr", "add", "198.19.0.2/24", "dev", "eth0"]);
    lan.sh(&["ip", "link", "set", "eth0", "up"]);
    lan.sh(&["ip", "route", "add", "10.251.0.0/16", "via", "198.19.0.1"]);
    let lan_addr: SocketAddr = "198.19.0.2:7002".parse().expect("addr");
    // UDP, so that what arrives shows even where no reply could come back.
    let lan_socket = lan.run(|| {
        let s = std::net::UdpSocket::bind(lan_addr).expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        s
    });
    let far: SocketAddr = "203.0.113.1:7000".parse().expect("addr");
    let far_listener = outside.listen("0.0.0.0:7000".parse().expect("addr"));
    assert_eq!(edge.connect(far).ok(), Some(()), "the uplink works");
    accepted(&far_listener).expect("the edge's own connection");

    // Network A exists before NAT is on, isolated, with two guests.
    let net_a = net("a0a0a0a0-0000-4000-8000-000000000001", 1, false);
    let bridge_a = edge.run(|| hostnet::ensure_bridge(&net_a).expect("bridge A"));
    let fwd = |ifname: &str| edge.read(&format!("/proc/sys/net/ipv4/conf/{ifname}/forwarding"));
    assert_eq!(fwd(&bridge_a), "0");
    plug(&edge, &guest1, &bridge_a, "obtg1", &net_a, 10);
    plug(&edge, &guest3, &bridge_a, "obtg3", &net_a, 11);
    assert!(
        guest1.connect(far).is_err(),
        "isolated: no way out before NAT"
    );
    assert!(accepted(&far_listener).is_none());

    // NAT on (twice: applying again replaces the table), the host's routes closed to guests.
    let blocked = edge.run(hostnet::nat::host_routes);
    let rules = |nat_allow: &[&str]| HostRules {
        uplink: Some("up0".into()),
        nat_allow: nat_allow
            .iter()
            .map(|p| hostnet::nat::parse_prefix(p).expect("prefix"))
            .collect(),
        blocked: blocked.clone(),
        ..HostRules::default()
    };
    edge.run(|| hostnet::nat::apply(&rules(&[])).expect("apply"));
    edge.run(|| hostnet::nat::apply(&rules(&[])).expect("apply again"));
    assert!(table_exists(&edge));
    let tables = edge.sh(&["nft", "list", "tables"]);
    assert_eq!(tables.trim(), "table inet onebox", "one table, onebox's");
    assert_eq!(fwd(&bridge_a), "1", "an existing bridge forwards");
    assert_eq!(fwd("up0"), "1", "replies are routed in from the uplink");
    assert_eq!(
        edge.read("/proc/sys/net/ipv4/ip_forward"),
        "0",
        "no global switch"
    );

    // Network B made after NAT is on, as the backends make it.
    let net_b = net("b0b0b0b0-0000-4000-8000-000000000002", 2, true);
    let bridge_b = edge.run(|| hostnet::ensure_bridge(&net_b).expect("bridge B"));
    assert_eq!(fwd(&bridge_b), "1", "a later bridge forwards");
    plug(&edge, &guest2, &bridge_b, "obtg2", &net_b, 10);

    // Out, masqueraded: the outside sees the uplink's address.
    let uplink_ip: IpAddr = "198.18.0.1".parse().expect("ip");
    guest1.connect(far).expect("guest 1 reaches the outside");
    let peer = accepted(&far_listener).expect("guest 1's connection arrives");
    assert_eq!(peer.ip(), uplink_ip, "masqueraded as the uplink");
    guest2.connect(far).expect("guest 2 reaches the outside");
    let peer = accepted(&far_listener).expect("guest 2's connection arrives");
    assert_eq!(peer.ip(), uplink_ip, "masqueraded as the uplink");
    let ping = Command::new("nsenter")
        .args(["-t", &guest1.pid().to_string(), "-n"])
        .args(["busybox", "ping", "-c", "1", "-W", "3", "203.0.113.1"])
        .output()
        .expect("ping");
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );

    // Only through the uplink: not to the host's other networks.
    let sent = guest1.run(|| {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
        s.send_to(b"out?", lan_addr)
    });
    assert_eq!(sent.ok(), Some(4));
    let mut buf = [0u8; 16];
    assert!(
        lan_socket.recv_from(&mut buf).is_err(),
        "only the uplink leads out"
    );
    // While the host itself reaches that network.
    let sent = edge.run(|| {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
        s.send_to(b"host", lan_addr)
    });
    assert_eq!(sent.ok(), Some(4));
    assert_eq!(lan_socket.recv_from(&mut buf).ok().map(|(n, _)| n), Some(4));

    // Not to the uplink's LAN (the router's own services), nor to a private range the host
    // routes through the uplink.
    let router: SocketAddr = "198.18.0.2:7000".parse().expect("addr");
    let private: SocketAddr = "192.168.77.1:7000".parse().expect("addr");
    assert!(
        guest1.connect(router).is_err(),
        "the uplink's LAN is closed"
    );
    assert!(
        guest1.connect(private).is_err(),
        "private ranges are closed"
    );
    assert!(accepted(&far_listener).is_none());
    assert!(edge.connect(router).is_ok(), "while the host reaches them");
    accepted(&far_listener).expect("the host's connection");
    // Unless the operator allows them.
    edge.run(|| hostnet::nat::apply(&rules(&["192.168.77.0/24"])).expect("apply"));
    guest1.connect(private).expect("an allowed range");
    assert_eq!(
        accepted(&far_listener).map(|p| p.ip()),
        Some(uplink_ip),
        "masqueraded"
    );
    assert!(guest1.connect(router).is_err(), "the LAN stays closed");
    // Teeth: without the private-range rule the LAN is open (what the rule prevents).
    edge.sh(&["nft", "flush", "set", "inet", "onebox", "private"]);
    guest1
        .connect(router)
        .expect("no private set: the LAN is reached");
    accepted(&far_listener).expect("the guest's connection to the LAN");
    edge.run(|| hostnet::nat::apply(&rules(&[])).expect("apply"));

    // Inside: guest 1 listens.
    let g1: SocketAddr = "10.251.1.10:7001".parse().expect("addr");
    let g1_listener = guest1.listen(g1);
    // Another network's guest cannot reach it.
    assert!(guest2.connect(g1).is_err(), "networks are isolated");
    assert!(accepted(&g1_listener).is_none());
    // The outside cannot, even with a route to the guests.
    outside.sh(&["ip", "route", "add", "10.251.0.0/16", "via", "198.18.0.1"]);
    assert!(outside.connect(g1).is_err(), "no way in from outside");
    assert!(accepted(&g1_listener).is_none());
    // Its own network's guest and the host can.
    guest3.connect(g1).expect("same network");
    assert_eq!(
        accepted(&g1_listener).map(|p| p.ip()),
        Some("10.251.1.11".parse().expect("ip"))
    );
    edge.connect(g1).expect("the host reaches its guests");
    accepted(&g1_listener).expect("the host's connection");

    // NAT off: isolated again, the table stays (it guards the host).
    edge.run(|| hostnet::nat::apply(&HostRules::default()).expect("isolate"));
    assert!(table_exists(&edge));
    assert_eq!(fwd(&bridge_a), "0");
    assert_eq!(fwd(&bridge_b), "0");
    assert!(guest1.connect(far).is_err(), "no way out after remove");
    assert!(guest2.connect(far).is_err(), "no way out after remove");
    assert!(accepted(&far_listener).is_none());
    guest3.connect(g1).expect("the network itself still works");
    accepted(&g1_listener).expect("guest 3's connection");
    edge.run(|| hostnet::nat::remove().expect("remove"));
    edge.run(|| hostnet::nat::remove().expect("remove again"));
    assert!(!table_exists(&edge));
    // Namespaces, and every link and table in them, go when the sleeps are killed.
}
