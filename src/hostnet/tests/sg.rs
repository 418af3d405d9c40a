//! Security groups against the real kernel, as root, inside network namespaces this test
//! makes (the host's own namespace is not touched):
//!
//! ```text
//!  g1 10.251.1.10 (group b) ─┐
//!  g2 10.251.1.11 (group c) ─┤
//!  g3 10.251.1.12 (group web)┼ obr… in edge
//!  g4 10.251.1.13 (port security off) ┘
//! ```
//!
//! Rules: web takes tcp/80 from members of b only and sends anything; b and c send
//! anything; nobody else takes anything.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use hostnet::sg::{Direction, SgPort, SgRule, SgState};

mod common;
#[path = "common/netns.rs"]
mod netns;
use common::{required, uid};
use netns::{Netns, accepted, net, plug};

fn can_run() -> bool {
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

fn rule(mark: u16, group: &str, direction: Direction) -> SgRule {
    SgRule {
        id: format!("rule-{mark}"),
        group: group.into(),
        direction,
        mark,
        protocol: None,
        port_min: None,
        port_max: None,
        remote_prefix: None,
        remote_group: None,
        ipv6: false,
    }
}

fn tcp(mark: u16, group: &str, port: u16, remote_group: &str) -> SgRule {
    SgRule {
        protocol: Some(6),
        port_min: Some(port),
        port_max: Some(port),
        remote_group: Some(remote_group.into()),
        ..rule(mark, group, Direction::Ingress)
    }
}

fn port(last: u8, groups: &[&str], enabled: bool) -> SgPort {
    SgPort {
        id: format!("port-{last}"),
        address: Ipv4Addr::new(10, 251, 1, last),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        enabled,
    }
}

fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 251, 1, last), port))
}

/// Whether `from` opens a connection to `to`, where `l` listens.
fn reaches(from: &Netns, to: SocketAddr, l: &TcpListener) -> bool {
    let ok = from.connect(to).is_ok();
    let got = accepted(l).is_some();
    assert_eq!(
        ok, got,
        "a connection the listener did not see, or the reverse"
    );
    ok
}

/// An open connection from `from` to `to` where `l` listens: (client, server).
fn open(from: &Netns, to: SocketAddr, l: &TcpListener) -> (TcpStream, TcpStream) {
    let c = from.run(|| TcpStream::connect_timeout(&to, Duration::from_secs(2)).expect("connect"));
    let end = Instant::now() + Duration::from_secs(3);
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).expect("blocking");
                return (c, s);
            }
            Err(_) if Instant::now() < end => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Whether a byte written on `a` arrives on `b` within a second.
fn delivers(a: &mut TcpStream, b: &mut TcpStream) -> bool {
    a.write_all(b"x").expect("write");
    b.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let mut buf = [0u8; 8];
    matches!(b.read(&mut buf), Ok(n) if n > 0)
}

fn ping(from: &Netns, to: &str) -> bool {
    Command::new("nsenter")
        .args(["-t", &from.pid().to_string(), "-n"])
        .args(["busybox", "ping", "-c", "1", "-W", "1", to])
        .output()
        .expect("ping")
        .status
        .success()
}

/// The handle of the first rule of `chain` in the edge's table containing `needle`.
fn handle_of(edge: &Netns, chain: &str, needle: &str) -> String {
    let listing = edge.sh(&["nft", "-a", "list", "chain", "inet", "onebox_sg", chain]);
    let line = listing
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in {listing}"));
    line.rsplit("# handle ")
        .next()
        .expect("handle")
        .trim()
        .to_owned()
}

/// The chain named `prefix…` whose listing contains `needle`.
fn chain_with(edge: &Netns, needle: &str) -> String {
    let listing = edge.sh(&["nft", "list", "table", "inet", "onebox_sg"]);
    let mut chain = String::new();
    for l in listing.lines() {
        if let Some(c) = l.trim().strip_prefix("chain ") {
            chain = c.trim_end_matches(" {").to_owned();
        }
        if l.contains(needle) {
            return chain;
        }
    }
    panic!("no {needle:?} in {listing}");
}

struct Lab {
    edge: Netns,
    g: [Netns; 4],
    bridge: String,
}

