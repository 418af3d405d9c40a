//! Bare-metal nodes: the state Ironic keeps for each physical machine and the verbs that move
//! it, with power and boot device carried out on the machine's BMC over IPMI.
//!
//! Provision states follow Ironic's machine for the part onebox does: a new node is `enroll`;
//! `manage` verifies the BMC credentials (`verifying`) and gives `manageable`, or returns to
//! `enroll` with `last_error`; `provide` gives `available` (automated cleaning is off, so
//! `cleaning` is passed through at once); the compute driver takes an available node to
//! `deploying` → `active` and back through `deleting` to `available`. Every BMC call is
//! bounded by the IPMI client's timeout and retries, and every verb ends in a resting state:
//! a BMC that fails leaves `last_error` and no target state.
//!
//! Power state sync (documented choice): the BMC wins, as in Ironic with
//! `force_power_state_during_sync = False`: a node's recorded `power_state` is refreshed from
//! its BMC, and the server's power state follows the node, as Nova does with Ironic.

mod console;
pub mod driver;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Map, Value};
use store::Store;
pub use store::baremetal::Node;

pub const POWER_ON: &str = "power on";
pub const POWER_OFF: &str = "power off";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// The BMC failed; the node's `last_error` says the same.
    #[error("{0}")]
    Bmc(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Clone, Debug)]
pub struct BaremetalConfig {
    /// Per-attempt IPMI timeout and resends (tuned for slow BMCs).
    pub ipmi_timeout: Duration,
    pub ipmi_retries: u32,
    /// Where SOL console captures are written, one file per node, beside each node's
    /// interactive console socket (the directory is the owner's only).
    pub console_dir: PathBuf,
}

impl Default for BaremetalConfig {
    fn default() -> Self {
        Self {
            ipmi_timeout: Duration::from_secs(2),
            ipmi_retries: 2,
            console_dir: std::env::temp_dir().join("onebox-consoles"),
        }
    }
}

/// The bare-metal service. Its methods block (store and BMC); call them from blocking threads.
#[derive(Clone)]
pub struct Baremetal {
    store: Store,
    cfg: Arc<BaremetalConfig>,
    relays: Arc<console::Relays>,
}

/// Ironic's resource class → the placement class a flavor asks for (`CUSTOM_<CLASS>`).
pub fn placement_class(resource_class: &str) -> String {
    let up: String = resource_class
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("CUSTOM_{up}")
}

fn now() -> chrono::DateTime<Utc> {
    Utc::now()
}

/// The fields a new node may be created with.
#[derive(Clone, Debug, Default)]
pub struct NewNode {
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub driver: String,
    pub driver_info: Map<String, Value>,
    pub resource_class: Option<String>,
    pub properties: Map<String, Value>,
    pub extra: Map<String, Value>,
    /// `enroll` (API 1.11 and later) or `available` (older versions).
    pub initial_state: String,
}

impl Baremetal {
    pub fn new(store: Store, cfg: BaremetalConfig) -> Self {
        Self {
            store,
            cfg: Arc::new(cfg),
            relays: Arc::default(),
        }
    }

