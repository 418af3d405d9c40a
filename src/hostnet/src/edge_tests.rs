use super::*;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("ip")
}

fn chain<'a>(r: &'a str, name: &str) -> Vec<&'a str> {
    r.split(&format!("chain {name} {{"))
        .nth(1)
        .and_then(|c| c.split("\n\t}").next())
        .expect("chain")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

fn host(uplink: Option<&str>) -> HostRules {
    HostRules {
        uplink: uplink.map(str::to_owned),
        ..HostRules::default()
    }
}

fn state() -> EdgeState {
    EdgeState {
        external: Some(External {
            uplink: "eth0".into(),
            cidr: (ip("192.168.1.0"), 24),
            gateway: ip("192.168.1.1"),
        }),
        routers: vec![
            RouterDef {
                id: "r1".into(),
                external_ip: Some(ip("192.168.1.200")),
                snat: true,
                subnets: vec![("obra".into(), (ip("10.1.0.0"), 16))],
            },
            RouterDef {
                id: "r2".into(),
                external_ip: Some(ip("192.168.1.201")),
                snat: false,
                subnets: vec![("obrb".into(), (ip("10.2.0.0"), 16))],
            },
        ],
        floating: vec![FloatingDef {
            id: "f1".into(),
            address: ip("192.168.1.210"),
            fixed: ip("10.2.0.5"),
            bridge: "obrb".into(),
        }],
    }
}

#[test]
fn an_empty_edge_is_the_plain_host_table() {
    for h in [host(None), host(Some("eth0"))] {
        assert_eq!(
            ruleset(&h, &EdgeState::default()).expect("edge"),
            nat::ruleset(&h).expect("nat")
        );
    }
}

#[test]
fn floating_ips_and_routers_come_before_the_default_nat() {
    let s = ruleset(&host(Some("eth0")), &state()).expect("ruleset");
    assert_eq!(
        chain(&s, "prerouting")[1..],
        [
            r#"iifname "eth0" ip daddr 192.168.1.210 dnat ip to 10.2.0.5 comment "fip f1""#,
            r#"iifname "obr*" ip daddr 192.168.1.210 dnat ip to 10.2.0.5 comment "fip f1 hairpin""#,
        ]
    );
    let fwd = chain(&s, "forward");
    assert_eq!(
        fwd[1..10],
        [
            r#"oifname "obrb" ip daddr 10.2.0.5 ct status dnat ct original ip daddr 192.168.1.210 accept comment "fip f1""#,
            r#"iifname "obrb" ip saddr 10.2.0.5 ct status dnat ct original ip daddr 192.168.1.210 ct direction reply accept"#,
            r#"iifname "obrb" oifname "eth0" ip saddr 10.2.0.5 goto edge_out"#,
            // A connection of a floating IP since removed.
            r#"oifname "obr*" ct status dnat drop"#,
            r#"iifname "obr*" ct status dnat drop"#,
            r#"iifname "obra" oifname "eth0" ip saddr 10.1.0.0/16 goto edge_out"#,
            r#"iifname "obra" oifname "eth0" drop"#,
            // r2 does not SNAT: its subnet has no way out but the floating IP.
            r#"iifname "obrb" oifname "eth0" drop"#,
            r#"iifname "obr*" oifname "eth0" meta nfproto ipv4 ip daddr @private drop"#,
        ]
    );
    assert_eq!(chain(&s, "edge_out"), ["ip daddr @private drop", "accept"]);
    assert_eq!(
        chain(&s, "postrouting")[1..],
        [
            r#"iifname "obr*" oifname "obr*" ct status dnat masquerade"#,
            r#"iifname "obrb" oifname "eth0" ip saddr 10.2.0.5 snat ip to 192.168.1.210"#,
            r#"iifname "obra" oifname "eth0" ip saddr 10.1.0.0/16 snat ip to 192.168.1.200"#,
            r#"iifname "obr*" oifname "eth0" masquerade"#,
        ]
    );
    // The host's services are not reachable on the edge addresses.
    assert_eq!(
        chain(&s, "input")[1..4],
        [
            "ip daddr @edge_local icmp type echo-request accept",
            "ip daddr @edge_local drop",
            r#"iifname "obr*" jump from_guests"#,
        ]
    );
    assert!(
        s.contains("elements = { 192.168.1.200, 192.168.1.201, 192.168.1.210 }"),
        "{s}"
    );
}

#[test]
fn without_default_nat_only_the_edge_leads_out() {
    let s = ruleset(&host(None), &state()).expect("ruleset");
    assert!(s.contains("set private"), "{s}");
    let fwd = chain(&s, "forward");
    assert!(fwd.contains(&r#"iifname "eth0" oifname "obr*" ct state established,related accept"#));
    assert!(
        !s.contains(r#"oifname "eth0" masquerade"#),
        "no default NAT"
    );
    assert_eq!(fwd.last(), Some(&r#"oifname "obr*" drop"#));
}

#[test]
fn addresses_outside_the_lan_or_taken_are_refused() {
    let h = host(Some("eth0"));
    assert!(state().check(&h).is_ok());
    let with_fip = |a: &str, fixed: &str| {
        let mut s = state();
        s.floating.push(FloatingDef {
            id: "f2".into(),
            address: ip(a),
            fixed: ip(fixed),
            bridge: "obra".into(),
        });
        s.check(&h)
    };
    assert!(with_fip("192.168.1.211", "10.1.0.9").is_ok());
    for (a, fixed) in [
        ("192.168.1.1", "10.1.0.9"),   // the LAN's gateway
        ("192.168.1.0", "10.1.0.9"),   // network address
        ("192.168.1.255", "10.1.0.9"), // broadcast
        ("192.168.2.9", "10.1.0.9"),   // outside the LAN
        ("192.168.1.200", "10.1.0.9"), // a router's
        ("192.168.1.210", "10.1.0.9"), // another floating IP's
        ("192.168.1.211", "10.2.0.5"), // a fixed address that has one
    ] {
        assert!(with_fip(a, fixed).is_err(), "{a} {fixed}");
    }
    // No external network: no floating IPs, no router addresses.
    let mut s = state();
    s.external = None;
    assert!(s.check(&h).is_err());
    // The external uplink is the NAT uplink.
    assert!(state().check(&host(Some("eth1"))).is_err());
    // Names that would reach nft as something else.
    let mut s = state();
    s.floating[0].bridge = "eth0".into();
    assert!(s.check(&h).is_err());
    let mut s = state();
    s.floating[0].id = "x\" accept".into();
    assert!(s.check(&h).is_err());
    let mut s = state();
    s.routers[1]
        .subnets
        .push(("obra".into(), (ip("10.9.0.0"), 16)));
    assert!(s.check(&h).is_err(), "a bridge on two routers");
}

#[test]
fn records_round_trip() {
    let s = state();
    assert_eq!(from_record(&to_record(&s)).expect("parse"), s);
    let mut none = state();
    none.routers[0].external_ip = None;
    none.routers[1].subnets.clear();
    assert_eq!(from_record(&to_record(&none)).expect("parse"), none);
    assert_eq!(from_record("").expect("empty"), EdgeState::default());
    assert!(from_record("router id=x").is_err());
}
