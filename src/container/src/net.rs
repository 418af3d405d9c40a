//! The host side of a container's ports: each veth's host end pinned to the port's MAC and
//! address in onebox's bridge table ([`hostnet::ports`]) before the shim makes it, and
//! forgotten when the container is destroyed, with the bridge
//! when no other port uses it.

use std::path::Path;

use hostnet::ports::{Ports, state_dir};

use crate::state::Instance;

/// Records `inst`'s ports under the data directory and pins them.
pub(crate) fn pin_ports(data_dir: &Path, inst: &Instance) -> Result<(), String> {
    let ports = inst
        .nics
        .iter()
        .map(|n| n.pin(&inst.id))
        .collect::<Result<Vec<_>, String>>()?;
    if ports.is_empty() {
        return Ok(());
    }
    Ports::new(state_dir(data_dir))
        .add(&ports)
        .map_err(|e| e.to_string())
}

/// Removes the bridges of `inst`'s networks that no port uses any more (the last container
/// or VM of the network is gone), as the VM backend does when it unplugs its last guest: a
/// deleted project's network leaves nothing on the host.
fn remove_unused_bridges(inst: &Instance) {
    for n in &inst.nics {
        let br = hostnet::bridge_name(&n.network_id);
        let in_use = std::fs::read_dir(format!("/sys/class/net/{br}/brif"))
            .map(|mut r| r.next().is_some())
            .unwrap_or(true);
        if !in_use {
            let _ = hostnet::delete_link(&br);
        }
    }
}

/// Releases the host side of destroyed server `id`: its veths (they go with the
/// container's network namespace, a half-made one may not), its ports' rules and records,
/// and the bridges no port uses any more.
pub(crate) fn release(data_dir: &Path, id: &str, inst: Option<&Instance>) -> Result<(), String> {
    if let Some(inst) = inst {
        for n in &inst.nics {
            let _ = hostnet::delete_link(&n.host_if);
            let _ = hostnet::delete_link(&n.peer_if);
        }
        remove_unused_bridges(inst);
    }
    Ports::new(state_dir(data_dir))
        .remove_server(id)
        .map_err(|e| e.to_string())
}
