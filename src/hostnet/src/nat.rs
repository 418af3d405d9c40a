//! onebox's own nftables table on the host (`table inet onebox`): what guests on project
//! bridges may reach of the host itself, and the optional way out through a NAT uplink.
//!
//! [`apply`] replaces the whole table in one `nft -f` transaction, whether or not an uplink
//! is set, so the host's side of every project bridge is guarded from the moment onebox
//! starts (before any backend makes a bridge). Nothing else in the host's ruleset is read or
//! changed; the `ip onebox` table of earlier versions is deleted in the same transaction.
//!
//! - **input**: a packet arriving on a project bridge (`obr*`) reaches the host only for
//!   DHCP (udp 67), DNS (53) when the network's dnsmasq serves it, the metadata service
//!   (its configured address and port), ICMP echo, and replies to connections the host
//!   opened; anything else (an SSH daemon, onebox's own API, a database listening on all
//!   addresses) is dropped. IPv6 never reaches the host from a bridge.
//! - **forward**: without an uplink every routed packet from or to a bridge is dropped
//!   (the bridges do not forward either, see [`set_forwarding`]). With one, guests open
//!   connections out through the uplink only, and not to the host's private neighbourhood:
//!   RFC 1918, CGNAT and link-local ranges and every network the host routes to (its LAN,
//!   a BMC network) are dropped unless the operator allowed them (`[network] nat_allow`).
//!   Replies come back in; nothing outside opens a connection to a guest; guests of one
//!   network reach each other, not those of another.
//! - **postrouting** (with an uplink): what leaves through the uplink is masqueraded.
//!
//! Forwarding is switched on per interface (`conf/<if>/forwarding`), never through
//! `ip_forward` or `conf/all/forwarding`: writing either resets the setting of every
//! interface on the host, and the kernel only consults the receiving interface's own switch.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Command, Stdio};

use crate::{Error, Result};

/// The nftables tables onebox owns (`inet onebox` here, `bridge onebox` in
/// [`crate::ports`]); onebox edits no other.
pub const TABLE: &str = "onebox";

/// How project bridges are matched in the ruleset (see [`crate::bridge_name`]).
const BRIDGES: &str = "obr*";

/// An IPv4 prefix: address and length.
pub type Prefix = (Ipv4Addr, u8);

/// The ranges a guest behind the uplink never reaches unless allowed: RFC 1918, shared
/// address space (CGNAT) and link-local (the metadata service is the host's own address,
/// reached through input, not forwarding).
pub const PRIVATE_RANGES: [Prefix; 5] = [
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    (Ipv4Addr::new(169, 254, 0, 0), 16),
];

/// What the host table says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRules {
    /// The NAT uplink; `None`: project networks are isolated.
    pub uplink: Option<String>,
    /// Destinations behind the uplink guests may reach although they are private.
    pub nat_allow: Vec<Prefix>,
    /// Further destinations that stay unreachable through the uplink: the host's own routes
    /// (see [`host_routes`]).
    pub blocked: Vec<Prefix>,
    /// Where the metadata service listens, reachable from guests; `None`: not served.
    pub metadata: Option<SocketAddrV4>,
    /// Whether dnsmasq answers DNS on the bridges (port 53 open to guests).
    pub dns: bool,
}

impl Default for HostRules {
    fn default() -> Self {
        Self {
            uplink: None,
            nat_allow: Vec::new(),
            blocked: Vec::new(),
            metadata: Some(SocketAddrV4::new(Ipv4Addr::new(169, 254, 169, 254), 80)),
            dns: false,
        }
    }
}

/// Parses `a.b.c.d/len` (or a bare address, a /32) into its network prefix.
pub fn parse_prefix(s: &str) -> Result<Prefix> {
    let bad = || Error::Invalid(format!("prefix {s:?}"), "expected a.b.c.d/len".into());
    let (a, l) = s.trim().split_once('/').unwrap_or((s.trim(), "32"));
    let a: Ipv4Addr = a.parse().map_err(|_| bad())?;
    let l: u8 = l.parse().ok().filter(|l| *l <= 32).ok_or_else(bad)?;
    Ok((Ipv4Addr::from(u32::from(a) & mask(l)), l))
}

