//! Attacks from a guest on a project bridge against the host and its neighbours, against
//! the real kernel, as root, entirely inside network namespaces this test makes:
//!
//! ```text
//!  guest1 10.251.1.10 fa:16:3e:00:00:0a ── obg1 ┐
//!                                               obrA 10.251.1.1 ── edge (the host):
//!  guest2 10.251.1.11 fa:16:3e:00:00:0b ── obg2 ┘    metadata 169.254.169.254:80 on lo,
//!                                                    a service on 0.0.0.0:2222
//! ```
//!
//! The edge gets onebox's host table ([`hostnet::nat::apply`]) and both ports pinned
//! ([`hostnet::ports`]), as `onebox serve` and the backends do. Each attack is shown to fail,
//! then (removing the rule that stops it) to succeed, so the test proves the rule matters.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hostnet::nat::HostRules;
use hostnet::ports::{PortDef, Ports};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

mod common;
#[path = "common/netns.rs"]
mod netns;
use common::{required, uid};
use netns::{Netns, accepted, net, plug};

const G1: &str = "a1a1a1a1-0000-4000-8000-000000000001";
const G2: &str = "a2a2a2a2-0000-4000-8000-000000000002";

/// A state directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("hostnet-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The edge, its bridge and two pinned guests. Dropping it kills the namespaces (their
/// links and tables go with them) and removes the state directory.
struct Lab {
    guest1: Netns,
    guest2: Netns,
    edge: Netns,
    bridge: String,
    ports: Ports,
    _state: TempDir,
}

fn ready() -> bool {
    if uid() != 0 {
        assert!(!required(), "this test needs root");
        eprintln!("skipped: needs root");
        return false;
    }
    if !hostnet::nat::nft_available() {
        assert!(!required(), "this test needs the nft tool (nftables)");
        eprintln!("skipped: no nft tool (apt-get install nftables)");
        return false;
    }
    true
}

fn port(ifname: &str, server: &str, last: u8) -> PortDef {
    PortDef::new(
        ifname,
        server,
        &format!("fa:16:3e:00:00:{last:02x}"),
        Ipv4Addr::new(10, 251, 1, last),
    )
}

impl Lab {
    fn new(tag: &str) -> Self {
        let state = TempDir::new(tag);
        let (edge, guest1, guest2) = (Netns::new(), Netns::new(), Netns::new());
        let ports = Ports::new(state.0.clone());
        let net_a = net("a0a0a0a0-0000-4000-8000-0000000000a1", 1, false);
        let bridge = edge.run(|| {
            hostnet::nat::apply(&HostRules::default()).expect("host table");
            hostnet::ensure_address("lo", Ipv4Addr::new(169, 254, 169, 254), 32)
                .expect("metadata address");
            // Recorded and pinned before the interfaces exist, as the backends do.
            ports
                .add(&[port("obg1", G1, 10), port("obg2", G2, 11)])
                .expect("pin ports");
            hostnet::ensure_bridge(&net_a).expect("bridge")
        });
        plug(&edge, &guest1, &bridge, "obg1", &net_a, 10);
        plug(&edge, &guest2, &bridge, "obg2", &net_a, 11);
        Self {
            guest1,
            guest2,
            edge,
            bridge,
            ports,
            _state: state,
        }
    }
}

/// Connects from `from`'s namespace to `to`, from source address `src`.
fn connect_from(ns: &Netns, src: Ipv4Addr, to: SocketAddr) -> std::io::Result<()> {
    ns.run(|| {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        s.bind(&SocketAddr::from((src, 0)).into())?;
        s.connect_timeout(&to.into(), Duration::from_millis(1500))
    })
}

