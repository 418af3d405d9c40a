//! Security groups (Neutron's model) enforced on the guests' ports: onebox's table
//! `inet onebox_sg`, at the forward hook, stateful.
//!
//! Data in, kernel state out: the caller hands the whole state ([`SgState`]: every port
//! with its address, groups and port security switch, every rule) and [`apply`] replaces
//! the table with one saying it, in one `nft -f` transaction. Nothing is read back.
//!
//! A port is *filtered* when its port security is on; it then receives (ingress) and
//! sends (egress) only what a rule of one of its groups allows (no groups: nothing).
//! Ports are recognised by their IPv4 address, which `table bridge onebox` ([`crate::ports`])
//! pins to the port, so the addresses of filtered ports must be unique. Bridged traffic
//! reaches the forward hook through br_netfilter, switched on per bridge
//! ([`enable_bridge`]); routed traffic (from the uplink, DNAT'ed) gets there anyway.
//! Only IPv4 is enforced: the bridges carry no IPv6, so IPv6 rules are accepted and left
//! out. Traffic of the host itself (input, output: DHCP, DNS, metadata) is not filtered
//! here; [`crate::nat`] guards the host.
//!
//! Two base chains at the forward hook, both before the host table's forward chain:
//! `egress` (priority filter - 2) sends a new connection from a filtered port to that
//! port's chain, which jumps to the egress chain of each of its groups; `ingress`
//! (filter - 1) does the same for the destination. A rule that matches stamps the
//! connection's conntrack mark with the rule's number and accepts (ending that base chain
//! only); a port chain that runs out of rules drops.
//!
//! **The mark.** Each rule carries a number ([`SgRule::mark`], 1 to 65535) that the caller
//! keeps for the rule's life. The conntrack mark of a connection through filtered ports is
//! split in two halves: the high 16 bits are the number of the egress rule of the sender
//! that let it out, the low 16 bits that of the receiver's ingress rule that let it in; 0
//! in a half: that side is not filtered. Packets of established (and related) connections
//! pass only while both halves are in the sets of live numbers (`live_out`, `live_in`,
//! which always hold 0), so deleting a rule cuts the connections it allowed at their next
//! packet, in both directions, as Neutron's deletion of their conntrack entries does.
//! Replies of an allowed connection pass whatever the ingress rules of the sender say.
//! Numbers must be unique among the rules; a caller should not give a deleted rule's
//! number to a new rule at once (a connection of the old one that saw no packet since
//! would come back to life), e.g. by counting up and wrapping around past the live ones.
//!
//! Connections opened before a port was filtered (mark 0) keep going, and a connection
//! whose rule is deleted dies even when another live rule would allow it (a new
//! connection then passes).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::nat::{Prefix, nft, nft_available};
use crate::{Error, Result};

/// onebox's security group table (`table inet onebox_sg`), apart from the host table so
/// that each is replaced whole without the other.
pub const TABLE: &str = "onebox_sg";

/// How project bridges are matched in the ruleset (see [`crate::bridge_name`]).
const BRIDGES: &str = "obr*";

/// The direction of a rule, seen from the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// Traffic to the port.
    Ingress,
    /// Traffic from the port.
    Egress,
}

/// A security group rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgRule {
    /// The rule's id (only used in error messages).
    pub id: String,
    /// The group it belongs to.
    pub group: String,
    pub direction: Direction,
    /// The rule's number in conntrack marks, 1 to 65535, unique among the rules and kept
    /// for the rule's life (see the module's documentation).
    pub mark: u16,
    /// IP protocol number; `None`: any.
    pub protocol: Option<u8>,
    /// Destination port range for tcp, udp, sctp, dccp, udplite; for icmp the type.
    pub port_min: Option<u16>,
    /// Upper end of the range; for icmp the code.
    pub port_max: Option<u16>,
    /// The other end's addresses; with neither this nor `remote_group`, anywhere.
    pub remote_prefix: Option<Prefix>,
    /// The other end is one of the ports of this group (their addresses now).
    pub remote_group: Option<String>,
    /// An IPv6 rule: accepted and not enforced.
    pub ipv6: bool,
}

/// A port as security groups see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgPort {
    /// The port's id (only used in error messages).
    pub id: String,
    /// Its IPv4 address.
    pub address: Ipv4Addr,
    /// The groups it is in.
    pub groups: Vec<String>,
    /// Port security: `false` leaves the port unfiltered.
    pub enabled: bool,
}

/// Everything the table says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SgState {
    pub ports: Vec<SgPort>,
    pub rules: Vec<SgRule>,
}

/// Protocols whose destination port sits at offset 2 of their header (`th dport`).
const PORTED: [u8; 5] = [6, 17, 33, 132, 136];
const ICMP: u8 = 1;

fn invalid(what: String, why: &str) -> Error {
    Error::Invalid(what, why.into())
}

