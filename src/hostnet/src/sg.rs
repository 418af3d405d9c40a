//! Security groups (Neutron's model) enforced on the guests' ports: onebox's table
//! `inet onebox_sg`, at the forward hook, stateful.
//!
//! Data in, kernel state out: the caller hands the whole state ([`SgState`]: every port
//! with its address, groups and port security switch, every rule) and [`apply`] makes the
//! table say it, in one `nft -f` transaction. Nothing is read back from the kernel: the
//! process remembers what it last wrote in each network namespace and writes only the
//! difference (the chains of the groups and ports that changed, set elements), or the
//! whole table on its first apply, after a failed change, or by [`apply_full`]. Objects
//! are named after group ids (`g_<group>_in`, `g_<group>_out`, `rg_<group>`) and port
//! addresses (`p_10_0_0_5_in`), so a change leaves the other objects' names alone.
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
use std::sync::Mutex;

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

/// The match of a rule, without its verdict; `None`: the rule matches nothing (its remote
/// group has no port).
fn rule_match(r: &SgRule, known: &BTreeSet<&str>) -> Result<Option<String>> {
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
        (None, Some(g)) => match known.get(g.as_str()) {
            Some(g) => m.push(format!("{remote} @rg_{g}")),
            // A group no port is in: nobody is at the other end.
            None => return Ok(None),
        },
        (None, None) => {}
    }
    Ok(Some(m.join(" ")))
}

/// What the table holds besides its two base chains, by object name: the sets and maps
/// (declaration, elements by key) and the regular chains (their rules). Names derive from
/// group ids and port addresses, so an unchanged group or port keeps its objects' names
/// from one state to the next and [`apply`] rewrites only what changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Model {
    sets: BTreeMap<String, (String, BTreeMap<String, String>)>,
    chains: BTreeMap<String, Vec<String>>,
}

/// A group id as part of an nft name: letters, digits, `-` and `_` (a UUID is), 1 to 64.
fn group_name(g: &str) -> Result<&str> {
    if g.is_empty()
        || g.len() > 64
        || !g
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(
            format!("security group {g:?}"),
            "an id of 1 to 64 letters, digits, - and _",
        ));
    }
    Ok(g)
}

fn port_chain(a: Ipv4Addr, dir: &str) -> String {
    let o = a.octets();
    format!("p_{}_{}_{}_{}_{dir}", o[0], o[1], o[2], o[3])
}

fn dir_name(d: Direction) -> &'static str {
    match d {
        Direction::Egress => "out",
        Direction::Ingress => "in",
    }
}

