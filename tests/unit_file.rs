//! The systemd unit says what it does: no capability its comments call "not granted" is in
//! its bounding set, every capability in the set has its reason written down, and it runs
//! with no_new_privs (nothing onebox starts gains privileges through exec; the container
//! suites pass under `setpriv --no-new-privs`).

const UNIT: &str = include_str!("../systemd/onebox.service");

fn directive<'a>(key: &str) -> Vec<&'a str> {
    UNIT.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn attack_the_unit_grants_no_capability_its_comments_say_it_does_not() {
    let set: Vec<&str> = directive("CapabilityBoundingSet")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .collect();
    assert!(!set.is_empty(), "a bounding set");
    // The comment block that lists what is not granted, up to the next directive.
    let not_granted: String = UNIT
        .split("# Not granted:")
        .nth(1)
        .expect("a 'Not granted' comment")
        .lines()
        .take_while(|l| l.starts_with('#') || l.trim().is_empty() || l.starts_with(' '))
        .collect::<Vec<_>>()
        .join(" ");
    let denied: Vec<&str> = not_granted
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("CAP_"))
        .collect();
    assert!(denied.contains(&"CAP_NET_RAW"), "{not_granted}");
    for cap in &denied {
        assert!(
            !set.contains(cap),
            "{cap} is said not to be granted but is in the set"
        );
    }
    // Every capability granted has a comment saying why.
    for cap in &set {
        let short = cap.trim_start_matches("CAP_");
        let explained = UNIT
            .lines()
            .any(|l| l.starts_with('#') && (l.contains(cap) || l.contains(&format!("/{short}"))));
        assert!(explained, "{cap} is granted without a reason");
    }
}

#[test]
fn attack_the_unit_runs_with_no_new_privs() {
    assert_eq!(directive("NoNewPrivileges"), ["yes"]);
}
