//! The seam between the compute service and the machines that run servers.
//!
//! A backend implements [`ComputeDriver`]: it turns an [`InstanceSpec`] into a running guest
//! (a VM, a container, a powered-on physical machine) and answers for its power state. The
//! methods are blocking and are called from blocking threads, one operation per server at a
//! time (the compute service's task state guarantees that). A backend that cannot do an
//! operation returns [`DriverError::NotSupported`], which the API turns into Nova's fault for
//! it. Backend identifiers (domain names, PIDs, BMC addresses) never leave the driver: the
//! compute service knows servers by their UUID only.
//!
//! [`fake::FakeDriver`] keeps instances in memory; [`conformance`] is the suite every driver,
//! fake or real, must pass.

pub mod conformance;
pub mod console;
pub mod fake;
pub mod holders;
pub mod imagecache;
pub mod metadata;
pub mod unavailable;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use model::compute::Backend;
use model::compute::{Address, PowerState, ServerId};

/// An image's data as a backend reads it: the checked file in the image store and what it
/// is. The format must be passed explicitly to any tool that reads the file (never probed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFile {
    pub id: String,
    pub path: PathBuf,
    pub disk_format: String,
    pub container_format: String,
    /// The hash of the image's content as the image service recorded it at upload,
    /// `<algo>-<hex>` (e.g. `sha512-…`); see [`ImageFile::cache_key`].
    pub content_hash: String,
    pub properties: BTreeMap<String, String>,
}

impl ImageFile {
    /// The name of this image's entries in a backend's cache of image content: its content
    /// hash, never its id, so an id can never bring back content a cache holds for another
    /// image, and two images with the same content share one entry. An image without a
    /// well-formed hash has no cache entry (an error, not a fallback to the id).
    pub fn cache_key(&self) -> Result<String, String> {
        let bad = || format!("image {} has no content hash to cache it by", self.id);
        let (algo, hex) = self.content_hash.split_once('-').ok_or_else(bad)?;
        let algo_ok = !algo.is_empty() && algo.chars().all(|c| c.is_ascii_alphanumeric());
        let hex_ok = hex.len() >= 32
            && hex.len() <= 128
            && hex
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
        if algo_ok && hex_ok {
            Ok(format!("{algo}-{hex}"))
        } else {
            Err(bad())
        }
    }
}

/// One network interface of an instance: the address the API reports and the network it
/// sits on. Backends that give guests real networking attach them to the bridge of
/// `network_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub network_id: String,
    pub network_name: String,
    /// The network's CIDR, e.g. `10.1.0.0/16`.
    pub cidr: String,
    pub gateway: String,
    pub address: String,
    pub mac: String,
    /// The networking service's port id (`vif_id` in `network_data.json`).
    pub port_id: String,
    /// The network's MTU; 0 when unknown (1500).
    pub mtu: u32,
    /// The subnet's DNS servers.
    pub dns_nameservers: Vec<String>,
    /// The subnet's extra routes: (destination CIDR, next hop).
    pub host_routes: Vec<(String, String)>,
    /// The subnet answers DHCP (`enable_dhcp`); without it the guest takes its address from
    /// `network_data.json`.
    pub dhcp: bool,
    /// Anti-spoofing and security groups apply (`port_security_enabled`).
    pub port_security: bool,
    /// Further addresses the guest may send from: (IPv4 address or CIDR, MAC).
    pub allowed_address_pairs: Vec<(String, String)>,
}

impl Default for Port {
    fn default() -> Self {
        Self {
            network_id: String::new(),
            network_name: String::new(),
            cidr: String::new(),
            gateway: String::new(),
            address: String::new(),
            mac: String::new(),
            port_id: String::new(),
            mtu: 0,
            dns_nameservers: Vec::new(),
            host_routes: Vec::new(),
            dhcp: true,
            port_security: true,
            allowed_address_pairs: Vec::new(),
        }
    }
}

/// A block-storage volume as a backend attaches it: a file or a block device on this host,
/// written by the block-storage service's storage backend. The format is passed explicitly
/// to whatever reads it (never probed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Volume {
    /// The volume's id: a VM's disk carries it as its `serial` (so the guest finds it under
    /// `/dev/disk/by-id/virtio-<first 20 characters>`), a container mounts it by it.
    pub volume_id: String,
    /// The volume's data: a raw or qcow2 file, or a block device (an LVM volume).
    pub path: PathBuf,
    /// `raw` or `qcow2`.
    pub format: String,
    /// The device name the compute API reports for the attachment (`/dev/vdb`).
    pub device: String,
    /// Where a container sees the volume's filesystem; empty for `/mnt/<volume_id>`.
    pub mount_path: String,
    pub read_only: bool,
    /// `Some(0)` for the volume a volume-backed server boots from.
    pub boot_index: Option<u32>,
}

