//! DHCP for VMs against the real kernel and dnsmasq, as root, inside network namespaces this
//! test makes: dnsmasq runs as an unprivileged user, still hands out the recorded addresses
//! and records its leases, and picks up added and removed hosts.

use std::os::fd::AsFd;
use std::process::{Child, Command};
use std::time::Duration;

use driver::Port;
use driver_libvirt::dhcp::Dhcp;

fn required() -> bool {
    std::env::var("ONEBOX_REQUIRE_BACKENDS").is_ok_and(|v| v == "1")
}

/// A network namespace held by a `sleep`; killing it ends the namespace and its links.
struct Netns(Child);

impl Netns {
    fn new() -> Self {
        let child = Command::new("unshare")
            .args(["--net", "sleep", "120"])
            .spawn()
            .expect("unshare");
        let pid = child.id();
        // Owned from here: dropped (killed and waited for) on every path.
        let ns = Self(child);
        let own = std::fs::read_link("/proc/self/ns/net").ok();
        for _ in 0..100 {
            let its = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
            if its.is_some() && its != own {
                return ns;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("unshare did not enter a new namespace");
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }

    fn sh(&self, args: &[&str]) -> std::process::Output {
        Command::new("nsenter")
            .args(["-t", &self.pid(), "-n"])
            .args(args)
            .output()
            .expect("nsenter")
    }

    fn ok(&self, args: &[&str]) {
        let o = self.sh(args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Runs `f` on a thread in this namespace (processes it starts are in it too).
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = std::fs::File::open(format!("/proc/{}/ns/net", self.pid())).expect("ns");
        std::thread::scope(|s| {
            s.spawn(move || {
                nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("setns");
                f()
            })
            .join()
            .expect("namespace thread")
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stops the dnsmasq this test started (by its pid file), even when the test fails.
struct StopDnsmasq(std::path::PathBuf);

impl Drop for StopDnsmasq {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn port(mac: &str, address: &str) -> Port {
    Port {
        network_id: "d0d0d0d0-0000-4000-8000-0000000000d1".into(),
        network_name: "private".into(),
        cidr: "10.252.0.0/16".into(),
        gateway: "10.252.0.1".into(),
        address: address.into(),
        mac: mac.into(),
        ..Default::default()
    }
}

fn uid_of(pid: &str) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .expect("uid")
}

/// Whether the guest gets a lease (busybox's udhcpc) within a few seconds.
fn leased(guest: &Netns) -> bool {
    guest
        .sh(&[
            "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-t", "4", "-T", "1",
        ])
        .status
        .success()
}

/// A bridge in an "edge" namespace with a dnsmasq directory, and a guest namespace whose
/// `eth0` (MAC `mac`) is plugged into it through the veth `host_if`. `None` when the test
/// cannot run here (no root or no dnsmasq).
struct Lab {
    data: tempfile::TempDir,
    dir: std::path::PathBuf,
    dhcp: Dhcp,
    edge: Netns,
    guest: Netns,
    bridge: String,
    _stop: StopDnsmasq,
}

impl Lab {
    fn new(net: &hostnet::NetworkDef, host_if: &str, mac: &str) -> Option<Self> {
        let root = std::fs::read_to_string("/proc/self/status")
            .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")));
        let have = Command::new("dnsmasq").arg("--version").output().is_ok();
        if !root || !have {
            assert!(!required(), "this test needs root and dnsmasq");
            eprintln!("skipped: needs root and dnsmasq");
            return None;
        }
        let data = tempfile::tempdir().expect("tempdir");
        let dir = data.path().join("dhcp");
        let dhcp = Dhcp::new("dnsmasq".into(), dir.clone());
        let (edge, guest) = (Netns::new(), Netns::new());
        let bridge = edge.run(|| hostnet::ensure_bridge(net).expect("bridge"));
        let stop = StopDnsmasq(dir.join(&bridge).join("pid"));
        edge.ok(&[
            "ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0",
        ]);
        edge.ok(&["ip", "link", "set", host_if, "master", &bridge, "up"]);
        edge.ok(&["ip", "link", "set", "eth0", "netns", &guest.pid()]);
        guest.ok(&["ip", "link", "set", "eth0", "address", mac, "up"]);
        Some(Self {
            data,
            dir,
            dhcp,
            edge,
            guest,
            bridge,
            _stop: stop,
        })
    }
}

#[test]
fn attack_dnsmasq_runs_unprivileged_and_still_serves_leases() {
    let net = hostnet::NetworkDef {
        id: "d0d0d0d0-0000-4000-8000-0000000000d1".into(),
        cidr: "10.252.0.0/16".into(),
        gateway: "10.252.0.1".into(),
        forwarding: false,
    };
    let Some(lab) = Lab::new(&net, "obd1", "fa:16:3e:00:0d:01") else {
        return;
    };
    let Lab {
        data: _,
        dir,
        dhcp,
        edge,
        guest,
        bridge,
        _stop: _stop_dnsmasq,
    } = lab;

    // Another server first: the guest's MAC is not known, no lease.
    let other = port("fa:16:3e:00:0d:99", "10.252.0.99");
    edge.run(|| dhcp.add_host(&bridge, "s-other", &[&other]).expect("add"));
    let pid = dhcp.running(&bridge).expect("dnsmasq runs").to_string();
    assert_ne!(uid_of(&pid), 0, "dnsmasq dropped root");
    assert!(!leased(&guest), "an unknown MAC gets nothing");

    // The guest's server added: dnsmasq (restarted, still unprivileged) hands out its address.
    let mine = port("fa:16:3e:00:0d:01", "10.252.0.10");
    edge.run(|| dhcp.add_host(&bridge, "s-mine", &[&mine]).expect("add"));
    let pid = dhcp.running(&bridge).expect("dnsmasq runs").to_string();
    assert_ne!(uid_of(&pid), 0, "dnsmasq dropped root");
    assert!(leased(&guest), "the recorded MAC gets its lease");
    let leases = std::fs::read_to_string(dir.join(&bridge).join("leases")).expect("leases");
    assert!(
        leases.contains("fa:16:3e:00:0d:01 10.252.0.10"),
        "the lease is recorded: {leases}"
    );

    // The server removed: no more lease for it; the last one removed stops dnsmasq.
    edge.run(|| dhcp.remove_server("s-mine").expect("remove"));
    assert!(dhcp.running(&bridge).is_some());
    assert!(!leased(&guest), "a removed host gets nothing");
    edge.run(|| dhcp.remove_server("s-other").expect("remove"));
    assert!(dhcp.running(&bridge).is_none(), "dnsmasq stopped");
    assert!(!dir.join(&bridge).exists());
}

/// What the guest's DHCP client was told (busybox udhcpc's script environment).
fn offered(guest: &Netns, dir: &std::path::Path) -> Option<String> {
    let out = dir.join("offer");
    let _ = std::fs::remove_file(&out);
    let script = dir.join("udhcpc.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = bound ] && echo \"ip=$ip router=$router dns=$dns staticroutes=$staticroutes\" > {}\nexit 0\n",
            out.display()
        ),
    )
    .expect("script");
    let _ = Command::new("chmod").arg("755").arg(&script).status();
    let ok = guest
        .sh(&[
            "busybox",
            "udhcpc",
            "-i",
            "eth0",
            "-n",
            "-q",
            "-t",
            "4",
            "-T",
            "1",
            "-O",
            "staticroutes",
            "-s",
            &script.to_string_lossy(),
        ])
        .status
        .success();
    ok.then(|| std::fs::read_to_string(&out).unwrap_or_default())
}

#[test]
fn a_subnets_dns_servers_and_host_routes_reach_the_guest_and_dhcp_off_stops_answering() {
    let net = hostnet::NetworkDef {
        id: "d0d0d0d0-0000-4000-8000-0000000000d2".into(),
        cidr: "10.251.0.0/24".into(),
        gateway: "10.251.0.1".into(),
        forwarding: false,
    };
    let Some(lab) = Lab::new(&net, "obd2", "fa:16:3e:00:0e:01") else {
        return;
    };
    let Lab {
        data,
        dir: _,
        dhcp,
        edge,
        guest,
        bridge,
        _stop: _stop_dnsmasq,
    } = lab;
    let mut mine = Port {
        network_id: net.id.clone(),
        cidr: net.cidr.clone(),
        gateway: net.gateway.clone(),
        address: "10.251.0.10".into(),
        mac: "fa:16:3e:00:0e:01".into(),
        dns_nameservers: vec!["10.251.0.53".into(), "10.251.0.54".into()],
        host_routes: vec![("192.168.77.0/24".into(), "10.251.0.254".into())],
        ..Default::default()
    };
    edge.run(|| dhcp.add_host(&bridge, "s-mine", &[&mine]).expect("add"));
    let got = offered(&guest, data.path()).expect("a lease");
    assert!(got.contains("ip=10.251.0.10"), "{got}");
    assert!(got.contains("router=10.251.0.1"), "{got}");
    assert!(got.contains("dns=10.251.0.53 10.251.0.54"), "{got}");
    assert!(
        got.contains("192.168.77.0/24 10.251.0.254"),
        "the host route is offered: {got}"
    );
    assert!(
        got.contains("0.0.0.0/0 10.251.0.1"),
        "the default route is among the classless routes: {got}"
    );

    // The subnet changes: the running dnsmasq offers the new options.
    mine.dns_nameservers = vec!["10.251.0.99".into()];
    mine.host_routes.clear();
    let sub = driver_libvirt::dhcp::Subnet::of(&mine);
    assert!(edge.run(|| dhcp.set_subnet(&bridge, &sub).expect("set")));
    let got = offered(&guest, data.path()).expect("a lease");
    assert!(got.contains("dns=10.251.0.99"), "{got}");
    assert!(!got.contains("192.168.77.0"), "{got}");

    // DHCP off: nothing answers, the hosts stay; on again: the lease comes back.
    mine.dhcp = false;
    let off = driver_libvirt::dhcp::Subnet::of(&mine);
    assert!(edge.run(|| dhcp.set_subnet(&bridge, &off).expect("set")));
    assert!(dhcp.running(&bridge).is_none(), "no dnsmasq without DHCP");
    assert!(
        offered(&guest, data.path()).is_none(),
        "no lease without DHCP"
    );
    mine.dhcp = true;
    let on = driver_libvirt::dhcp::Subnet::of(&mine);
    assert!(edge.run(|| dhcp.set_subnet(&bridge, &on).expect("set")));
    assert!(offered(&guest, data.path()).is_some(), "DHCP is back");
    edge.run(|| dhcp.remove_server("s-mine").expect("remove"));
    assert!(dhcp.running(&bridge).is_none(), "dnsmasq stopped");
}
