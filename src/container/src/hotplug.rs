//! Ports plugged into and unplugged from an existing container (Nova's `os-interface`).
//!
//! Attach: the port is pinned on a veth name the container does not use yet, recorded in
//! `instance.json` (so every later boot, a reboot, a restart of onebox makes it again), and,
//! when the container runs, its veth is made on the network's bridge, the peer moved into
//! the container's network namespace (init's) and configured there as the next free
//! `eth<N>`, as the shim does at boot (address, no default route). Detach deletes the veth
//! (its peer goes with it), unpins it, then drops it from `instance.json`; a bridge no port
//! uses any more is removed, as when the last container of a network is destroyed. A
//! stopped container only has its record changed.

use driver::{DriverError, InstanceSpec, Port};
use hostnet::ports::{PortDef, Ports, state_dir};
use model::compute::ServerId;

use crate::state::{self, Instance, Nic};
use crate::{ContainerDriver, failed, veth_names};

type Result<T> = std::result::Result<T, DriverError>;

fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// The nic for `port`: the first veth index no nic of `inst` uses and no host interface
/// has, and the first `eth<N>` no nic of `inst` is named.
fn new_nic(inst: &Instance, port: &Port) -> Result<Nic> {
    let (host_if, peer_if) = (0..=0xff)
        .map(|i| veth_names(&inst.id, i))
        .find(|(h, p)| {
            !inst.nics.iter().any(|n| &n.host_if == h || &n.peer_if == p)
                && !link_exists(h)
                && !link_exists(p)
        })
        .ok_or_else(|| failed("the container has no free interface name"))?;
    let name = (0..)
        .map(|i| format!("eth{i}"))
        .find(|e| !inst.nics.iter().any(|n| &n.name == e))
        .unwrap_or_default();
    Nic::of(port, host_if, peer_if, name).map_err(failed)
}

fn pin_of(id: &str, nic: &Nic) -> Result<PortDef> {
    nic.pin(id).map_err(failed)
}

/// Makes `nic` in the running container whose init is `pid`: its veth on the network's
/// bridge, the peer moved in and configured (address, no default route).
fn plug(inst: &Instance, nic: &Nic, pid: u32) -> std::result::Result<(), String> {
    let net = hostnet::NetworkDef {
        id: nic.network_id.clone(),
        cidr: nic.cidr.clone(),
        gateway: nic.gateway.clone(),
        forwarding: inst.forwarding,
    };
    let bridge = hostnet::ensure_bridge(&net).map_err(|e| e.to_string())?;
    hostnet::create_veth(&nic.host_if, &nic.peer_if, &bridge).map_err(|e| e.to_string())?;
    hostnet::move_to_netns(&nic.peer_if, pid).map_err(|e| e.to_string())?;
    let cfg = hostnet::InterfaceConfig {
        current_name: nic.peer_if.clone(),
        name: nic.name.clone(),
        mac: nic.mac.clone(),
        address: nic
            .address
            .parse()
            .map_err(|_| format!("bad address {}", nic.address))?,
        prefix: nic.prefix,
        gateway: None,
        routes: hostnet::parse_routes(&nic.routes),
    };
    hostnet::configure_in_netns(pid, &cfg).map_err(|e| e.to_string())
}

/// Removes the bridge of `network_id` when no port uses it any more.
fn remove_if_unused(network_id: &str) {
    let br = hostnet::bridge_name(network_id);
    let in_use = std::fs::read_dir(format!("/sys/class/net/{br}/brif"))
        .map(|mut r| r.next().is_some())
        .unwrap_or(true);
    if !in_use {
        let _ = hostnet::delete_link(&br);
    }
}

pub(crate) fn attach(drv: &ContainerDriver, spec: &InstanceSpec, port: &Port) -> Result<()> {
    let id: &ServerId = &spec.id;
    let (paths, mut inst) = drv.load(id)?;
    let running = drv.running_boot(id);
    let ports = Ports::new(state_dir(&drv.cfg.data_dir));
    if let Some(nic) = inst
        .nics
        .iter()
        .find(|n| n.mac.eq_ignore_ascii_case(&port.mac))
    {
        // Recorded already (a retry): made in the running container if it is not there.
        return match running {
            Some(b) if !link_exists(&nic.host_if) => {
                ports.add(&[pin_of(id.as_str(), nic)?]).map_err(failed)?;
                plug(&inst, nic, b.init_pid as u32).map_err(failed)
            }
            _ => Ok(()),
        };
    }
    let nic = new_nic(&inst, port)?;
    // Pinned before the veth exists, so no frame passes unchecked.
    ports.add(&[pin_of(id.as_str(), &nic)?]).map_err(failed)?;
    inst.nics.push(nic.clone());
    let undo = |inst: &mut Instance| {
        let _ = hostnet::delete_link(&nic.host_if);
        let _ = hostnet::delete_link(&nic.peer_if);
        let _ = ports.remove(&[&nic.host_if]);
        inst.nics.retain(|n| n.host_if != nic.host_if);
        let _ = state::write_json(&paths.instance(), inst);
        remove_if_unused(&nic.network_id);
    };
    if let Err(e) = state::write_json(&paths.instance(), &inst) {
        undo(&mut inst);
        return Err(failed(format!("recording the interface: {e}")));
    }
    if let Some(b) = running
        && let Err(e) = plug(&inst, &nic, b.init_pid as u32)
    {
        tracing::warn!(server_id = %id, error = %e, "interface attach failed; undoing");
        undo(&mut inst);
        return Err(failed(format!("plugging the interface: {e}")));
    }
    tracing::info!(server_id = %id, host_if = %nic.host_if, name = %nic.name, "interface attached");
    Ok(())
}