#[test]
fn attack_guest_reaches_no_host_service_but_dhcp_and_metadata() {
    if !ready() {
        return;
    }
    let lab = Lab::new("input");
    let metadata: SocketAddr = "169.254.169.254:80".parse().expect("addr");
    let md = lab.edge.listen(metadata);
    let svc = lab.edge.listen("0.0.0.0:2222".parse().expect("addr"));
    let on_gateway: SocketAddr = "10.251.1.1:2222".parse().expect("addr");
    let on_md_addr: SocketAddr = "169.254.169.254:2222".parse().expect("addr");

    assert!(lab.guest1.connect(on_gateway).is_err(), "a host service");
    assert!(lab.guest1.connect(on_md_addr).is_err(), "any other port");
    assert!(accepted(&svc).is_none());
    lab.guest1.connect(metadata).expect("the metadata service");
    assert_eq!(
        accepted(&md).map(|p| p.ip()),
        Some("10.251.1.10".parse().expect("ip"))
    );

    // DHCP: a discover from 0.0.0.0 (busybox's udhcpc) reaches the host's port 67.
    let dhcp = lab.edge.run(|| {
        let s = UdpSocket::bind("0.0.0.0:67").expect("bind 67");
        s.set_read_timeout(Some(Duration::from_secs(4)))
            .expect("timeout");
        s
    });
    let pid = lab.guest1.pid().to_string();
    let _ = std::process::Command::new("nsenter")
        .args([
            "-t", &pid, "-n", "busybox", "udhcpc", "-i", "eth0", "-n", "-q",
        ])
        .args(["-t", "2", "-T", "1", "-s", "/bin/true"])
        .output()
        .expect("udhcpc");
    let mut buf = [0u8; 1500];
    let (n, from) = dhcp.recv_from(&mut buf).expect("the discover arrives");
    assert!(n > 240, "a DHCP message");
    assert_eq!(from, "0.0.0.0:68".parse::<SocketAddr>().expect("addr"));

    // Teeth: without the input chain's rules the host service is reached.
    lab.edge
        .sh(&["nft", "flush", "chain", "inet", "onebox", "from_guests"]);
    lab.guest1
        .connect(on_gateway)
        .expect("without the rules the attack works");
    accepted(&svc).expect("the guest's connection");
}

/// The MAC the edge's neighbour table holds for `ip`.
fn neighbour(edge: &Netns, ip: &str) -> String {
    edge.sh(&["ip", "neigh", "show", ip])
}

#[test]
fn attack_guest_spoofing_mac_ip_or_arp_gets_no_frames_through() {
    if !ready() {
        return;
    }
    let lab = Lab::new("spoof");
    let (g1, edge) = (&lab.guest1, &lab.edge);
    let metadata: SocketAddr = "169.254.169.254:80".parse().expect("addr");
    let md = edge.listen(metadata);
    let own = Ipv4Addr::new(10, 251, 1, 10);
    let other = Ipv4Addr::new(10, 251, 1, 11);
    connect_from(g1, own, metadata).expect("honest");
    assert_eq!(accepted(&md).map(|p| p.ip()), Some(own.into()));
    // The host knows guest 2.
    edge.sh(&["busybox", "ping", "-c", "1", "-W", "2", "10.251.1.11"]);
    assert!(neighbour(edge, "10.251.1.11").contains("fa:16:3e:00:00:0b"));
    std::thread::sleep(Duration::from_millis(1200)); // past the neighbour lock time

    // Guest 1 takes guest 2's address: speaks as it, announces it by ARP.
    g1.sh(&["ip", "addr", "add", "10.251.1.11/32", "dev", "eth0"]);
    let spoof = |what: &str| {
        assert!(connect_from(g1, other, metadata).is_err(), "{what}");
        assert!(accepted(&md).is_none(), "{what}");
    };
    spoof("another guest's address");
    let arping = [
        "busybox", "arping", "-U", "-c", "2", "-w", "2", "-I", "eth0",
    ];
    let _ = std::process::Command::new("nsenter")
        .args(["-t", &g1.pid().to_string(), "-n"])
        .args(arping)
        .args(["-s", "10.251.1.11", "10.251.1.11"])
        .output();
    assert!(
        neighbour(edge, "10.251.1.11").contains("fa:16:3e:00:00:0b"),
        "gratuitous ARP for another guest's address: {}",
        neighbour(edge, "10.251.1.11")
    );

    // Another MAC, with its own address or with guest 2's MAC and address.
    g1.sh(&["ip", "addr", "del", "10.251.1.11/32", "dev", "eth0"]);
    g1.sh(&["ip", "link", "set", "eth0", "address", "fa:16:3e:00:00:99"]);
    g1.sh(&["ip", "neigh", "flush", "dev", "eth0"]);
    assert!(connect_from(g1, own, metadata).is_err(), "another MAC");
    assert!(accepted(&md).is_none());
    g1.sh(&["ip", "link", "set", "eth0", "address", "fa:16:3e:00:00:0b"]);
    g1.sh(&["ip", "addr", "add", "10.251.1.11/32", "dev", "eth0"]);
    spoof("another guest's MAC and address");
    // Guest 2 itself is unaffected.
    connect_from(&lab.guest2, other, metadata).expect("guest 2 speaks as itself");
    assert_eq!(accepted(&md).map(|p| p.ip()), Some(other.into()));

    // Teeth: guest 1's port unpinned, the same spoof reaches the metadata service as guest 2.
    g1.sh(&["ip", "link", "set", "eth0", "address", "fa:16:3e:00:00:0a"]);
    g1.sh(&["ip", "neigh", "flush", "dev", "eth0"]);
    edge.sh(&[
        "nft",
        "delete",
        "element",
        "bridge",
        "onebox",
        "ports",
        "{ \"obg1\" }",
    ]);
    connect_from(g1, other, metadata).expect("unpinned: the spoof works");
    assert_eq!(accepted(&md).map(|p| p.ip()), Some(other.into()));

    // Restored from the records (as after a flushed ruleset or a reboot): pinned again.
    edge.sh(&["nft", "delete", "table", "bridge", "onebox"]);
    let n = edge.run(|| lab.ports.restore(|_| true).expect("restore"));
    assert_eq!(n, 2);
    spoof("after restore");
    // A server that is gone is forgotten: its record and its rules.
    let n = edge.run(|| lab.ports.restore(|s| s == G1).expect("restore"));
    assert_eq!(n, 1);
    assert_eq!(lab.ports.list(), vec![port("obg1", G1, 10)]);
    let table = edge.sh(&["nft", "list", "table", "bridge", "onebox"]);
    assert!(
        table.contains("port_obg1") && !table.contains("obg2"),
        "{table}"
    );
    edge.run(|| lab.ports.remove_server(G1).expect("remove"));
    assert!(lab.ports.list().is_empty());
}