/// The match of a rule, without its verdict: protocol, ports, remote end.
fn rule_match(r: &SgRule, groups: &BTreeMap<&str, usize>) -> Result<String> {
    let what = || format!("security group rule {:?}", r.id);
    let mut m = Vec::new();
    if let Some(p) = r.protocol {
        m.push(format!("meta l4proto {p}"));
        if PORTED.contains(&p) {
            match (r.port_min, r.port_max) {
                (None, None) => {}
                (Some(a), None) => m.push(format!("th dport {a}")),
                (Some(a), Some(b)) if a == b => m.push(format!("th dport {a}")),
                (Some(a), Some(b)) if a < b => m.push(format!("th dport {a}-{b}")),
                _ => return Err(invalid(what(), "bad port range")),
            }
        } else if p == ICMP {
            match (r.port_min, r.port_max) {
                (None, None) => {}
                (Some(t), c) if t <= 255 && c.is_none_or(|c| c <= 255) => {
                    m.push(format!("icmp type {t}"));
                    if let Some(c) = c {
                        m.push(format!("icmp code {c}"));
                    }
                }
                _ => return Err(invalid(what(), "bad icmp type or code")),
            }
        } else if r.port_min.is_some() || r.port_max.is_some() {
            return Err(invalid(what(), "ports given for a protocol without ports"));
        }
    } else if r.port_min.is_some() || r.port_max.is_some() {
        return Err(invalid(what(), "ports given without a protocol"));
    }
    let remote = match r.direction {
        Direction::Ingress => "ip saddr",
        Direction::Egress => "ip daddr",
    };
    match (&r.remote_prefix, &r.remote_group) {
        (Some(_), Some(_)) => {
            return Err(invalid(what(), "both a remote prefix and a remote group"));
        }
        (Some((a, l)), None) => {
            if *l > 32 {
                return Err(invalid(what(), "bad remote prefix"));
            }
            if *l > 0 {
                let net = Ipv4Addr::from(
                    u32::from(*a) & u32::MAX.checked_shl(32 - u32::from(*l)).unwrap_or(0),
                );
                m.push(format!("{remote} {net}/{l}"));
            }
        }
        (None, Some(g)) => match groups.get(g.as_str()) {
            Some(i) => m.push(format!("{remote} @rg{i}")),
            // A group no port is in: nobody is at the other end.
            None => return Ok(String::new()),
        },
        (None, None) => {}
    }
    Ok(m.join(" "))
}

/// Set or map elements, or nothing for an empty one.
fn elements(v: impl IntoIterator<Item = String>) -> String {
    let v: Vec<String> = v.into_iter().collect();
    if v.is_empty() {
        String::new()
    } else {
        format!(" elements = {{ {} }};", v.join(", "))
    }
}

