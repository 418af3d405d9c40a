//! onebox's container backend: a server is a Linux container made of namespaces, an overlay
//! root filesystem on its image's unpacked tarball, and a cgroup with the flavor's limits.
//!
//! Each boot of a container is supervised by a shim process ([`shim`]) that runs in its own
//! session, so containers keep running when onebox stops, crashes or is upgraded. Everything
//! the driver knows is in files under `<data_dir>/instances/<uuid>/` ([`state`]), so a new
//! driver over the same data directory adopts the running containers: a boot is alive when
//! its init pid still names the process that started at the recorded time.
//!
//! Choices:
//! - **suspend** is a pause (the cgroup freezer), reported as SUSPENDED: a container has no
//!   memory image of its own to save.
//! - **reboot**: soft sends SIGTERM to init and waits (`stop_timeout`), then SIGKILL; hard
//!   kills at once; both start a new boot on the same overlay.
//! - **power off** is a soft stop; **power on** a new boot.
//! - **rebuild** discards the overlay's upper layer and boots on the new image.
//! - **resize** changes the cgroup's limits in place; revert puts the old ones back.
//! - **snapshot** packs the merged root filesystem into a tar (`bare`/`raw`).
//! - A boot whose init died with the cgroup's OOM-kill count above the one at its start is
//!   reported CRASHED; any other end of init is SHUTDOWN.

pub mod cgroup;
mod config;
mod console;
pub mod devices;
mod hotplug;
pub mod layer;
mod mounts;
mod net;
pub mod rootfs;
pub mod seccomp;
pub mod seed;
pub mod shim;
pub mod state;
mod sys;
pub mod userns;
mod volume_ops;
pub mod volumes;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use driver::{
    Capabilities, ComputeDriver, Diagnostics, DriverError, InstanceInfo, InstanceSpec, Operation,
    RebootKind, Resources, Result, Snapshot,
};
use model::compute::{PowerState, ServerId};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub use config::{Config, ShimCommand};

use cgroup::{Cgroup, Layout, Limits};
use state::{Boot, Exit, Instance, Nic, Paths};

/// The image property that names init's command (whitespace-separated argv); without it
/// init is `/sbin/init`.
pub const INIT_PROPERTY: &str = "onebox_init";
/// The flavor extra spec that caps the number of processes (default: [`Config::pids_max`]).
pub const PIDS_EXTRA_SPEC: &str = "onebox:pids_max";

/// The flavor extra spec that, set to `false`, runs the flavor's containers without a user
/// namespace (root inside is the host's root, confined by capabilities, seccomp and the
/// device list only). Flavor extra specs are set by admins only.
pub const USERNS_EXTRA_SPEC: &str = "onebox:userns";

/// The running kernel's (major, minor) version.
fn kernel_release() -> Option<(u32, u32)> {
    let u = nix::sys::utsname::uname().ok()?;
    let r = u.release().to_string_lossy().into_owned();
    let mut it = r
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok());
    Some((it.next()?, it.next()?))
}

/// Why this host cannot run containers, or `None` when it can.
pub fn unavailable_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("the container backend needs root".into());
    }
    for ns in ["pid", "mnt", "uts", "ipc", "net"] {
        if !Path::new(&format!("/proc/self/ns/{ns}")).exists() {
            return Some(format!("the kernel has no {ns} namespaces"));
        }
    }
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !fs.lines().any(|l| l.trim_end().ends_with("overlay")) {
        return Some("the kernel has no overlay filesystem".into());
    }
    Layout::detect().err()
}

pub struct ContainerDriver {
    cfg: Config,
    layout: Layout,
    /// One image unpacked at a time; the rootfs cache is pruned under it too.
    unpack: Mutex<()>,
}

fn failed(e: impl std::fmt::Display) -> DriverError {
    DriverError::Failed(e.to_string())
}

/// Host-side veth names: `obv`/`obp`, ten hex digits of the server id, the port's index.
fn veth_names(id: &str, index: usize) -> (String, String) {
    let hex: String = id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(10)
        .collect();
    (format!("obv{hex}{index:x}"), format!("obp{hex}{index:x}"))
}

