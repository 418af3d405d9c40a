//! The NAT uplink against the real kernel, as root, entirely inside network namespaces this
//! test makes (nothing leaves the box, the host's own namespace is not touched):
//!
//! ```text
//!  guest1 ─┐
//!  guest3 ─┴ obrA ┐
//!                 edge: up0 198.18.0.1 ── wan0 198.18.0.2: outside
//!  guest2 ── obrB ┘      lan0 198.19.0.1 ── eth0 198.19.0.2: lan
//! ```
//!
//! `edge` plays the onebox host; `up0` is its uplink, `lan0` another interface of the host
//! that is not. The outside has no route back to the
//! guests' addresses until the test adds one for the inbound check, so a guest reaching it at
//! all already needs the masquerade.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use hostnet::{InterfaceConfig, NetworkDef};

mod common;
use common::{required, uid};

/// A network namespace held by a `sleep` in it; killing the sleep ends the namespace and
/// every link in it.
struct Netns {
    child: Child,
}

impl Netns {
    fn new() -> Self {
        let child = Command::new("unshare")
            .args(["--net", "sleep", "300"])
            .spawn()
            .expect("unshare");
        let pid = child.id();
        let ns = Self { child };
        let own = std::fs::read_link("/proc/self/ns/net").ok();
        for _ in 0..100 {
            let its = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
            if its.is_some() && its != own {
                ns.sh(&["ip", "link", "set", "lo", "up"]);
                return ns;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("unshare did not enter a new namespace");
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `f` on a thread that joined this namespace; child processes it starts (`nft`)
    /// are in the namespace too.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/proc/{}/ns/net", self.pid());
        let file = std::fs::File::open(&path).expect("netns file");
        std::thread::scope(|s| {
            s.spawn(move || {
                nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("setns");
                f()
            })
            .join()
            .expect("namespace thread")
        })
    }

    /// Runs a command in the namespace; panics when it fails.
    fn sh(&self, args: &[&str]) -> String {
        let out = Command::new("nsenter")
            .args(["-t", &self.pid().to_string(), "-n"])
            .args(args)
            .output()
            .expect("nsenter");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn listen(&self, addr: SocketAddr) -> TcpListener {
        self.run(|| {
            let l = TcpListener::bind(addr).expect("bind");
            l.set_nonblocking(true).expect("nonblocking");
            l
        })
    }

    fn connect(&self, to: SocketAddr) -> std::io::Result<()> {
        self.run(|| TcpStream::connect_timeout(&to, Duration::from_millis(1500)).map(|_| ()))
    }

    fn read(&self, path: &str) -> String {
        let p = path.to_owned();
        self.run(move || std::fs::read_to_string(&p).expect("read").trim().to_owned())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The peer of the next connection the listener gets within a few seconds.
fn accepted(l: &TcpListener) -> Option<SocketAddr> {
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        match l.accept() {
            Ok((_, peer)) => return Some(peer),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    None
}

fn net(id: &str, third: u8, forwarding: bool) -> NetworkDef {
    NetworkDef {
        id: id.into(),
        cidr: format!("10.251.{third}.0/24"),
        gateway: format!("10.251.{third}.1"),
        forwarding,
    }
}

/// A guest namespace on `bridge` (made in `edge`) with `address` on `net`.
fn plug(edge: &Netns, guest: &Netns, bridge: &str, host_if: &str, net: &NetworkDef, host: u8) {
    let pid = guest.pid();
    let (bridge, host_if) = (bridge.to_owned(), host_if.to_owned());
    let prefix = net.prefix_len().expect("prefix");
    let gw = net.gateway_addr().expect("gateway");
    let o = gw.octets();
    let address = Ipv4Addr::new(o[0], o[1], o[2], host);
    edge.run(move || {
        let peer = format!("{host_if}p");
        hostnet::create_veth(&host_if, &peer, &bridge).expect("veth");
        hostnet::move_to_netns(&peer, pid).expect("move");
        hostnet::configure_in_netns(
            pid,
            &InterfaceConfig {
                current_name: peer,
                name: "eth0".into(),
                mac: format!("fa:16:3e:00:00:{host:02x}"),
                address,
                prefix,
                gateway: Some(gw),
            },
        )
        .expect("configure");
    });
}

fn table_exists(edge: &Netns) -> bool {
    let pid = edge.pid().to_string();
    Command::new("nsenter")
        .args(["-t", &pid, "-n", "nft", "list", "table", "ip", "onebox"])
        .output()
        .expect("nft")
        .status
        .success()
}

#[test]
fn guests_reach_the_outside_through_the_uplink_masqueraded_and_nothing_else() {
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
    let far: SocketAddr = "198.18.0.2:7000".parse().expect("addr");
    let far_listener = outside.listen(far);
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

    // NAT on (twice: applying again replaces the table).
    edge.run(|| hostnet::nat::apply("up0").expect("apply"));
    edge.run(|| hostnet::nat::apply("up0").expect("apply again"));
    assert!(table_exists(&edge));
    let tables = edge.sh(&["nft", "list", "tables"]);
    assert_eq!(tables.trim(), "table ip onebox", "one table, onebox's");
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
        .args(["busybox", "ping", "-c", "1", "-W", "3", "198.18.0.2"])
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

    // NAT off: isolated again.
    edge.run(|| hostnet::nat::remove().expect("remove"));
    edge.run(|| hostnet::nat::remove().expect("remove again"));
    assert!(!table_exists(&edge));
    assert_eq!(fwd(&bridge_a), "0");
    assert_eq!(fwd(&bridge_b), "0");
    assert!(guest1.connect(far).is_err(), "no way out after remove");
    assert!(guest2.connect(far).is_err(), "no way out after remove");
    assert!(accepted(&far_listener).is_none());
    guest3.connect(g1).expect("the network itself still works");
    accepted(&g1_listener).expect("guest 3's connection");
    // Namespaces, and every link and table in them, go when the sleeps are killed.
}
