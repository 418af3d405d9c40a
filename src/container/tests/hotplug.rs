//! Interfaces plugged into and unplugged from a container against the real kernel, as root:
//! a port on a second network shows up inside as eth1 with its address, reaches its gateway
//! and serves on that address through the second bridge, survives a reboot, and after the
//! unplug nothing is left: no veth, no pin, no rule, no bridge. A stopped container gets the
//! change at its next start. Skipped with a message without root, unless
//! ONEBOX_REQUIRE_BACKENDS=1.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Env, SERIAL, wait_http, wait_until};
use driver::{ComputeDriver, InstanceSpec, Port, RebootKind};

fn busybox() -> &'static str {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox")
}

/// Runs `args` in the network namespace of process `pid`.
fn in_netns(pid: i32, args: &[&str]) -> (bool, String) {
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", busybox()])
        .args(args)
        .output()
        .expect("nsenter");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn pins(data: &Path) -> Vec<(String, String)> {
    std::fs::read_dir(data.join("hostnet/ports"))
        .map(|r| {
            r.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read_to_string(e.path()).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn nft_chain(ifname: &str) -> Option<String> {
    let out = Command::new("nft")
        .args([
            "list",
            "chain",
            "bridge",
            "onebox",
            &format!("port_{ifname}"),
        ])
        .output()
        .expect("nft");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn exists(ifname: &str) -> bool {
    Path::new("/sys/class/net").join(ifname).exists()
}

/// eth1's IPv4 address inside the container, as `ip -4 -o addr` prints it.
fn eth1(env: &Env, spec: &InstanceSpec) -> Option<String> {
    let pid = env.d().init_pid(&spec.id).expect("init runs");
    let (ok, out) = in_netns(pid, &["ip", "-4", "-o", "addr", "show", "dev", "eth1"]);
    ok.then_some(out)
}

/// Removes the second network's bridge even when the test fails.
struct Bridge(String);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = hostnet::remove_bridge(&self.0);
    }
}

#[test]
fn attack_an_interface_plugged_into_a_container_is_pinned_and_leaves_nothing() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::can_run() {
        return;
    }
    let mut env = Env::new("plug");
    let spec = env.spec("plug-1");
    let id = spec.id.clone();
    let n = env.subnet;
    let extra = Port {
        network_id: format!(
            "c7b2{:04x}-0001-4000-8000-000000000000",
            std::process::id() & 0xffff
        ),
        network_name: "second".into(),
        cidr: format!("10.252.{n}.0/24"),
        gateway: format!("10.252.{n}.1"),
        address: format!("10.252.{n}.20"),
        mac: format!("fa:16:3e:01:{n:02x}:20"),
        port_id: "p-extra".into(),
        ..Default::default()
    };
    let br2 = hostnet::bridge_name(&extra.network_id);
    let _bridge = Bridge(extra.network_id.clone());
    let mut with = spec.clone();
    with.ports.push(extra.clone());
    let data = env.cfg.data_dir.clone();
    let hex: String = id
        .as_str()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(10)
        .collect();
    let (veth, peer) = (format!("obv{hex}1"), format!("obp{hex}1"));

    env.d().spawn(&spec).expect("spawn");
    env.observe(&id);
    assert!(wait_http(&spec.ports[0].address, Duration::from_secs(10)).is_some());

    // 1. Running: pinned with the port's MAC and address, the veth on the second bridge,
    //    eth1 inside with the address, the gateway reachable, the service on the address.
    env.d().attach_interface(&with, &extra).expect("attach");
    let pin: Vec<_> = pins(&data)
        .into_iter()
        .filter(|(i, _)| *i == veth)
        .collect();
    assert_eq!(pin.len(), 1, "{:?}", pins(&data));
    assert!(
        pin[0].1.contains(&format!("mac={}", extra.mac))
            && pin[0].1.contains(&format!("address={}", extra.address)),
        "{}",
        pin[0].1
    );
    let chain = nft_chain(&veth).expect("the veth's chain");
    assert!(
        chain.contains(&format!("ether saddr != {} drop", extra.mac))
            && chain.contains(&format!("ip saddr != {} drop", extra.address)),
        "{chain}"
    );
    assert!(exists(&veth) && !exists(&peer));
    assert!(Path::new(&format!("/sys/class/net/{br2}/brif/{veth}")).exists());
    let addr = eth1(&env, &spec).expect("eth1 inside");
    assert!(addr.contains(&format!("{}/24", extra.address)), "{addr}");
    let pid = env.d().init_pid(&id).expect("runs");
    let (ok, out) = in_netns(pid, &["ping", "-c", "1", "-W", "3", &extra.gateway]);
    assert!(ok, "the second gateway answers from inside: {out}");
    assert!(wait_http(&extra.address, Duration::from_secs(5)).is_some());
    let map = Command::new("nft")
        .args(["list", "map", "bridge", "onebox", "ports"])
        .output()
        .expect("nft");
    assert!(
        String::from_utf8_lossy(&map.stdout).contains(&format!("jump port_{veth}")),
        "the veth is in the port map"
    );
    // Spoofing on the new interface gets nothing through: another address, another MAC.
    let spoof = format!("10.252.{n}.21");
    let ping_from = |src: &str| {
        in_netns(
            pid,
            &["ping", "-c", "1", "-W", "2", "-I", src, &extra.gateway],
        )
        .0
    };
    assert!(
        in_netns(
            pid,
            &["ip", "addr", "add", &format!("{spoof}/24"), "dev", "eth1"]
        )
        .0
    );
    assert!(!ping_from(&spoof), "a spoofed address reaches the gateway");
    assert!(
        in_netns(
            pid,
            &["ip", "addr", "del", &format!("{spoof}/24"), "dev", "eth1"]
        )
        .0
    );
    assert!(
        in_netns(
            pid,
            &["ip", "link", "set", "eth1", "address", "fa:16:3e:ff:ff:01"]
        )
        .0
    );
    assert!(
        !ping_from(&extra.address),
        "a spoofed MAC reaches the gateway"
    );
    assert!(in_netns(pid, &["ip", "link", "set", "eth1", "address", &extra.mac]).0);
    assert!(
        ping_from(&extra.address),
        "the port's own MAC and address pass"
    );
    // A retry changes nothing.
    env.d()
        .attach_interface(&with, &extra)
        .expect("attach again");
    assert_eq!(pins(&data).len(), 2);

    // 2. Recorded: a reboot makes it again.
    env.d().reboot(&id, RebootKind::Soft).expect("reboot");
    assert!(wait_http(&extra.address, Duration::from_secs(10)).is_some());
    assert!(eth1(&env, &spec).is_some_and(|a| a.contains(&extra.address)));

    // A new driver (onebox killed and started again) finds the interface recorded.
    drop(env.driver.take());
    env.driver = Some(container::ContainerDriver::new(env.cfg.clone()).expect("a new driver"));
    assert!(eth1(&env, &spec).is_some(), "eth1 kept across a new driver");

    // 3. Unplugged: nothing of the port is left that another guest could use the address
    //    through.
    env.d().detach_interface(&spec, &extra).expect("detach");
    assert!(eth1(&env, &spec).is_none(), "eth1 gone inside");
    assert!(!exists(&veth) && !exists(&peer), "veth left");
    assert!(
        !pins(&data)
            .iter()
            .any(|(i, r)| *i == veth || r.contains(&extra.mac) || r.contains(&extra.address)),
        "pin left: {:?}",
        pins(&data)
    );
    assert_eq!(nft_chain(&veth), None, "rules of {veth} left");
    assert!(!exists(&br2), "the emptied network's bridge left");
    assert!(wait_http(&spec.ports[0].address, Duration::from_secs(5)).is_some());
    env.d()
        .detach_interface(&spec, &extra)
        .expect("detach again");

    // 4. Stopped: only the record changes; the next start has the interface.
    env.d().power_off(&id).expect("stop");
    env.d()
        .attach_interface(&with, &extra)
        .expect("attach while stopped");
    assert!(!exists(&veth), "no veth while stopped");
    env.d().power_on(&id).expect("start");
    assert!(wait_until(Duration::from_secs(10), || eth1(&env, &spec)
        .is_some_and(|a| a.contains(&extra.address))));
    env.d().power_off(&id).expect("stop");
    env.d()
        .detach_interface(&spec, &extra)
        .expect("detach while stopped");
    assert!(!pins(&data).iter().any(|(i, _)| *i == veth), "pin left");
    env.d().power_on(&id).expect("start");
    assert!(wait_http(&spec.ports[0].address, Duration::from_secs(10)).is_some());
    assert!(eth1(&env, &spec).is_none(), "the next start has no eth1");
    assert!(!exists(&veth));

    env.teardown_and_check();
    assert!(pins(&data).is_empty(), "pins left after destroy");
}
