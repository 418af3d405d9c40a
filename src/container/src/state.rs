//! The files of an instance directory, shared by the driver and the shim.
//!
//! `<data_dir>/instances/<uuid>/`:
//! - `instance.json` ([`Instance`]): what to run, written by the driver at spawn, rebuild and
//!   resize;
//! - `boot.json` ([`Boot`]): written by the shim once init runs: the boot's number, the pids
//!   and start times of the shim and of init, the cgroup's OOM count at start;
//! - `exit.json` ([`Exit`]): written by the shim when init ends;
//! - `failed.json`: written by the shim when a boot could not start (the reason);
//! - `layer.img`, mounted at `layer/`: the file system of the overlay's writable layer,
//!   `layer/upper/` and `layer/work/`, capped at the flavor's disk ([`crate::layer`]);
//!   `rootfs/`: the overlay's mount point (mounted only inside the container's own mount
//!   namespace);
//! - `console.log` (and `console.log.1`): init's stdout and stderr, capped;
//! - `shim.log`: the shim's own messages.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cgroup::{Cgroup, Limits};

/// One network interface to give the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nic {
    pub network_id: String,
    pub cidr: String,
    pub gateway: String,
    pub address: String,
    pub prefix: u8,
    pub mac: String,
    /// The host end of the veth pair (on the network's bridge).
    pub host_if: String,
    /// The container end's name until it is renamed inside.
    pub peer_if: String,
    /// Its name inside (`eth0`, `eth1`, …).
    pub name: String,
    /// The subnet's extra routes: (destination CIDR, next hop), added inside.
    #[serde(default)]
    pub routes: Vec<(String, String)>,
    /// The subnet's DNS servers.
    #[serde(default)]
    pub dns: Vec<String>,
    /// Allowed address pairs: (address or CIDR, MAC).
    #[serde(default)]
    pub pairs: Vec<(String, String)>,
    /// Port security (anti-spoofing): on unless the port turned it off.
    #[serde(default = "on")]
    pub secured: bool,
}

fn on() -> bool {
    true
}

impl Nic {
    /// The interface of `port`, named `host_if`/`peer_if` on the host and `name` inside.
    pub fn of(
        port: &driver::Port,
        host_if: String,
        peer_if: String,
        name: String,
    ) -> Result<Self, String> {
        Ok(Self {
            network_id: port.network_id.clone(),
            cidr: port.cidr.clone(),
            gateway: port.gateway.clone(),
            address: port.address.clone(),
            prefix: crate::prefix_of(&port.cidr).map_err(|e| e.to_string())?,
            mac: port.mac.to_ascii_lowercase(),
            host_if,
            peer_if,
            name,
            routes: port.host_routes.clone(),
            dns: port.dns_nameservers.clone(),
            pairs: port.allowed_address_pairs.clone(),
            secured: port.port_security,
        })
    }

    /// How the host pins it ([`hostnet::ports`]).
    pub fn pin(&self, server: &str) -> Result<hostnet::ports::PortDef, String> {
        let address = self
            .address
            .parse()
            .map_err(|_| format!("bad address {}", self.address))?;
        Ok(hostnet::ports::PortDef {
            pairs: hostnet::ports::PortDef::parse_pairs(&self.pairs),
            secured: self.secured,
            ..hostnet::ports::PortDef::new(&self.host_if, server, &self.mac, address)
        })
    }
}

/// What an instance runs; the driver writes it, each boot of the shim reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    pub hostname: String,
    pub image_id: String,
    /// The unpacked image (the overlay's read-only lower layer).
    pub lower: PathBuf,
    /// init's argv.
    pub init: Vec<String>,
    pub cgroup: Cgroup,
    pub limits: Limits,
    pub nics: Vec<Nic>,
    pub nameservers: Vec<String>,
    pub console_max_bytes: u64,
    /// Run in a user namespace, root inside mapped to `uid_base` outside.
    pub user_namespace: Option<u32>,
    /// `lower` is the container's own copy of the image with its ids shifted already (a
    /// kernel whose overlayfs takes no idmapped layer); otherwise the shim idmaps it.
    #[serde(default)]
    pub lower_shifted: bool,
    /// Bumped by every boot the driver starts; the shim records the one it ran.
    pub boot: u64,
    /// The networks' bridges route to the NAT uplink (see [`crate::Config::forwarding`]);
    /// set from the driver's settings at every boot. Absent in older files: isolated.
    #[serde(default)]
    pub forwarding: bool,
    /// The attached volumes, mounted at every boot before init runs. Absent in older
    /// files: none.
    #[serde(default)]
    pub volumes: Vec<crate::volumes::VolumeRec>,
}

/// A running boot, as the shim recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Boot {
    pub boot: u64,
    pub shim_pid: i32,
    pub shim_start: u64,
    pub init_pid: i32,
    pub init_start: u64,
    /// The cgroup's OOM-kill count when this boot started.
    pub oom_kills_at_start: u64,
}

/// How a boot's init ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub boot: u64,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The cgroup's OOM-kill count when init ended.
    pub oom_kills: u64,
}

pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }
    pub fn instance(&self) -> PathBuf {
        self.dir.join("instance.json")
    }
    pub fn boot(&self) -> PathBuf {
        self.dir.join("boot.json")
    }
    pub fn exit(&self) -> PathBuf {
        self.dir.join("exit.json")
    }
    pub fn failed(&self) -> PathBuf {
        self.dir.join("failed.json")
    }
    /// The overlay's upper layer: on the layer file system when the instance has one
    /// ([`crate::layer`]), else in the instance directory (instances made before it).
    /// What the container gets of its server's metadata ([`crate::seed`]).
    pub fn seed(&self) -> PathBuf {
        self.dir.join("seed")
    }
    pub fn upper(&self) -> PathBuf {
        self.layer_parent().join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.layer_parent().join("work")
    }
    fn layer_parent(&self) -> PathBuf {
        if self.layer_image().exists() {
            self.layer()
        } else {
            self.dir.clone()
        }
    }
    /// The sparse file holding the writable layer's file system, and its mount point.
    pub fn layer_image(&self) -> PathBuf {
        self.dir.join("layer.img")
    }
    pub fn layer(&self) -> PathBuf {
        self.dir.join("layer")
    }
    /// Present while the layer's file system is smaller than its file (a resize).
    pub fn layer_grow_mark(&self) -> PathBuf {
        self.dir.join("layer.grow")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    pub fn console(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    pub fn console_old(&self) -> PathBuf {
        self.dir.join("console.log.1")
    }
    /// The interactive console's socket, served by the shim while init runs.
    pub fn console_socket(&self) -> PathBuf {
        self.dir.join("console.sock")
    }
    pub fn shim_log(&self) -> PathBuf {
        self.dir.join("shim.log")
    }
    pub fn suspended(&self) -> PathBuf {
        self.dir.join("suspended")
    }
    pub fn resize_old(&self) -> PathBuf {
        self.dir.join("resize-old.json")
    }
}

/// Writes `value` as JSON to `path` atomically (temporary file, fsync, rename).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<T> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(std::io::Error::other)
}

/// A process's start time (field 22 of `/proc/<pid>/stat`, in clock ticks since boot): with
/// the pid it names one process, even after the pid is reused.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// A process's state letter (field 3 of `/proc/<pid>/stat`).
pub fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

/// Whether `pid` is still the process that started at `start` (and not a zombie).
pub fn alive(pid: i32, start: u64) -> bool {
    pid > 0 && start_time(pid) == Some(start) && proc_state(pid) != Some('Z')
}