fn lab() -> Lab {
    let edge = Netns::new();
    let g = [Netns::new(), Netns::new(), Netns::new(), Netns::new()];
    // In this namespace the global switch is off: only the bridge's own option can make
    // bridged IPv4 reach the forward hook.
    edge.sh(&[
        "sh",
        "-c",
        "echo 0 > /proc/sys/net/bridge/bridge-nf-call-iptables",
    ]);
    let net = net("5e5e5e5e-0000-4000-8000-000000000001", 1, false);
    let bridge = edge.run(|| hostnet::ensure_bridge(&net).expect("bridge"));
    for (i, guest) in g.iter().enumerate() {
        let n = u8::try_from(i).expect("index");
        plug(&edge, guest, &bridge, &format!("obvsg{i}"), &net, 10 + n);
    }
    edge.run(|| hostnet::nat::apply(&hostnet::nat::HostRules::default()).expect("host table"));
    Lab { edge, g, bridge }
}

fn ports() -> Vec<SgPort> {
    vec![
        port(10, &["b"], true),
        port(11, &["c"], true),
        port(12, &["web"], true),
        port(13, &[], false),
    ]
}

fn base_rules() -> Vec<SgRule> {
    vec![
        tcp(1, "web", 80, "b"),
        rule(2, "web", Direction::Egress),
        rule(3, "b", Direction::Egress),
        rule(4, "c", Direction::Egress),
        // IPv6 rules are taken and not enforced.
        SgRule {
            ipv6: true,
            ..rule(5, "web", Direction::Ingress)
        },
    ]
}

