//! DHCP for guests: one dnsmasq per project network's bridge, started and owned by onebox.
//!
//! Each dnsmasq answers only on its bridge, only for the MACs it is told about (static
//! leases: every port's MAC gets its port's address), offers the gateway as router, the
//! subnet's `dns_nameservers` as DNS servers and, as classless static routes, the metadata
//! service, the subnet's `host_routes` and the default route; it serves no DNS itself
//! (`port=0`). A subnet with `enable_dhcp` false has no dnsmasq at all. The subnet is
//! recorded in `<dir>/<bridge>/network` (first line `cidr gateway`, then `dns …`, `route
//! destination nexthop` and `dhcp off` lines), the hosts one file per server in
//! `<dir>/<bridge>/hosts/<server uuid>`, and both are handed to dnsmasq on its command line: dnsmasq opens its lease and pid files as root, then drops
//! to an unprivileged user (`dnsmasq`, else `nobody`) and reads nothing afterwards (the data
//! directory is not readable by that user), so a change of hosts restarts it; the lease file
//! keeps the guests' leases across restarts. dnsmasq keeps running while onebox restarts;
//! its PID is in `<dir>/<bridge>/pid` and only that process is ever signalled.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use driver::Port;

use crate::Error;

pub const METADATA_ADDR: &str = "169.254.169.254";

pub struct Dhcp {
    pub dnsmasq: String,
    pub dir: PathBuf,
}

/// Serialises changes to the hosts and subnet files of every [`Dhcp`] of the process (the
/// driver's and the networking service's share the directory).
static LOCK: Mutex<()> = Mutex::new(());

/// What a bridge's dnsmasq offers: its subnet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub cidr: String,
    pub gateway: String,
    pub dns: Vec<Ipv4Addr>,
    /// (destination, prefix length, next hop)
    pub routes: Vec<(Ipv4Addr, u8, Ipv4Addr)>,
    /// `enable_dhcp`
    pub enabled: bool,
}

fn parse_route(dest: &str, hop: &str) -> Option<(Ipv4Addr, u8, Ipv4Addr)> {
    let (net, mask) = network_and_mask(dest)?;
    Some((net, u32::from(mask).count_ones() as u8, hop.parse().ok()?))
}

impl Subnet {
    /// The subnet a port sits on. Values that are not addresses are left out (they would
    /// reach dnsmasq's command line).
    pub fn of(p: &Port) -> Self {
        Self {
            cidr: p.cidr.clone(),
            gateway: p.gateway.clone(),
            dns: p
                .dns_nameservers
                .iter()
                .filter_map(|d| d.parse().ok())
                .collect(),
            routes: p
                .host_routes
                .iter()
                .filter_map(|(d, h)| parse_route(d, h))
                .collect(),
            enabled: p.dhcp,
        }
    }

    fn to_file(&self) -> String {
        let mut s = format!("{} {}\n", self.cidr, self.gateway);
        if !self.dns.is_empty() {
            let d: Vec<String> = self.dns.iter().map(ToString::to_string).collect();
            s.push_str(&format!("dns {}\n", d.join(" ")));
        }
        for (net, len, hop) in &self.routes {
            s.push_str(&format!("route {net}/{len} {hop}\n"));
        }
        if !self.enabled {
            s.push_str("dhcp off\n");
        }
        s
    }

    fn parse(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        let (cidr, gateway) = lines.next()?.trim().split_once(' ')?;
        let mut sub = Self {
            cidr: cidr.trim().to_owned(),
            gateway: gateway.trim().to_owned(),
            dns: Vec::new(),
            routes: Vec::new(),
            enabled: true,
        };
        for l in lines {
            let mut w = l.split_whitespace();
            match w.next() {
                Some("dns") => sub.dns.extend(w.filter_map(|d| d.parse::<Ipv4Addr>().ok())),
                Some("route") => {
                    if let (Some(d), Some(h)) = (w.next(), w.next())
                        && let Some(r) = parse_route(d, h)
                    {
                        sub.routes.push(r);
                    }
                }
                Some("dhcp") => sub.enabled = w.next() != Some("off"),
                _ => {}
            }
        }
        Some(sub)
    }