pub(crate) fn mask(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

/// Whether `outer` holds all of `inner`.
pub(crate) fn contains(outer: Prefix, inner: Prefix) -> bool {
    outer.1 <= inner.1 && u32::from(inner.0) & mask(outer.1) == u32::from(outer.0)
}

/// The prefixes with those held by another one left out, sorted: an nft interval set takes
/// no overlapping elements.
pub(crate) fn disjoint(mut v: Vec<Prefix>) -> Vec<Prefix> {
    v.sort_by_key(|p| (p.1, u32::from(p.0)));
    let mut out: Vec<Prefix> = Vec::new();
    for p in v {
        if !out.iter().any(|o| contains(*o, p)) {
            out.push(p);
        }
    }
    out.sort_by_key(|p| u32::from(p.0));
    out
}

fn set_elements(v: &[Prefix]) -> String {
    v.iter()
        .map(|(a, l)| format!("{a}/{l}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `name` can be the uplink: a kernel interface name (1 to 15 bytes, no `/`,
/// whitespace, quote or backslash) that is not a project bridge.
pub fn check_uplink(name: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::Invalid(format!("uplink {name:?}"), why.into()));
    if name.is_empty() || name.len() > 15 {
        return bad("an interface name has 1 to 15 characters");
    }
    if name == "." || name == ".." {
        return bad("not an interface name");
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '"' | '\\' | '*'))
    {
        return bad("not an interface name");
    }
    if name.starts_with("obr") {
        return bad("names starting with obr are onebox's project bridges");
    }
    Ok(())
}

/// The input chains: what guests reach of the host.
fn input_chains(r: &HostRules, first: &[String]) -> String {
    let mut allow = vec!["udp dport 67 accept".to_owned()];
    if r.dns {
        allow.push("udp dport 53 accept".into());
        allow.push("tcp dport 53 accept".into());
    }
    match r.metadata {
        Some(m) if m.ip().is_unspecified() => allow.push(format!("tcp dport {} accept", m.port())),
        Some(m) => allow.push(format!("ip daddr {} tcp dport {} accept", m.ip(), m.port())),
        None => {}
    }
    allow.push("icmp type echo-request accept".into());
    let allow = lines(&allow);
    let first = lines(first);
    format!(
        r#"	chain input {{
		type filter hook input priority filter; policy accept;
{first}		iifname "{BRIDGES}" jump from_guests
	}}
	chain from_guests {{
		meta nfproto != ipv4 drop
		ct state established,related accept
{allow}		drop
	}}
"#
    )
}

/// Rules another module ([`crate::edge`]) adds to the host table: lines put first in the
/// chains of the same name, so the whole table stays one transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Extra {
    /// Set declarations, whole.
    pub sets: Vec<String>,
    /// Whether the `private` (and `nat_allow`) sets are needed without an uplink.
    pub private: bool,
    pub input: Vec<String>,
    pub forward: Vec<String>,
    /// Chains of their own, whole (they are only jumped to).
    pub chains: Vec<String>,
    /// `type nat hook prerouting priority dstnat`.
    pub prerouting: Vec<String>,
    /// `type filter hook output priority filter`.
    pub output: Vec<String>,
    pub postrouting: Vec<String>,
}

fn lines(v: &[String]) -> String {
    v.iter().map(|l| format!("\t\t{l}\n")).collect()
}

/// The nft script that replaces onebox's host table with one saying `r`. One transaction:
/// the first lines make the tables exist so that deleting them never fails, and the whole
/// script applies or nothing does.
pub fn ruleset(r: &HostRules) -> Result<String> {
    script(r, &Extra::default())
}

/// [`ruleset`] with `x`'s rules added.
pub(crate) fn script(r: &HostRules, x: &Extra) -> Result<String> {
    let mut s = format!(
        "table ip {TABLE}\ndelete table ip {TABLE}\ntable inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n"
    );
    if let Some(up) = &r.uplink {
        check_uplink(up)?;
    }
    if r.uplink.is_some() || x.private {
        let mut blocked = PRIVATE_RANGES.to_vec();
        blocked.extend(r.blocked.iter().copied());
        s.push_str(&format!(
            "\tset private {{\n\t\ttype ipv4_addr; flags interval;\n\t\telements = {{ {} }}\n\t}}\n",
            set_elements(&disjoint(blocked))
        ));
        if !r.nat_allow.is_empty() {
            s.push_str(&format!(
                "\tset nat_allow {{\n\t\ttype ipv4_addr; flags interval;\n\t\telements = {{ {} }}\n\t}}\n",
                set_elements(&disjoint(r.nat_allow.clone()))
            ));
        }
    }
    for set in &x.sets {
        s.push_str(set);
    }
    s.push_str(&input_chains(r, &x.input));
    for c in &x.chains {
        s.push_str(c);
    }
    s.push_str("\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n");
    s.push_str(&lines(&x.forward));
    if let Some(up) = &r.uplink {
        let out = format!(r#"iifname "{BRIDGES}" oifname "{up}" meta nfproto ipv4"#);
        if !r.nat_allow.is_empty() {
            s.push_str(&format!("\t\t{out} ip daddr @nat_allow accept\n"));
        }
        s.push_str(&format!("\t\t{out} ip daddr @private drop\n"));
        s.push_str(&format!("\t\t{out} accept\n"));
        s.push_str(&format!(
            "\t\tiifname \"{up}\" oifname \"{BRIDGES}\" ct state established,related accept\n"
        ));
    }
    s.push_str(&format!(
        r#"		iifname "{BRIDGES}" oifname "{BRIDGES}" fib daddr . iif oif exists accept
		iifname "{BRIDGES}" drop
		oifname "{BRIDGES}" drop
	}}
"#
    ));
    if !x.prerouting.is_empty() {
        s.push_str(&format!(
            "\tchain prerouting {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n{}\t}}\n",
            lines(&x.prerouting)
        ));
    }
    if !x.output.is_empty() {
        s.push_str(&format!(
            "\tchain output {{\n\t\ttype filter hook output priority filter; policy accept;\n{}\t}}\n",
            lines(&x.output)
        ));
    }
    if r.uplink.is_some() || !x.postrouting.is_empty() {
        s.push_str(
            "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n",
        );
        s.push_str(&lines(&x.postrouting));
        if let Some(up) = &r.uplink {
            s.push_str(&format!(
                "\t\tiifname \"{BRIDGES}\" oifname \"{up}\" masquerade\n"
            ));
        }
        s.push_str("\t}\n");
    }
    s.push_str("}\n");
    Ok(s)
}

