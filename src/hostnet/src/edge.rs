//! Routers and floating IPs on the host: the kernel side of Neutron's L3 (an external
//! network, routers with SNAT, floating IPs), as rules in onebox's host table
//! (`table inet onebox`, see [`crate::nat`]) and /32 addresses on the uplink.
//!
//! The external network is the uplink's LAN. A router with an external address SNATs what
//! its subnets (project bridges) send out of the uplink to that address; a floating IP maps
//! an address of the LAN to a guest's fixed address both ways (DNAT in, SNAT out, before the
//! router's SNAT and the box's default masquerade). Bridges attached to a router follow the
//! router: no external address or `snat: false` means no way out (but for floating IPs).
//! Bridges attached to no router keep the box's default policy (masqueraded through
//! `[network] nat_uplink` when set, isolated otherwise).
//!
//! - **Addresses.** Every router and floating address is added to the uplink as a /32, so
//!   the host answers ARP for it (proxy ARP does not answer for an address routed out of the
//!   interface the request came in on). Packets to these addresses that are not DNATed are
//!   dropped in input (ICMP echo excepted): the host's own services are not reachable on them.
//!   Only addresses onebox added are removed: each is recorded under
//!   `<state_dir>/edge/addresses` before it is added, and an address already on the uplink
//!   that onebox did not record is refused.
//! - **Inbound.** `prerouting` DNATs a floating address arriving on the uplink (or on a
//!   bridge: hairpin) to the fixed address; `forward` accepts DNATed connections to that
//!   guest whatever their source (the uplink's LAN is private, and reaching a floating IP
//!   from it is its purpose), and their replies, as long as the mapping exists
//!   (`ct original ip daddr`): removing a floating IP cuts its established connections.
//! - **Outbound.** What a floating-IP guest or a SNAT router's subnet sends out of the uplink
//!   passes the same private-destination policy as the default NAT (`private`, `nat_allow`);
//!   only replies of inbound connections pass to private destinations.
//! - **Hairpin.** A guest reaching a floating IP from a bridge is DNATed and masqueraded
//!   to the host's gateway address on the destination bridge, so replies come back through
//!   the host; ICMP redirects onto bridges are dropped (they would send the client to the
//!   fixed address directly).
//!
//! [`apply`] writes the whole table (host guard, default NAT, edge) in one `nft -f`
//! transaction, then the addresses, and records the definition under `<state_dir>/edge/state`;
//! [`restore`] applies the recorded definition again (at start: after `kill -9`, a reboot or
//! `nft flush ruleset`).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::nat::{self, Extra, HostRules, Prefix};
use crate::{Error, Result};

const BRIDGES: &str = "obr*";

/// The external network: the uplink and its LAN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct External {
    /// The interface on that LAN; must be `[network] nat_uplink` when that is set.
    pub uplink: String,
    /// The LAN's prefix; router and floating addresses are taken from it.
    pub cidr: Prefix,
    /// The LAN's router (no address of ours may be it).
    pub gateway: Ipv4Addr,
}

/// A router: its subnets reach the external network from `external_ip`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterDef {
    /// Letters, digits, `-` and `_`.
    pub id: String,
    /// Its address on the external network; `None`: no gateway, no way out.
    pub external_ip: Option<Ipv4Addr>,
    /// `false`: its subnets do not go out (but for floating IPs).
    pub snat: bool,
    /// The attached subnets: the project bridge (`obr…`) and the subnet's prefix.
    pub subnets: Vec<(String, Prefix)>,
}

/// A floating IP associated with a guest's fixed address on a bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloatingDef {
    pub id: String,
    /// On the external network.
    pub address: Ipv4Addr,
    pub fixed: Ipv4Addr,
    /// The project bridge the fixed address is on.
    pub bridge: String,
}

/// Everything the edge says; [`apply`] makes the host match it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EdgeState {
    pub external: Option<External>,
    pub routers: Vec<RouterDef>,
    pub floating: Vec<FloatingDef>,
}

