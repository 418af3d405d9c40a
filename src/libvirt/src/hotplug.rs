//! Ports plugged into and unplugged from an existing guest (Nova's `os-interface`).
//!
//! Attach: the port's network gets its bridge and the port its DHCP host (the bridge's
//! dnsmasq restarts with it), the port is pinned on a tap name the guest does not use yet,
//! and only then is the interface device added, to the running guest and its persistent
//! definition (`VIR_DOMAIN_AFFECT_LIVE|CONFIG`), or to the definition alone when the guest
//! is shut off. Detach removes the device likewise, waits until the guest released it and
//! its tap is gone, then unpins the tap and forgets the DHCP host; a bridge whose last host
//! left goes as it does when its last server is deleted. The instance's files (config drive)
//! are left as they are.

use std::path::Path;
use std::time::{Duration, Instant};

use driver::{DriverError, InstanceSpec, Port};
use hostnet::ports::{PortDef, Ports, state_dir};
use virt::domain::Domain;
use virt::sys;

use crate::{Error, LibvirtDriver, net, xml};

/// How long a guest has to release an interface unplugged while it runs.
const RELEASE: Duration = Duration::from_secs(30);

fn tap_exists(tap: &str) -> bool {
    Path::new("/sys/class/net").join(tap).exists()
}

/// The first tap name of server `id` that no interface of its definitions names and no
/// interface on the host has.
fn free_tap(id: &str, defs: &[&str]) -> Result<String, Error> {
    (0..=0xff)
        .map(|n| net::tap_name(id, n))
        .find(|t| !defs.iter().any(|d| d.contains(&format!("'{t}'"))) && !tap_exists(t))
        .ok_or_else(|| Error::Invalid(format!("server {id} has no free interface name")))
}

/// The tap a definition's interface with `mac` names (`<target dev='…'/>`).
fn tap_of(def: &str, mac: &str) -> Option<String> {
    def.split("<interface ").skip(1).find_map(|c| {
        let body = c.split("</interface>").next()?;
        if !body.to_ascii_lowercase().contains(&format!("'{mac}'")) {
            return None;
        }
        let rest = &body[body.find("<target dev='")? + "<target dev='".len()..];
        Some(rest[..rest.find('\'')?].to_owned())
    })
}

fn has_mac(def: &str, mac: &str) -> bool {
    net::bridge_macs(def)
        .iter()
        .any(|m| m.eq_ignore_ascii_case(mac))
}

fn network(drv: &LibvirtDriver, p: &Port) -> hostnet::NetworkDef {
    hostnet::NetworkDef {
        id: p.network_id.clone(),
        cidr: p.cidr.clone(),
        gateway: p.gateway.clone(),
        forwarding: drv.cfg.forwarding,
    }
}

/// The definitions of `d`: (persistent, live or empty when shut off, active).
fn defs(d: &Domain) -> Result<(String, String, bool), Error> {
    let inactive = d.get_xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)?;
    let active = d.is_active()?;
    let live = if active {
        d.get_xml_desc(0)?
    } else {
        String::new()
    };
    Ok((inactive, live, active))
}

pub(crate) fn attach(drv: &LibvirtDriver, spec: &InstanceSpec, port: &Port) -> driver::Result<()> {
    let id = spec.id.as_str();
    let d = drv.domain(&spec.id)?;
    let mac = port.mac.to_ascii_lowercase();
    let (inactive, live, active) = defs(&d)?;
    if has_mac(&inactive, &mac) && (!active || has_mac(&live, &mac)) {
        // Plugged already (a retry).
        return Ok(());
    }
    let tap = tap_of(&inactive, &mac)
        .or_else(|| tap_of(&live, &mac))
        .map_or_else(|| free_tap(id, &[&inactive, &live]), Ok)?;
    let address = port
        .address
        .parse()
        .map_err(|_| Error::Invalid(format!("bad address {}", port.address)))?;
    let bridge =
        hostnet::ensure_bridge(&network(drv, port)).map_err(|e| Error::Net(e.to_string()))?;
    let mut on_bridge: Vec<&Port> = spec
        .ports
        .iter()
        .filter(|p| hostnet::bridge_name(&p.network_id) == bridge)
        .collect();
    if !on_bridge.iter().any(|p| p.mac.eq_ignore_ascii_case(&mac)) {
        on_bridge.push(port);
    }
    drv.dhcp.add_host(&bridge, id, &on_bridge)?;
    // Pinned before libvirt makes the tap, so no frame passes unchecked.
    let pin = PortDef {
        pairs: PortDef::parse_pairs(&port.allowed_address_pairs),
        secured: port.port_security,
        ..PortDef::new(&tap, id, &mac, address)
    };
    let ports = Ports::new(state_dir(&drv.cfg.data_dir));
    if let Err(e) = ports.add(std::slice::from_ref(&pin)) {
        let _ = drv.dhcp.remove_host(&bridge, id, &mac);
        return Err(Error::Net(e.to_string()).into());
    }
    let nic = xml::Nic {
        bridge: bridge.clone(),
        mac: mac.clone(),
        tap: tap.clone(),
    };
    let mut flags = sys::VIR_DOMAIN_AFFECT_CONFIG;
    if active {
        flags |= sys::VIR_DOMAIN_AFFECT_LIVE;
    }
    let r = if has_mac(&inactive, &mac) {
        // In the definition already: only the running guest lacks it.
        d.attach_device_flags(&nic.to_xml(), sys::VIR_DOMAIN_AFFECT_LIVE)
    } else {
        d.attach_device_flags(&nic.to_xml(), flags)
    };
    if let Err(e) = r {
        tracing::warn!(server_id = %id, error = %e, "interface attach failed; undoing");
        if !tap_exists(&tap) {
            let _ = ports.remove(&[&tap]);
        }
        let _ = drv.dhcp.remove_host(&bridge, id, &mac);
        return Err(Error::from(e).into());
    }
    if active && let Err(e) = hostnet::no_ipv6(&tap) {
        tracing::warn!(%tap, error = %e, "could not turn IPv6 off on the tap");
    }
    tracing::info!(server_id = %id, %tap, %bridge, "interface attached");
    Ok(())
}

