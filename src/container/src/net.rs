//! The host side of a container's ports: each veth's host end pinned to the port's MAC and
//! address in onebox's bridge table ([`hostnet::ports`]) before the shim makes it, and
//! forgotten when the container is destroyed.

use std::path::Path;

use hostnet::ports::{PortDef, Ports, state_dir};

use crate::state::Instance;

/// Records `inst`'s ports under the data directory and pins them.
pub(crate) fn pin_ports(data_dir: &Path, inst: &Instance) -> Result<(), String> {
    let ports = inst
        .nics
        .iter()
        .map(|n| {
            Ok(PortDef {
                ifname: n.host_if.clone(),
                server: inst.id.clone(),
                mac: n.mac.clone(),
                address: n
                    .address
                    .parse()
                    .map_err(|_| format!("bad address {}", n.address))?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    if ports.is_empty() {
        return Ok(());
    }
    Ports::new(state_dir(data_dir))
        .add(&ports)
        .map_err(|e| e.to_string())
}

/// Unpins and forgets the ports of server `id` (its veths are gone).
pub(crate) fn unpin_ports(data_dir: &Path, id: &str) -> Result<(), String> {
    Ports::new(state_dir(data_dir))
        .remove_server(id)
        .map_err(|e| e.to_string())
}