/// An interactive console of an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConsoleKind {
    /// The first serial port (a VM's ttyS0, a container's init terminal, a machine's SOL).
    Serial,
    /// The framebuffer over the RFB protocol.
    Vnc,
}

impl ConsoleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsoleKind::Serial => "serial",
            ConsoleKind::Vnc => "vnc",
        }
    }
}

/// Where an interactive console's byte stream is reached on this host: a Unix stream socket
/// that relays the console both ways while the connection lasts. Closing the connection
/// never stops the instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsoleEndpoint {
    Unix(PathBuf),
}

/// What a backend needs to build a server.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceSpec {
    pub id: ServerId,
    pub name: String,
    pub hostname: String,
    pub project_id: String,
    pub availability_zone: String,
    pub launch_index: u32,
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
    pub flavor_name: String,
    pub extra_specs: BTreeMap<String, String>,
    pub image_id: Option<String>,
    /// The image's data; `None` when the server has no image or the backend needs none.
    pub image: Option<ImageFile>,
    /// Kernel and ramdisk for direct kernel boot (the image's `kernel_id`/`ramdisk_id`).
    pub kernel: Option<ImageFile>,
    pub ramdisk: Option<ImageFile>,
    pub user_data: Option<String>,
    pub key_name: Option<String>,
    pub key_data: Option<String>,
    pub admin_pass: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub config_drive: bool,
    pub addresses: Vec<Address>,
    pub ports: Vec<Port>,
    /// The volumes attached to the server, in attachment order; a volume-backed server's
    /// boot volume (`boot_index` 0) is among them and `image` is then `None`.
    pub volumes: Vec<Volume>,
}

/// The image a server is rescued with ([`ComputeDriver::rescue`]), resolved as a spec's
/// image is: its data, and the kernel and ramdisk it names for direct kernel boot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RescueImage {
    pub image_id: String,
    /// `None` when the image catalog keeps no data (the fake needs none).
    pub image: Option<ImageFile>,
    pub kernel: Option<ImageFile>,
    pub ramdisk: Option<ImageFile>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RebootKind {
    Soft,
    Hard,
}

/// What a backend reports of one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceInfo {
    pub power_state: PowerState,
}

/// The host's capacity as the backend sees it, for os-hypervisors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub vcpus: u32,
    pub memory_mb: u64,
    pub local_gb: u64,
    pub hypervisor_type: String,
    pub hypervisor_version: u64,
}

/// A snapshot written by [`ComputeDriver::snapshot`]: the formats of the file it wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub disk_format: String,
    pub container_format: String,
}

/// Server diagnostics in Nova's 2.48 shape; fields a backend cannot tell are `None`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diagnostics {
    pub power_state: Option<PowerState>,
    pub hypervisor: String,
    pub hypervisor_os: String,
    pub uptime_s: Option<u64>,
    pub num_cpus: u32,
    pub memory_max_kb: u64,
    pub memory_used_kb: Option<u64>,
    pub cpu_time_ns: Vec<u64>,
    pub disks: Vec<DiskStats>,
    pub nics: Vec<NicStats>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub read_bytes: u64,
    pub read_requests: u64,
    pub write_bytes: u64,
    pub write_requests: u64,
    pub errors_count: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NicStats {
    pub mac_address: String,
    pub rx_octets: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_drop: u64,
    pub tx_octets: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_drop: u64,
}

/// The operations a backend supports beyond the ones every backend must.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub pause: bool,
    pub suspend: bool,
    pub snapshot: bool,
    pub resize: bool,
    pub rebuild: bool,
    pub console_output: bool,
    pub set_admin_password: bool,
    pub trigger_crash_dump: bool,
    pub diagnostics: bool,
    pub rescue: bool,
}

