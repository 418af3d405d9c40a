//! The bare-metal compute driver: servers on enrolled nodes, as Nova's Ironic driver does.
//!
//! - spawn: claims an available node whose resource class the flavor asks for
//!   (`resources:CUSTOM_<CLASS>=1`), sets its boot device (`instance_info.boot_device`, else
//!   `pxe`, persistent), powers it on (a node already on is reset so it boots anew), starts
//!   the SOL console capture and makes the node `active` with the server's `instance_uuid`;
//! - destroy: powers the node off and returns it to `available`, unbound;
//! - reboot / stop / start: power verbs on the BMC;
//! - console output: the node's SOL capture file; the interactive serial console: a socket
//!   relaying SOL both ways on the capture's session (the `console` module); no VNC;
//! - get_info: the power state read from the BMC (the BMC wins; see the crate docs).
//!
//! A BMC that fails mid-operation gives the compute service an error (the server goes to
//! ERROR with a fault) and leaves `last_error` on the node, which rests in `deploy failed`
//! (spawn) or `error` (destroy) until the server is deleted again.

use std::collections::BTreeMap;

use driver::{
    Capabilities, ComputeDriver, ConsoleEndpoint, ConsoleKind, DriverError, InstanceInfo,
    InstanceSpec, Operation, RebootKind, Resources, Result,
};
use model::compute::{PowerState, ServerId};
use serde_json::{Value, json};

use crate::{Baremetal, Error, Node, POWER_OFF, POWER_ON, placement_class};

pub struct IronicDriver {
    bm: Baremetal,
}

impl IronicDriver {
    pub fn new(bm: Baremetal) -> Self {
        Self { bm }
    }

    fn node_of(&self, id: &ServerId) -> Result<Node> {
        self.bm
            .by_instance(id.as_str())
            .map_err(failed)?
            .ok_or_else(|| DriverError::NotFound(id.clone()))
    }

    /// The placement classes the flavor asks a whole node of.
    fn wanted_classes(extra_specs: &BTreeMap<String, String>) -> Vec<String> {
        extra_specs
            .iter()
            .filter(|(k, v)| k.starts_with("resources:CUSTOM_") && v.trim() == "1")
            .map(|(k, _)| k.trim_start_matches("resources:").to_string())
            .collect()
    }

    fn deploy(&self, mut node: Node, spec: &InstanceSpec) -> std::result::Result<Node, Error> {
        let bmc = self.bm.bmc(&node)?;
        let device = node
            .instance_info
            .get("boot_device")
            .and_then(Value::as_str)
            .unwrap_or("pxe")
            .to_string();
        self.bm.set_boot_device(&node.uuid, &device, true)?;
        let on = bmc.power_is_on().map_err(|e| {
            Error::Bmc(format!(
                "Failed to get power state for node {}. Error: {e}",
                node.uuid
            ))
        })?;
        // Capture the console from before power on, so the machine's first words are kept.
        let console = self.bm.console_path(&node.uuid);
        if let Some(dir) = console.parent() {
            let _ = crate::console::private_dir(dir);
        }
        let _ = std::fs::write(&console, b"");
        bmc.start_console_capture(console);
        let target = if on { "rebooting" } else { POWER_ON };
        self.bm.set_power(&node.uuid, target)?;
        node = self.bm.get(&node.uuid)?;
        node.provision_state = "active".into();
        node.target_provision_state = None;
        node.provision_updated_at = Some(chrono::Utc::now());
        node.instance_info
            .insert("display_name".into(), json!(spec.name));
        if let Some(i) = &spec.image_id {
            node.instance_info.insert("image_source".into(), json!(i));
        }
        node.instance_info
            .insert("root_gb".into(), json!(spec.disk_gb.to_string()));
        self.bm.save(node)
    }

