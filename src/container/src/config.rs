//! The driver's settings and how it starts a shim.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::userns;

/// How the driver starts a shim: `program args… <instance dir>`.
#[derive(Clone, Debug)]
pub struct ShimCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl ShimCommand {
    /// The running onebox binary re-executed as `onebox container-shim <dir>`.
    /// `/proc/self/exe` still names the running binary after a package upgrade replaced it.
    pub fn onebox() -> Self {
        Self {
            program: PathBuf::from("/proc/self/exe"),
            args: vec!["container-shim".into()],
        }
    }
}

/// The driver's settings (`[container]` in onebox.toml).
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    /// The cgroup that holds every container's cgroup (`/sys/fs/cgroup/<it>/<uuid>` on v2,
    /// `/sys/fs/cgroup/<controller>/<it>/<uuid>` on v1).
    pub cgroup_parent: String,
    /// Cap on each container's console log (init's stdout and stderr).
    pub console_max_bytes: u64,
    pub pids_max: u64,
    /// How long a soft stop waits for init after SIGTERM before SIGKILL.
    pub stop_timeout: Duration,
    /// `nameserver` lines of the containers' /etc/resolv.conf; empty: the network's gateway.
    pub nameservers: Vec<String>,
    /// Give containers a user namespace (on by default): root inside is an unprivileged
    /// user of the host, with a range of ids of its own ([`crate::userns`]). A flavor whose extra
    /// spec [`crate::USERNS_EXTRA_SPEC`] is `false` opts out (extra specs are admin-only).
    pub user_namespace: bool,
    /// Give a container in a user namespace the shared image through an idmapped mount
    /// (Linux 5.19 and later; turned off by the driver on older kernels); `false`: a copy of
    /// the image per container, its ids shifted.
    pub idmapped_lower: bool,
    /// Where the containers' id ranges are recorded (the onebox binary: SQLite).
    pub id_ranges: Arc<dyn userns::IdRanges>,
    /// The project bridges route to the NAT uplink (`[network] nat_uplink` is set);
    /// `false`: isolated.
    pub forwarding: bool,
    /// How far one root filesystem tarball may unpack (bytes, entries).
    pub unpack: crate::rootfs::UnpackLimits,
    /// The writable layer of a container on a `disk=0` flavor, in bytes ([`crate::layer`]).
    pub zero_disk_layer_bytes: u64,
    pub shim: ShimCommand,
}

impl Config {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            cgroup_parent: "onebox".into(),
            console_max_bytes: 1 << 20,
            pids_max: 4096,
            stop_timeout: Duration::from_secs(10),
            nameservers: Vec::new(),
            user_namespace: true,
            idmapped_lower: true,
            id_ranges: Arc::new(userns::MemoryIdRanges::default()),
            forwarding: false,
            unpack: crate::rootfs::UnpackLimits::default(),
            zero_disk_layer_bytes: 20 << 30,
            shim: ShimCommand::onebox(),
        }
    }
}