fn invalid<T>(what: impl Into<String>, why: &str) -> Result<T> {
    Err(Error::Invalid(what.into(), why.into()))
}

fn check_id(kind: &str, id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return invalid(format!("{kind} {id:?}"), "bad id");
    }
    Ok(())
}

fn check_bridge(name: &str) -> Result<()> {
    let rest = name.strip_prefix("obr").unwrap_or_default();
    if rest.is_empty() || name.len() > 15 || !rest.chars().all(|c| c.is_ascii_alphanumeric()) {
        return invalid(format!("bridge {name:?}"), "not a project bridge (obr…)");
    }
    Ok(())
}

fn normal(p: Prefix) -> Prefix {
    (Ipv4Addr::from(u32::from(p.0) & nat::mask(p.1.min(32))), p.1)
}

impl External {
    /// Whether `a` can be one of our addresses: in the LAN, not its network, broadcast or
    /// gateway address.
    fn usable(&self, a: Ipv4Addr) -> bool {
        let (net, len) = normal(self.cidr);
        let bcast = u32::from(net) | !nat::mask(len);
        nat::contains((net, len), (a, 32)) && a != net && u32::from(a) != bcast && a != self.gateway
    }
}

impl EdgeState {
    /// Whether the definition is consistent, and with the host's rules.
    pub fn check(&self, host: &HostRules) -> Result<()> {
        let mut taken: Vec<Ipv4Addr> = Vec::new();
        let mut take = |what: String, a: Ipv4Addr| {
            if taken.contains(&a) {
                return invalid(what, "address used twice");
            }
            taken.push(a);
            Ok(())
        };
        if let Some(e) = &self.external {
            nat::check_uplink(&e.uplink)?;
            if !(1..=30).contains(&e.cidr.1) || normal(e.cidr) != e.cidr {
                return invalid("external network", "bad prefix");
            }
            if !nat::contains(e.cidr, (e.gateway, 32)) {
                return invalid("external network", "gateway outside its prefix");
            }
            if let Some(d) = &host.uplink
                && *d != e.uplink
            {
                return invalid("external network", "its uplink must be the NAT uplink");
            }
        }
        let usable = |what: String, a: Ipv4Addr| match &self.external {
            None => invalid(what, "no external network"),
            Some(e) if !e.usable(a) => invalid(what, "not a host address of the external network"),
            Some(_) => Ok(()),
        };
        let mut ids = Vec::new();
        let mut attached = Vec::new();
        for r in &self.routers {
            check_id("router", &r.id)?;
            if ids.contains(&&r.id) {
                return invalid(format!("router {}", r.id), "id used twice");
            }
            ids.push(&r.id);
            if let Some(a) = r.external_ip {
                usable(format!("router {} external address", r.id), a)?;
                take(format!("router {}", r.id), a)?;
            }
            for (b, p) in &r.subnets {
                check_bridge(b)?;
                if p.1 > 32 {
                    return invalid(format!("router {} subnet", r.id), "bad prefix");
                }
                if attached.contains(&b) {
                    return invalid(format!("bridge {b}"), "attached to two routers");
                }
                attached.push(b);
            }
        }
        let mut fixed = Vec::new();
        for f in &self.floating {
            check_id("floating IP", &f.id)?;
            if ids.contains(&&f.id) {
                return invalid(format!("floating IP {}", f.id), "id used twice");
            }
            ids.push(&f.id);
            check_bridge(&f.bridge)?;
            usable(format!("floating IP {}", f.id), f.address)?;
            take(format!("floating IP {}", f.id), f.address)?;
            if f.fixed.is_unspecified() || fixed.contains(&f.fixed) {
                return invalid(format!("floating IP {}", f.id), "fixed address taken");
            }
            fixed.push(f.fixed);
        }
        Ok(())
    }

