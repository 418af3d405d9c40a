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
pub mod fake;
pub mod unavailable;

use model::compute::{Address, PowerState, ServerId};

/// What a backend needs to build a server.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceSpec {
    pub id: ServerId,
    pub name: String,
    pub hostname: String,
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
    pub image_id: Option<String>,
    pub user_data: Option<String>,
    pub key_data: Option<String>,
    pub addresses: Vec<Address>,
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

/// The operations a backend supports beyond the ones every backend must.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub pause: bool,
    pub suspend: bool,
    pub snapshot: bool,
    pub resize: bool,
    pub console_output: bool,
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
    ConsoleOutput,
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
            Operation::ConsoleOutput => "console_output",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error("{} is not supported by this backend", .0.as_str())]
    NotSupported(Operation),
    #[error("instance {0} not found in the backend")]
    NotFound(ServerId),
    #[error("{0}")]
    Failed(String),
}

pub type Result<T, E = DriverError> = std::result::Result<T, E>;

/// A compute backend. Methods block; call them from blocking threads.
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
}