pub(crate) fn detach(drv: &ContainerDriver, spec: &InstanceSpec, port: &Port) -> Result<()> {
    let id: &ServerId = &spec.id;
    let (paths, mut inst) = drv.load(id)?;
    let ports = Ports::new(state_dir(&drv.cfg.data_dir));
    let gone: Vec<Nic> = inst
        .nics
        .iter()
        .filter(|n| n.mac.eq_ignore_ascii_case(&port.mac))
        .cloned()
        .collect();
    // The veth (its peer inside goes with it), then its pin, then the record.
    for n in &gone {
        hostnet::delete_link(&n.host_if).map_err(failed)?;
        let _ = hostnet::delete_link(&n.peer_if);
        if link_exists(&n.host_if) {
            return Err(failed(format!("{} is still there", n.host_if)));
        }
    }
    // Pins of this port on any interface of the server (one left by an interrupted attach).
    let pinned: Vec<String> = ports
        .list()
        .into_iter()
        .filter(|p| p.server == id.as_str() && p.mac.eq_ignore_ascii_case(&port.mac))
        .map(|p| p.ifname)
        .filter(|i| !link_exists(i))
        .collect();
    let names: Vec<&str> = pinned.iter().map(String::as_str).collect();
    ports.remove(&names).map_err(failed)?;
    if gone.is_empty() {
        return Ok(());
    }
    inst.nics.retain(|n| !n.mac.eq_ignore_ascii_case(&port.mac));
    state::write_json(&paths.instance(), &inst)
        .map_err(|e| failed(format!("recording the interface's removal: {e}")))?;
    for n in &gone {
        remove_if_unused(&n.network_id);
    }
    tracing::info!(server_id = %id, "interface detached");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_nic_takes_the_first_free_veth_and_name() {
        let id = "5f2a1c3e-9b7d-4e0a-8c6f-0123456789ab";
        let nic = |i: usize, name: &str| {
            let (host_if, peer_if) = veth_names(id, i);
            Nic {
                network_id: "n".into(),
                cidr: "10.1.0.0/24".into(),
                gateway: "10.1.0.1".into(),
                address: "10.1.0.5".into(),
                prefix: 24,
                mac: "fa:16:3e:00:00:01".into(),
                host_if,
                peer_if,
                name: name.into(),
                routes: vec![],
                dns: vec![],
                pairs: vec![],
                secured: true,
            }
        };
        let inst = Instance {
            id: id.into(),
            hostname: "h".into(),
            image_id: "i".into(),
            lower: "/".into(),
            init: vec![],
            cgroup: crate::cgroup::Cgroup::new(crate::cgroup::Layout::V2("/x".into()), "p", id),
            limits: crate::cgroup::Limits {
                memory_bytes: 0,
                cpu_quota_us: None,
                cpu_period_us: 100_000,
                pids_max: 0,
            },
            nics: vec![nic(0, "eth0"), nic(2, "eth1")],
            nameservers: vec![],
            console_max_bytes: 0,
            user_namespace: None,
            lower_shifted: false,
            boot: 1,
            forwarding: false,
            volumes: vec![],
        };
        let port = Port {
            network_id: "m".into(),
            cidr: "10.2.0.0/16".into(),
            gateway: "10.2.0.1".into(),
            address: "10.2.0.9".into(),
            mac: "FA:16:3E:00:00:02".into(),
            ..Default::default()
        };
        let n = new_nic(&inst, &port).expect("nic");
        assert_eq!(n.host_if, veth_names(id, 1).0);
        assert_eq!(n.name, "eth2");
        assert_eq!(n.prefix, 16);
        assert_eq!(n.mac, "fa:16:3e:00:00:02");
    }
}