/// Every operation a driver can be asked for; used to report `NotSupported` and to inject
/// failures into the fake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    Spawn,
    Destroy,
    Reboot,
    PowerOff,
    PowerOn,
    Pause,
    Unpause,
    Suspend,
    Resume,
    Rebuild,
    Resize,
    ConfirmResize,
    RevertResize,
    Snapshot,
    ConsoleOutput,
    SetAdminPassword,
    TriggerCrashDump,
    Diagnostics,
    Rescue,
    Unrescue,
    AttachInterface,
    DetachInterface,
    AttachVolume,
    DetachVolume,
    ExtendVolume,
    Console,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Spawn => "spawn",
            Operation::Destroy => "destroy",
            Operation::Reboot => "reboot",
            Operation::PowerOff => "power_off",
            Operation::PowerOn => "power_on",
            Operation::Pause => "pause",
            Operation::Unpause => "unpause",
            Operation::Suspend => "suspend",
            Operation::Resume => "resume",
            Operation::Rebuild => "rebuild",
            Operation::Resize => "resize",
            Operation::ConfirmResize => "confirm_resize",
            Operation::RevertResize => "revert_resize",
            Operation::Snapshot => "snapshot",
            Operation::ConsoleOutput => "console_output",
            Operation::SetAdminPassword => "set_admin_password",
            Operation::TriggerCrashDump => "trigger_crash_dump",
            Operation::Diagnostics => "diagnostics",
            Operation::Rescue => "rescue",
            Operation::Unrescue => "unrescue",
            Operation::AttachInterface => "attach_interface",
            Operation::DetachInterface => "detach_interface",
            Operation::AttachVolume => "attach_volume",
            Operation::ExtendVolume => "extend_volume",
            Operation::DetachVolume => "detach_volume",
            Operation::Console => "console",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error("{} is not supported by this backend", .0.as_str())]
    NotSupported(Operation),
    #[error("instance {0} not found in the backend")]
    NotFound(ServerId),
    /// The request cannot be met with what the backend has (no free node, no room); the
    /// server ends in ERROR with Nova's "No valid host" fault.
    #[error("{0}")]
    NoValidHost(String),
    #[error("{0}")]
    Failed(String),
}

pub type Result<T, E = DriverError> = std::result::Result<T, E>;

/// Where a backend reports that an instance changed state by itself (a guest shut down from
/// inside, crashed, was paused by the host). A report is a hint: the compute service answers
/// it by asking [`ComputeDriver::get_info`], as its periodic power-state sync does.
pub type StateSink = std::sync::Arc<dyn Fn(&ServerId) + Send + Sync>;

/// A compute backend. Methods block; call them from blocking threads.
///
/// The methods with a default body are optional: the default refuses with `NotSupported`,
/// which the compute service turns into Nova's fault for a backend gap.
pub trait ComputeDriver: Send + Sync {
    /// A short name for logs and os-hypervisors (`fake`, `QEMU`, `lxc`, `ironic`).
    fn name(&self) -> &'static str;
    fn capabilities(&self) -> Capabilities;
    /// Creates and starts the instance. Spawning an id that exists is an error.
    fn spawn(&self, spec: &InstanceSpec) -> Result<()>;
    /// Stops and removes the instance and everything it owns. Destroying an instance the
    /// backend does not know succeeds: delete must always be able to finish.
    fn destroy(&self, id: &ServerId) -> Result<()>;
    fn reboot(&self, id: &ServerId, kind: RebootKind) -> Result<()>;
    fn power_off(&self, id: &ServerId) -> Result<()>;
    fn power_on(&self, id: &ServerId) -> Result<()>;
    fn pause(&self, id: &ServerId) -> Result<()>;
    fn unpause(&self, id: &ServerId) -> Result<()>;
    fn suspend(&self, id: &ServerId) -> Result<()>;
    fn resume(&self, id: &ServerId) -> Result<()>;
    fn console_output(&self, id: &ServerId, lines: Option<usize>) -> Result<String>;
    fn get_info(&self, id: &ServerId) -> Result<InstanceInfo>;
    /// The instances the backend holds, whether or not the database knows them.
    fn list_instances(&self) -> Result<Vec<ServerId>>;
    fn available_resources(&self) -> Result<Resources>;

