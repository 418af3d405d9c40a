//! A VM's ports on the host: taps named by onebox (`obt` and the server id's first 10 hex
//! digits and the port's index, as the container backend names its veths `obv…`), each
//! pinned to its port's MAC and address in onebox's bridge table ([`hostnet::ports`]) before
//! libvirt makes it, and forgotten when the server goes.

use std::path::Path;

use driver::InstanceSpec;
use hostnet::ports::{PortDef, Ports, state_dir};

use virt::domain::Domain;
use virt::sys;

use crate::{Error, LibvirtDriver, interfaces, xml};

/// The tap of port `index` of server `id` (15 bytes at most, the kernel's limit).
pub(crate) fn tap_name(id: &str, index: usize) -> String {
    let hex: String = id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(10)
        .collect();
    format!("obt{hex}{index:x}")
}

/// Records and pins the ports of `spec` on the taps of `nics` (one per port, in order).
pub(crate) fn pin(data_dir: &Path, spec: &InstanceSpec, nics: &[xml::Nic]) -> Result<(), Error> {
    let ports = spec
        .ports
        .iter()
        .zip(nics)
        .map(|(p, n)| {
            let address = p
                .address
                .parse()
                .map_err(|_| Error::Invalid(format!("bad address {}", p.address)))?;
            Ok(PortDef {
                pairs: PortDef::parse_pairs(&p.allowed_address_pairs),
                secured: p.port_security,
                ..PortDef::new(&n.tap, spec.id.as_str(), &p.mac, address)
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    if ports.is_empty() {
        return Ok(());
    }
    Ports::new(state_dir(data_dir))
        .add(&ports)
        .map_err(|e| Error::Net(e.to_string()))
}

/// Turns IPv6 off on the host side of a started guest's taps (libvirt makes them at each
/// start): no router advertisement from the guest is acted on there. Failures are logged.
pub(crate) fn harden_taps(d: &Domain) {
    let live = d.get_xml_desc(0).unwrap_or_default();
    for (_, tap) in interfaces(&live) {
        if let Err(e) = hostnet::no_ipv6(&tap) {
            tracing::warn!(%tap, error = %e, "could not turn IPv6 off on the tap");
        }
    }
}

/// Unpins and forgets the ports of server `id`.
pub(crate) fn unpin(data_dir: &Path, id: &str) -> Result<(), Error> {
    Ports::new(state_dir(data_dir))
        .remove_server(id)
        .map_err(|e| Error::Net(e.to_string()))
}

/// The MAC-to-address pairs recorded for server `id` in the DHCP hosts files under
/// `dhcp_dir` (`<bridge>/hosts/<id>`, lines `mac,address`).
fn recorded_addresses(dhcp_dir: &Path, id: &str) -> Vec<(String, std::net::Ipv4Addr)> {
    let Ok(rd) = std::fs::read_dir(dhcp_dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|b| std::fs::read_to_string(b.path().join("hosts").join(id)).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| {
                    let (mac, ip) = l.trim().split_once(',')?;
                    Some((mac.to_ascii_lowercase(), ip.parse().ok()?))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A definition made before onebox named its taps, with each bridge interface given its
/// tap (`<target dev='obt…'/>`) in order; `None` when there is nothing to name.
pub(crate) fn with_tap_names(inactive_xml: &str, id: &str) -> Option<String> {
    let open = "<interface type='bridge'>";
    if !inactive_xml.contains(open) || inactive_xml.contains("<target dev='obt") {
        return None;
    }
    let mut out = String::new();
    for (i, part) in inactive_xml.split(open).enumerate() {
        if i > 0 {
            out.push_str(open);
            out.push_str(&format!("\n      <target dev='{}'/>", tap_name(id, i - 1)));
        }
        out.push_str(part);
    }
    Some(out)
}

/// The MACs of a definition's bridge interfaces, in order.
pub(crate) fn bridge_macs(xml: &str) -> Vec<String> {
    xml.split("<interface type='bridge'>")
        .skip(1)
        .filter_map(|c| {
            let body = c.split("</interface>").next()?;
            let rest = &body[body.find("<mac address='")? + "<mac address='".len()..];
            Some(rest[..rest.find('\'')?].to_owned())
        })
        .collect()
}

/// Pins the ports of a guest defined by an earlier onebox: its running taps (libvirt's
/// `vnet…` names, from `live` interfaces as (mac, tap)) now, and the taps it gets from the
/// rewritten definition (see [`with_tap_names`]; `renamed` holds its interfaces' MACs in
/// order) before its next start.
pub(crate) fn adopt(
    data_dir: &Path,
    id: &str,
    live: &[(String, String)],
    renamed: &[String],
) -> Result<(), Error> {
    let addrs = recorded_addresses(&data_dir.join("dhcp"), id);
    let ip_of = |mac: &str| {
        addrs
            .iter()
            .find(|(m, _)| m.eq_ignore_ascii_case(mac))
            .map(|(_, a)| *a)
    };
    let mut ports: Vec<PortDef> = live
        .iter()
        .filter_map(|(mac, tap)| {
            Some(PortDef::new(
                tap,
                id,
                &mac.to_ascii_lowercase(),
                ip_of(mac)?,
            ))
        })
        .collect();
    for (i, mac) in renamed.iter().enumerate() {
        if let Some(address) = ip_of(mac) {
            ports.push(PortDef::new(
                &tap_name(id, i),
                id,
                &mac.to_ascii_lowercase(),
                address,
            ));
        }
    }
    if ports.is_empty() {
        return Ok(());
    }
    Ports::new(state_dir(data_dir))
        .add(&ports)
        .map_err(|e| Error::Net(e.to_string()))
}

/// Pins the ports of guests defined before onebox named their taps, and names them in
/// their definitions for the next start ([`adopt`]). Failures are logged.
pub(crate) fn adopt_old_guests(drv: &LibvirtDriver) {
    let Ok(all) = drv.all() else { return };
    for (id, d) in all {
        let Ok(inactive) = d.get_xml_desc(sys::VIR_DOMAIN_XML_INACTIVE) else {
            continue;
        };
        let live = match d.is_active() {
            Ok(true) => interfaces(&d.get_xml_desc(0).unwrap_or_default()),
            _ => Vec::new(),
        };
        let live: Vec<_> = live
            .into_iter()
            .filter(|(_, t)| !t.starts_with("obt"))
            .collect();
        let renamed = with_tap_names(&inactive, id.as_str())
            .map(|x| drv.conn().and_then(|c| Ok(Domain::define_xml(&c, &x)?)));
        if let Some(Err(e)) = &renamed {
            tracing::warn!(server_id = %id, error = %e, "could not name the guest's taps");
        }
        let renamed = match renamed {
            Some(Ok(_)) => bridge_macs(&inactive),
            _ => Vec::new(),
        };
        if let Err(e) = adopt(&drv.cfg.data_dir, id.as_str(), &live, &renamed) {
            tracing::warn!(server_id = %id, error = %e, "could not pin the guest's ports");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn old_definitions_get_their_taps_named_in_order() {
        let id = "5f2a1c3e-9b7d-4e0a-8c6f-0123456789ab";
        let x = "<domain>\n    <interface type='bridge'>\n      <mac address='a'/>\n    </interface>\n    <interface type='bridge'>\n      <mac address='b'/>\n    </interface>\n</domain>";
        let y = super::with_tap_names(x, id).expect("renamed");
        let a = y.find("<target dev='obt5f2a1c3e9b0'/>").expect("first");
        let b = y.find("<target dev='obt5f2a1c3e9b1'/>").expect("second");
        assert!(a < y.find("address='a'").expect("a") && b > a);
        assert_eq!(super::with_tap_names(&y, id), None, "named once");
        assert_eq!(super::bridge_macs(&y), ["a", "b"]);
        assert_eq!(super::with_tap_names("<domain/>", id), None);
    }

    #[test]
    fn addresses_come_from_the_dhcp_hosts() {
        let d = tempfile::tempdir().expect("tempdir");
        let hosts = d.path().join("obr1").join("hosts");
        std::fs::create_dir_all(&hosts).expect("dir");
        std::fs::write(hosts.join("srv"), "FA:16:3e:00:00:01,10.1.0.10\n").expect("write");
        assert_eq!(
            super::recorded_addresses(d.path(), "srv"),
            vec![(
                "fa:16:3e:00:00:01".to_owned(),
                "10.1.0.10".parse().expect("ip")
            )]
        );
        assert!(super::recorded_addresses(d.path(), "other").is_empty());
    }

    #[test]
    fn tap_names_fit_and_differ_per_port() {
        let t = super::tap_name("5f2a1c3e-9b7d-4e0a-8c6f-0123456789ab", 0);
        assert_eq!(t, "obt5f2a1c3e9b0");
        assert!(t.len() <= 15);
        assert_ne!(
            super::tap_name("5f2a1c3e-9b7d-4e0a-8c6f-0123456789ab", 1),
            t
        );
    }
}