fn prefix_of(cidr: &str) -> Result<u8> {
    cidr.split_once('/')
        .and_then(|(_, p)| p.parse().ok())
        .filter(|p| *p <= 32)
        .ok_or_else(|| failed(format!("bad CIDR {cidr}")))
}

impl ContainerDriver {
    pub fn new(cfg: Config) -> std::result::Result<Self, String> {
        if let Some(why) = unavailable_reason() {
            return Err(why);
        }
        let mut cfg = cfg;
        if cfg.user_namespace
            && cfg.idmapped_lower
            && let Some(old) = kernel_release().filter(|v| *v < userns::IDMAPPED_OVERLAY_KERNEL)
        {
            tracing::warn!(
                kernel = %format!("{}.{}", old.0, old.1),
                "overlayfs takes no idmapped layer here: each container in a user namespace \
                 gets its own copy of its image"
            );
            cfg.idmapped_lower = false;
        }
        let layout = Layout::detect()?;
        let d = Self {
            cfg,
            layout,
            unpack: Mutex::new(()),
        };
        std::fs::create_dir_all(d.instances_dir())
            .map_err(|e| format!("creating {}: {e}", d.instances_dir().display()))?;
        volume_ops::sweep(&d);
        Ok(d)
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn instances_dir(&self) -> PathBuf {
        self.cfg.data_dir.join("instances")
    }

    fn cache_dir(&self) -> PathBuf {
        self.cfg.data_dir.join("cache").join("rootfs")
    }

    fn paths(&self, id: &ServerId) -> Paths {
        Paths::new(&self.instances_dir().join(id.as_str()))
    }

    fn load(&self, id: &ServerId) -> Result<(Paths, Instance)> {
        let p = self.paths(id);
        match state::read_json::<Instance>(&p.instance()) {
            Ok(i) => Ok((p, i)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(DriverError::NotFound(id.clone()))
            }
            Err(e) => Err(failed(format!("reading the state of {id}: {e}"))),
        }
    }

    /// The cgroup of instance `id`.
    pub fn cgroup(&self, id: &ServerId) -> Cgroup {
        Cgroup::new(self.layout.clone(), &self.cfg.cgroup_parent, id.as_str())
    }

    /// The running boot of `id`, if its init is alive.
    pub fn running_boot(&self, id: &ServerId) -> Option<Boot> {
        let p = self.paths(id);
        let inst: Instance = state::read_json(&p.instance()).ok()?;
        let boot: Boot = state::read_json(&p.boot()).ok()?;
        (boot.boot == inst.boot && state::alive(boot.init_pid, boot.init_start)).then_some(boot)
    }

    /// The host pid of instance `id`'s init, when it runs.
    pub fn init_pid(&self, id: &ServerId) -> Option<i32> {
        self.running_boot(id).map(|b| b.init_pid)
    }

    fn limits(&self, spec: &InstanceSpec) -> Limits {
        let period = spec
            .extra_specs
            .get("quota:cpu_period")
            .and_then(|v| v.parse().ok())
            .filter(|p| (1000..=1_000_000).contains(p))
            .unwrap_or(100_000u64);
        // Nova's libvirt quota extra spec, when given, wins over the vcpus.
        let quota = spec
            .extra_specs
            .get("quota:cpu_quota")
            .and_then(|v| v.parse::<i64>().ok())
            .map_or(Some(u64::from(spec.vcpus.max(1)) * period), |q| {
                (q > 0).then_some(q as u64)
            });
        let pids = spec
            .extra_specs
            .get(PIDS_EXTRA_SPEC)
            .and_then(|v| v.parse().ok())
            .filter(|p| *p > 0)
            .unwrap_or(self.cfg.pids_max);
        Limits {
            memory_bytes: spec.ram_mb.max(16) * 1024 * 1024,
            cpu_quota_us: quota,
            cpu_period_us: period,
            pids_max: pids,
        }
    }

    /// The base of the id range of `spec`'s container, when it has a user namespace.
    fn id_range(&self, spec: &InstanceSpec) -> Result<Option<u32>> {
        let opted_out = spec
            .extra_specs
            .get(USERNS_EXTRA_SPEC)
            .is_some_and(|v| v.eq_ignore_ascii_case("false"));
        if !self.cfg.user_namespace || opted_out {
            return Ok(None);
        }
        self.cfg
            .id_ranges
            .allocate(spec.id.as_str())
            .map(Some)
            .map_err(failed)
    }

    /// The instance record for `spec` (a new one, or a rebuild's keeping the boot count).
    fn instance_for(&self, spec: &InstanceSpec, boot: u64) -> Result<Instance> {
        let image = spec
            .image
            .as_ref()
            .ok_or_else(|| failed("a container needs an image: a root filesystem tarball"))?;
        let lower = {
            let _g = self.unpack.lock().unwrap_or_else(|e| e.into_inner());
            let key = image.cache_key().map_err(failed)?;
            rootfs::ensure_unpacked(&self.cache_dir(), &key, &image.path, self.cfg.unpack)
                .map_err(failed)?
        };
        let init: Vec<String> = image
            .properties
            .get(INIT_PROPERTY)
            .map(|c| c.split_whitespace().map(str::to_owned).collect())
            .filter(|v: &Vec<String>| !v.is_empty())
            .unwrap_or_else(|| vec!["/sbin/init".into()]);
        let mut nics = Vec::new();
        for (i, port) in spec.ports.iter().enumerate() {
            let (host_if, peer_if) = veth_names(spec.id.as_str(), i);
            nics.push(Nic::of(port, host_if, peer_if, format!("eth{i}")).map_err(failed)?);
        }
        // The first port's subnet names its DNS servers, else the box's configuration,
        // else the gateway.
        let nameservers = match nics.first() {
            Some(n) if !n.dns.is_empty() => n.dns.clone(),
            _ if !self.cfg.nameservers.is_empty() => self.cfg.nameservers.clone(),
            first => first.map(|n| vec![n.gateway.clone()]).unwrap_or_default(),
        };
        let volumes = spec
            .volumes
            .iter()
            .map(volumes::VolumeRec::of)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(failed)?;
        let hostname = if spec.hostname.is_empty() {
            spec.name.clone()
        } else {
            spec.hostname.clone()
        };
        Ok(Instance {
            id: spec.id.as_str().to_owned(),
            hostname,
            image_id: image.id.clone(),
            lower,
            init,
            cgroup: self.cgroup(&spec.id),
            limits: self.limits(spec),
            nics,
            nameservers,
            console_max_bytes: self.cfg.console_max_bytes,
            user_namespace: self.id_range(spec)?,
            lower_shifted: false,
            boot,
            forwarding: self.cfg.forwarding,
            volumes,
        })
    }

    /// Starts a new boot of the instance and waits until its init runs.
    fn boot(&self, paths: &Paths, inst: &mut Instance) -> Result<()> {
        // The layer is mounted before the shim starts (after a host reboot it is not).
        layer::mount(paths).map_err(failed)?;
        // So are the volumes: the shim grafts them into the container before init runs.
        if let Err(e) = volumes::stage_all(paths, &inst.volumes) {
            let _ = volumes::release_all(paths, &inst.volumes);
            return Err(failed(e));
        }
        inst.boot += 1;
        // The policy of now, not of when the instance was made.
        inst.forwarding = self.cfg.forwarding;
        for f in [
            paths.boot(),
            paths.exit(),
            paths.failed(),
            paths.suspended(),
        ] {
            let _ = std::fs::remove_file(f);
        }
        state::write_json(&paths.instance(), inst).map_err(failed)?;
        // Pinned before the shim makes the veths, so no frame passes unchecked.
        net::pin_ports(&self.cfg.data_dir, inst).map_err(failed)?;
        let cg = &inst.cgroup;
        if !cg.exists() {
            cg.create().map_err(failed)?;
        }
        cg.restrict_devices().map_err(failed)?;
        if cg.is_frozen() {
            cg.set_frozen(false).map_err(failed)?;
        }
        cg.set_limits(&inst.limits).map_err(failed)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(paths.shim_log())
            .map_err(failed)?;
        let log2 = log.try_clone().map_err(failed)?;
        let mut child = Command::new(&self.cfg.shim.program)
            .args(&self.cfg.shim.args)
            .arg(&paths.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| failed(format!("starting the container's supervisor: {e}")))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(b) = state::read_json::<Boot>(&paths.boot())
                && b.boot == inst.boot
            {
                // Reap the shim when it ends; after a restart of onebox, init (pid 1 or a
                // subreaper) does.
                std::thread::spawn(move || {
                    let _ = child.wait();
                });
                return Ok(());
            }
            if let Ok(msg) = state::read_json::<String>(&paths.failed()) {
                let _ = child.wait();
                return Err(failed(format!("the container did not start: {msg}")));
            }
            if let Ok(Some(st)) = child.try_wait() {
                return Err(failed(format!(
                    "the container's supervisor ended ({st}) before init started"
                )));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed("the container did not start within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Stops the running boot (SIGTERM first when `soft`, waiting up to the stop timeout,
    /// then SIGKILL) and waits until its shim has recorded the end.
    fn stop(&self, id: &ServerId, soft: bool) -> Result<()> {
        let p = self.paths(id);
        let cg = self.cgroup(id);
        let Ok(boot) = state::read_json::<Boot>(&p.boot()) else {
            // Never started, or its shim is gone: make sure nothing runs.
            cg.kill_all(Duration::from_secs(10)).map_err(failed)?;
            return volume_ops::release_stopped(&p);
        };
        let _ = std::fs::remove_file(p.suspended());
        if state::alive(boot.init_pid, boot.init_start) {
            if cg.is_frozen() {
                cg.set_frozen(false).map_err(failed)?;
            }
            let pid = Pid::from_raw(boot.init_pid);
            if soft {
                let _ = kill(pid, Signal::SIGTERM);
                let deadline = Instant::now() + self.cfg.stop_timeout;
                while state::alive(boot.init_pid, boot.init_start) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            if state::alive(boot.init_pid, boot.init_start) {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
        cg.kill_all(Duration::from_secs(10)).map_err(failed)?;
        // The shim records the end and exits; wait for it (it may be gone already).
        let deadline = Instant::now() + Duration::from_secs(10);
        while state::alive(boot.shim_pid, boot.shim_start) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        // The host ends of the veths go when the kernel gets round to destroying the
        // network namespace; remove them now, so the next boot can make them again. The
        // volumes are released: nothing holds them while the container does not run.
        if let Ok(inst) = state::read_json::<Instance>(&p.instance()) {
            for n in &inst.nics {
                let _ = hostnet::delete_link(&n.host_if);
            }
            volumes::release_all(&p, &inst.volumes).map_err(failed)?;
        }
        if !p.exit().exists() {
            // The shim died with onebox's host or was killed: record the stop ourselves.
            let exit = Exit {
                boot: boot.boot,
                code: None,
                signal: Some(Signal::SIGKILL as i32),
                oom_kills: cg.oom_kills(),
            };
            let _ = state::write_json(&p.exit(), &exit);
        }
        Ok(())
    }

    fn require_running(&self, id: &ServerId, op: Operation) -> Result<Boot> {
        self.load(id)?;
        self.running_boot(id)
            .ok_or_else(|| failed(format!("{}: the container is not running", op.as_str())))
    }

    fn set_frozen(&self, id: &ServerId, frozen: bool, op: Operation) -> Result<()> {
        self.require_running(id, op)?;
        self.cgroup(id).set_frozen(frozen).map_err(failed)
    }
}

impl ComputeDriver for ContainerDriver {
    fn name(&self) -> &'static str {
        "lxc"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            pause: true,
            suspend: true,
            snapshot: true,
            resize: true,
            rebuild: true,
            console_output: true,
            set_admin_password: false,
            trigger_crash_dump: false,
            diagnostics: true,
            rescue: false,
        }
    }

    fn attach_interface(&self, spec: &InstanceSpec, port: &driver::Port) -> Result<()> {
        hotplug::attach(self, spec, port)
    }

    fn detach_interface(&self, spec: &InstanceSpec, port: &driver::Port) -> Result<()> {
        hotplug::detach(self, spec, port)
    }

    fn attach_volume(&self, spec: &InstanceSpec, volume: &driver::Volume) -> Result<()> {
        volume_ops::attach(self, spec, volume)
    }

    fn detach_volume(&self, spec: &InstanceSpec, volume: &driver::Volume) -> Result<()> {
        volume_ops::detach(self, spec, volume)
    }

    fn spawn(&self, spec: &InstanceSpec) -> Result<()> {
        let p = self.paths(&spec.id);
        if p.dir.exists() {
            return Err(failed(format!("instance {} exists already", spec.id)));
        }
        let mut inst = self.instance_for(spec, 0)?;
        let r = (|| {
            std::fs::create_dir_all(&p.dir).map_err(failed)?;
            let cap = layer::layer_bytes(spec.disk_gb, self.cfg.zero_disk_layer_bytes);
            layer::create(&p, cap).map_err(failed)?;
            for d in [p.upper(), p.work(), p.rootfs()] {
                std::fs::create_dir_all(&d).map_err(failed)?;
            }
            seed::write(&p.seed(), spec).map_err(failed)?;
            userns::prepare_layers(&p, &mut inst, self.cfg.idmapped_lower).map_err(failed)?;
            self.boot(&p, &mut inst)
        })();
        if r.is_err() {
            let _ = self.destroy(&spec.id);
        }
        r
    }

    fn destroy(&self, id: &ServerId) -> Result<()> {
        let p = self.paths(id);
        let inst = state::read_json::<Instance>(&p.instance()).ok();
        self.stop(id, false)?;
        self.cgroup(id).remove().map_err(failed)?;
        net::release(&self.cfg.data_dir, id.as_str(), inst.as_ref()).map_err(failed)?;
        layer::remove(&p).map_err(failed)?;
        // Never removed through a volume still mounted: its data is not the instance's.
        volume_ops::release_stopped(&p)?;
        match std::fs::remove_dir_all(&p.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(format!("removing {}: {e}", p.dir.display()))),
        }
        // The ids go back to the pool only once no file or process of the container is left.
        self.cfg.id_ranges.release(id.as_str()).map_err(failed)
    }

    fn reboot(&self, id: &ServerId, kind: RebootKind) -> Result<()> {
        let (p, _) = self.load(id)?;
        self.stop(id, kind == RebootKind::Soft)?;
        let (_, mut inst) = self.load(id)?;
        self.boot(&p, &mut inst)
    }

    fn power_off(&self, id: &ServerId) -> Result<()> {
        self.load(id)?;
        self.stop(id, true)
    }

    fn power_on(&self, id: &ServerId) -> Result<()> {
        let (p, mut inst) = self.load(id)?;
        if self.running_boot(id).is_some() {
            return Ok(());
        }
        self.stop(id, false)?;
        self.boot(&p, &mut inst)
    }

    fn pause(&self, id: &ServerId) -> Result<()> {
        self.set_frozen(id, true, Operation::Pause)
    }

    fn unpause(&self, id: &ServerId) -> Result<()> {
        self.set_frozen(id, false, Operation::Unpause)
    }

    fn suspend(&self, id: &ServerId) -> Result<()> {
        self.set_frozen(id, true, Operation::Suspend)?;
        std::fs::write(self.paths(id).suspended(), b"").map_err(failed)
    }

    fn resume(&self, id: &ServerId) -> Result<()> {
        self.set_frozen(id, false, Operation::Resume)?;
        let _ = std::fs::remove_file(self.paths(id).suspended());
        Ok(())
    }

    fn console_output(&self, id: &ServerId, lines: Option<usize>) -> Result<String> {
        console::output(self, id, lines)
    }

    fn console_endpoint(
        &self,
        id: &ServerId,
        kind: driver::ConsoleKind,
    ) -> Result<driver::ConsoleEndpoint> {
        console::endpoint(self, id, kind)
    }

    fn get_info(&self, id: &ServerId) -> Result<InstanceInfo> {
        let (p, inst) = self.load(id)?;
        let cg = self.cgroup(id);
        let power_state = if self.running_boot(id).is_some() {
            if cg.is_frozen() {
                if p.suspended().exists() {
                    PowerState::Suspended
                } else {
                    PowerState::Paused
                }
            } else {
                PowerState::Running
            }
        } else {
            let boot = state::read_json::<Boot>(&p.boot()).ok();
            let exit = state::read_json::<Exit>(&p.exit()).ok();
            let oom_now = exit
                .as_ref()
                .map_or_else(|| cg.oom_kills(), |e| e.oom_kills);
            match boot {
                Some(b) if b.boot == inst.boot && oom_now > b.oom_kills_at_start => {
                    PowerState::Crashed
                }
                _ => PowerState::Shutdown,
            }
        };
        Ok(InstanceInfo { power_state })
    }

    fn list_instances(&self) -> Result<Vec<ServerId>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(self.instances_dir()) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(failed(e)),
        };
        for e in rd.flatten() {
            if e.path().join("instance.json").exists()
                && let Some(name) = e.file_name().to_str()
            {
                out.push(ServerId::from_stored(name.to_owned()));
            }
        }
        out.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(out)
    }

    fn available_resources(&self) -> Result<Resources> {
        let vcpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let mem_kb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            })
            .unwrap_or(0u64);
        let local_gb = nix::sys::statvfs::statvfs(&self.cfg.data_dir)
            .map(|s| s.blocks() * s.fragment_size() / (1 << 30))
            .unwrap_or(0);
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        // Nova reports versions as major*1000000 + minor*1000 + patch.
        let mut parts = release
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|p| p.parse::<u64>().ok());
        let version = parts.next().unwrap_or(0) * 1_000_000
            + parts.next().unwrap_or(0) * 1000
            + parts.next().unwrap_or(0);
        Ok(Resources {
            vcpus,
            memory_mb: mem_kb / 1024,
            local_gb,
            hypervisor_type: "lxc".into(),
            hypervisor_version: version,
        })
    }

    fn prune_image_cache(&self, min_unused_age: Duration) -> Result<usize> {
        let swept = {
            let _g = self.unpack.lock().unwrap_or_else(|e| e.into_inner());
            rootfs::prune_cache(&self.cache_dir(), &self.instances_dir(), min_unused_age)
                .map_err(failed)?
        };
        for id in &swept.removed {
            tracing::info!(image_id = %id, "unused unpacked image removed");
        }
        for name in &swept.leftovers {
            tracing::info!(name = %name, "leftover of an interrupted unpack removed");
        }
        for (id, e) in &swept.failed {
            tracing::warn!(image_id = %id, error = %e, "cannot remove an unpacked image");
        }
        Ok(swept.removed.len())
    }

    fn rebuild(&self, spec: &InstanceSpec) -> Result<()> {
        let (p, old) = self.load(&spec.id)?;
        self.stop(&spec.id, false)?;
        let mut inst = self.instance_for(spec, old.boot)?;
        layer::mount(&p).map_err(failed)?;
        for d in [p.upper(), p.work()] {
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).map_err(failed)?;
        }
        seed::write(&p.seed(), spec).map_err(failed)?;
        userns::prepare_layers(&p, &mut inst, self.cfg.idmapped_lower).map_err(failed)?;
        self.boot(&p, &mut inst)
    }

    fn resize(&self, spec: &InstanceSpec) -> Result<()> {
        let (p, mut inst) = self.load(&spec.id)?;
        let new = self.limits(spec);
        let cap = layer::layer_bytes(spec.disk_gb, self.cfg.zero_disk_layer_bytes);
        layer::grow(&p, cap).map_err(failed)?;
        if !p.resize_old().exists() {
            state::write_json(&p.resize_old(), &inst.limits).map_err(failed)?;
        }
        inst.cgroup.set_limits(&new).map_err(failed)?;
        inst.limits = new;
        state::write_json(&p.instance(), &inst).map_err(failed)?;
        if self.running_boot(&spec.id).is_none() {
            return self.boot(&p, &mut inst);
        }
        Ok(())
    }

    fn confirm_resize(&self, id: &ServerId) -> Result<()> {
        let (p, _) = self.load(id)?;
        let _ = std::fs::remove_file(p.resize_old());
        Ok(())
    }

    fn revert_resize(&self, old: &InstanceSpec) -> Result<()> {
        let (p, mut inst) = self.load(&old.id)?;
        let limits =
            state::read_json::<Limits>(&p.resize_old()).unwrap_or_else(|_| self.limits(old));
        inst.cgroup.set_limits(&limits).map_err(failed)?;
        inst.limits = limits;
        state::write_json(&p.instance(), &inst).map_err(failed)?;
        let _ = std::fs::remove_file(p.resize_old());
        if self.running_boot(&old.id).is_none() {
            return self.boot(&p, &mut inst);
        }
        Ok(())
    }

    fn snapshot(&self, id: &ServerId, dest: &Path) -> Result<Snapshot> {
        let (p, inst) = self.load(id)?;
        let r = match self.running_boot(id) {
            Some(b) => {
                // A consistent copy: the container is frozen while its root is packed.
                let cg = self.cgroup(id);
                let was_frozen = cg.is_frozen();
                cg.set_frozen(true).map_err(failed)?;
                let root = format!("/proc/{}/root", b.init_pid);
                let r = rootfs::pack(Path::new(&root), dest, inst.user_namespace);
                if !was_frozen {
                    cg.set_frozen(false).map_err(failed)?;
                }
                r
            }
            None => rootfs::pack_stopped(&p, &inst, dest),
        };
        r.map_err(failed)?;
        Ok(Snapshot {
            disk_format: "raw".into(),
            container_format: "bare".into(),
        })
    }

    fn diagnostics(&self, id: &ServerId) -> Result<Diagnostics> {
        let (_, inst) = self.load(id)?;
        let cg = self.cgroup(id);
        let info = self.get_info(id)?;
        let uptime = self.running_boot(id).and_then(|b| {
            let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
                .ok()
                .flatten()? as u64;
            let up: f64 = std::fs::read_to_string("/proc/uptime")
                .ok()?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((up as u64).saturating_sub(b.init_start / ticks.max(1)))
        });
        let vcpus = inst
            .limits
            .cpu_quota_us
            .map_or(1, |q| q.div_ceil(inst.limits.cpu_period_us) as u32)
            .max(1);
        Ok(Diagnostics {
            power_state: Some(info.power_state),
            hypervisor: "lxc".into(),
            hypervisor_os: "linux".into(),
            uptime_s: uptime,
            num_cpus: vcpus,
            memory_max_kb: inst.limits.memory_bytes / 1024,
            memory_used_kb: cg.memory_usage().map(|b| b / 1024),
            cpu_time_ns: cg.cpu_usage_ns().into_iter().collect(),
            disks: Vec::new(),
            nics: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_fit_and_differ_per_port() {
        let (h, p) = veth_names("5f2a1c3e-9b7d-4e0a-8c6f-0123456789ab", 0);
        assert_eq!(h, "obv5f2a1c3e9b0");
        assert_eq!(p, "obp5f2a1c3e9b0");
        assert!(h.len() <= 15);
        assert_ne!(veth_names("5f2a1c3e-9b7d-4e0a-8c6f-0123456789ab", 1).0, h);
    }
}