    /// Replaces the instance's root disk with a fresh one from `spec.image` (and its name,
    /// key, user data) keeping its identity and addresses; the instance runs afterwards.
    fn rebuild(&self, spec: &InstanceSpec) -> Result<()> {
        let _ = spec;
        Err(DriverError::NotSupported(Operation::Rebuild))
    }
    /// Moves the instance to the flavor in `spec` (a disk only grows), keeping what is
    /// needed to go back until [`confirm_resize`](Self::confirm_resize) or
    /// [`revert_resize`](Self::revert_resize). The instance runs afterwards.
    fn resize(&self, spec: &InstanceSpec) -> Result<()> {
        let _ = spec;
        Err(DriverError::NotSupported(Operation::Resize))
    }
    /// Drops what a resize kept for going back.
    fn confirm_resize(&self, id: &ServerId) -> Result<()> {
        let _ = id;
        Err(DriverError::NotSupported(Operation::ConfirmResize))
    }
    /// Returns the instance to `old` (its flavor before the resize), running.
    fn revert_resize(&self, old: &InstanceSpec) -> Result<()> {
        let _ = old;
        Err(DriverError::NotSupported(Operation::RevertResize))
    }
    /// Writes a consistent copy of the instance's root disk (or root filesystem) to `dest`.
    fn snapshot(&self, id: &ServerId, dest: &Path) -> Result<Snapshot> {
        let _ = (id, dest);
        Err(DriverError::NotSupported(Operation::Snapshot))
    }
    fn set_admin_password(&self, id: &ServerId, password: &str) -> Result<()> {
        let _ = (id, password);
        Err(DriverError::NotSupported(Operation::SetAdminPassword))
    }
    fn trigger_crash_dump(&self, id: &ServerId) -> Result<()> {
        let _ = id;
        Err(DriverError::NotSupported(Operation::TriggerCrashDump))
    }
    fn diagnostics(&self, id: &ServerId) -> Result<Diagnostics> {
        let _ = id;
        Err(DriverError::NotSupported(Operation::Diagnostics))
    }
    /// Removes the backend's cached images (bases converted or unpacked from the image
    /// service) that no instance of the backend refers to and that were last used more than
    /// `min_unused_age` ago; returns how many it removed. A backend that caches nothing
    /// removes nothing.
    fn prune_image_cache(&self, min_unused_age: std::time::Duration) -> Result<usize> {
        let _ = min_unused_age;
        Ok(0)
    }
    /// Boots the instance from a fresh disk of `rescue` with its own root disk attached
    /// second, keeping what is needed to go back; `admin_pass` is the rescue system's
    /// password. The instance runs afterwards. Rescuing an instance already rescued (a
    /// rescue that failed half-way) keeps what the first rescue kept.
    fn rescue(&self, spec: &InstanceSpec, rescue: &RescueImage, admin_pass: &str) -> Result<()> {
        let _ = (spec, rescue, admin_pass);
        Err(DriverError::NotSupported(Operation::Rescue))
    }
    /// Ends a rescue: the instance boots from its own disk again (as `spec` describes it)
    /// and the rescue disk is gone. The instance runs afterwards.
    fn unrescue(&self, spec: &InstanceSpec) -> Result<()> {
        let _ = spec;
        Err(DriverError::NotSupported(Operation::Unrescue))
    }
    /// Plugs `port` into the instance `spec` describes, running or not (the port is in
    /// `spec.ports` already, last); the guest sees a new NIC.
    fn attach_interface(&self, spec: &InstanceSpec, port: &Port) -> Result<()> {
        let _ = (spec, port);
        Err(DriverError::NotSupported(Operation::AttachInterface))
    }
    /// Unplugs `port` from the instance (`spec.ports` no longer lists it).
    fn detach_interface(&self, spec: &InstanceSpec, port: &Port) -> Result<()> {
        let _ = (spec, port);
        Err(DriverError::NotSupported(Operation::DetachInterface))
    }
    /// Attaches `volume` to the instance `spec` describes, running or not (the volume is in
    /// `spec.volumes` already, last): a VM's guest sees a new disk, a container the
    /// volume's filesystem at its mount path. Attaching a volume the instance already has
    /// succeeds and changes nothing (a retried attach after a crash).
    fn attach_volume(&self, spec: &InstanceSpec, volume: &Volume) -> Result<()> {
        let _ = (spec, volume);
        Err(DriverError::NotSupported(Operation::AttachVolume))
    }
    /// Detaches `volume` from the instance (`spec.volumes` no longer lists it); returns once
    /// nothing of the instance holds the volume's file or device any more. Detaching a
    /// volume the instance does not have succeeds.
    fn detach_volume(&self, spec: &InstanceSpec, volume: &Volume) -> Result<()> {
        let _ = (spec, volume);
        Err(DriverError::NotSupported(Operation::DetachVolume))
    }
    /// Tells the instance that attached `volume`'s file grew to `new_bytes` (an online
    /// extend), so that a running guest sees the larger disk; a stopped one needs nothing.
    fn extend_volume(&self, spec: &InstanceSpec, volume: &Volume, new_bytes: u64) -> Result<()> {
        let _ = (spec, volume, new_bytes);
        Err(DriverError::NotSupported(Operation::ExtendVolume))
    }
    /// Where the running instance's interactive console of `kind` is reached. Each
    /// connection to the endpoint is one session; the backend keeps recording the serial
    /// console's output to the console log whether or not a session is open.
    fn console_endpoint(&self, id: &ServerId, kind: ConsoleKind) -> Result<ConsoleEndpoint> {
        let _ = (id, kind);
        Err(DriverError::NotSupported(Operation::Console))
    }
    /// Starts reporting state changes the backend notices by itself to `sink`, for as long
    /// as the driver lives. Returns false when the backend has no such events; the periodic
    /// power-state sync then is the only way they are noticed.
    fn watch(&self, sink: StateSink) -> bool {
        let _ = sink;
        false
    }
}