    pub fn config(&self) -> &BaremetalConfig {
        &self.cfg
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn create(&self, mut n: NewNode) -> Result<Node> {
        if n.driver != "ipmi" {
            return Err(Error::BadRequest(format!(
                "No valid host was found. Reason: No conductor service registered which supports driver {} for conductor group \"\".",
                n.driver
            )));
        }
        let uuid = match n.uuid.take() {
            Some(u) => uuid::Uuid::parse_str(&u)
                .map_err(|_| Error::BadRequest(format!("Expected a UUID but received {u}.")))?
                .to_string(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        if let Some(name) = &n.name {
            validate_name(name)?;
        }
        let password = take_password(&mut n.driver_info);
        let node = Node {
            uuid,
            name: n.name,
            driver: n.driver,
            driver_info: n.driver_info,
            bmc_password: password,
            resource_class: n.resource_class,
            properties: n.properties,
            extra: n.extra,
            instance_info: Map::new(),
            power_state: None,
            target_power_state: None,
            provision_state: n.initial_state,
            target_provision_state: None,
            maintenance: false,
            maintenance_reason: None,
            last_error: None,
            instance_uuid: None,
            boot_device: None,
            boot_persistent: false,
            created_at: now(),
            updated_at: None,
            provision_updated_at: None,
        };
        let n2 = node.clone();
        self.store
            .write_blocking(move |c| store::baremetal::insert_node(c, &n2))
            .map_err(|e| match e {
                store::Error::Conflict(_) => Error::Conflict(format!(
                    "A node with name {} or UUID {} already exists.",
                    node.name.as_deref().unwrap_or("-"),
                    node.uuid
                )),
                e => Error::Store(e),
            })?;
        Ok(node)
    }

    pub fn get(&self, ident: &str) -> Result<Node> {
        let id = ident.to_string();
        self.store
            .read_blocking(move |c| store::baremetal::get_node(c, &id))?
            .ok_or_else(|| Error::NotFound(format!("Node {ident} could not be found.")))
    }

    pub fn list(&self) -> Result<Vec<Node>> {
        Ok(self.store.read_blocking(store::baremetal::list_nodes)?)
    }

    pub fn by_instance(&self, instance: &str) -> Result<Option<Node>> {
        let id = instance.to_string();
        Ok(self
            .store
            .read_blocking(move |c| store::baremetal::node_by_instance(c, &id))?)
    }

    /// Writes a node the caller changed (JSON patch). The password may be set through
    /// `driver_info.ipmi_password`; it is then moved to its own column.
    pub fn save(&self, mut node: Node) -> Result<Node> {
        if let Some(name) = &node.name {
            validate_name(name)?;
        }
        if let Some(p) = take_password(&mut node.driver_info)
            && p != "******"
        {
            node.bmc_password = Some(p);
        }
        node.updated_at = Some(now());
        let n2 = node.clone();
        self.store
            .write_blocking(move |c| store::baremetal::update_node(c, &n2))
            .map_err(|e| match e {
                store::Error::Conflict(m) => Error::Conflict(m),
                e => Error::Store(e),
            })?;
        Ok(node)
    }

    pub fn delete(&self, ident: &str) -> Result<()> {
        let node = self.get(ident)?;
        if let Some(i) = &node.instance_uuid {
            return Err(Error::Conflict(format!(
                "Node {} is associated with instance {i}.",
                node.uuid
            )));
        }
        if matches!(
            node.provision_state.as_str(),
            "active" | "deploying" | "deleting"
        ) {
            return Err(Error::Conflict(format!(
                "Can not delete node \"{}\" while it is in provision state \"{}\".",
                node.uuid, node.provision_state
            )));
        }
        let uuid = node.uuid.clone();
        self.store
            .write_blocking(move |c| store::baremetal::delete_node(c, &uuid))?;
        self.stop_console(&node.uuid);
        if let Ok(b) = self.bmc(&node) {
            b.stop_console_capture();
        }
        Ok(())
    }

    /// The BMC of a node, shared with every other user in the process.
    pub fn bmc(&self, node: &Node) -> Result<Arc<ipmi::Bmc>> {
        let s = |k: &str| -> Option<String> {
            node.driver_info.get(k).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        let address = s("ipmi_address").ok_or_else(|| {
            Error::BadRequest(format!(
                "Node {} is missing driver_info ipmi_address, required by the ipmi driver.",
                node.uuid
            ))
        })?;
        let port = match s("ipmi_port") {
            Some(p) => p.parse::<u16>().map_err(|_| {
                Error::BadRequest(format!(
                    "Invalid driver_info ipmi_port {p:?} of node {}.",
                    node.uuid
                ))
            })?,
            None => 623,
        };
        let mut cfg = ipmi::Config::new(
            &address,
            port,
            &s("ipmi_username").unwrap_or_default(),
            node.bmc_password.as_deref().unwrap_or(""),
        );
        if let Some(c) = s("ipmi_cipher_suite") {
            cfg.cipher_suite = c
                .parse()
                .map_err(|_| Error::BadRequest(format!("Invalid ipmi_cipher_suite {c:?}.")))?;
        }
        cfg.timeout = self.cfg.ipmi_timeout;
        cfg.retries = self.cfg.ipmi_retries;
        Ok(ipmi::Bmc::shared(cfg))
    }

    /// Records a BMC failure on the node and returns it as an error.
    fn bmc_failed(&self, mut node: Node, what: &str, e: &ipmi::Error) -> Error {
        let msg = format!("Failed to {what} for node {}. Error: {e}", node.uuid);
        tracing::warn!(node = %node.uuid, "{msg}");
        node.last_error = Some(msg.clone());
        node.target_power_state = None;
        let _ = self.save(node);
        Error::Bmc(msg)
    }

    /// Reads the power state from the BMC and records it.
    pub fn refresh_power(&self, node: Node) -> Result<Node> {
        let bmc = self.bmc(&node)?;
        match bmc.power_is_on() {
            Ok(on) => {
                let mut node = node;
                node.power_state = Some(if on { POWER_ON } else { POWER_OFF }.into());
                self.save(node)
            }
            Err(e) => Err(self.bmc_failed(node, "get power state", &e)),
        }
    }

    /// Ironic's power targets: `power on`, `power off`, `rebooting`, `soft power off`,
    /// `soft rebooting`. Waits (bounded) until the BMC reports the new state.
    pub fn set_power(&self, ident: &str, target: &str) -> Result<Node> {
        let mut node = self.get(ident)?;
        let (control, end) = match target {
            POWER_ON => (ipmi::ChassisControl::PowerOn, POWER_ON),
            POWER_OFF => (ipmi::ChassisControl::PowerOff, POWER_OFF),
            "rebooting" => (ipmi::ChassisControl::PowerCycle, POWER_ON),
            "soft power off" => (ipmi::ChassisControl::Soft, POWER_OFF),
            "soft rebooting" => (ipmi::ChassisControl::Soft, POWER_ON),
            other => {
                return Err(Error::BadRequest(format!(
                    "Invalid power target {other:?}: use \"power on\", \"power off\", \"rebooting\", \"soft power off\" or \"soft rebooting\"."
                )));
            }
        };
        let bmc = self.bmc(&node)?;
        node.target_power_state = Some(end.into());
        node = self.save(node)?;
        let result = (|| -> ipmi::Result<()> {
            let on = bmc.power_is_on()?;
            match (target, on) {
                // Rebooting a machine that is off powers it on, as Ironic does.
                ("rebooting", false) => bmc.chassis_control(ipmi::ChassisControl::PowerOn)?,
                ("rebooting", true) => bmc.chassis_control(ipmi::ChassisControl::HardReset)?,
                ("soft rebooting", true) => {
                    bmc.chassis_control(ipmi::ChassisControl::Soft)?;
                    wait_power(&bmc, false, Duration::from_secs(30))?;
                    bmc.chassis_control(ipmi::ChassisControl::PowerOn)?;
                }
                ("soft rebooting", false) => bmc.chassis_control(ipmi::ChassisControl::PowerOn)?,
                _ => bmc.chassis_control(control)?,
            }
            wait_power(&bmc, end == POWER_ON, Duration::from_secs(30))
        })();
        match result {
            Ok(()) => {
                node.power_state = Some(end.into());
                node.target_power_state = None;
                node.last_error = None;
                self.save(node)
            }
            Err(e) => Err(self.bmc_failed(node, &format!("set power state to {target}"), &e)),
        }
    }

    pub fn set_boot_device(&self, ident: &str, device: &str, persistent: bool) -> Result<()> {
        let mut node = self.get(ident)?;
        let dev = ipmi::BootDevice::parse(device).ok_or_else(|| {
            Error::BadRequest(format!(
                "Invalid boot device {device}, valid devices are: pxe, disk, cdrom, bios."
            ))
        })?;
        let uefi = node
            .properties
            .get("capabilities")
            .and_then(Value::as_str)
            .is_some_and(|c| c.contains("boot_mode:uefi"));
        let bmc = self.bmc(&node)?;
        match bmc.set_boot_device(dev, persistent, uefi) {
            Ok(()) => {
                node.boot_device = Some(device.into());
                node.boot_persistent = persistent;
                self.save(node)?;
                Ok(())
            }
            Err(e) => Err(self.bmc_failed(node, "set boot device", &e)),
        }
    }

    /// The boot device as the BMC reports it (falls back to the last one set).
    pub fn boot_device(&self, ident: &str) -> Result<(Option<String>, bool)> {
        let node = self.get(ident)?;
        let bmc = self.bmc(&node)?;
        match bmc.boot_device() {
            Ok(b) => Ok((
                b.device
                    .map(|d| d.as_str().to_string())
                    .or(node.boot_device.clone()),
                b.persistent,
            )),
            Err(e) => Err(self.bmc_failed(node, "get boot device", &e)),
        }
    }

    /// Provision verbs of the API: `manage`, `provide`; the rest belong to the compute side.
    pub fn provision(&self, ident: &str, verb: &str) -> Result<Node> {
        let mut node = self.get(ident)?;
        let refuse = |n: &Node| {
            Error::BadRequest(format!(
                "The requested action \"{verb}\" can not be performed on node \"{}\" while it is in state \"{}\".",
                n.uuid, n.provision_state
            ))
        };
        match (verb, node.provision_state.as_str()) {
            ("manage", "enroll" | "verifying") => {
                node.provision_state = "verifying".into();
                node.target_provision_state = Some("manageable".into());
                node.provision_updated_at = Some(now());
                node = self.save(node)?;
                let checked = self
                    .bmc(&node)
                    .map_err(|e| e.to_string())
                    .and_then(|bmc| bmc.power_is_on().map_err(|e| e.to_string()));
                match checked {
                    Ok(on) => {
                        node.power_state = Some(if on { POWER_ON } else { POWER_OFF }.into());
                        node.provision_state = "manageable".into();
                        node.last_error = None;
                    }
                    Err(e) => {
                        node.provision_state = "enroll".into();
                        node.last_error = Some(format!(
                            "Failed to verify node {}: the BMC could not be reached with the given driver_info: {e}",
                            node.uuid
                        ));
                    }
                }
            }
            ("manage", "available" | "clean failed" | "manageable") => {
                node.provision_state = "manageable".into();
            }
            ("provide", "manageable" | "clean failed") => {
                if node.maintenance {
                    return Err(Error::BadRequest(format!(
                        "Node {} is in maintenance mode; it can not be provided.",
                        node.uuid
                    )));
                }
                node.provision_state = "available".into();
                node.last_error = None;
            }
            ("manage" | "provide", _) => return Err(refuse(&node)),
            (other, _) => {
                return Err(Error::BadRequest(format!(
                    "The requested action \"{other}\" is not supported by this bare-metal service: use manage or provide; deploy and undeploy happen through the Compute API."
                )));
            }
        }
        node.target_provision_state = None;
        node.provision_updated_at = Some(now());
        self.save(node)
    }

    pub fn set_maintenance(&self, ident: &str, on: bool, reason: Option<String>) -> Result<Node> {
        let mut node = self.get(ident)?;
        node.maintenance = on;
        node.maintenance_reason = if on { reason } else { None };
        self.save(node)
    }

    /// The SOL capture file of a node.
    pub fn console_path(&self, node_uuid: &str) -> PathBuf {
        self.cfg.console_dir.join(format!("{node_uuid}.log"))
    }
}

fn wait_power(bmc: &ipmi::Bmc, on: bool, within: Duration) -> ipmi::Result<()> {
    let t = std::time::Instant::now();
    loop {
        if bmc.power_is_on()? == on {
            return Ok(());
        }
        if t.elapsed() > within {
            return Err(ipmi::Error::Protocol(format!(
                "the BMC still reports power {} after {} s",
                if on { "off" } else { "on" },
                within.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn take_password(info: &mut Map<String, Value>) -> Option<String> {
    match info.remove("ipmi_password") {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
        && uuid::Uuid::parse_str(name).is_err();
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "Expected a logical name but received {name}."
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_classes_follow_nova() {
        assert_eq!(placement_class("baremetal.small"), "CUSTOM_BAREMETAL_SMALL");
        assert_eq!(placement_class("Gold-1"), "CUSTOM_GOLD_1");
    }
}