#[test]
fn attack_security_groups_filter_guests_statefully() {
    if !can_run() {
        return;
    }
    let host_switch = std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables");
    let Lab { edge, g, bridge } = lab();
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables").ok(),
        host_switch.ok(),
        "the host's own switch is not changed"
    );
    assert_eq!(
        edge.read("/proc/sys/net/bridge/bridge-nf-call-iptables"),
        "0"
    );
    let [g1, g2, g3, g4] = &g;
    let web = g3.listen(addr(12, 80));
    let web81 = g3.listen(addr(12, 81));
    let l1 = g1.listen(addr(10, 9000));
    let l4 = g4.listen(addr(13, 9000));
    let state = |rules: Vec<SgRule>| SgState {
        ports: ports(),
        rules,
    };

    // ensure_bridge switched the bridge's option on; off again here, to show that the
    // table alone, without it, does not see bridged traffic.
    let link = edge.sh(&["ip", "-d", "link", "show", &bridge]);
    assert!(link.contains("nf_call_iptables 1"), "{link}");
    edge.sh(&[
        "ip",
        "link",
        "set",
        &bridge,
        "type",
        "bridge",
        "nf_call_iptables",
        "0",
    ]);
    let script = hostnet::sg::ruleset(&state(base_rules())).expect("ruleset");
    let file = std::env::temp_dir().join(format!("onebox-sg-{}.nft", std::process::id()));
    std::fs::write(&file, script).expect("script");
    edge.sh(&["nft", "-f", file.to_str().expect("path")]);
    let _ = std::fs::remove_file(&file);
    assert!(
        reaches(g2, addr(12, 80), &web),
        "without nf_call_iptables on the bridge nothing is filtered"
    );
    let link = edge.sh(&["ip", "-d", "link", "show", &bridge]);
    assert!(link.contains("nf_call_iptables 0"), "{link}");

    // apply switches the bridge's option on.
    edge.run(|| hostnet::sg::apply(&state(base_rules())).expect("apply"));
    let link = edge.sh(&["ip", "-d", "link", "show", &bridge]);
    assert!(link.contains("nf_call_iptables 1"), "{link}");
    assert_eq!(
        edge.read("/proc/sys/net/bridge/bridge-nf-call-iptables"),
        "0",
        "the bridge's own option does it"
    );

    // (1) tcp/80 from group b only.
    assert!(
        reaches(g1, addr(12, 80), &web),
        "a member of b reaches web:80"
    );
    assert!(!reaches(g2, addr(12, 80), &web), "a non-member does not");
    assert!(!reaches(g1, addr(12, 81), &web81), "nor another port");
    assert!(
        !reaches(g4, addr(12, 80), &web),
        "an unfiltered sender still meets the receiver's ingress rules"
    );
    // (2) Egress anywhere; the replies pass although g1 takes nothing in.
    assert!(reaches(g1, addr(13, 9000), &l4), "g1 reaches g4");
    assert!(!reaches(g4, addr(10, 9000), &l1), "nobody reaches g1");
    assert!(!reaches(g3, addr(10, 9000), &l1), "nobody reaches g1");
    assert!(
        reaches(g3, addr(13, 9000), &l4),
        "port security off: unfiltered"
    );
    // The host's own services and the host's connections to guests are not filtered here.
    assert!(
        ping(g2, "10.251.1.1"),
        "the host guard, not this table, says"
    );
    edge.connect(addr(10, 9000))
        .expect("the host reaches a guest");
    accepted(&l1).expect("the host's connection");

    // (3) Deleting the rule cuts the connection it allowed, at its next packet.
    let (mut c, mut s) = open(g1, addr(12, 80), &web);
    assert!(delivers(&mut c, &mut s) && delivers(&mut s, &mut c));
    let without_1: Vec<SgRule> = base_rules().into_iter().filter(|r| r.mark != 1).collect();
    edge.run(|| hostnet::sg::apply(&state(without_1.clone())).expect("apply"));
    assert!(!delivers(&mut c, &mut s), "the ingress rule is gone");
    assert!(!reaches(g1, addr(12, 80), &web));
    // A rule added later lets a new connection through; the cut one stays cut.
    let mut with_6 = without_1.clone();
    with_6.push(tcp(6, "web", 80, "b"));
    edge.run(|| hostnet::sg::apply(&state(with_6.clone())).expect("apply"));
    let (mut c2, mut s2) = open(g1, addr(12, 80), &web);
    assert!(delivers(&mut c2, &mut s2) && delivers(&mut s2, &mut c2));
    assert!(!delivers(&mut s, &mut c), "the old connection stays cut");
    // Re-applying the same state keeps established connections.
    edge.run(|| hostnet::sg::apply(&state(with_6.clone())).expect("apply"));
    assert!(delivers(&mut c2, &mut s2), "a re-apply keeps connections");
    // The sender's egress rule is the other half of the mark: deleting it cuts too.
    let without_3: Vec<SgRule> = with_6.iter().filter(|r| r.mark != 3).cloned().collect();
    edge.run(|| hostnet::sg::apply(&state(without_3)).expect("apply"));
    assert!(!delivers(&mut s2, &mut c2), "the egress rule is gone");
    assert!(!reaches(g1, addr(12, 80), &web));

    // (4) icmp by type from a prefix.
    let mut icmp = with_6.clone();
    icmp.push(SgRule {
        protocol: Some(1),
        port_min: Some(8),
        remote_prefix: Some((Ipv4Addr::new(10, 251, 1, 10), 32)),
        ..rule(7, "web", Direction::Ingress)
    });
    assert!(!ping(g1, "10.251.1.12"), "no icmp rule yet");
    edge.run(|| hostnet::sg::apply(&state(icmp.clone())).expect("apply"));
    assert!(ping(g1, "10.251.1.12"), "echo request from the prefix");
    assert!(!ping(g2, "10.251.1.12"), "not from outside the prefix");
    // A tcp rule by prefix.
    icmp.push(SgRule {
        protocol: Some(6),
        port_min: Some(81),
        port_max: Some(90),
        remote_prefix: Some((Ipv4Addr::new(10, 251, 1, 14), 30)),
        ..rule(8, "web", Direction::Ingress)
    });
    edge.run(|| hostnet::sg::apply(&state(icmp.clone())).expect("apply"));
    assert!(
        reaches(g4, addr(12, 81), &web81),
        "10.251.1.13 is in 10.251.1.12/30"
    );
    assert!(!reaches(g2, addr(12, 81), &web81), "10.251.1.11 is not");

    // The changes applied one by one left the table a whole replace makes.
    // (Chains list in the order they were made: compare the objects, sorted.)
    let list = || {
        let t = edge.sh(&["nft", "list", "table", "inet", "onebox_sg"]);
        let t = t.trim().strip_suffix('}').expect("a table");
        let mut objects: Vec<String> = t.split("\n\n").map(|o| o.trim().to_owned()).collect();
        objects.sort();
        objects
    };
    let changed = list();
    edge.run(|| hostnet::sg::apply_full(&state(icmp.clone())).expect("apply"));
    assert_eq!(changed, list(), "incremental and whole agree");

    // (5) Teeth: the assertions hang on the rules. Without the tcp/80 rule a member of b
    // is refused; without the port chain's drop a non-member gets in.
    let allow = chain_with(&edge, "tcp dport 80 ");
    let h = handle_of(&edge, &allow, "tcp dport 80 ");
    edge.sh(&[
        "nft",
        "delete",
        "rule",
        "inet",
        "onebox_sg",
        &allow,
        "handle",
        &h,
    ]);
    assert!(!reaches(g1, addr(12, 80), &web), "the allow rule lets b in");
    edge.run(|| hostnet::sg::apply_full(&state(icmp.clone())).expect("repair"));
    assert!(reaches(g1, addr(12, 80), &web));
    let web_in = chain_with(&edge, &format!("jump {}", allow));
    let h = handle_of(&edge, &web_in, "drop");
    edge.sh(&[
        "nft",
        "delete",
        "rule",
        "inet",
        "onebox_sg",
        &web_in,
        "handle",
        &h,
    ]);
    assert!(reaches(g2, addr(12, 80), &web), "the drop keeps others out");

    // Removal: nothing filtered any more, removing twice is fine.
    edge.run(|| hostnet::sg::remove().expect("remove"));
    edge.run(|| hostnet::sg::remove().expect("remove again"));
    assert!(reaches(g4, addr(10, 9000), &l1), "no table, no filter");
    let tables = edge.sh(&["nft", "list", "tables"]);
    assert!(!tables.contains("onebox_sg"), "{tables}");
}