/// The backends of a box, by kind. A kind with no backend is served by
/// [`unavailable::Unavailable`], so a server placed on it fails with a fault that says why.
#[derive(Clone)]
pub struct Backends {
    by_kind: HashMap<Backend, Arc<dyn ComputeDriver>>,
    missing: HashMap<Backend, Arc<dyn ComputeDriver>>,
}

impl Backends {
    /// No backend at all: every kind is unavailable, with its own reason.
    pub fn none() -> Self {
        let missing = [
            Backend::Vm,
            Backend::Container,
            Backend::BareMetal,
            Backend::Fake,
        ]
        .into_iter()
        .map(|b| {
            let reason = match b {
                Backend::Vm => {
                    "This box has no virtual machine backend (libvirt/QEMU is not available)."
                }
                Backend::Container => "This box has no container backend.",
                Backend::BareMetal => "This box has no bare-metal backend.",
                Backend::Fake => "This box has no fake backend.",
            };
            let d: Arc<dyn ComputeDriver> = Arc::new(unavailable::Unavailable {
                reason: reason.into(),
            });
            (b, d)
        })
        .collect();
        Self {
            by_kind: HashMap::new(),
            missing,
        }
    }

    /// One driver serving every kind (the fake driver of tests and `--fake-driver`).
    pub fn single(d: Arc<dyn ComputeDriver>) -> Self {
        let mut b = Self::none();
        for kind in [
            Backend::Vm,
            Backend::Container,
            Backend::BareMetal,
            Backend::Fake,
        ] {
            b.by_kind.insert(kind, d.clone());
        }
        b
    }

    pub fn with(mut self, kind: Backend, d: Arc<dyn ComputeDriver>) -> Self {
        self.by_kind.insert(kind, d);
        self
    }

    /// The driver for a kind, or the one that refuses if the box has none.
    pub fn get(&self, kind: Backend) -> Arc<dyn ComputeDriver> {
        self.by_kind
            .get(&kind)
            .or_else(|| self.missing.get(&kind))
            .cloned()
            .expect("every kind has a driver or a refusal")
    }

    pub fn has(&self, kind: Backend) -> bool {
        self.by_kind.contains_key(&kind)
    }

    /// The distinct drivers present, each once, with the kinds it serves.
    pub fn present(&self) -> Vec<(Vec<Backend>, Arc<dyn ComputeDriver>)> {
        let mut out: Vec<(Vec<Backend>, Arc<dyn ComputeDriver>)> = Vec::new();
        let mut kinds: Vec<_> = self.by_kind.iter().collect();
        kinds.sort_by_key(|(k, _)| k.as_str());
        for (k, d) in kinds {
            match out.iter_mut().find(|(_, e)| Arc::ptr_eq(e, d)) {
                Some((ks, _)) => ks.push(*k),
                None => out.push((vec![*k], d.clone())),
            }
        }
        out
    }

    /// Whether all kinds share one driver (a fake box).
    pub fn is_single(&self) -> bool {
        self.present().len() == 1 && self.by_kind.len() == 4
    }
}
