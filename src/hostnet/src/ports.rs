//! Each guest's port pinned to its MAC and address: onebox's bridge-family nftables table
//! (`table bridge onebox`).
//!
//! Every frame a guest sends into a project bridge enters through its port (the host end of
//! a container's veth, a VM's tap). The table's `prerouting` chain sends the frames of each
//! known port to that port's chain, which drops:
//!
//! - frames whose source MAC is not the port's;
//! - anything but IPv4 and ARP (IPv6, so no router advertisements; VLAN-tagged frames that
//!   would carry another address inside);
//! - ARP whose sender MAC or IP is not the port's (ARP probes from 0.0.0.0 pass);
//! - IPv4 from another source address (a DHCP discover from 0.0.0.0 passes);
//! - DHCP answers (udp source port 67): no guest plays DHCP server for its neighbours.
//!
//! So no guest can speak as another, to its neighbours or to the metadata service (which
//! knows guests by source address and MAC).
//!
//! A port's allowed address pairs (Neutron's `allowed_address_pairs`: a further address or
//! CIDR, with its MAC) widen the MACs and addresses it may send from, for neighbours only:
//! the metadata service is reached from the port's own MAC and address alone. A port
//! without port security (`port_security_enabled` false) is not pinned, but for that same
//! metadata rule: nothing lets a guest read another server's metadata.
//!
//! Ports are recorded one file each under a state directory (`<data_dir>/hostnet/ports`),
//! written before the port's interface exists and removed after it is gone; the table is
//! changed in one `nft -f` transaction per change, each port's chain and its map entry
//! together, under a lock. [`Ports::restore`] rewrites every recorded port's rules at start
//! (after a kill -9, a reboot, an `nft flush ruleset`) and forgets the ports of servers
//! that no longer exist, so nothing is missing and nothing is left over. Only ports onebox
//! recorded are touched: other entries of the map (another data directory's) stay.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::nat::{Prefix, TABLE, nft};

/// The metadata service's address.
const METADATA: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
use crate::{Error, Result};

/// A guest's port on a project bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortDef {
    /// The host-side interface (veth end or tap).
    pub ifname: String,
    /// The server it belongs to.
    pub server: String,
    /// `aa:bb:cc:dd:ee:ff`
    pub mac: String,
    pub address: Ipv4Addr,
    /// Allowed address pairs: (address or CIDR, MAC).
    pub pairs: Vec<(Prefix, String)>,
    /// Port security: `false` leaves only the metadata rule.
    pub secured: bool,
}

impl PortDef {
    /// A pinned port with no address pairs.
    pub fn new(ifname: &str, server: &str, mac: &str, address: Ipv4Addr) -> Self {
        Self {
            ifname: ifname.into(),
            server: server.into(),
            mac: mac.into(),
            address,
            pairs: Vec::new(),
            secured: true,
        }
    }

    /// Parses Neutron's pairs (`ip_address` as an address or CIDR, `mac_address`); those
    /// that are not IPv4 are left out (IPv6 frames are dropped whatever the pairs say).
    pub fn parse_pairs(pairs: &[(String, String)]) -> Vec<(Prefix, String)> {
        pairs
            .iter()
            .filter_map(|(ip, mac)| {
                let p = crate::nat::parse_prefix(ip).ok()?;
                crate::parse_mac(mac)?;
                Some((p, mac.to_ascii_lowercase()))
            })
            .collect()
    }

    fn check(&self) -> Result<()> {
        let bad = |why: &str| {
            Err(Error::Invalid(
                format!("port {:?}", self.ifname),
                why.into(),
            ))
        };
        let n = &self.ifname;
        if n.is_empty() || n.len() > 15 || !n.chars().all(|c| c.is_ascii_alphanumeric()) {
            return bad("an interface name of 1 to 15 letters and digits");
        }
        if crate::parse_mac(&self.mac).is_none()
            || self
                .pairs
                .iter()
                .any(|(_, m)| crate::parse_mac(m).is_none())
        {
            return bad("bad MAC");
        }
        if self.server.is_empty()
            || !self
                .server
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return bad("bad server id");
        }
        Ok(())
    }

    fn to_record(&self) -> String {
        let mut r = format!(
            "server={}\nmac={}\naddress={}\n",
            self.server, self.mac, self.address
        );
        for ((a, l), m) in &self.pairs {
            r.push_str(&format!("pair={a}/{l},{m}\n"));
        }
        if !self.secured {
            r.push_str("security=off\n");
        }
        r
    }

    fn from_record(ifname: &str, text: &str) -> Option<Self> {
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .map(str::to_owned)
        };
        let p = Self {
            ifname: ifname.to_owned(),
            server: field("server")?,
            mac: field("mac")?.to_ascii_lowercase(),
            address: field("address")?.parse().ok()?,
            pairs: text
                .lines()
                .filter_map(|l| {
                    let (ip, mac) = l.strip_prefix("pair=")?.split_once(',')?;
                    Some((crate::nat::parse_prefix(ip).ok()?, mac.to_ascii_lowercase()))
                })
                .collect(),
            secured: field("security").as_deref() != Some("off"),
        };
        p.check().ok().map(|()| p)
    }
}