fn model(s: &SgState) -> Result<Model> {
    let mut m = Model::default();
    // Each group's members, for remote groups: every group named by a port or a rule.
    let mut members: BTreeMap<&str, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    for p in &s.ports {
        for g in &p.groups {
            members.entry(group_name(g)?).or_default().insert(p.address);
        }
    }
    for r in &s.rules {
        members.entry(group_name(&r.group)?).or_default();
    }
    let known: BTreeSet<&str> = members.keys().copied().collect();
    let mut marks = BTreeMap::new();
    for r in s.rules.iter().filter(|r| !r.ipv6) {
        let what = || format!("security group rule {:?}", r.id);
        if r.mark == 0 {
            return Err(invalid(what(), "mark 0"));
        }
        if let Some(other) = marks.insert(r.mark, &r.id) {
            return Err(invalid(
                what(),
                &format!("mark {} also given to {other:?}", r.mark),
            ));
        }
        let Some(matches) = rule_match(r, &known)? else {
            continue;
        };
        let set = match r.direction {
            Direction::Egress => format!(
                "ct mark and 0x0000ffff or 0x{:08x}",
                u32::from(r.mark) << 16
            ),
            Direction::Ingress => format!("ct mark and 0xffff0000 or 0x{:08x}", r.mark),
        };
        let sep = if matches.is_empty() { "" } else { " " };
        m.chains
            .entry(format!("g_{}_{}", r.group, dir_name(r.direction)))
            .or_default()
            .push(format!("{matches}{sep}ct mark set {set} accept"));
    }
    let set = |decl: &str, elements: Vec<(String, String)>| {
        (decl.to_owned(), elements.into_iter().collect())
    };
    let live = |shift: u32| {
        std::iter::once(0)
            .chain(marks.keys().map(|k| u32::from(*k) << shift))
            .map(|v| (format!("0x{v:08x}"), format!("0x{v:08x}")))
            .collect()
    };
    m.sets.insert("live_out".into(), set("type mark", live(16)));
    m.sets.insert("live_in".into(), set("type mark", live(0)));
    for (g, addrs) in &members {
        let e = addrs
            .iter()
            .map(|a| (a.to_string(), a.to_string()))
            .collect();
        m.sets.insert(format!("rg_{g}"), set("type ipv4_addr", e));
    }
    // The filtered ports.
    let mut seen = BTreeMap::new();
    let (mut filtered, mut outs, mut ins) = (Vec::new(), Vec::new(), Vec::new());
    for p in s.ports.iter().filter(|p| p.enabled) {
        if let Some(other) = seen.insert(p.address, &p.id) {
            return Err(invalid(
                format!("port {:?}", p.id),
                &format!("address {} also that of filtered port {other:?}", p.address),
            ));
        }
        let a = p.address.to_string();
        filtered.push((a.clone(), a.clone()));
        for (d, list) in [
            (Direction::Egress, &mut outs),
            (Direction::Ingress, &mut ins),
        ] {
            let chain = port_chain(p.address, dir_name(d));
            list.push((a.clone(), format!("{a} : goto {chain}")));
            let own: BTreeSet<&String> = p.groups.iter().collect();
            let mut rules: Vec<String> = own
                .into_iter()
                .map(|g| format!("g_{g}_{}", dir_name(d)))
                .filter(|c| m.chains.contains_key(c))
                .map(|c| format!("jump {c}"))
                .collect();
            rules.push("drop".into());
            m.chains.insert(chain, rules);
        }
    }
    m.sets
        .insert("filtered".into(), set("type ipv4_addr", filtered));
    m.sets
        .insert("out_ports".into(), set("type ipv4_addr : verdict", outs));
    m.sets
        .insert("in_ports".into(), set("type ipv4_addr : verdict", ins));
    Ok(m)
}

fn kind(decl: &str) -> &'static str {
    if decl.contains(':') { "map" } else { "set" }
}

/// `{ a, b }`
fn braces<'a>(v: impl IntoIterator<Item = &'a String>) -> String {
    format!(
        "{{ {} }}",
        v.into_iter().cloned().collect::<Vec<_>>().join(", ")
    )
}

/// The declaration of set `name`.
fn set_decl(name: &str, decl: &str, elements: &BTreeMap<String, String>) -> String {
    let e = if elements.is_empty() {
        String::new()
    } else {
        format!(" elements = {};", braces(elements.values()))
    };
    format!("\t{} {name} {{ {decl};{e} }}\n", kind(decl))
}

fn chain_decl(name: &str, rules: &[String]) -> String {
    let mut o = format!("\tchain {name} {{\n");
    for r in rules {
        o.push_str(&format!("\t\t{r}\n"));
    }
    o.push_str("\t}\n");
    o
}

/// The base chains: every packet through the forward hook from or to a project bridge.
fn base_chains() -> String {
    format!(
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
    )
}

/// The script that replaces the whole table with `m`.
fn full(m: &Model) -> String {
    let t = TABLE;
    let mut o = format!("table inet {t}\ndelete table inet {t}\ntable inet {t} {{\n");
    for (name, (decl, elements)) in &m.sets {
        o.push_str(&set_decl(name, decl, elements));
    }
    o.push_str(&base_chains());
    for (name, rules) in &m.chains {
        o.push_str(&chain_decl(name, rules));
    }
    o.push_str("}\n");
    o
}