/// A project's worth of security groups: `ports` ports in two groups each out of
/// `ports / 2`, `rules` rules spread over the groups (tcp and udp ranges from prefixes,
/// tcp from remote groups, icmp types, egress anywhere), numbered 1 to `rules`.
fn project(ports: usize, rules: usize) -> SgState {
    let groups = (ports / 2).max(1);
    let ports = (0..ports)
        .map(|i| SgPort {
            id: format!("port-{i}"),
            address: Ipv4Addr::from(0x0afb_0000 + u32::try_from(i).expect("ports") + 10),
            groups: vec![format!("g{}", i % groups), format!("g{}", (i + 7) % groups)],
            enabled: true,
        })
        .collect();
    let rules = (0..rules)
        .map(|i| {
            let mark = u16::try_from(i + 1).expect("rules");
            let group = format!("g{}", i % groups);
            let port = u16::try_from(1000 + i).expect("port");
            let r = rule(mark, &group, Direction::Ingress);
            match i % 5 {
                0 => SgRule {
                    protocol: Some(6),
                    port_min: Some(port),
                    port_max: Some(port + 10),
                    remote_prefix: Some((Ipv4Addr::new(192, 0, 2, 0), 24)),
                    ..r
                },
                1 => SgRule {
                    protocol: Some(17),
                    port_min: Some(port),
                    port_max: Some(port),
                    remote_prefix: Some((Ipv4Addr::new(10, 0, 0, 0), 8)),
                    ..r
                },
                2 => tcp(mark, &group, port, &format!("g{}", (i + 1) % groups)),
                3 => SgRule {
                    protocol: Some(1),
                    port_min: Some(8),
                    remote_prefix: Some((Ipv4Addr::new(198, 51, 100, 0), 24)),
                    ..r
                },
                _ => rule(mark, &group, Direction::Egress),
            }
        })
        .collect();
    SgState { ports, rules }
}