    /// dnsmasq's options for the subnet: router, DNS servers and classless static routes
    /// (which clients prefer to the router option, so the default route is among them).
    fn option_args(&self) -> Vec<String> {
        let gw = &self.gateway;
        let mut args = vec![format!("--dhcp-option=3,{gw}")];
        if !self.dns.is_empty() {
            let d: Vec<String> = self.dns.iter().map(ToString::to_string).collect();
            args.push(format!("--dhcp-option=6,{}", d.join(",")));
        }
        let mut routes = format!("--dhcp-option=121,{METADATA_ADDR}/32,{gw}");
        for (net, len, hop) in &self.routes {
            routes.push_str(&format!(",{net}/{len},{hop}"));
        }
        routes.push_str(&format!(",0.0.0.0/0,{gw}"));
        args.push(routes);
        args
    }
}

fn network_and_mask(cidr: &str) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let (a, p) = cidr.split_once('/')?;
    let a: Ipv4Addr = a.parse().ok()?;
    let p: u32 = p.parse().ok().filter(|p| *p <= 32)?;
    let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
    Some((Ipv4Addr::from(u32::from(a) & mask), Ipv4Addr::from(mask)))
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `pid` is a dnsmasq serving `dir` (guards against a recycled PID).
fn is_ours(pid: i32, dir: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let s = String::from_utf8_lossy(&c);
            s.contains("dnsmasq") && s.contains(&*dir.to_string_lossy())
        })
        .unwrap_or(false)
}

fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