/// The script that turns a table holding `old` into one holding `new` (one transaction),
/// or `None` when they are the same.
fn diff(old: &Model, new: &Model) -> Option<String> {
    if old == new {
        return None;
    }
    let t = TABLE;
    let (mut head, mut block, mut tail) = (String::new(), String::new(), String::new());
    for (name, rules) in &old.chains {
        match new.chains.get(name) {
            Some(r) if r == rules => {}
            Some(_) => head.push_str(&format!("flush chain inet {t} {name}\n")),
            None => {
                head.push_str(&format!("flush chain inet {t} {name}\n"));
                tail.push_str(&format!("delete chain inet {t} {name}\n"));
            }
        }
    }
    for (name, (decl, elements)) in &old.sets {
        match new.sets.get(name) {
            Some((_, e)) => {
                let gone: Vec<&String> = elements.keys().filter(|k| !e.contains_key(*k)).collect();
                if !gone.is_empty() {
                    head.push_str(&format!(
                        "delete element inet {t} {name} {}\n",
                        braces(gone)
                    ));
                }
                let added: Vec<&String> = e
                    .iter()
                    .filter(|(k, _)| !elements.contains_key(*k))
                    .map(|(_, v)| v)
                    .collect();
                if !added.is_empty() {
                    tail.insert_str(
                        0,
                        &format!("add element inet {t} {name} {}\n", braces(added)),
                    );
                }
            }
            None => tail.push_str(&format!("delete {} inet {t} {name}\n", kind(decl))),
        }
    }
    for (name, (decl, elements)) in &new.sets {
        if !old.sets.contains_key(name) {
            block.push_str(&set_decl(name, decl, elements));
        }
    }
    for (name, rules) in &new.chains {
        if old.chains.get(name) != Some(rules) {
            block.push_str(&chain_decl(name, rules));
        }
    }
    Some(format!("{head}table inet {t} {{\n{block}}}\n{tail}"))
}

/// The nft script that replaces onebox's security group table with one saying `s`.
pub fn ruleset(s: &SgState) -> Result<String> {
    Ok(full(&model(s)?))
}

/// What [`apply`] last wrote, per network namespace (`net:[inode]`).
static APPLIED: Mutex<BTreeMap<String, Model>> = Mutex::new(BTreeMap::new());

fn netns() -> String {
    std::fs::read_link("/proc/thread-self/ns/net")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
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

/// Makes onebox's security group table say `s`, in one `nft -f` transaction, and switches
/// br_netfilter on for every project bridge of the namespace. Only what changed since the
/// last apply in this namespace is rewritten (the chains of the groups and ports that
/// changed, the elements of sets); the first apply of a process, or one after a failed
/// change, replaces the whole table ([`apply_full`]). An error after the table is
/// written when br_netfilter cannot be loaded: then only routed traffic is filtered, not
/// traffic between guests of a bridge.
pub fn apply(s: &SgState) -> Result<()> {
    write(s, false)
}

/// As [`apply`], replacing the whole table whatever the last apply wrote: at start, or to
/// repair a table someone edited by hand.
pub fn apply_full(s: &SgState) -> Result<()> {
    write(s, true)
}

fn write(s: &SgState, whole: bool) -> Result<()> {
    let new = model(s)?;
    load_br_netfilter();
    let ns = netns();
    let mut applied = APPLIED.lock().unwrap_or_else(|e| e.into_inner());
    let old = if whole { None } else { applied.remove(&ns) };
    let changed = match old.as_ref().map(|old| diff(old, &new)) {
        Some(None) => Ok(()),
        Some(Some(script)) => nft(&script).or_else(|e| {
            tracing::warn!(error = %e, "security group change failed, replacing the table");
            nft(&full(&new))
        }),
        None => nft(&full(&new)),
    };
    changed?;
    applied.insert(ns, new);
    drop(applied);
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
    let mut applied = APPLIED.lock().unwrap_or_else(|e| e.into_inner());
    applied.remove(&netns());
    if nft_available() {
        nft(&format!("table inet {TABLE}\ndelete table inet {TABLE}\n"))?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "sg_tests.rs"]
mod tests;