    fn release(&self, mut node: Node) -> std::result::Result<(), Error> {
        node.provision_state = "deleting".into();
        node.target_provision_state = Some("available".into());
        node = self.bm.save(node)?;
        self.bm.stop_console(&node.uuid);
        if let Ok(bmc) = self.bm.bmc(&node) {
            bmc.stop_console_capture();
        }
        if let Err(e) = self.bm.set_power(&node.uuid, POWER_OFF) {
            let mut n = self.bm.get(&node.uuid)?;
            n.provision_state = "error".into();
            n.target_provision_state = None;
            self.bm.save(n)?;
            return Err(e);
        }
        let mut n = self.bm.get(&node.uuid)?;
        // Automated cleaning is off: deleting → cleaning → available at once.
        n.provision_state = "available".into();
        n.target_provision_state = None;
        n.instance_uuid = None;
        n.instance_info = Default::default();
        n.last_error = None;
        n.provision_updated_at = Some(chrono::Utc::now());
        self.bm.save(n)?;
        Ok(())
    }
}

fn failed(e: Error) -> DriverError {
    DriverError::Failed(e.to_string())
}

impl ComputeDriver for IronicDriver {
    fn name(&self) -> &'static str {
        "ironic"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            console_output: true,
            ..Default::default()
        }
    }

    fn spawn(&self, spec: &InstanceSpec) -> Result<()> {
        if self
            .bm
            .by_instance(spec.id.as_str())
            .map_err(failed)?
            .is_some()
        {
            return Err(DriverError::Failed(format!(
                "instance {} already has a node",
                spec.id
            )));
        }
        let wanted = Self::wanted_classes(&spec.extra_specs);
        if wanted.is_empty() {
            return Err(DriverError::NoValidHost(
                "No valid host was found. The flavor asks for no bare-metal resource class (resources:CUSTOM_<CLASS>=1).".into(),
            ));
        }
        let id = spec.id.as_str().to_string();
        let w2 = wanted.clone();
        let node = self
            .bm
            .store()
            .write_blocking(move |c| {
                store::baremetal::claim_node(
                    c,
                    &|class| w2.contains(&placement_class(class)),
                    &id,
                    chrono::Utc::now(),
                )
            })
            .map_err(|e| failed(e.into()))?
            .ok_or_else(|| {
                DriverError::NoValidHost(format!(
                    "No valid host was found. There are not enough hosts available: no available bare-metal node of resource class {}.",
                    wanted.join(", ")
                ))
            })?;
        let uuid = node.uuid.clone();
        match self.deploy(node, spec) {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Ok(mut n) = self.bm.get(&uuid) {
                    n.provision_state = "deploy failed".into();
                    n.target_provision_state = None;
                    n.target_power_state = None;
                    if n.last_error.is_none() {
                        n.last_error = Some(e.to_string());
                    }
                    let _ = self.bm.save(n);
                }
                Err(failed(e))
            }
        }
    }

    fn destroy(&self, id: &ServerId) -> Result<()> {
        match self.bm.by_instance(id.as_str()).map_err(failed)? {
            None => Ok(()),
            Some(node) => self.release(node).map_err(failed),
        }
    }

    fn reboot(&self, id: &ServerId, kind: RebootKind) -> Result<()> {
        let node = self.node_of(id)?;
        let target = match kind {
            RebootKind::Hard => "rebooting",
            RebootKind::Soft => "soft rebooting",
        };
        self.bm
            .set_power(&node.uuid, target)
            .map(|_| ())
            .map_err(failed)
    }

    fn power_off(&self, id: &ServerId) -> Result<()> {
        let node = self.node_of(id)?;
        self.bm
            .set_power(&node.uuid, POWER_OFF)
            .map(|_| ())
            .map_err(failed)
    }

    fn power_on(&self, id: &ServerId) -> Result<()> {
        let node = self.node_of(id)?;
        self.bm
            .set_power(&node.uuid, POWER_ON)
            .map(|_| ())
            .map_err(failed)?;
        // The capture keeps running across power cycles; restart it if it was stopped.
        if let Ok(b) = self.bm.bmc(&node) {
            b.start_console_capture(self.bm.console_path(&node.uuid));
        }
        Ok(())
    }

    fn pause(&self, _: &ServerId) -> Result<()> {
        Err(DriverError::NotSupported(Operation::Pause))
    }

    fn unpause(&self, _: &ServerId) -> Result<()> {
        Err(DriverError::NotSupported(Operation::Unpause))
    }

    fn suspend(&self, _: &ServerId) -> Result<()> {
        Err(DriverError::NotSupported(Operation::Suspend))
    }

    fn resume(&self, _: &ServerId) -> Result<()> {
        Err(DriverError::NotSupported(Operation::Resume))
    }

    fn console_output(&self, id: &ServerId, lines: Option<usize>) -> Result<String> {
        let node = self.node_of(id)?;
        // The capture rotates the log at its cap (`<log>.1`); read from the end of both.
        let log = self.bm.console_path(&node.uuid);
        let old = driver::console::rotated(&log);
        let raw =
            driver::console::tail(&[&old, &log], driver::console::TAIL_BYTES).unwrap_or_default();
        Ok(driver::console::last_lines(&raw, lines))
    }

    /// The machine's serial console over SOL. A machine's screen is not served (no VNC).
    fn console_endpoint(&self, id: &ServerId, kind: ConsoleKind) -> Result<ConsoleEndpoint> {
        if kind != ConsoleKind::Serial {
            return Err(DriverError::NotSupported(Operation::Console));
        }
        let node = self.node_of(id)?;
        if node.provision_state != "active" || node.power_state.as_deref() != Some(POWER_ON) {
            return Err(DriverError::Failed(format!("instance {id} is not running")));
        }
        self.bm
            .serve_console(&node)
            .map(ConsoleEndpoint::Unix)
            .map_err(failed)
    }

    fn get_info(&self, id: &ServerId) -> Result<InstanceInfo> {
        let node = self.node_of(id)?;
        // After a restart of onebox, the console capture of an active node starts again here
        // (the power-state sync calls get_info for every settled server).
        if node.provision_state == "active"
            && let Ok(b) = self.bm.bmc(&node)
            && !b.capturing()
        {
            b.start_console_capture(self.bm.console_path(&node.uuid));
        }
        let recorded = node.power_state.clone();
        let state = match self.bm.refresh_power(node) {
            Ok(n) => n.power_state,
            // The BMC did not answer: report what was last known (last_error says why).
            Err(_) => recorded,
        };
        Ok(InstanceInfo {
            power_state: match state.as_deref() {
                Some(POWER_ON) => PowerState::Running,
                Some(POWER_OFF) => PowerState::Shutdown,
                _ => PowerState::NoState,
            },
        })
    }

    fn list_instances(&self) -> Result<Vec<ServerId>> {
        Ok(self
            .bm
            .list()
            .map_err(failed)?
            .into_iter()
            .filter_map(|n| n.instance_uuid.as_deref().and_then(ServerId::parse))
            .collect())
    }

    fn available_resources(&self) -> Result<Resources> {
        let mut r = Resources {
            hypervisor_type: "ironic".into(),
            hypervisor_version: 1,
            ..Default::default()
        };
        let num = |n: &Node, k: &str| -> u64 {
            match n.properties.get(k) {
                Some(Value::Number(x)) => x.as_u64().unwrap_or(0),
                Some(Value::String(s)) => s.parse().unwrap_or(0),
                _ => 0,
            }
        };
        for n in self.bm.list().map_err(failed)? {
            if matches!(
                n.provision_state.as_str(),
                "available" | "active" | "deploying"
            ) {
                r.vcpus += num(&n, "cpus") as u32;
                r.memory_mb += num(&n, "memory_mb");
                r.local_gb += num(&n, "local_gb");
            }
        }
        Ok(r)
    }
}