/// Applying a change to 1,000 rules over 50 ports, in a namespace: the median of 11
/// applies, each with one rule less than the one before, and of 11 replaces of the whole
/// table. Prints the figures BENCHMARKS.md records
/// (`cargo test --release -p hostnet --test sg -- --nocapture apply_time`).
#[test]
fn apply_time_of_1000_rules_over_50_ports() {
    if !can_run() {
        return;
    }
    let edge = Netns::new();
    let mut state = project(50, 1000);
    let t = Instant::now();
    let script = hostnet::sg::ruleset(&state).expect("ruleset");
    let generate = t.elapsed();
    edge.run(|| hostnet::sg::apply(&state).expect("first apply"));
    let mut times = Vec::new();
    for _ in 0..11 {
        state.rules.pop();
        let t = Instant::now();
        edge.run(|| hostnet::sg::apply(&state).expect("apply"));
        times.push(t.elapsed());
    }
    times.sort();
    let mut whole = Vec::new();
    for _ in 0..11 {
        let t = Instant::now();
        edge.run(|| hostnet::sg::apply_full(&state).expect("apply"));
        whole.push(t.elapsed());
    }
    whole.sort();
    let listing = edge.sh(&["nft", "list", "table", "inet", "onebox_sg"]);
    assert_eq!(
        listing.matches("ct mark set ").count(),
        989,
        "every rule is in the table"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "security groups: 1000 rules, 50 ports, {} lines of nft, ruleset {:.2} ms; \
         apply of a change (a rule less) median {:.1} ms (min {:.1}, max {:.1}); \
         whole table replaced median {:.1} ms (min {:.1}, max {:.1})",
        script.lines().count(),
        ms(generate),
        ms(times[5]),
        ms(times[0]),
        ms(times[10]),
        ms(whole[5]),
        ms(whole[0]),
        ms(whole[10]),
    );
    assert!(
        times[5] < Duration::from_millis(250),
        "apply takes {:?}",
        times[5]
    );
}

/// Routed traffic through the NAT uplink meets the same rules: a guest allowed out to one
/// port of the outside reaches that port only, and deleting the rule cuts its connection.
#[test]
fn attack_security_groups_filter_routed_traffic() {
    if !can_run() {
        return;
    }
    let edge = Netns::new();
    let outside = Netns::new();
    let g1 = Netns::new();
    let g2 = Netns::new();
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
    edge.sh(&["ip", "route", "add", "default", "via", "198.18.0.2"]);
    let net = net("5e5e5e5e-0000-4000-8000-000000000002", 2, true);
    let bridge = edge.run(|| hostnet::ensure_bridge(&net).expect("bridge"));
    plug(&edge, &g1, &bridge, "obvsgr1", &net, 10);
    plug(&edge, &g2, &bridge, "obvsgr2", &net, 11);
    let nat = hostnet::nat::HostRules {
        uplink: Some("up0".into()),
        ..hostnet::nat::HostRules::default()
    };
    edge.run(|| hostnet::nat::apply(&nat).expect("host table"));
    let far = |port: u16| SocketAddr::from((Ipv4Addr::new(203, 0, 113, 1), port));
    let l7000 = outside.listen(far(7000));
    let l7001 = outside.listen(far(7001));
    let guest = |last: u8, group: &str| SgPort {
        address: Ipv4Addr::new(10, 251, 2, last),
        ..port(last, &[group], true)
    };
    let out7000 = SgRule {
        protocol: Some(6),
        port_min: Some(7000),
        port_max: Some(7000),
        remote_prefix: Some((Ipv4Addr::new(203, 0, 113, 0), 24)),
        ..rule(1, "out7000", Direction::Egress)
    };
    let state = |rules: Vec<SgRule>| SgState {
        ports: vec![guest(10, "out7000"), guest(11, "any")],
        rules,
    };
    let rules = vec![out7000, rule(2, "any", Direction::Egress)];
    edge.run(|| hostnet::sg::apply(&state(rules.clone())).expect("apply"));

    assert!(reaches(&g1, far(7000), &l7000), "the allowed port");
    assert!(!reaches(&g1, far(7001), &l7001), "not another");
    assert!(reaches(&g2, far(7001), &l7001), "egress anywhere");
    let (mut c, mut s) = open(&g1, far(7000), &l7000);
    assert!(delivers(&mut c, &mut s) && delivers(&mut s, &mut c));
    edge.run(|| hostnet::sg::apply(&state(rules[1..].to_vec())).expect("apply"));
    assert!(
        !delivers(&mut s, &mut c),
        "the rule is gone: so are its replies"
    );
    assert!(!reaches(&g1, far(7000), &l7000));
    assert!(
        reaches(&g2, far(7000), &l7000),
        "the other group's rule stays"
    );
}
