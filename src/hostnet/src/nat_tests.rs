use super::*;

fn chain<'a>(r: &'a str, name: &str) -> Vec<&'a str> {
    r.split(&format!("chain {name} {{"))
        .nth(1)
        .and_then(|c| c.split('}').next())
        .expect("chain")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

fn with_uplink() -> HostRules {
    HostRules {
        uplink: Some("eth0".into()),
        nat_allow: vec![parse_prefix("192.168.50.0/24").expect("prefix")],
        blocked: vec![
            parse_prefix("198.18.0.0/24").expect("prefix"),
            parse_prefix("10.9.0.0/16").expect("prefix"),
        ],
        ..HostRules::default()
    }
}

#[test]
fn the_ruleset_replaces_only_onebox_tables() {
    for r in [HostRules::default(), with_uplink()] {
        let s = ruleset(&r).expect("ruleset");
        let lines: Vec<&str> = s.lines().map(str::trim).collect();
        // One transaction that makes, deletes and remakes the table (and drops the ip-family
        // table of earlier versions): idempotent.
        assert_eq!(
            lines[..5],
            [
                "table ip onebox",
                "delete table ip onebox",
                "table inet onebox",
                "delete table inet onebox",
                "table inet onebox {"
            ]
        );
        assert!(!s.contains("flush ruleset"), "{s}");
        for l in &lines {
            if let Some(rest) = l.strip_prefix("table ").or(l.strip_prefix("delete table ")) {
                assert!(rest.starts_with("ip onebox") || rest.starts_with("inet onebox"));
            }
        }
    }
}

#[test]
fn guests_reach_only_dhcp_metadata_and_ping_of_the_host() {
    let s = ruleset(&HostRules::default()).expect("ruleset");
    assert_eq!(
        chain(&s, "input"),
        [
            "type filter hook input priority filter; policy accept;",
            r#"iifname "obr*" jump from_guests"#,
        ]
    );
    assert_eq!(
        chain(&s, "from_guests"),
        [
            "meta nfproto != ipv4 drop",
            "ct state established,related accept",
            "udp dport 67 accept",
            "ip daddr 169.254.169.254 tcp dport 80 accept",
            "icmp type echo-request accept",
            "drop",
        ]
    );
    let dns = ruleset(&HostRules {
        dns: true,
        metadata: None,
        ..HostRules::default()
    })
    .expect("ruleset");
    let c = chain(&dns, "from_guests");
    assert!(c.contains(&"udp dport 53 accept") && c.contains(&"tcp dport 53 accept"));
    assert!(!dns.contains("169.254.169.254"));
}

#[test]
fn without_uplink_nothing_is_routed_from_or_to_a_bridge() {
    let s = ruleset(&HostRules::default()).expect("ruleset");
    assert_eq!(
        chain(&s, "forward"),
        [
            "type filter hook forward priority filter; policy accept;",
            r#"iifname "obr*" oifname "obr*" fib daddr . iif oif exists accept"#,
            r#"iifname "obr*" drop"#,
            r#"oifname "obr*" drop"#,
        ]
    );
    assert!(!s.contains("masquerade") && !s.contains("set private"));
}

#[test]
fn with_uplink_private_ranges_stay_closed_unless_allowed() {
    let s = ruleset(&with_uplink()).expect("ruleset");
    let out = r#"iifname "obr*" oifname "eth0" meta nfproto ipv4"#;
    assert_eq!(
        chain(&s, "forward"),
        [
            "type filter hook forward priority filter; policy accept;".to_owned(),
            format!("{out} ip daddr @nat_allow accept"),
            format!("{out} ip daddr @private drop"),
            format!("{out} accept"),
            r#"iifname "eth0" oifname "obr*" ct state established,related accept"#.into(),
            r#"iifname "obr*" oifname "obr*" fib daddr . iif oif exists accept"#.into(),
            r#"iifname "obr*" drop"#.into(),
            r#"oifname "obr*" drop"#.into(),
        ]
    );
    // 10.9/16 is inside 10/8: an interval set takes no overlaps.
    assert!(s.contains(
        "elements = { 10.0.0.0/8, 100.64.0.0/10, 169.254.0.0/16, 172.16.0.0/12, 192.168.0.0/16, 198.18.0.0/24 }"
    ), "{s}");
    assert!(s.contains("elements = { 192.168.50.0/24 }"), "{s}");
    assert_eq!(
        chain(&s, "postrouting"),
        [
            "type nat hook postrouting priority srcnat; policy accept;",
            r#"iifname "obr*" oifname "eth0" masquerade"#,
        ]
    );
}

#[test]
fn uplink_names_are_checked_before_they_reach_nft() {
    let r = |u: &str| {
        ruleset(&HostRules {
            uplink: Some(u.into()),
            ..HostRules::default()
        })
    };
    for ok in ["eth0", "enp3s0", "wlan0.100", "br-lan"] {
        assert!(r(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "a-name-longer-than-15",
        "eth0\" accept",
        "eth0\n",
        "eth 0",
        "eth*",
        "a/b",
        "..",
        "obr0123456789a",
    ] {
        assert!(r(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn removal_deletes_only_onebox_tables() {
    assert_eq!(
        removal(),
        "table ip onebox\ndelete table ip onebox\ntable inet onebox\ndelete table inet onebox\n\
         table bridge onebox\ndelete table bridge onebox\n\
         table inet onebox_sg\ndelete table inet onebox_sg\n"
    );
}

#[test]
fn prefixes_parse_to_their_network() {
    assert_eq!(
        parse_prefix("192.168.1.77/24").expect("p"),
        (Ipv4Addr::new(192, 168, 1, 0), 24)
    );
    assert_eq!(
        parse_prefix("10.0.0.1").expect("p"),
        (Ipv4Addr::new(10, 0, 0, 1), 32)
    );
    assert!(parse_prefix("10.0.0.0/33").is_err());
    assert!(parse_prefix("eth0").is_err());
}

#[test]
fn host_routes_leave_out_default_bridges_and_huge_prefixes() {
    let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
        eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
        obr1\t0000010A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
        eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
        tun0\t00000000\t00000000\t0001\t0\t0\t0\t00000080\t0\t0\t0\n";
    if cfg!(target_endian = "little") {
        assert_eq!(parse_routes(table), vec![(Ipv4Addr::new(192, 0, 2, 0), 24)]);
    }
}