/// The nft script that replaces onebox's security group table with one saying `s`.
pub fn ruleset(s: &SgState) -> Result<String> {
    // Every group named by a port or a rule, numbered in name order (chain and set names
    // never carry the caller's strings).
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for p in &s.ports {
        names.extend(p.groups.iter().map(String::as_str));
    }
    for r in &s.rules {
        names.insert(&r.group);
    }
    let groups: BTreeMap<&str, usize> =
        names.into_iter().enumerate().map(|(i, g)| (g, i)).collect();
    // Each group's members, for remote groups.
    let mut members: Vec<BTreeSet<Ipv4Addr>> = vec![BTreeSet::new(); groups.len()];
    for p in &s.ports {
        for g in &p.groups {
            members[groups[g.as_str()]].insert(p.address);
        }
    }
    // The rules of each group and direction, and the live marks.
    let mut marks = BTreeMap::new();
    let mut chains: BTreeMap<(usize, Direction), Vec<String>> = BTreeMap::new();
    for r in s.rules.iter().filter(|r| !r.ipv6) {
        if r.mark == 0 {
            return Err(invalid(format!("security group rule {:?}", r.id), "mark 0"));
        }
        if let Some(other) = marks.insert(r.mark, &r.id) {
            return Err(invalid(
                format!("security group rule {:?}", r.id),
                &format!("mark {} also given to {other:?}", r.mark),
            ));
        }
        let m = rule_match(r, &groups)?;
        if m.is_empty() && r.remote_group.is_some() {
            continue;
        }
        let set = match r.direction {
            Direction::Egress => format!(
                "ct mark and 0x0000ffff or 0x{:08x}",
                u32::from(r.mark) << 16
            ),
            Direction::Ingress => format!("ct mark and 0xffff0000 or 0x{:08x}", r.mark),
        };
        let sep = if m.is_empty() { "" } else { " " };
        chains
            .entry((groups[r.group.as_str()], r.direction))
            .or_default()
            .push(format!("{m}{sep}ct mark set {set} accept"));
    }
    // The filtered ports.
    let mut seen = BTreeMap::new();
    let filtered: Vec<&SgPort> = s.ports.iter().filter(|p| p.enabled).collect();
    for p in &filtered {
        if let Some(other) = seen.insert(p.address, &p.id) {
            return Err(invalid(
                format!("port {:?}", p.id),
                &format!("address {} also that of filtered port {other:?}", p.address),
            ));
        }
    }

    let t = TABLE;
    let mut o = format!("table inet {t}\ndelete table inet {t}\ntable inet {t} {{\n");
    let live_out = std::iter::once(0).chain(marks.keys().map(|m| u32::from(*m) << 16));
    let live_in = std::iter::once(0).chain(marks.keys().map(|m| u32::from(*m)));
    for (name, v) in [
        ("live_out", live_out.collect::<Vec<_>>()),
        ("live_in", live_in.collect()),
    ] {
        o.push_str(&format!(
            "\tset {name} {{ type mark;{} }}\n",
            elements(v.iter().map(|m| format!("0x{m:08x}")))
        ));
    }
    o.push_str(&format!(
        "\tset filtered {{ type ipv4_addr;{} }}\n",
        elements(filtered.iter().map(|p| p.address.to_string()))
    ));
    for (i, m) in members.iter().enumerate() {
        o.push_str(&format!(
            "\tset rg{i} {{ type ipv4_addr;{} }}\n",
            elements(m.iter().map(Ipv4Addr::to_string))
        ));
    }
    for (map, dir) in [("out_ports", "out"), ("in_ports", "in")] {
        o.push_str(&format!(
            "\tmap {map} {{ type ipv4_addr : verdict;{} }}\n",
            elements(
                filtered
                    .iter()
                    .enumerate()
                    .map(|(i, p)| format!("{} : goto p{i}_{dir}", p.address))
            )
        ));
    }
    o.push_str(&format!(
        r#"	chain egress {{
		type filter hook forward priority filter - 2; policy accept;
		meta nfproto != ipv4 return
		iifname != "{BRIDGES}" oifname != "{BRIDGES}" return
		ct state established,related ct mark and 0xffff0000 != @live_out drop
		ct state established,related ct mark and 0x0000ffff != @live_in drop
		ct state established,related accept
		ct state invalid ip saddr @filtered drop
		ct state invalid ip daddr @filtered drop
		udp sport 68 udp dport 67 accept
		ip saddr vmap @out_ports
	}}
	chain ingress {{
		type filter hook forward priority filter - 1; policy accept;
		meta nfproto != ipv4 return
		iifname != "{BRIDGES}" oifname != "{BRIDGES}" return
		ct state established,related accept
		ip daddr vmap @in_ports
	}}
"#
    ));
    for (i, p) in filtered.iter().enumerate() {
        for (dir, d) in [("out", Direction::Egress), ("in", Direction::Ingress)] {
            o.push_str(&format!("\tchain p{i}_{dir} {{\n"));
            let mut own: Vec<usize> = p.groups.iter().map(|g| groups[g.as_str()]).collect();
            own.sort_unstable();
            own.dedup();
            for g in own.into_iter().filter(|g| chains.contains_key(&(*g, d))) {
                o.push_str(&format!("\t\tjump g{g}_{dir}\n"));
            }
            o.push_str("\t\tdrop\n\t}\n");
        }
    }
    for ((g, d), rules) in &chains {
        let dir = if *d == Direction::Egress { "out" } else { "in" };
        o.push_str(&format!("\tchain g{g}_{dir} {{\n"));
        for r in rules {
            o.push_str(&format!("\t\t{r}\n"));
        }
        o.push_str("\t}\n");
    }
    o.push_str("}\n");
    Ok(o)
}

/// Whether br_netfilter is loaded in this network namespace (bridged IPv4 can reach the
/// forward hook).
fn br_netfilter_loaded() -> bool {
    std::path::Path::new("/proc/sys/net/bridge").exists()
}

/// Loads br_netfilter when it is not (ignoring failure: [`apply`] reports it).
fn load_br_netfilter() {
    if !br_netfilter_loaded() {
        let _ = std::process::Command::new("modprobe")
            .arg("br_netfilter")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Lets IPv4 frames bridged on `bridge` through the inet hooks (br_netfilter's per-bridge
/// `nf_call_iptables`), whatever the global `bridge-nf-call-iptables` says. Loads
/// br_netfilter first when needed.
pub fn enable_bridge(bridge: &str) -> Result<()> {
    load_br_netfilter();
    crate::set_nf_call_iptables(bridge)
}

/// Replaces onebox's security group table with one saying `s` (one `nft -f` transaction)
/// and switches br_netfilter on for every project bridge of the namespace. An error after
/// the table is written when br_netfilter cannot be loaded: then only routed traffic is
/// filtered, not traffic between guests of a bridge.
pub fn apply(s: &SgState) -> Result<()> {
    let script = ruleset(s)?;
    load_br_netfilter();
    nft(&script)?;
    for b in crate::nat::bridges()? {
        crate::set_nf_call_iptables(&b)?;
    }
    if !br_netfilter_loaded() {
        return Err(Error::Invalid(
            "security groups".into(),
            "br_netfilter is not loaded (modprobe br_netfilter failed): traffic between guests \
             on a bridge is not filtered"
                .into(),
        ));
    }
    tracing::debug!(
        ports = s.ports.len(),
        rules = s.rules.len(),
        "security groups applied"
    );
    Ok(())
}

/// Deletes the security group table, whether it exists or not (the bridges keep
/// `nf_call_iptables`).
pub fn remove() -> Result<()> {
    if nft_available() {
        nft(&format!("table inet {TABLE}\ndelete table inet {TABLE}\n"))?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "sg_tests.rs"]
mod tests;
