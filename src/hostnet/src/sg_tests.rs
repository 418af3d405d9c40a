use super::*;

fn rule(mark: u16, group: &str, direction: Direction) -> SgRule {
    SgRule {
        id: format!("r{mark}"),
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

fn port(last: u8, groups: &[&str], enabled: bool) -> SgPort {
    SgPort {
        id: format!("p{last}"),
        address: Ipv4Addr::new(10, 0, 0, last),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        enabled,
    }
}

#[test]
fn the_table_says_the_state() {
    let s = SgState {
        ports: vec![
            port(5, &["web"], true),
            port(6, &["b"], true),
            port(7, &[], false),
        ],
        rules: vec![
            SgRule {
                protocol: Some(6),
                port_min: Some(80),
                port_max: Some(80),
                remote_group: Some("b".into()),
                ..rule(3, "web", Direction::Ingress)
            },
            rule(4, "web", Direction::Egress),
            SgRule {
                protocol: Some(1),
                port_min: Some(8),
                remote_prefix: Some((Ipv4Addr::new(10, 9, 1, 1), 16)),
                ..rule(9, "b", Direction::Ingress)
            },
            SgRule {
                ipv6: true,
                ..rule(10, "b", Direction::Egress)
            },
        ],
    };
    let t = ruleset(&s).expect("ruleset");
    assert!(t.starts_with("table inet onebox_sg\ndelete table inet onebox_sg\n"));
    assert!(
        t.contains("set rg_b { type ipv4_addr; elements = { 10.0.0.6 }; }"),
        "{t}"
    );
    assert!(t.contains("set live_in { type mark; elements = { 0x00000000, 0x00000003, 0x00000004, 0x00000009 }; }"), "{t}");
    assert!(
        t.contains("10.0.0.5 : goto p_10_0_0_5_in, 10.0.0.6 : goto p_10_0_0_6_in"),
        "{t}"
    );
    assert!(
        !t.contains("10.0.0.7"),
        "an unfiltered port is not in the table: {t}"
    );
    assert!(t.contains(
        "meta l4proto 6 th dport 80 ip saddr @rg_b ct mark set ct mark and 0xffff0000 or 0x00000003 accept"
    ), "{t}");
    assert!(
        t.contains(
            "\tchain g_web_out {\n\t\tct mark set ct mark and 0x0000ffff or 0x00040000 accept\n"
        ),
        "{t}"
    );
    assert!(
        t.contains("meta l4proto 1 icmp type 8 ip saddr 10.9.0.0/16 ct mark"),
        "{t}"
    );
    // The IPv6 rule is left out; port 6 (group b) has no egress rule: its chain only drops.
    assert!(!t.contains("0x000a"), "{t}");
    assert!(
        t.contains("\tchain p_10_0_0_6_out {\n\t\tdrop\n\t}\n"),
        "{t}"
    );
    assert!(
        t.contains("\tchain p_10_0_0_5_out {\n\t\tjump g_web_out\n\t\tdrop\n\t}\n"),
        "{t}"
    );
}

#[test]
fn a_port_without_groups_gets_nothing_and_an_empty_state_is_a_table() {
    let t = ruleset(&SgState {
        ports: vec![port(5, &[], true)],
        rules: vec![],
    })
    .expect("ruleset");
    assert!(
        t.contains("\tchain p_10_0_0_5_in {\n\t\tdrop\n\t}\n"),
        "{t}"
    );
    let t = ruleset(&SgState::default()).expect("ruleset");
    assert!(
        t.contains("map out_ports { type ipv4_addr : verdict; }"),
        "{t}"
    );
}

#[test]
fn bad_rules_and_ports_are_refused() {
    let bad = |r: SgRule| {
        ruleset(&SgState {
            ports: vec![],
            rules: vec![r],
        })
        .is_err()
    };
    assert!(bad(rule(0, "g", Direction::Ingress)), "mark 0");
    assert!(bad(SgRule {
        protocol: Some(6),
        port_min: Some(90),
        port_max: Some(80),
        ..rule(1, "g", Direction::Ingress)
    }));
    assert!(
        bad(SgRule {
            port_min: Some(80),
            ..rule(1, "g", Direction::Ingress)
        }),
        "ports without protocol"
    );
    assert!(bad(SgRule {
        protocol: Some(1),
        port_min: Some(300),
        ..rule(1, "g", Direction::Ingress)
    }));
    assert!(bad(SgRule {
        protocol: Some(47),
        port_min: Some(1),
        ..rule(1, "g", Direction::Ingress)
    }));
    assert!(bad(SgRule {
        remote_prefix: Some((Ipv4Addr::UNSPECIFIED, 0)),
        remote_group: Some("g".into()),
        ..rule(1, "g", Direction::Ingress)
    }));
    let two = SgState {
        ports: vec![],
        rules: vec![
            rule(7, "g", Direction::Ingress),
            rule(7, "h", Direction::Egress),
        ],
    };
    assert!(ruleset(&two).is_err(), "a mark given twice");
    let clash = SgState {
        ports: vec![port(5, &["g"], true), port(5, &["h"], true)],
        rules: vec![],
    };
    assert!(
        ruleset(&clash).is_err(),
        "two filtered ports with one address"
    );
}

#[test]
fn names_from_the_caller_are_checked_before_they_reach_the_script() {
    let s = SgState {
        ports: vec![port(5, &["x\"; flush ruleset"], true)],
        rules: vec![],
    };
    assert!(ruleset(&s).is_err());
    let s = SgState {
        ports: vec![],
        rules: vec![rule(1, "}\n", Direction::Ingress)],
    };
    assert!(ruleset(&s).is_err());
    // A remote group nobody is in: the rule matches nothing.
    let s = SgState {
        ports: vec![port(5, &["g"], true)],
        rules: vec![SgRule {
            remote_group: Some("nobody".into()),
            ..rule(1, "g", Direction::Ingress)
        }],
    };
    let t = ruleset(&s).expect("ruleset");
    assert!(!t.contains("nobody") && !t.contains("chain g_g_in"), "{t}");
    assert!(t.contains("0x00000001"), "its mark is live: {t}");
}

fn state(rules: Vec<SgRule>, ports: Vec<SgPort>) -> SgState {
    SgState { ports, rules }
}

#[test]
fn a_change_rewrites_only_what_changed() {
    let ports = vec![port(5, &["web"], true), port(6, &["b"], true)];
    let r1 = SgRule {
        protocol: Some(6),
        port_min: Some(80),
        remote_group: Some("b".into()),
        ..rule(1, "web", Direction::Ingress)
    };
    let old = model(&state(
        vec![r1.clone(), rule(2, "b", Direction::Egress)],
        ports.clone(),
    ))
    .expect("old");
    assert_eq!(diff(&old, &old), None, "nothing to do");
    // A rule more in web: its chain and the live marks change, nothing else.
    let new = model(&state(
        vec![
            r1.clone(),
            rule(2, "b", Direction::Egress),
            rule(3, "web", Direction::Ingress),
        ],
        ports.clone(),
    ))
    .expect("new");
    let d = diff(&old, &new).expect("a change");
    assert_eq!(
        d,
        "flush chain inet onebox_sg g_web_in\n\
         table inet onebox_sg {\n\
         \tchain g_web_in {\n\
         \t\tmeta l4proto 6 th dport 80 ip saddr @rg_b ct mark set ct mark and 0xffff0000 or 0x00000001 accept\n\
         \t\tct mark set ct mark and 0xffff0000 or 0x00000003 accept\n\
         \t}\n\
         }\n\
         add element inet onebox_sg live_out { 0x00030000 }\n\
         add element inet onebox_sg live_in { 0x00000003 }\n"
    );
    // The port of b goes: its chains, map entries and membership go, and b's egress
    // chains stay (a rule of b does).
    let gone = model(&state(
        vec![r1, rule(2, "b", Direction::Egress)],
        vec![ports[0].clone()],
    ))
    .expect("gone");
    let d = diff(&old, &gone).expect("a change");
    for line in [
        "delete element inet onebox_sg filtered { 10.0.0.6 }",
        "delete element inet onebox_sg out_ports { 10.0.0.6 }",
        "delete element inet onebox_sg rg_b { 10.0.0.6 }",
        "flush chain inet onebox_sg p_10_0_0_6_in",
        "delete chain inet onebox_sg p_10_0_0_6_out",
    ] {
        assert!(d.contains(line), "{line:?} in {d}");
    }
    let at = |what: &str| d.find(what).expect(what);
    assert!(at("flush chain") < at("table inet"), "{d}");
    assert!(at("delete chain") > at("table inet"), "{d}");
}

/// What onebox's networking service hands over: groups named by UUID, a port with two
/// addresses listed once per address, an IPv6 rule, a rule whose number wrapped around.
#[test]
fn the_networking_services_state_is_taken() {
    let g = "0b8f5b36-4a8e-4c5e-9a55-6d1b2c3d4e5f";
    let mut second = port(6, &[g], true);
    second.id = "p5".into();
    let s = SgState {
        ports: vec![port(5, &[g], true), second],
        rules: vec![
            SgRule {
                protocol: Some(6),
                port_min: Some(22),
                port_max: Some(22),
                remote_group: Some(g.into()),
                ..rule(65535, g, Direction::Ingress)
            },
            SgRule {
                ipv6: true,
                protocol: Some(58),
                ..rule(1, g, Direction::Ingress)
            },
        ],
    };
    let t = ruleset(&s).expect("ruleset");
    assert!(t.contains(&format!("chain g_{g}_in")), "{t}");
    assert!(
        t.contains("chain p_10_0_0_5_in") && t.contains("chain p_10_0_0_6_in"),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "set rg_{g} {{ type ipv4_addr; elements = {{ 10.0.0.5, 10.0.0.6 }}; }}"
        )),
        "{t}"
    );
    assert!(t.contains("0x0000ffff"), "{t}");
}