/// Stops the dnsmasq `pid` serving `dir` and waits (a second at most) until it is gone.
fn stop(pid: i32, dir: &Path) {
    signal(pid, nix::sys::signal::Signal::SIGTERM);
    for _ in 0..50 {
        if !is_ours(pid, dir) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The user dnsmasq drops to, and its primary group: `dnsmasq` (Debian's dnsmasq-base makes
/// it) when it exists, else `nobody`.
pub fn unprivileged_user() -> (String, String) {
    use nix::unistd::{Group, User};
    let user = ["dnsmasq", "nobody"]
        .iter()
        .find_map(|n| User::from_name(n).ok().flatten());
    match user {
        Some(u) => {
            let group = Group::from_gid(u.gid)
                .ok()
                .flatten()
                .map(|g| g.name)
                .unwrap_or_else(|| "nogroup".into());
            (u.name, group)
        }
        None => ("nobody".into(), "nogroup".into()),
    }
}

impl Dhcp {
    pub fn new(dnsmasq: String, dir: PathBuf) -> Self {
        Self { dnsmasq, dir }
    }

    fn bridge_dir(&self, bridge: &str) -> PathBuf {
        self.dir.join(bridge)
    }

    /// The dnsmasq of a bridge, when it runs.
    pub fn running(&self, bridge: &str) -> Option<i32> {
        let d = self.bridge_dir(bridge);
        read_pid(&d.join("pid")).filter(|p| is_ours(*p, &d))
    }

    /// Gives `port`'s MAC its address on `bridge` and makes sure the bridge's dnsmasq runs.
    pub fn add_host(&self, bridge: &str, server: &str, ports: &[&Port]) -> Result<(), Error> {
        if ports.is_empty() {
            return Ok(());
        }
        let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let d = self.bridge_dir(bridge);
        let hosts = d.join("hosts");
        std::fs::create_dir_all(&hosts)
            .map_err(|e| Error::Io(format!("creating {}", hosts.display()), e))?;
        let mut body = String::new();
        for p in ports {
            body.push_str(&format!("{},{}\n", p.mac, p.address));
        }
        let file = hosts.join(server);
        let tmp = hosts.join(format!(".{server}.tmp"));
        std::fs::write(&tmp, body)
            .and_then(|_| std::fs::rename(&tmp, &file))
            .map_err(|e| Error::Io(format!("writing {}", file.display()), e))?;
        self.write_subnet(bridge, &Subnet::of(ports[0]))?;
        self.restart(bridge)
    }

    fn write_subnet(&self, bridge: &str, sub: &Subnet) -> Result<(), Error> {
        let file = self.bridge_dir(bridge).join("network");
        std::fs::write(&file, sub.to_file())
            .map_err(|e| Error::Io(format!("writing {}", file.display()), e))
    }

    /// Gives the host `mac` on `bridge` the address `address` (its port's address changed)
    /// and restarts the bridge's dnsmasq if that changed anything.
    pub fn set_address(&self, bridge: &str, mac: &str, address: Ipv4Addr) -> Result<bool, Error> {
        let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let Ok(rd) = std::fs::read_dir(self.bridge_dir(bridge).join("hosts")) else {
            return Ok(false);
        };
        let mut changed = false;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let new: String = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| match l.trim().split_once(',') {
                    Some((m, _)) if m.eq_ignore_ascii_case(mac) => format!("{m},{address}\n"),
                    _ => format!("{}\n", l.trim()),
                })
                .collect();
            if new != text {
                let tmp = e.path().with_file_name(format!(".{name}.tmp"));
                std::fs::write(&tmp, new)
                    .and_then(|_| std::fs::rename(&tmp, e.path()))
                    .map_err(|err| Error::Io(format!("writing {}", e.path().display()), err))?;
                changed = true;
            }
        }
        if changed {
            self.restart(bridge)?;
        }
        Ok(changed)
    }

    /// The subnet recorded for `bridge`, if it serves any host.
    pub fn subnet(&self, bridge: &str) -> Option<Subnet> {
        Subnet::parse(&std::fs::read_to_string(self.bridge_dir(bridge).join("network")).ok()?)
    }

    /// Makes the dnsmasq of `bridge`, if it serves hosts, offer `sub` (a subnet changed):
    /// restarted with the new options, stopped when DHCP is off, started when it is on
    /// again. A bridge with no hosts is left alone. Returns whether anything changed.
    pub fn set_subnet(&self, bridge: &str, sub: &Subnet) -> Result<bool, Error> {
        let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if self.subnet(bridge).as_ref() == Some(sub)
            || !self.bridge_dir(bridge).join("hosts").is_dir()
        {
            return Ok(false);
        }
        self.write_subnet(bridge, sub)?;
        self.restart(bridge)?;
        Ok(true)
    }

    /// The `--dhcp-host` arguments of every server recorded on `bridge`.
    fn host_args(&self, bridge: &str) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.bridge_dir(bridge).join("hosts")) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = rd
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .collect();
        files.sort();
        files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .flat_map(|t| {
                t.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| format!("--dhcp-host={}", l.trim()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Stops the bridge's dnsmasq if it runs and starts it again with the recorded hosts.
    fn restart(&self, bridge: &str) -> Result<(), Error> {
        let d = self.bridge_dir(bridge);
        let Some(sub) = self.subnet(bridge) else {
            // Started by an earlier onebox, which read its hosts from the directory itself.
            if let Some(pid) = self.running(bridge) {
                signal(pid, nix::sys::signal::Signal::SIGHUP);
            }
            return Ok(());
        };
        if let Some(pid) = self.running(bridge) {
            stop(pid, &d);
        }
        if !sub.enabled {
            tracing::info!(bridge, "DHCP is off on the subnet: no dnsmasq");
            return Ok(());
        }
        self.start(bridge, &sub)
    }

    fn start(&self, bridge: &str, sub: &Subnet) -> Result<(), Error> {
        let d = self.bridge_dir(bridge);
        let cidr = &sub.cidr;
        let (net, mask) =
            network_and_mask(cidr).ok_or_else(|| Error::Invalid(format!("bad CIDR {cidr}")))?;
        let (user, group) = unprivileged_user();
        let pidfile = d.join("pid");
        let _ = std::fs::remove_file(&pidfile);
        let out = Command::new(&self.dnsmasq)
            .arg("--conf-file=/dev/null")
            .arg("--port=0")
            .arg("--bind-interfaces")
            .arg(format!("--interface={bridge}"))
            .arg("--except-interface=lo")
            .arg(format!("--dhcp-range={net},static,{mask},1h"))
            .args(self.host_args(bridge))
            .arg(format!("--dhcp-leasefile={}", d.join("leases").display()))
            .arg(format!("--pid-file={}", pidfile.display()))
            .args(sub.option_args())
            .arg("--dhcp-authoritative")
            .arg("--no-ping")
            .arg("--no-resolv")
            .arg("--no-hosts")
            .arg(format!("--user={user}"))
            .arg(format!("--group={group}"))
            .output()
            .map_err(|e| Error::Io("starting dnsmasq".into(), e))?;
        if !out.status.success() {
            return Err(Error::Tool(
                "dnsmasq".into(),
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        // dnsmasq writes its pid file before the parent exits.
        match read_pid(&pidfile) {
            Some(pid) => {
                tracing::info!(bridge, pid, "dnsmasq started");
                Ok(())
            }
            None => Err(Error::Tool("dnsmasq".into(), "wrote no pid file".into())),
        }
    }

    /// Forgets the host `mac` of `server` on `bridge` (one port unplugged). A bridge left
    /// with no hosts has its dnsmasq stopped and true is returned (the caller may remove
    /// it); otherwise its dnsmasq restarts without the host.
    pub fn remove_host(&self, bridge: &str, server: &str, mac: &str) -> Result<bool, Error> {
        let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let d = self.bridge_dir(bridge);
        let hosts = d.join("hosts");
        let file = hosts.join(server);
        let Ok(text) = std::fs::read_to_string(&file) else {
            return Ok(false);
        };
        let keep: String = text
            .lines()
            .filter(|l| {
                let m = l.split(',').next().unwrap_or("").trim();
                !l.trim().is_empty() && !m.eq_ignore_ascii_case(mac)
            })
            .map(|l| format!("{}\n", l.trim()))
            .collect();
        if keep == text {
            return Ok(false);
        }
        if keep.is_empty() {
            crate::disk::remove_file(&file)?;
        } else {
            let tmp = hosts.join(format!(".{server}.tmp"));
            std::fs::write(&tmp, keep)
                .and_then(|_| std::fs::rename(&tmp, &file))
                .map_err(|e| Error::Io(format!("writing {}", file.display()), e))?;
        }
        let empty = std::fs::read_dir(&hosts)
            .map(|mut r| r.next().is_none())
            .unwrap_or(true);
        if !empty {
            self.restart(bridge)?;
            return Ok(false);
        }
        if let Some(pid) = read_pid(&d.join("pid")).filter(|p| is_ours(*p, &d)) {
            stop(pid, &d);
        }
        let _ = std::fs::remove_dir_all(&d);
        Ok(true)
    }

    /// The hosts (`mac,address` lines) recorded for `server` on `bridge`.
    pub fn hosts_of(&self, bridge: &str, server: &str) -> Vec<String> {
        std::fs::read_to_string(self.bridge_dir(bridge).join("hosts").join(server))
            .map(|t| t.lines().map(|l| l.trim().to_owned()).collect())
            .unwrap_or_default()
    }

    /// Forgets a server's hosts on every bridge. A bridge left with no hosts has its dnsmasq
    /// stopped; the names of those bridges are returned (the caller may remove them).
    pub fn remove_server(&self, server: &str) -> Result<Vec<String>, Error> {
        let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut emptied = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(emptied);
        };
        for e in entries.flatten() {
            let bridge = e.file_name().to_string_lossy().into_owned();
            let hosts = e.path().join("hosts");
            let file = hosts.join(server);
            if !file.exists() {
                continue;
            }
            crate::disk::remove_file(&file)?;
            let empty = std::fs::read_dir(&hosts)
                .map(|mut r| r.next().is_none())
                .unwrap_or(true);
            let pid = read_pid(&e.path().join("pid")).filter(|p| is_ours(*p, &e.path()));
            if empty {
                if let Some(pid) = pid {
                    stop(pid, &e.path());
                }
                let _ = std::fs::remove_dir_all(e.path());
                emptied.push(bridge);
            } else {
                self.restart(&bridge)?;
            }
        }
        Ok(emptied)
    }

    /// Stops every dnsmasq onebox started (each verified by its command line before it is
    /// signalled), keeping their hosts files; the bridges they served are returned.
    pub fn stop_all(&self) -> Vec<String> {
        let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut stopped = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return stopped;
        };
        for e in entries.flatten() {
            let d = e.path();
            let Some(pid) = read_pid(&d.join("pid")).filter(|p| is_ours(*p, &d)) else {
                continue;
            };
            signal(pid, nix::sys::signal::Signal::SIGTERM);
            for _ in 0..100 {
                if !is_ours(pid, &d) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            if is_ours(pid, &d) {
                signal(pid, nix::sys::signal::Signal::SIGKILL);
            }
            stopped.push(e.file_name().to_string_lossy().into_owned());
        }
        stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bridge of one test's own, deleted when dropped.
    struct Dummy(String);

    impl Drop for Dummy {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["link", "del", &self.0]).status();
        }
    }

    fn ip(args: &[&str]) -> bool {
        Command::new("ip")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    }

    #[test]
    fn attack_teardown_stops_the_dnsmasq_onebox_left_running() {
        let root = nix::unistd::geteuid().is_root();
        let have = Command::new("dnsmasq").arg("--version").output().is_ok();
        if !root || !have {
            assert!(
                std::env::var("ONEBOX_REQUIRE_BACKENDS").as_deref() != Ok("1"),
                "needs root and dnsmasq"
            );
            eprintln!("skipped: needs root and dnsmasq");
            return;
        }
        let n = std::process::id() % 200 + 20;
        let name = format!("obt{:x}", std::process::id());
        let _dummy = Dummy(name.clone());
        assert!(ip(&["link", "add", &name, "type", "bridge"]));
        assert!(ip(&[
            "addr",
            "add",
            &format!("10.254.{n}.1/24"),
            "dev",
            &name
        ]));
        assert!(ip(&["link", "set", &name, "up"]));
        let dir = tempfile::tempdir().expect("tmp");
        let dhcp = Dhcp::new("dnsmasq".into(), dir.path().to_owned());
        let port = Port {
            network_id: "net".into(),
            network_name: "net".into(),
            cidr: format!("10.254.{n}.0/24"),
            gateway: format!("10.254.{n}.1"),
            address: format!("10.254.{n}.10"),
            mac: "fa:16:3e:00:00:10".into(),
            ..Default::default()
        };
        dhcp.add_host(&name, "server-1", &[&port])
            .expect("dnsmasq starts");
        let pid = dhcp.running(&name).expect("dnsmasq runs");
        let stopped = dhcp.stop_all();
        // A zombie (dnsmasq daemonised; its reaper may be slow) runs nothing.
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
            !st.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        });
        if alive {
            signal(pid, nix::sys::signal::Signal::SIGKILL);
        }
        assert_eq!(stopped, vec![name.clone()]);
        assert!(!alive, "dnsmasq {pid} still runs");
        assert!(dhcp.running(&name).is_none());
        // Its hosts stay, for a reinstalled onebox.
        assert!(dir.path().join(&name).join("hosts/server-1").exists());
    }

    #[test]
    fn a_subnet_round_trips_through_its_file_and_becomes_dnsmasq_options() {
        let port = Port {
            cidr: "10.9.0.0/24".into(),
            gateway: "10.9.0.1".into(),
            dns_nameservers: vec!["10.9.0.53".into(), "not-an-ip,dhcp-script=/x".into()],
            host_routes: vec![
                ("192.168.50.0/24".into(), "10.9.0.254".into()),
                ("10.0.0.0/8,1.2.3.4".into(), "10.9.0.1".into()),
            ],
            ..Default::default()
        };
        let sub = Subnet::of(&port);
        assert_eq!(sub.dns, vec![Ipv4Addr::new(10, 9, 0, 53)]);
        assert_eq!(sub.routes.len(), 1, "only well-formed routes reach dnsmasq");
        assert_eq!(Subnet::parse(&sub.to_file()), Some(sub.clone()));
        assert_eq!(
            sub.option_args(),
            vec![
                "--dhcp-option=3,10.9.0.1".to_string(),
                "--dhcp-option=6,10.9.0.53".into(),
                "--dhcp-option=121,169.254.169.254/32,10.9.0.1,192.168.50.0/24,10.9.0.254,0.0.0.0/0,10.9.0.1".into(),
            ]
        );
        let off = Subnet {
            enabled: false,
            ..sub
        };
        assert!(!Subnet::parse(&off.to_file()).expect("parses").enabled);
        // The file an earlier onebox wrote (one line) still reads.
        let old = Subnet::parse("10.1.0.0/16 10.1.0.1\n").expect("parses");
        assert!(old.enabled && old.dns.is_empty() && old.routes.is_empty());
    }

    #[test]
    fn ranges() {
        let (n, m) = network_and_mask("10.1.0.0/16").expect("cidr");
        assert_eq!(n.to_string(), "10.1.0.0");
        assert_eq!(m.to_string(), "255.255.0.0");
        assert!(network_and_mask("10.1.0.0").is_none());
    }
}
