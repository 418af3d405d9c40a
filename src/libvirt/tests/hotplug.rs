//! Interfaces plugged into and unplugged from a running guest against real libvirt and QEMU:
//! the guest sees the new NIC and gets its port's address from the new network's dnsmasq;
//! the port is pinned (MAC and address) before the tap exists; after the unplug the guest
//! has lost the NIC and no pin, DHCP host or bridge of the port is left.
//!
//! Needs root and a libvirtd (`scripts/libvirtd.sh start`); skips otherwise, or fails when
//! `ONEBOX_REQUIRE_BACKENDS` is set.

mod common;

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use driver::{ComputeDriver, Port};
use driver_libvirt::{LibvirtConfig, LibvirtDriver};

const BOOT: Duration = Duration::from_secs(120);

/// Reports the guest's ethernet interfaces on the console whenever they change, and takes a
/// DHCP lease on each new one.
const WATCH_NICS: &str = r#"#!/bin/sh
(
seen=""
while :; do
    now=$(ls /sys/class/net | grep '^eth' | tr '\n' ' ')
    if [ "$now" != "$seen" ]; then
        echo "onebox-hotplug: nics=$now."
        for n in $now; do
            case " $seen " in
            *" $n "*) ;;
            *)
                if [ "$n" != eth0 ]; then
                    ip link set "$n" up
                    udhcpc -i "$n" -s /etc/onebox/udhcpc -t 10 -T 1 -n -q >/dev/null 2>&1
                    echo "onebox-hotplug: $n ip=$(ip -4 -o addr show "$n" | awk '{print $4}')"
                fi
                ;;
            esac
        done
        seen="$now"
    fi
    sleep 1
done
) </dev/null >/dev/console 2>&1 &
"#;