    /// The addresses onebox puts on the uplink: `(uplink, address)`.
    fn addresses(&self) -> Vec<(String, Ipv4Addr)> {
        let Some(e) = &self.external else {
            return Vec::new();
        };
        let routers = self.routers.iter().filter_map(|r| r.external_ip);
        let floating = self.floating.iter().map(|f| f.address);
        routers
            .chain(floating)
            .map(|a| (e.uplink.clone(), a))
            .collect()
    }

    /// The bridges that must forward.
    fn routed(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .routers
            .iter()
            .flat_map(|r| r.subnets.iter().map(|(b, _)| b.clone()))
            .chain(self.floating.iter().map(|f| f.bridge.clone()))
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// The rules the edge adds to the host table (see the module's description).
pub(crate) fn extra(host: &HostRules, s: &EdgeState) -> Result<Extra> {
    s.check(host)?;
    let mut x = Extra::default();
    let ext = s.external.as_ref().map(|e| e.uplink.as_str());
    let Some(up) = ext.or(host.uplink.as_deref()) else {
        return Ok(x);
    };
    let local: Vec<String> = s.addresses().iter().map(|(_, a)| a.to_string()).collect();
    if !local.is_empty() {
        x.sets.push(format!(
            "\tset edge_local {{\n\t\ttype ipv4_addr;\n\t\telements = {{ {} }}\n\t}}\n",
            local.join(", ")
        ));
        x.input
            .push("ip daddr @edge_local icmp type echo-request accept".into());
        x.input.push("ip daddr @edge_local drop".into());
    }
    let out = |b: &str| format!(r#"iifname "{b}" oifname "{up}""#);
    let mut leaves = false;
    if !s.floating.is_empty() {
        x.postrouting.push(format!(
            r#"iifname "{BRIDGES}" oifname "{BRIDGES}" ct status dnat masquerade"#
        ));
        x.output
            .push(format!(r#"oifname "{BRIDGES}" icmp type redirect drop"#));
    }
    for f in &s.floating {
        let (a, fx, b, id) = (f.address, f.fixed, &f.bridge, &f.id);
        x.prerouting.push(format!(
            r#"iifname "{up}" ip daddr {a} dnat ip to {fx} comment "fip {id}""#
        ));
        x.prerouting.push(format!(
            r#"iifname "{BRIDGES}" ip daddr {a} dnat ip to {fx} comment "fip {id} hairpin""#
        ));
        // Bound to the mapping, not to the connection: once a floating IP is gone or moved,
        // its connections (established ones too) no longer pass.
        let mapped = format!("ct status dnat ct original ip daddr {a}");
        x.forward.push(format!(
            r#"oifname "{b}" ip daddr {fx} {mapped} accept comment "fip {id}""#
        ));
        x.forward.push(format!(
            r#"iifname "{b}" ip saddr {fx} {mapped} ct direction reply accept"#
        ));
        x.forward
            .push(format!("{} ip saddr {fx} goto edge_out", out(b)));
        x.postrouting
            .push(format!("{} ip saddr {fx} snat ip to {a}", out(b)));
        leaves = true;
    }
    if s.external.is_some() {
        // Any other DNATed connection to or from a bridge: a floating IP's that was removed.
        x.forward
            .push(format!(r#"oifname "{BRIDGES}" ct status dnat drop"#));
        x.forward
            .push(format!(r#"iifname "{BRIDGES}" ct status dnat drop"#));
    }
    for r in &s.routers {
        for (b, p) in &r.subnets {
            let (net, len) = normal(*p);
            if let (Some(a), true) = (r.external_ip, r.snat) {
                x.forward
                    .push(format!("{} ip saddr {net}/{len} goto edge_out", out(b)));
                x.postrouting
                    .push(format!("{} ip saddr {net}/{len} snat ip to {a}", out(b)));
                leaves = true;
            }
            x.forward.push(format!("{} drop", out(b)));
        }
    }
    if leaves {
        x.private = true;
        let allow = if host.nat_allow.is_empty() {
            ""
        } else {
            "\t\tip daddr @nat_allow accept\n"
        };
        x.chains.push(format!(
            "\tchain edge_out {{\n{allow}\t\tip daddr @private drop\n\t\taccept\n\t}}\n"
        ));
        if host.uplink.is_none() {
            x.forward.push(format!(
                r#"iifname "{up}" oifname "{BRIDGES}" ct state established,related accept"#
            ));
        }
    }
    Ok(x)
}

/// The nft script [`apply`] runs for `s`.
pub fn ruleset(host: &HostRules, s: &EdgeState) -> Result<String> {
    nat::script(host, &extra(host, s)?)
}

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("edge")
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Io(p.display().to_string(), e)
}

fn lock(state_dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>> {
    let d = dir(state_dir);
    std::fs::create_dir_all(&d).map_err(io(&d))?;
    let path = d.join("lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io(&path))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::Io(path.display().to_string(), e.into()))
}

/// Writes `text` to `path` whole or not at all.
fn write_file(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// The addresses onebox added to the uplink and has not removed yet.
fn added(state_dir: &Path) -> Vec<(String, Ipv4Addr)> {
    let text = std::fs::read_to_string(dir(state_dir).join("addresses")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (i, a) = l.split_once(' ')?;
            nat::check_uplink(i).ok()?;
            Some((i.to_owned(), a.parse().ok()?))
        })
        .collect()
}

fn record_added(state_dir: &Path, v: &[(String, Ipv4Addr)]) -> Result<()> {
    let text: String = v.iter().map(|(i, a)| format!("{i} {a}\n")).collect();
    write_file(&dir(state_dir).join("addresses"), &text)
}

/// Makes the host say `s` (with `host`'s guard and default NAT, as [`nat::apply`] does):
/// the table in one transaction, the uplink's addresses, the bridges' forwarding. Applying
/// the same twice changes nothing; an empty `s` takes every edge rule and address away.
/// Bridges named in `s` that do not exist yet get their forwarding when they are made
/// ([`crate::NetworkDef::forwarding`] must then be `true`) or at the next apply.
pub fn apply(state_dir: &Path, host: &HostRules, s: &EdgeState) -> Result<()> {
    let x = extra(host, s)?;
    let _g = lock(state_dir)?;
    let wanted = s.addresses();
    let mut ours = added(state_dir);
    for (i, a) in &wanted {
        if !ours.contains(&(i.clone(), *a)) && crate::has_address(i, *a)? {
            return invalid(format!("address {a}"), "already on the host, not onebox's");
        }
    }
    for (i, a) in ours.clone() {
        if !wanted.contains(&(i.clone(), a)) {
            crate::delete_address(&i, a)?;
            ours.retain(|o| *o != (i.clone(), a));
            record_added(state_dir, &ours)?;
        }
    }
    let uplink = s.external.as_ref().map(|e| e.uplink.as_str());
    nat::apply_with(host, &x, &s.routed(), uplink)?;
    for (i, a) in &wanted {
        if !ours.contains(&(i.clone(), *a)) {
            ours.push((i.clone(), *a));
            record_added(state_dir, &ours)?;
        }
        crate::ensure_address(i, *a, 32)?;
    }
    write_file(&dir(state_dir).join("state"), &to_record(s))?;
    tracing::debug!(
        routers = s.routers.len(),
        floating = s.floating.len(),
        "edge applied"
    );
    Ok(())
}

/// The definition last applied (empty when none was).
pub fn recorded(state_dir: &Path) -> Result<EdgeState> {
    let path = dir(state_dir).join("state");
    match std::fs::read_to_string(&path) {
        Ok(t) => from_record(&t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(EdgeState::default()),
        Err(e) => Err(Error::Io(path.display().to_string(), e)),
    }
}

/// Applies the recorded definition again with `host`'s rules: what onebox runs at start in
/// place of [`nat::apply`].
pub fn restore(state_dir: &Path, host: &HostRules) -> Result<()> {
    apply(state_dir, host, &recorded(state_dir)?)
}

/// Takes everything away: the addresses onebox added, its records, and onebox's tables
/// ([`nat::remove`]: what `onebox teardown` does).
pub fn remove(state_dir: &Path) -> Result<()> {
    let _g = lock(state_dir)?;
    let mut ours = added(state_dir);
    for (i, a) in ours.clone() {
        crate::delete_address(&i, a)?;
        ours.retain(|o| *o != (i.clone(), a));
        record_added(state_dir, &ours)?;
    }
    nat::remove()?;
    let d = dir(state_dir);
    for f in ["state", "addresses"] {
        match std::fs::remove_file(d.join(f)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Io(d.join(f).display().to_string(), e));
            }
            _ => {}
        }
    }
    Ok(())
}

fn prefix(p: Prefix) -> String {
    format!("{}/{}", p.0, p.1)
}

/// One line per object, `key=value` words.
fn to_record(s: &EdgeState) -> String {
    let mut t = String::new();
    if let Some(e) = &s.external {
        t.push_str(&format!(
            "external uplink={} cidr={} gateway={}\n",
            e.uplink,
            prefix(e.cidr),
            e.gateway
        ));
    }
    for r in &s.routers {
        let ip = r.external_ip.map_or("-".into(), |a| a.to_string());
        let subnets: Vec<String> = r
            .subnets
            .iter()
            .map(|(b, p)| format!("{b}:{}", prefix(*p)))
            .collect();
        t.push_str(&format!(
            "router id={} ip={ip} snat={} subnets={}\n",
            r.id,
            r.snat,
            subnets.join(",")
        ));
    }
    for f in &s.floating {
        t.push_str(&format!(
            "floating id={} address={} fixed={} bridge={}\n",
            f.id, f.address, f.fixed, f.bridge
        ));
    }
    t
}

fn from_record(text: &str) -> Result<EdgeState> {
    let bad = |l: &str| Error::Invalid("edge record".into(), format!("bad line {l:?}"));
    let mut s = EdgeState::default();
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = l.split_whitespace();
        let kind = words.next().unwrap_or_default();
        let kv: Vec<(&str, &str)> = words.filter_map(|w| w.split_once('=')).collect();
        let get = |k: &str| {
            kv.iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| *v)
                .ok_or_else(|| bad(l))
        };
        let addr = |k: &str| get(k)?.parse::<Ipv4Addr>().map_err(|_| bad(l));
        let pfx = |v: &str| nat::parse_prefix(v).map_err(|_| bad(l));
        match kind {
            "external" => {
                s.external = Some(External {
                    uplink: get("uplink")?.into(),
                    cidr: pfx(get("cidr")?)?,
                    gateway: addr("gateway")?,
                });
            }
            "router" => {
                let ip = get("ip")?;
                let subnets = get("subnets")?
                    .split(',')
                    .filter(|x| !x.is_empty())
                    .map(|x| {
                        let (b, p) = x.split_once(':').ok_or_else(|| bad(l))?;
                        Ok((b.to_owned(), pfx(p)?))
                    })
                    .collect::<Result<Vec<_>>>()?;
                s.routers.push(RouterDef {
                    id: get("id")?.into(),
                    external_ip: match ip {
                        "-" => None,
                        a => Some(a.parse().map_err(|_| bad(l))?),
                    },
                    snat: get("snat")? == "true",
                    subnets,
                });
            }
            "floating" => s.floating.push(FloatingDef {
                id: get("id")?.into(),
                address: addr("address")?,
                fixed: addr("fixed")?,
                bridge: get("bridge")?.into(),
            }),
            _ => return Err(bad(l)),
        }
    }
    Ok(s)
}

#[cfg(test)]
#[path = "edge_tests.rs"]
mod tests;