#[test]
fn attack_address_pairs_and_port_security_off_never_reach_metadata_as_another() {
    if !ready() {
        return;
    }
    let lab = Lab::new("pairs");
    let (g1, g2, edge) = (&lab.guest1, &lab.guest2, &lab.edge);
    let metadata: SocketAddr = "169.254.169.254:80".parse().expect("addr");
    let md = edge.listen(metadata);
    let service: SocketAddr = "10.251.1.11:8080".parse().expect("addr");
    let svc = g2.listen(service);
    let vip = Ipv4Addr::new(10, 251, 1, 100);
    let other = Ipv4Addr::new(10, 251, 1, 11);
    g1.sh(&["ip", "addr", "add", "10.251.1.100/32", "dev", "eth0"]);
    assert!(
        connect_from(g1, vip, service).is_err(),
        "no pair: the VIP is a spoof"
    );
    assert!(accepted(&svc).is_none());

    // The VIP as an allowed address pair: neighbours hear it, the metadata service does not.
    let mut pinned = port("obg1", G1, 10);
    pinned.pairs = PortDef::parse_pairs(&[("10.251.1.100".into(), pinned.mac.clone())]);
    let n = edge.run(|| lab.ports.update(&pinned.mac, &pinned).expect("update"));
    assert_eq!(n, 1);
    assert_eq!(lab.ports.list()[0], pinned, "the record follows");
    connect_from(g1, vip, service).expect("the pair's address reaches a neighbour");
    assert_eq!(accepted(&svc).map(|p| p.ip()), Some(vip.into()));
    assert!(
        connect_from(g1, vip, metadata).is_err(),
        "metadata from a pair"
    );
    assert!(accepted(&md).is_none());

    // Port security off: guest 1 may speak as anything to its neighbours, but still not to
    // the metadata service as guest 2.
    let open = PortDef {
        pairs: Vec::new(),
        secured: false,
        ..pinned.clone()
    };
    edge.run(|| lab.ports.update(&open.mac, &open).expect("update"));
    g1.sh(&["ip", "addr", "add", "10.251.1.11/32", "dev", "eth0"]);
    // Guest 1 asks for the gateway again, as guest 2: the host learns guest 1's MAC for it.
    let relearn = || {
        g1.sh(&["ip", "neigh", "flush", "dev", "eth0"]);
        std::thread::sleep(Duration::from_millis(1200)); // past the neighbour lock time
    };
    relearn();
    assert!(
        connect_from(g1, other, metadata).is_err(),
        "metadata as guest 2"
    );
    assert!(accepted(&md).is_none());
    let own = Ipv4Addr::new(10, 251, 1, 10);
    connect_from(g1, own, metadata).expect("metadata as itself");
    assert_eq!(accepted(&md).map(|p| p.ip()), Some(own.into()));

    // Teeth: without the port's rules the same spoof reaches the metadata service.
    edge.sh(&["nft", "flush", "chain", "bridge", "onebox", "port_obg1"]);
    relearn();
    connect_from(g1, other, metadata).expect("unguarded: the spoof works");
    assert_eq!(accepted(&md).map(|p| p.ip()), Some(other.into()));
}