fn count(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

fn wait_count(log: &Path, needle: &str, n: usize, timeout: Duration) {
    let end = std::time::Instant::now() + timeout;
    while count(log, needle) < n {
        assert!(
            std::time::Instant::now() < end,
            "{needle:?} not seen {n} times; console:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn virsh(args: &[&str]) -> String {
    let out = std::process::Command::new("virsh")
        .args(["-q", "-c", "qemu:///system"])
        .args(args)
        .output()
        .expect("virsh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn nft_chain(tap: &str) -> Option<String> {
    let out = std::process::Command::new("nft")
        .args(["list", "chain", "bridge", "onebox", &format!("port_{tap}")])
        .output()
        .expect("nft");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The recorded pins of `data`: (interface, record text).
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

/// Destroys the guest even when the test fails, and removes the bridges it made.
struct Cleanup<'a>(&'a LibvirtDriver, model::compute::ServerId, Vec<String>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.destroy(&self.1);
        for b in &self.2 {
            let _ = hostnet::delete_link(b);
        }
    }
}

#[test]
fn attack_an_interface_plugged_into_a_running_guest_is_pinned_and_leaves_nothing() {
    if !common::available() {
        return;
    }
    let data = tempfile::Builder::new()
        .prefix("onebox-hotplug-")
        .tempdir()
        .expect("tempdir");
    let mut cfg = LibvirtConfig::new(data.path().to_path_buf());
    cfg.shutdown_timeout = Duration::from_secs(10);
    let d = LibvirtDriver::connect(cfg).expect("connect to libvirt");

    let mut s = common::spec(5);
    s.user_data = Some(base64::engine::general_purpose::STANDARD.encode(WATCH_NICS));
    s.config_drive = true;
    let id = s.id.clone();
    let extra = Port {
        network_id: "0b0e0206-0000-4000-8000-000000000206".into(),
        network_name: "second".into(),
        cidr: "10.213.6.0/24".into(),
        gateway: "10.213.6.1".into(),
        address: "10.213.6.20".into(),
        mac: "fa:16:3e:aa:01:06".into(),
        port_id: "p-extra".into(),
        ..Default::default()
    };
    let br1 = hostnet::bridge_name(&s.ports[0].network_id);
    let br2 = hostnet::bridge_name(&extra.network_id);
    let _guard = Cleanup(&d, id.clone(), vec![br1.clone(), br2.clone()]);
    d.spawn(&s).expect("spawn");
    let log = d.console_log(&id);
    common::wait_console(&log, "onebox-hotplug: nics=eth0 .", BOOT);
    let dom = driver_libvirt::domain_name_of(&id);

    // Plugged: pinned, known to the second network's dnsmasq, in both definitions.
    let mut with = s.clone();
    with.ports.push(extra.clone());
    d.attach_interface(&with, &extra).expect("attach");
    let pinned: Vec<_> = pins(data.path())
        .into_iter()
        .filter(|(_, r)| r.contains("mac=fa:16:3e:aa:01:06"))
        .collect();
    assert_eq!(pinned.len(), 1, "one pin for the new port: {pinned:?}");
    let (tap, record) = &pinned[0];
    assert!(record.contains("address=10.213.6.20"), "{record}");
    assert!(tap.starts_with("obt"), "{tap}");
    let chain = nft_chain(tap).expect("the new tap's chain");
    assert!(
        chain.contains("ether saddr != fa:16:3e:aa:01:06 drop")
            && chain.contains("ip saddr != 10.213.6.20 drop"),
        "{chain}"
    );
    let map = std::process::Command::new("nft")
        .args(["list", "map", "bridge", "onebox", "ports"])
        .output()
        .expect("nft");
    assert!(
        String::from_utf8_lossy(&map.stdout).contains(&format!("jump port_{tap}")),
        "the tap is in the port map"
    );
    let hosts = data
        .path()
        .join("dhcp")
        .join(&br2)
        .join("hosts")
        .join(id.as_str());
    assert_eq!(
        std::fs::read_to_string(&hosts).expect("DHCP host of the new port"),
        "fa:16:3e:aa:01:06,10.213.6.20\n"
    );
    let live = virsh(&["dumpxml", &dom]);
    assert!(live.contains("fa:16:3e:aa:01:06") && live.contains(&format!("'{tap}'")));
    assert!(virsh(&["dumpxml", "--inactive", &dom]).contains("fa:16:3e:aa:01:06"));
    assert!(Path::new("/sys/class/net").join(tap).exists());
    // The guest sees the NIC and its DHCP lease is the port's address.
    common::wait_console(&log, "onebox-hotplug: eth1 ip=10.213.6.20/24", BOOT);
    // A second attach of the same port changes nothing.
    d.attach_interface(&with, &extra).expect("attach again");
    assert_eq!(
        virsh(&["dumpxml", &dom])
            .matches("fa:16:3e:aa:01:06")
            .count(),
        1
    );

    // Unplugged: the guest loses it; no pin, rule, DHCP host, tap or bridge is left that
    // another guest could use the address through.
    d.detach_interface(&s, &extra).expect("detach");
    assert!(!virsh(&["dumpxml", &dom]).contains("fa:16:3e:aa:01:06"));
    assert!(!virsh(&["dumpxml", "--inactive", &dom]).contains("fa:16:3e:aa:01:06"));
    assert!(!Path::new("/sys/class/net").join(tap).exists(), "tap left");
    assert!(
        !pins(data.path())
            .iter()
            .any(|(t, r)| t == tap || r.contains("fa:16:3e:aa:01:06") || r.contains("10.213.6.20")),
        "pin left"
    );
    assert_eq!(nft_chain(tap), None, "rules of {tap} left");
    assert!(!hosts.exists(), "DHCP host left");
    assert!(
        !data.path().join("dhcp").join(&br2).exists(),
        "dnsmasq state of the emptied network left"
    );
    assert!(
        !Path::new("/sys/class/net").join(&br2).exists(),
        "bridge left"
    );
    wait_count(&log, "onebox-hotplug: nics=eth0 .", 2, BOOT);
    // The first port is untouched.
    assert_eq!(pins(data.path()).len(), 1, "the first port stays pinned");

    // Shut off: only the definition changes; the next start makes the pinned tap, and the
    // guest gets its address again.
    d.power_off(&id).expect("stop");
    d.attach_interface(&with, &extra)
        .expect("attach while shut off");
    assert!(virsh(&["dumpxml", "--inactive", &dom]).contains("fa:16:3e:aa:01:06"));
    let (tap2, _) = pins(data.path())
        .into_iter()
        .find(|(_, r)| r.contains("mac=fa:16:3e:aa:01:06"))
        .expect("pinned while shut off");
    assert!(!Path::new("/sys/class/net").join(&tap2).exists());
    d.power_on(&id).expect("start");
    wait_count(&log, "onebox-hotplug: eth1 ip=10.213.6.20/24", 2, BOOT);
    assert!(virsh(&["dumpxml", &dom]).contains(&format!("'{tap2}'")));
    d.power_off(&id).expect("stop");
    d.detach_interface(&s, &extra)
        .expect("detach while shut off");
    assert!(!virsh(&["dumpxml", "--inactive", &dom]).contains("fa:16:3e:aa:01:06"));
    assert!(
        !pins(data.path())
            .iter()
            .any(|(t, r)| *t == tap2 || r.contains("fa:16:3e:aa:01:06")),
        "pin left"
    );
    assert!(!hosts.exists(), "DHCP host left");

    d.destroy(&id).expect("destroy");
    assert!(!virsh(&["list", "--all", "--name"]).contains(id.as_str()));
    assert!(pins(data.path()).is_empty(), "pins left after destroy");
}
