//! A VM's ports on the host: taps named by onebox (`obt` and the server id's first 10 hex
//! digits and the port's index, as the container backend names its veths `obv…`), each
//! pinned to its port's MAC and address in onebox's bridge table ([`hostnet::ports`]) before
//! libvirt makes it, and forgotten when the server goes.

use std::path::Path;

use driver::InstanceSpec;
use hostnet::ports::{PortDef, Ports, state_dir};

use crate::{Error, xml};

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
            Ok(PortDef {
                ifname: n.tap.clone(),
                server: spec.id.as_str().to_owned(),
                mac: p.mac.clone(),
                address: p
                    .address
                    .parse()
                    .map_err(|_| Error::Invalid(format!("bad address {}", p.address)))?,
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

/// Unpins and forgets the ports of server `id`.
pub(crate) fn unpin(data_dir: &Path, id: &str) -> Result<(), Error> {
    Ports::new(state_dir(data_dir))
        .remove_server(id)
        .map_err(|e| Error::Net(e.to_string()))
}

#[cfg(test)]
mod tests {
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