/// The script that deletes onebox's host tables, whether they exist or not.
fn removal() -> String {
    format!(
        "table ip {TABLE}\ndelete table ip {TABLE}\ntable inet {TABLE}\ndelete table inet {TABLE}\n\
         table bridge {TABLE}\ndelete table bridge {TABLE}\n\
         table inet {SG}\ndelete table inet {SG}\n",
        SG = crate::sg::TABLE
    )
}

/// Feeds `script` to `nft -f -` in the calling thread's network namespace.
pub(crate) fn nft(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Io("nft".into(), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| Error::Io("nft stdin".into(), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Io("nft".into(), e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Nft(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

/// Whether the `nft` tool can be run.
pub fn nft_available() -> bool {
    Command::new("nft")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn conf_dir() -> &'static str {
    "/proc/sys/net/ipv4/conf"
}

/// Writes an interface's IPv4 forwarding switch.
pub(crate) fn set_forwarding(ifname: &str, on: bool) -> Result<()> {
    let path = format!("{}/{ifname}/forwarding", conf_dir());
    std::fs::write(&path, if on { "1" } else { "0" }).map_err(|e| Error::Io(path, e))
}

/// The project bridges of the current network namespace.
/// The project bridges that exist on the host (`obr*`).
pub fn bridges() -> Result<Vec<String>> {
    let dir = conf_dir();
    let rd = std::fs::read_dir(dir).map_err(|e| Error::Io(dir.into(), e))?;
    Ok(rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("obr"))
        .collect())
}

/// The networks the calling thread's namespace routes to (its main routing table), the
/// default route, project bridges' own networks and anything shorter than a /8 left out:
/// the LAN of every interface, a BMC network, a VPN.
pub fn host_routes() -> Vec<Prefix> {
    // thread-self: a thread that joined another namespace reads that namespace's table.
    let table = std::fs::read_to_string("/proc/thread-self/net/route").unwrap_or_default();
    parse_routes(&table)
}

fn parse_routes(table: &str) -> Vec<Prefix> {
    let word = |h: &str| u32::from_str_radix(h, 16).ok().map(u32::to_ne_bytes);
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.first()?.starts_with("obr") {
                return None;
            }
            let dest = Ipv4Addr::from(word(f.get(1)?)?);
            let len = u32::from(Ipv4Addr::from(word(f.get(7)?)?)).leading_ones() as u8;
            (len >= 8).then_some((dest, len))
        })
        .collect()
}

/// Writes the host table saying `r` (replacing onebox's earlier one) and sets the bridges'
/// forwarding: on for every project bridge and the uplink when there is an uplink, off for
/// every project bridge otherwise. Bridges made later get theirs from
/// [`crate::NetworkDef::forwarding`]. The uplink's own switch is never turned off (it may
/// serve other routing on the host).
pub fn apply(r: &HostRules) -> Result<()> {
    apply_with(r, &Extra::default(), &[], None)
}

/// [`apply`] with `x`'s rules in the same transaction; `routed` bridges (and `uplink`) forward
/// even without `r`'s uplink.
pub(crate) fn apply_with(
    r: &HostRules,
    x: &Extra,
    routed: &[String],
    uplink: Option<&str>,
) -> Result<()> {
    let script = script(r, x)?;
    for up in r.uplink.iter().map(String::as_str).chain(uplink) {
        if !std::path::Path::new(conf_dir()).join(up).exists() {
            return Err(Error::Invalid(
                format!("uplink {up:?}"),
                "no such interface".into(),
            ));
        }
    }
    nft(&script)?;
    for up in r.uplink.iter().map(String::as_str).chain(uplink) {
        // Replies come in on the uplink and are routed to the bridges.
        set_forwarding(up, true)?;
    }
    for b in bridges()? {
        let want = r.uplink.is_some() || routed.contains(&b);
        let path = format!("{}/{b}/forwarding", conf_dir());
        let on = std::fs::read_to_string(&path).is_ok_and(|v| v.trim() != "0");
        if on != want {
            set_forwarding(&b, want)?;
        }
    }
    tracing::debug!(uplink = ?r.uplink, "host table applied");
    Ok(())
}

/// Deletes onebox's tables (the host guard and NAT, the guest ports' bridge table, the
/// security groups' table) and
/// turns forwarding off on every project bridge (used
/// when onebox is removed; while it runs, [`apply`] keeps the table).
pub fn remove() -> Result<()> {
    if nft_available() {
        nft(&removal())?;
    }
    for b in bridges()? {
        set_forwarding(&b, false)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "nat_tests.rs"]
mod tests;