/// A router advertisement for 2001:db8:1::/64 with a default route, from `fe80::a`.
fn send_ra(guest: &Netns) {
    // Not sysfs: it shows the namespace it was mounted in.
    let l = guest.sh(&["ip", "-o", "link", "show", "dev", "eth0"]);
    let index: u32 = l
        .split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .expect("ifindex");
    let mut ra = vec![134u8, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    ra.extend([
        3, 4, 64, 0xc0, 0, 0x27, 0x8d, 0, 0, 0x09, 0x3a, 0x80, 0, 0, 0, 0,
    ]);
    ra.extend("2001:db8:1::".parse::<Ipv6Addr>().expect("prefix").octets());
    guest.run(|| {
        let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).expect("raw");
        s.set_multicast_hops_v6(255).expect("hops");
        s.set_unicast_hops_v6(255).expect("hops");
        s.set_multicast_if_v6(index).expect("if");
        let src = SocketAddrV6::new("fe80::a".parse().expect("ip"), 0, 0, index);
        s.bind(&SockAddr::from(src)).expect("bind");
        let to = SocketAddrV6::new("ff02::1".parse().expect("ip"), 0, 0, index);
        for _ in 0..3 {
            s.send_to(&ra, &SockAddr::from(to)).expect("send RA");
            std::thread::sleep(Duration::from_millis(300));
        }
    });
}

/// Whether the edge took the advertisement: an address in its prefix or a default route.
fn configured(edge: &Netns) -> bool {
    let a = edge.sh(&["ip", "-6", "addr"]);
    let r = edge.sh(&["ip", "-6", "route"]);
    a.contains("2001:db8:1:") || r.contains("default")
}

#[test]
fn attack_guest_router_advertisement_configures_nothing_on_the_host() {
    if !ready() {
        return;
    }
    let lab = Lab::new("ra");
    let conf = |i: &str, k: &str| lab.edge.read(&format!("/proc/sys/net/ipv6/conf/{i}/{k}"));
    for i in [lab.bridge.as_str(), "obg1", "obg2"] {
        assert_eq!(conf(i, "disable_ipv6"), "1", "{i}");
        assert_eq!(conf(i, "accept_ra"), "0", "{i}");
    }
    lab.guest1
        .sh(&["ip", "addr", "add", "fe80::a/64", "dev", "eth0", "nodad"]);
    send_ra(&lab.guest1);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!configured(&lab.edge), "the host took a guest's RA");

    // Teeth: IPv6 back on the bridge, the port unpinned and the input chain emptied (three
    // guards, each enough alone), the same RA configures the host.
    let set = |k: &str, v: &str| {
        let p = format!("/proc/sys/net/ipv6/conf/{}/{k}", lab.bridge);
        lab.edge.sh(&["sh", "-c", &format!("echo {v} > {p}")]);
    };
    set("disable_ipv6", "0");
    set("accept_ra", "1");
    set("autoconf", "1");
    lab.edge.sh(&[
        "nft",
        "delete",
        "element",
        "bridge",
        "onebox",
        "ports",
        "{ \"obg1\" }",
    ]);
    lab.edge
        .sh(&["nft", "flush", "chain", "inet", "onebox", "from_guests"]);
    std::thread::sleep(Duration::from_millis(2500)); // the bridge's link-local DAD
    let end = Instant::now() + Duration::from_secs(8);
    let mut took = false;
    while !took && Instant::now() < end {
        send_ra(&lab.guest1);
        took = configured(&lab.edge);
    }
    assert!(took, "without the guards the RA configures the host");
}
