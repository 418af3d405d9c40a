//! Against the real kernel, as root: a bridge with its gateway, a veth into a new network
//! namespace configured from outside, and the host reaching the address inside.

use std::process::{Child, Command};

use hostnet::{InterfaceConfig, NetworkDef};

mod common;
use common::{required, uid};

fn root() -> bool {
    uid() == 0
}

struct Cleanup {
    net: String,
    veth: String,
    child: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = hostnet::delete_link(&self.veth);
        let _ = hostnet::remove_bridge(&self.net);
    }
}

#[test]
fn a_namespace_on_a_bridge_is_reachable_from_the_host() {
    if !root() {
        assert!(!required(), "this test needs root");
        eprintln!("skipped: needs root");
        return;
    }
    let n = std::process::id() % 200 + 20;
    let net = NetworkDef {
        id: format!(
            "7e57{:04x}-0000-4000-8000-000000000000",
            std::process::id() & 0xffff
        ),
        cidr: format!("10.251.{n}.0/24"),
        gateway: format!("10.251.{n}.1"),
        forwarding: false,
    };
    let veth = format!("obt{:x}", std::process::id());
    let mut guard = Cleanup {
        net: net.id.clone(),
        veth: veth.clone(),
        child: None,
    };
    let bridge = hostnet::ensure_bridge(&net).expect("bridge");
    // Idempotent.
    assert_eq!(hostnet::ensure_bridge(&net).expect("again"), bridge);
    assert!(hostnet::link_exists(&bridge).expect("exists"));
    let fwd = std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{bridge}/forwarding"))
        .expect("sysctl");
    assert_eq!(fwd.trim(), "0", "the bridge does not route off the box");

    let child = Command::new("unshare")
        .args(["--net", "sleep", "60"])
        .spawn()
        .expect("unshare");
    let pid = child.id();
    guard.child = Some(child);
    // Let unshare enter the namespace before the link moves.
    for _ in 0..50 {
        let own = std::fs::read_link("/proc/self/ns/net").ok();
        let its = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
        if its.is_some() && its != own {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let peer = format!("{veth}p");
    hostnet::create_veth(&veth, &peer, &bridge).expect("veth");
    hostnet::move_to_netns(&peer, pid).expect("move");
    assert!(!hostnet::link_exists(&peer).expect("gone from the host"));
    let addr = format!("10.251.{n}.10");
    hostnet::configure_in_netns(
        pid,
        &InterfaceConfig {
            current_name: peer.clone(),
            name: "eth0".into(),
            mac: "fa:16:3e:12:34:56".into(),
            address: addr.parse().expect("addr"),
            prefix: 24,
            gateway: Some(net.gateway.parse().expect("gw")),
            routes: hostnet::parse_routes(&[("192.168.77.0/24".into(), format!("10.251.{n}.254"))]),
        },
    )
    .expect("configure");
    let inside = Command::new("nsenter")
        .args([
            "-t",
            &pid.to_string(),
            "-n",
            "ip",
            "-4",
            "-o",
            "addr",
            "show",
            "eth0",
        ])
        .output()
        .expect("nsenter");
    let text = String::from_utf8_lossy(&inside.stdout);
    assert!(text.contains(&format!("{addr}/24")), "{text}");
    let routes = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "ip", "-4", "route"])
        .output()
        .expect("nsenter");
    let routes = String::from_utf8_lossy(&routes.stdout);
    assert!(
        routes.contains(&format!("192.168.77.0/24 via 10.251.{n}.254 dev eth0")),
        "the subnet's host route: {routes}"
    );
    assert!(routes.contains("default via"), "{routes}");
    let link = Command::new("nsenter")
        .args([
            "-t",
            &pid.to_string(),
            "-n",
            "ip",
            "-o",
            "link",
            "show",
            "eth0",
        ])
        .output()
        .expect("nsenter");
    assert!(
        String::from_utf8_lossy(&link.stdout).contains("fa:16:3e:12:34:56"),
        "the MAC is the port's"
    );
    let ping = Command::new("busybox")
        .args(["ping", "-c", "1", "-W", "3", &addr])
        .output()
        .expect("ping");
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );
    drop(guard);
    assert!(!hostnet::link_exists(&bridge).expect("bridge gone"));
}