pub(crate) fn detach(drv: &LibvirtDriver, spec: &InstanceSpec, port: &Port) -> driver::Result<()> {
    let id = spec.id.as_str();
    let d = drv.domain(&spec.id)?;
    let mac = port.mac.to_ascii_lowercase();
    let (inactive, live, _) = defs(&d)?;
    let bridge = hostnet::bridge_name(&port.network_id);
    let in_config = has_mac(&inactive, &mac);
    let in_live = has_mac(&live, &mac);
    if in_config || in_live {
        let nic = xml::Nic {
            bridge: bridge.clone(),
            mac: mac.clone(),
            tap: tap_of(&inactive, &mac)
                .or_else(|| tap_of(&live, &mac))
                .unwrap_or_default(),
        };
        // libvirt finds the device by its MAC.
        let mut flags = 0;
        if in_config {
            flags |= sys::VIR_DOMAIN_AFFECT_CONFIG;
        }
        if in_live {
            flags |= sys::VIR_DOMAIN_AFFECT_LIVE;
        }
        d.detach_device_flags(&nic.to_xml(), flags)
            .map_err(Error::from)?;
    }
    // A running guest releases the device when it answers the unplug request; until then
    // its tap carries frames and stays pinned.
    let end = Instant::now() + RELEASE;
    while in_live && has_mac(&d.get_xml_desc(0).unwrap_or_default(), &mac) {
        if Instant::now() >= end {
            return Err(DriverError::Failed(format!(
                "the guest did not release interface {mac} within {} s",
                RELEASE.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // The taps pinned for this port, once the kernel has removed them.
    let ports = Ports::new(state_dir(&drv.cfg.data_dir));
    let taps: Vec<String> = ports
        .list()
        .into_iter()
        .filter(|p| p.server == id && p.mac.eq_ignore_ascii_case(&mac))
        .map(|p| p.ifname)
        .collect();
    for t in &taps {
        while tap_exists(t) {
            if Instant::now() >= end {
                return Err(DriverError::Failed(format!("tap {t} is still there")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let names: Vec<&str> = taps.iter().map(String::as_str).collect();
    ports
        .remove(&names)
        .map_err(|e| Error::Net(e.to_string()))?;
    if drv.dhcp.remove_host(&bridge, id, &mac)? {
        // The network's last host left: its bridge goes when nothing else uses it.
        let in_use = std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
            .map(|mut r| r.next().is_some())
            .unwrap_or(false);
        if !in_use {
            let _ = hostnet::delete_link(&bridge);
        }
    }
    tracing::info!(server_id = %id, %bridge, "interface detached");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn taps_of_a_definition_by_mac() {
        let x = "<domain><interface type='bridge'>\n<mac address='fa:16:3e:00:00:01'/>\n<target dev='obt1'/>\n</interface><interface type='bridge'>\n<mac address='FA:16:3e:00:00:02'/>\n<target dev='obt2'/>\n</interface></domain>";
        assert_eq!(
            super::tap_of(x, "fa:16:3e:00:00:02").as_deref(),
            Some("obt2")
        );
        assert_eq!(super::tap_of(x, "fa:16:3e:00:00:03"), None);
        assert!(super::has_mac(x, "fa:16:3e:00:00:02"));
    }

    #[test]
    fn a_new_interface_gets_a_tap_name_no_interface_has() {
        let id = "5f2a1c3e-9b7d-4e0a-8c6f-0123456789ab";
        let x = "<target dev='obt5f2a1c3e9b0'/><target dev='obt5f2a1c3e9b2'/>";
        assert_eq!(
            super::free_tap(id, &[x, ""]).expect("free"),
            "obt5f2a1c3e9b1"
        );
    }
}