/// The statements that make the table, its map and its base chain exist (idempotent).
fn base() -> String {
    format!(
        "add table bridge {TABLE}\n\
         add map bridge {TABLE} ports {{ type ifname : verdict; }}\n\
         add chain bridge {TABLE} prerouting {{ type filter hook prerouting priority filter; policy accept; }}\n\
         flush chain bridge {TABLE} prerouting\n\
         add rule bridge {TABLE} prerouting iifname vmap @ports\n"
    )
}

/// The statements that (re)write one port's chain and map entry.
pub fn port_rules(p: &PortDef) -> Result<String> {
    p.check()?;
    let (n, mac, ip) = (&p.ifname, &p.mac, p.address);
    let c = format!("bridge {TABLE} port_{n}");
    let mut macs = vec![mac.clone()];
    for (_, m) in &p.pairs {
        if !macs.contains(m) {
            macs.push(m.clone());
        }
    }
    let macs = if macs.len() == 1 {
        mac.clone()
    } else {
        format!("{{ {} }}", macs.join(", "))
    };
    let mut prefixes = vec![(ip, 32)];
    prefixes.extend(p.pairs.iter().map(|(pre, _)| *pre));
    let addrs = crate::nat::disjoint(prefixes)
        .iter()
        .map(|(a, l)| {
            if *l == 32 {
                a.to_string()
            } else {
                format!("{a}/{l}")
            }
        })
        .collect::<Vec<_>>();
    let one = addrs.len() == 1;
    let addrs = addrs.join(", ");
    // The metadata service knows a guest by its port's own MAC and address.
    let metadata = [
        format!("ip daddr {METADATA} ether saddr != {mac} drop"),
        format!("ip daddr {METADATA} ip saddr != {ip} drop"),
    ];
    let pinned = [
        format!("ether saddr != {macs} drop"),
        "ether type != { ip, arp } drop".into(),
        format!("arp saddr ether != {macs} drop"),
        "arp ptype != ip drop".into(),
        format!("arp saddr ip != {{ {addrs}, 0.0.0.0 }} drop"),
        "ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept".into(),
        metadata[0].clone(),
        metadata[1].clone(),
        if one {
            format!("ip saddr != {addrs} drop")
        } else {
            format!("ip saddr != {{ {addrs} }} drop")
        },
        "udp sport 67 drop".into(),
    ];
    let rules: &[String] = if p.secured { &pinned } else { &metadata };
    let mut s = format!("add chain {c}\nflush chain {c}\n");
    for r in rules {
        s.push_str(&format!("add rule {c} {r}\n"));
    }
    s.push_str(&format!(
        "add element bridge {TABLE} ports {{ \"{n}\" : jump port_{n} }}\n"
    ));
    Ok(s)
}

/// The statements that remove one port's chain and map entry, whether they exist or not.
fn port_removal(ifname: &str) -> String {
    let n = ifname;
    format!(
        "add chain bridge {TABLE} port_{n}\n\
         add element bridge {TABLE} ports {{ \"{n}\" : jump port_{n} }}\n\
         delete element bridge {TABLE} ports {{ \"{n}\" }}\n\
         delete chain bridge {TABLE} port_{n}\n"
    )
}

/// The recorded ports of one data directory and the table entries they stand for.
#[derive(Clone, Debug)]
pub struct Ports {
    dir: PathBuf,
}

/// Where a data directory's ports are recorded.
pub fn state_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("hostnet")
}

impl Ports {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn ports_dir(&self) -> PathBuf {
        self.dir.join("ports")
    }

    /// Holds the lock of the state directory (other threads and processes wait).
    fn lock(&self) -> Result<nix::fcntl::Flock<std::fs::File>> {
        let pd = self.ports_dir();
        std::fs::create_dir_all(&pd).map_err(|e| Error::Io(pd.display().to_string(), e))?;
        let path = self.dir.join("lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::Io(path.display().to_string(), e))?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::Io(path.display().to_string(), e.into()))
    }

    /// The recorded ports.
    pub fn list(&self) -> Vec<PortDef> {
        let Ok(rd) = std::fs::read_dir(self.ports_dir()) else {
            return Vec::new();
        };
        let mut v: Vec<PortDef> = rd
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let text = std::fs::read_to_string(e.path()).ok()?;
                PortDef::from_record(&name, &text)
            })
            .collect();
        v.sort_by(|a, b| a.ifname.cmp(&b.ifname));
        v
    }

    /// Records the ports and pins them in the table (replacing what an earlier port of the
    /// same interface name said). Call before the interfaces are made.
    pub fn add(&self, ports: &[PortDef]) -> Result<()> {
        let _g = self.lock()?;
        let mut script = base();
        for p in ports {
            script.push_str(&port_rules(p)?);
            self.record(p)?;
        }
        nft(&script)
    }

    /// Pins the recorded ports with MAC `mac` as `to` says (a plugged port's address, pairs
    /// or port security changed); the interface and server stay. Returns how many there were.
    pub fn update(&self, mac: &str, to: &PortDef) -> Result<usize> {
        let _g = self.lock()?;
        let mac = mac.to_ascii_lowercase();
        let mut script = base();
        let mut found = Vec::new();
        for old in self.list().into_iter().filter(|p| p.mac == mac) {
            let new = PortDef {
                ifname: old.ifname.clone(),
                server: old.server.clone(),
                ..to.clone()
            };
            if new != old {
                script.push_str(&port_rules(&new)?);
                found.push(new);
            }
        }
        if found.is_empty() {
            return Ok(0);
        }
        nft(&script)?;
        for p in &found {
            self.record(p)?;
        }
        Ok(found.len())
    }

    fn record(&self, p: &PortDef) -> Result<()> {
        let f = self.ports_dir().join(&p.ifname);
        let tmp = self.ports_dir().join(format!(".{}.tmp", p.ifname));
        std::fs::write(&tmp, p.to_record())
            .and_then(|()| std::fs::rename(&tmp, &f))
            .map_err(|e| Error::Io(f.display().to_string(), e))
    }

    /// Unpins and forgets every port of `server`. Call after its interfaces are gone.
    pub fn remove_server(&self, server: &str) -> Result<()> {
        let _g = self.lock()?;
        let gone: Vec<PortDef> = self
            .list()
            .into_iter()
            .filter(|p| p.server == server)
            .collect();
        self.forget(&gone)
    }

    /// Unpins and forgets the ports on the interfaces `ifnames` (one interface unplugged
    /// from a server that keeps its others). Call after the interfaces are gone.
    pub fn remove(&self, ifnames: &[&str]) -> Result<()> {
        let _g = self.lock()?;
        let gone: Vec<PortDef> = self
            .list()
            .into_iter()
            .filter(|p| ifnames.contains(&p.ifname.as_str()))
            .collect();
        self.forget(&gone)
    }

    fn forget(&self, gone: &[PortDef]) -> Result<()> {
        if gone.is_empty() {
            return Ok(());
        }
        let mut script = base();
        for p in gone {
            script.push_str(&port_removal(&p.ifname));
        }
        nft(&script)?;
        for p in gone {
            let f = self.ports_dir().join(&p.ifname);
            match std::fs::remove_file(&f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::Io(f.display().to_string(), e)),
            }
        }
        Ok(())
    }

    /// At start: forgets the ports of servers `live` does not hold and pins every other
    /// recorded port again, in one transaction. Returns how many ports are pinned.
    pub fn restore(&self, live: impl Fn(&str) -> bool) -> Result<usize> {
        let _g = self.lock()?;
        let (keep, gone): (Vec<PortDef>, Vec<PortDef>) =
            self.list().into_iter().partition(|p| live(&p.server));
        self.forget(&gone)?;
        let mut script = base();
        for p in &keep {
            script.push_str(&port_rules(p)?);
        }
        nft(&script)?;
        Ok(keep.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port() -> PortDef {
        PortDef::new(
            "obv5f2a1c3e9b0",
            "5f2a1c3e-9b7d-4e0a-8c6f-0123456789ab",
            "fa:16:3e:00:0a:ff",
            Ipv4Addr::new(10, 1, 0, 10),
        )
    }

    #[test]
    fn address_pairs_widen_what_neighbours_see_but_not_the_metadata_service() {
        let mut p = port();
        p.pairs = PortDef::parse_pairs(&[
            ("10.1.0.100".into(), "fa:16:3e:00:0a:ff".into()),
            ("10.1.0.0/25".into(), "00:00:5e:00:01:07".into()),
            ("2001:db8::1".into(), "fa:16:3e:00:0a:ff".into()),
        ]);
        assert_eq!(p.pairs.len(), 2, "IPv6 pairs are left out");
        let s = port_rules(&p).expect("rules");
        let c = "bridge onebox port_obv5f2a1c3e9b0";
        let has = |r: &str| s.lines().any(|l| l == format!("add rule {c} {r}"));
        assert!(has(
            "ether saddr != { fa:16:3e:00:0a:ff, 00:00:5e:00:01:07 } drop"
        ));
        // The port's own address and the /32 pair sit inside the /25: one element.
        assert!(has("arp saddr ip != { 10.1.0.0/25, 0.0.0.0 } drop"));
        assert!(has("ip saddr != 10.1.0.0/25 drop"), "{s}");
        assert!(has(
            "ip daddr 169.254.169.254 ether saddr != fa:16:3e:00:0a:ff drop"
        ));
        assert!(has("ip daddr 169.254.169.254 ip saddr != 10.1.0.10 drop"));
        let back = PortDef::from_record(&p.ifname, &p.to_record()).expect("record");
        assert_eq!(back, p);

        p.pairs.clear();
        p.secured = false;
        let s = port_rules(&p).expect("rules");
        let rules: Vec<&str> = s.lines().filter(|l| l.starts_with("add rule")).collect();
        assert_eq!(
            rules,
            vec![
                format!(
                    "add rule {c} ip daddr 169.254.169.254 ether saddr != fa:16:3e:00:0a:ff drop"
                ),
                format!("add rule {c} ip daddr 169.254.169.254 ip saddr != 10.1.0.10 drop"),
            ],
            "without port security only the metadata rule stays"
        );
        let back = PortDef::from_record(&p.ifname, &p.to_record()).expect("record");
        assert!(!back.secured);
    }

    #[test]
    fn a_port_chain_pins_mac_and_address() {
        let s = port_rules(&port()).expect("rules");
        let c = "bridge onebox port_obv5f2a1c3e9b0";
        let expect = [
            format!("add chain {c}"),
            format!("flush chain {c}"),
            format!("add rule {c} ether saddr != fa:16:3e:00:0a:ff drop"),
            format!("add rule {c} ether type != {{ ip, arp }} drop"),
            format!("add rule {c} arp saddr ether != fa:16:3e:00:0a:ff drop"),
            format!("add rule {c} arp ptype != ip drop"),
            format!("add rule {c} arp saddr ip != {{ 10.1.0.10, 0.0.0.0 }} drop"),
            format!("add rule {c} ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept"),
            format!("add rule {c} ip daddr 169.254.169.254 ether saddr != fa:16:3e:00:0a:ff drop"),
            format!("add rule {c} ip daddr 169.254.169.254 ip saddr != 10.1.0.10 drop"),
            format!("add rule {c} ip saddr != 10.1.0.10 drop"),
            format!("add rule {c} udp sport 67 drop"),
            r#"add element bridge onebox ports { "obv5f2a1c3e9b0" : jump port_obv5f2a1c3e9b0 }"#
                .into(),
        ];
        assert_eq!(s.lines().collect::<Vec<_>>(), expect);
    }

    #[test]
    fn records_round_trip_and_bad_ones_are_refused() {
        let p = port();
        assert_eq!(
            PortDef::from_record(&p.ifname, &p.to_record()),
            Some(p.clone())
        );
        for bad in [
            PortDef {
                ifname: "eth0\"; flush".into(),
                ..port()
            },
            PortDef {
                ifname: "a-very-long-interface".into(),
                ..port()
            },
            PortDef {
                mac: "fa:16:3e".into(),
                ..port()
            },
            PortDef {
                server: "x y".into(),
                ..port()
            },
        ] {
            assert!(port_rules(&bad).is_err(), "{bad:?}");
        }
    }
}
