//! onebox's VM backend: QEMU guests through libvirt (`qemu:///system`).
//!
//! A server is a persistent libvirt domain named `onebox-<uuid>` whose UUID is the server's.
//! Its files live in `<data_dir>/instances/<uuid>/`: `disk` (a qcow2 overlay on the image's
//! cached base in `<data_dir>/cache/images/<image id>`, grown to the flavor's disk),
//! `console.log` (the serial console), and `config.iso` (the config drive, when asked for).
//! A rescue adds `domain.rescue-backup.xml` (the definition to go back to), `disk.rescue`
//! (an overlay on the rescue image's cached base, booted as `vda` with `disk` as `vdb`) and
//! `config.rescue.iso` (the config drive with the rescue password), all gone after unrescue.
//! Images carrying `kernel_id`/`ramdisk_id` boot their kernel directly. Guests attach to the
//! bridge of each port's network (see [`hostnet`]) and get their port's address from the
//! bridge's dnsmasq ([`dhcp`]). Cached images no instance refers to are pruned once unused
//! for a minimum age ([`disk::prune_cache`]). Domain names and libvirt never leave this crate: the compute
//! service knows servers by UUID.

pub mod bounded;
pub mod dhcp;
pub mod disk;
mod events;
mod hotplug;
mod net;
mod volumes;
pub mod xml;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use driver::{
    Capabilities, ComputeDriver, Diagnostics, DiskStats, DriverError, InstanceInfo, InstanceSpec,
    NicStats, RebootKind, RescueImage, Resources, Snapshot,
};
use model::compute::{PowerState, ServerId};
use virt::connect::Connect;
use virt::domain::Domain;
use virt::sys;

pub use dhcp::METADATA_ADDR;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("libvirt: {0}")]
    Libvirt(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0} failed: {1}")]
    Tool(String, String),
    #[error("{0}")]
    Invalid(String),
    #[error("network: {0}")]
    Net(String),
}

impl From<virt::error::Error> for Error {
    fn from(e: virt::error::Error) -> Self {
        Error::Libvirt(e.message().to_string())
    }
}

impl From<Error> for DriverError {
    fn from(e: Error) -> Self {
        DriverError::Failed(e.to_string())
    }
}

/// How guests are virtualised: KVM where the host has working hardware virtualisation,
/// QEMU's TCG emulation otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtType {
    Kvm,
    Qemu,
}

impl VirtType {
    pub fn as_str(self) -> &'static str {
        match self {
            VirtType::Kvm => "kvm",
            VirtType::Qemu => "qemu",
        }
    }

    /// KVM only when `/dev/kvm` opens read-write and a hardware KVM module (kvm_intel or
    /// kvm_amd) is loaded: other providers of `/dev/kvm` (nested paravirtual ones) can start
    /// a domain whose guest never boots.
    pub fn detect() -> Self {
        let dev = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        let hw = Path::new("/sys/module/kvm_intel").exists()
            || Path::new("/sys/module/kvm_amd").exists();
        if dev && hw {
            VirtType::Kvm
        } else {
            VirtType::Qemu
        }
    }
}

#[derive(Clone, Debug)]
pub struct LibvirtConfig {
    pub uri: String,
    /// onebox's data directory: instances, the image cache and DHCP state live below it.
    pub data_dir: PathBuf,
    /// `None`: detect at start-up.
    pub virt_type: Option<VirtType>,
    /// How long a guest has to shut down on ACPI (stop, soft reboot) before it is forced.
    pub shutdown_timeout: Duration,
    pub qemu_img: String,
    pub genisoimage: String,
    pub dnsmasq: String,
    /// The kernel command line for direct kernel boot when the image has no
    /// `os_command_line` property.
    pub default_cmdline: String,
    /// Always attach a config drive, whatever the request says.
    pub force_config_drive: bool,
    /// The project bridges route to the NAT uplink (`[network] nat_uplink` is set);
    /// `false`: isolated.
    pub forwarding: bool,
    /// Cap on each guest's serial log (`console.log`), in bytes: past it, its newest half
    /// moves to `console.log.1` (see [`driver::console::copy_truncate`]).
    pub console_max_bytes: u64,
}

impl LibvirtConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            uri: "qemu:///system".into(),
            data_dir,
            virt_type: None,
            shutdown_timeout: Duration::from_secs(60),
            qemu_img: "qemu-img".into(),
            genisoimage: "genisoimage".into(),
            dnsmasq: "dnsmasq".into(),
            default_cmdline: "root=/dev/vda console=ttyS0 quiet".into(),
            force_config_drive: false,
            forwarding: false,
            console_max_bytes: 1 << 20,
        }
    }
}

pub struct LibvirtDriver {
    cfg: LibvirtConfig,
    virt_type: VirtType,
    conn: Mutex<Arc<Connect>>,
    disks: disk::Disks,
    dhcp: dhcp::Dhcp,
    /// Held only to be watched: the event thread ends once the driver is gone.
    life: Arc<()>,
}

const PREFIX: &str = "onebox-";

fn domain_name(id: &ServerId) -> String {
    format!("{PREFIX}{id}")
}

fn no_domain(e: &virt::error::Error) -> bool {
    matches!(e.code(), virt::error::ErrorNumber::NoDomain)
}

impl LibvirtDriver {
    /// Connects to libvirt; fails when it does not answer.
    pub fn connect(mut cfg: LibvirtConfig) -> Result<Self, Error> {
        // libvirt and QEMU need absolute paths.
        if let Ok(abs) = std::fs::canonicalize(&cfg.data_dir) {
            cfg.data_dir = abs;
        }
        // libvirt prints every error on stderr by default; they are returned instead.
        virt::error::clear_error_callback();
        let conn = Connect::open(Some(&cfg.uri))?;
        let virt_type = cfg.virt_type.unwrap_or_else(VirtType::detect);
        let disks = disk::Disks::new(
            cfg.qemu_img.clone(),
            cfg.genisoimage.clone(),
            cfg.data_dir.join("cache").join("images"),
        );
        let dhcp = dhcp::Dhcp::new(cfg.dnsmasq.clone(), cfg.data_dir.join("dhcp"));
        tracing::info!(uri = %cfg.uri, virt_type = virt_type.as_str(), "libvirt connected");
        let d = Self {
            cfg,
            virt_type,
            conn: Mutex::new(Arc::new(conn)),
            disks,
            dhcp,
            life: Arc::new(()),
        };
        net::adopt_old_guests(&d);
        Ok(d)
    }

    pub fn virt_type(&self) -> VirtType {
        self.virt_type
    }

    /// The connection, reopened if libvirtd restarted under it.
    fn conn(&self) -> Result<Arc<Connect>, Error> {
        let mut g = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if !g.is_alive().unwrap_or(false) {
            *g = Arc::new(Connect::open(Some(&self.cfg.uri))?);
        }
        Ok(g.clone())
    }

    fn instance_dir(&self, id: &ServerId) -> PathBuf {
        self.cfg.data_dir.join("instances").join(id.as_str())
    }

    /// The instance's serial console log.
    pub fn console_log(&self, id: &ServerId) -> PathBuf {
        self.instance_dir(id).join("console.log")
    }

    /// Keeps a serial log under its cap. QEMU writes it through a descriptor opened with
    /// `O_APPEND` (`append='on'`), so it is copied and truncated rather than renamed; a
    /// host whose libvirt hands the file to virtlogd gets virtlogd's rotation on top.
    /// Done on every power-state sync and console read, so a flooding guest overshoots by
    /// at most what it writes in one sync interval.
    fn cap_console(&self, log: &Path) {
        if let Err(e) = driver::console::copy_truncate(log, self.cfg.console_max_bytes) {
            tracing::warn!(log = %log.display(), error = %e, "capping the serial log");
        }
    }

    fn lookup(&self, id: &ServerId) -> Result<Option<Domain>, Error> {
        let c = self.conn()?;
        match Domain::lookup_by_name(&c, &domain_name(id)) {
            Ok(d) => Ok(Some(d)),
            Err(e) if no_domain(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn domain(&self, id: &ServerId) -> Result<Domain, DriverError> {
        self.lookup(id)?
            .ok_or_else(|| DriverError::NotFound(id.clone()))
    }

    fn state(d: &Domain) -> Result<(sys::virDomainState, i32), Error> {
        Ok(d.get_state()?)
    }

    fn is_state(d: &Domain, s: sys::virDomainState) -> bool {
        Self::state(d).map(|(st, _)| st == s).unwrap_or(false)
    }

    /// Waits until the domain is no longer active; false on timeout.
    fn wait_inactive(d: &Domain, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if !d.is_active().unwrap_or(false) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// ACPI shutdown with the configured timeout, then a forced stop.
    fn stop(&self, d: &Domain) -> Result<(), Error> {
        if !d.is_active()? {
            return Ok(());
        }
        // A paused guest cannot answer the power button.
        if Self::is_state(d, sys::VIR_DOMAIN_PAUSED) {
            let _ = d.resume();
        }
        if d.shutdown().is_ok() && Self::wait_inactive(d, self.cfg.shutdown_timeout) {
            return Ok(());
        }
        Self::force_stop(d)
    }

    fn force_stop(d: &Domain) -> Result<(), Error> {
        match d.destroy() {
            Ok(()) => Ok(()),
            Err(e) if !d.is_active().unwrap_or(true) => {
                let _ = e;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn cmdline(&self, spec: &InstanceSpec) -> String {
        spec.image
            .as_ref()
            .and_then(|i| i.properties.get("os_command_line"))
            .filter(|c| !c.is_empty())
            .cloned()
            .unwrap_or_else(|| self.cfg.default_cmdline.clone())
    }

    /// Writes the config drive for `spec` into `dir/config.iso`.
    fn config_drive(&self, spec: &InstanceSpec, dir: &Path) -> Result<PathBuf, Error> {
        self.config_drive_as(spec, dir, "config.iso")
    }

    /// Writes the config drive for `spec` into `dir/<name>`.
    fn config_drive_as(
        &self,
        spec: &InstanceSpec,
        dir: &Path,
        name: &str,
    ) -> Result<PathBuf, Error> {
        let tree = dir.join(format!("{name}.tree"));
        let _ = std::fs::remove_dir_all(&tree);
        let io = |what: &Path, e| Error::Io(format!("writing {}", what.display()), e);
        for (path, body) in driver::metadata::config_drive_files(spec) {
            let f = tree.join(path);
            if let Some(d) = f.parent() {
                std::fs::create_dir_all(d).map_err(|e| io(d, e))?;
            }
            std::fs::write(&f, body).map_err(|e| io(&f, e))?;
        }
        let iso = dir.join(name);
        let r = self.disks.iso(&tree, &iso);
        let _ = std::fs::remove_dir_all(&tree);
        r.map(|_| iso)
    }

    /// The bridges of the spec's ports, made to exist, with DHCP for the ports.
    fn plug(&self, spec: &InstanceSpec) -> Result<Vec<xml::Nic>, Error> {
        let mut nics = Vec::new();
        let mut by_bridge: Vec<(String, Vec<&driver::Port>)> = Vec::new();
        for (i, p) in spec.ports.iter().enumerate() {
            let net = hostnet::NetworkDef {
                id: p.network_id.clone(),
                cidr: p.cidr.clone(),
                gateway: p.gateway.clone(),
                forwarding: self.cfg.forwarding,
            };
            let br = hostnet::ensure_bridge(&net).map_err(|e| Error::Net(e.to_string()))?;
            nics.push(xml::Nic {
                bridge: br.clone(),
                mac: p.mac.clone(),
                tap: net::tap_name(spec.id.as_str(), i),
            });
            match by_bridge.iter_mut().find(|(b, _)| *b == br) {
                Some((_, ps)) => ps.push(p),
                None => by_bridge.push((br, vec![p])),
            }
        }
        for (br, ports) in by_bridge {
            self.dhcp.add_host(&br, spec.id.as_str(), &ports)?;
        }
        // Pinned before libvirt makes the taps, so no frame passes unchecked. The guest is
        // shut off here: pins of taps an earlier definition named (an interface plugged
        // and unplugged since) go first, so the server's pins are exactly these taps.
        net::unpin(&self.cfg.data_dir, spec.id.as_str())?;
        net::pin(&self.cfg.data_dir, spec, &nics)?;
        Ok(nics)
    }

    /// Forgets the server's DHCP hosts; a bridge no guest or container uses any more is
    /// removed with its dnsmasq.
    fn unplug(&self, id: &ServerId) -> Result<(), Error> {
        net::unpin(&self.cfg.data_dir, id.as_str())?;
        for br in self.dhcp.remove_server(id.as_str())? {
            let in_use = std::fs::read_dir(format!("/sys/class/net/{br}/brif"))
                .map(|mut r| r.next().is_some())
                .unwrap_or(false);
            if !in_use {
                let _ = hostnet::delete_link(&br);
            }
        }
        Ok(())
    }

    /// The domain definition for `spec`, building its disk (`disk` at `disk_path`) first
    /// when `new_disk` is set.
    fn build(&self, spec: &InstanceSpec, new_disk: bool) -> Result<xml::DomainDef, Error> {
        let dir = self.instance_dir(&spec.id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Io(format!("creating {}", dir.display()), e))?;
        // A server booted from a volume has no disk of its own.
        let backed = volumes::volume_backed(spec);
        let disk = dir.join("disk");
        if new_disk && !backed {
            let base = match &spec.image {
                Some(img) => Some(self.disks.base(img)?),
                None => None,
            };
            disk::remove_file(&disk)?;
            self.disks.overlay(base.as_deref(), &disk, spec.disk_gb)?;
        }
        disk::check_linked(
            spec.image.as_ref(),
            spec.kernel.as_ref(),
            spec.ramdisk.as_ref(),
        )?;
        let kernel = match &spec.kernel {
            Some(k) => Some(self.disks.blob(k)?),
            None => None,
        };
        let initrd = match (&kernel, &spec.ramdisk) {
            (Some(_), Some(r)) => Some(self.disks.blob(r)?),
            _ => None,
        };
        let config_drive = if spec.config_drive || self.cfg.force_config_drive {
            Some(self.config_drive(spec, &dir)?)
        } else {
            disk::remove_file(&dir.join("config.iso"))?;
            None
        };
        let volumes = volumes::disks(spec)?;
        let nics = self.plug(spec)?;
        Ok(xml::DomainDef {
            name: domain_name(&spec.id),
            uuid: spec.id.to_string(),
            virt_type: self.virt_type.as_str().into(),
            vcpus: spec.vcpus,
            ram_mb: spec.ram_mb,
            disk: (!backed).then_some(disk),
            data_disk: None,
            volumes,
            cmdline: kernel.as_ref().map(|_| self.cmdline(spec)),
            kernel,
            initrd,
            config_drive,
            nics,
            console_log: dir.join("console.log"),
            title: spec.name.clone(),
            owner: self.owner(),
        })
    }

    fn define(&self, def: &xml::DomainDef) -> Result<Domain, Error> {
        let c = self.conn()?;
        Ok(Domain::define_xml(&c, &def.to_xml())?)
    }

    /// Stops, undefines, and removes the instance's files and DHCP hosts.
    fn remove(&self, id: &ServerId) -> Result<(), Error> {
        if let Some(d) = self.lookup(id)? {
            if d.is_active()? {
                Self::force_stop(&d)?;
            }
            let flags = sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                | sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                | sys::VIR_DOMAIN_UNDEFINE_NVRAM;
            match d.undefine_flags(flags) {
                Ok(()) => {}
                Err(e) if no_domain(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.unplug(id)?;
        let dir = self.instance_dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Io(format!("removing {}", dir.display()), e)),
        }
    }

    /// Replaces the definition (flavor, disk, devices) of an instance, keeping its state
    /// stopped; the caller starts it.
    fn redefine(&self, spec: &InstanceSpec, new_disk: bool) -> Result<Domain, DriverError> {
        let d = self.domain(&spec.id)?;
        self.stop(&d)?;
        let _ = d.managed_save_remove(0);
        let def = self.build(spec, new_disk)?;
        let d = self.define(&def)?;
        // A fresh definition: whatever a rescue left (after a failed unrescue, say) is stale.
        remove_rescue_files(&self.instance_dir(&spec.id))?;
        Ok(d)
    }

    /// The rescue definition: a fresh overlay of the rescue image as `disk.rescue` (vda),
    /// the server's own `disk` second (vdb), the rescue image's kernel and ramdisk, and a
    /// config drive carrying the rescue password when the server has one.
    fn build_rescue(
        &self,
        spec: &InstanceSpec,
        rescue: &RescueImage,
        admin_pass: &str,
    ) -> Result<xml::DomainDef, Error> {
        let img = rescue.image.as_ref().ok_or_else(|| {
            Error::Invalid(format!("rescue image {} has no data", rescue.image_id))
        })?;
        let dir = self.instance_dir(&spec.id);
        let base = self.disks.base(img)?;
        // Made under a `.part` name and renamed, so a `disk.rescue` is always whole.
        let part = dir.join(RESCUE_DISK_PART);
        disk::remove_file(&part)?;
        self.disks.overlay(Some(&base), &part, spec.disk_gb)?;
        let rescue_disk = dir.join(RESCUE_DISK);
        std::fs::rename(&part, &rescue_disk)
            .map_err(|e| Error::Io(format!("renaming into {}", rescue_disk.display()), e))?;
        disk::check_linked(Some(img), rescue.kernel.as_ref(), rescue.ramdisk.as_ref())?;
        let kernel = match &rescue.kernel {
            Some(k) => Some(self.disks.blob(k)?),
            None => None,
        };
        let initrd = match (&kernel, &rescue.ramdisk) {
            (Some(_), Some(r)) => Some(self.disks.blob(r)?),
            _ => None,
        };
        let cmdline = kernel.as_ref().map(|_| {
            img.properties
                .get("os_command_line")
                .filter(|c| !c.is_empty())
                .cloned()
                .unwrap_or_else(|| self.cfg.default_cmdline.clone())
        });
        let config_drive = if spec.config_drive || self.cfg.force_config_drive {
            let mut with_pass = spec.clone();
            with_pass.admin_pass = Some(admin_pass.to_owned());
            Some(self.config_drive_as(&with_pass, &dir, RESCUE_ISO)?)
        } else {
            None
        };
        let nics = self.plug(spec)?;
        Ok(xml::DomainDef {
            name: domain_name(&spec.id),
            uuid: spec.id.to_string(),
            virt_type: self.virt_type.as_str().into(),
            vcpus: spec.vcpus,
            ram_mb: spec.ram_mb,
            disk: Some(rescue_disk),
            data_disk: Some(dir.join("disk")),
            // As Nova's rescue, the rescue system sees no volumes.
            volumes: vec![],
            kernel,
            initrd,
            cmdline,
            config_drive,
            nics,
            console_log: dir.join("console.log"),
            title: spec.name.clone(),
            owner: self.owner(),
        })
    }

    /// Ends a rescue on a shut-off domain: defines again what the rescue saved (or, when
    /// nothing was saved, the definition `spec` makes), then removes the rescue's files, the
    /// saved definition last.
    fn end_rescue(&self, spec: &InstanceSpec) -> Result<Domain, Error> {
        let dir = self.instance_dir(&spec.id);
        let saved = dir.join(RESCUE_XML);
        let d = match std::fs::read_to_string(&saved) {
            Ok(x) => {
                let c = self.conn()?;
                Domain::define_xml(&c, &x)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let def = self.build(spec, false)?;
                self.define(&def)?
            }
            Err(e) => return Err(Error::Io(format!("reading {}", saved.display()), e)),
        };
        remove_rescue_files(&dir)?;
        Ok(d)
    }

    fn power(d: &Domain) -> Result<PowerState, Error> {
        let (st, _) = Self::state(d)?;
        Ok(match st {
            sys::VIR_DOMAIN_RUNNING | sys::VIR_DOMAIN_BLOCKED => PowerState::Running,
            sys::VIR_DOMAIN_PAUSED => PowerState::Paused,
            sys::VIR_DOMAIN_SHUTDOWN => PowerState::Running,
            sys::VIR_DOMAIN_SHUTOFF => {
                if d.has_managed_save(0).unwrap_or(false) {
                    PowerState::Suspended
                } else {
                    PowerState::Shutdown
                }
            }
            sys::VIR_DOMAIN_CRASHED => PowerState::Crashed,
            sys::VIR_DOMAIN_PMSUSPENDED => PowerState::Suspended,
            _ => PowerState::NoState,
        })
    }

    /// The description that marks this box's domains.
    fn owner(&self) -> String {
        format!("onebox {}", self.cfg.data_dir.display())
    }

    /// The server id of every domain of this box, running or not. Domains of another onebox
    /// sharing the libvirtd (another data directory) are not ours to report or reap.
    fn all(&self) -> Result<Vec<(ServerId, Domain)>, Error> {
        let c = self.conn()?;
        let mut out = Vec::new();
        let mine = format!("<description>{}</description>", xml::esc(&self.owner()));
        for d in c.list_all_domains(0)? {
            let name = d.get_name()?;
            if let Some(id) = name.strip_prefix(PREFIX).and_then(ServerId::parse)
                && d.get_xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
                    .is_ok_and(|x| x.contains(&mine))
            {
                out.push((id, d));
            }
        }
        Ok(out)
    }
}

/// The files of a rescue in the instance directory: the definition to go back to, the
/// rescue disk (made under the `.part` name) and the rescue's config drive.
const RESCUE_XML: &str = "domain.rescue-backup.xml";
const RESCUE_DISK: &str = "disk.rescue";
const RESCUE_DISK_PART: &str = "disk.rescue.part";
const RESCUE_ISO: &str = "config.rescue.iso";

/// Removes what a rescue made, the saved definition last.
fn remove_rescue_files(dir: &Path) -> Result<(), Error> {
    for f in [
        RESCUE_DISK_PART,
        RESCUE_DISK,
        RESCUE_ISO,
        "domain.rescue-backup.xml.part",
        RESCUE_XML,
    ] {
        disk::remove_file(&dir.join(f))?;
    }
    Ok(())
}

/// Writes `path` whole: into `<path>.part`, synced, renamed, the directory synced.
fn write_whole(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    std::fs::write(&part, data)?;
    std::fs::File::open(&part)?.sync_all()?;
    std::fs::rename(&part, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn statvfs_gb(p: &Path) -> u64 {
    let mut q = p.to_path_buf();
    while !q.exists() {
        if !q.pop() {
            return 0;
        }
    }
    nix::sys::statvfs::statvfs(&q)
        .map(|s| s.blocks() * s.fragment_size() / (1024 * 1024 * 1024))
        .unwrap_or(0)
}

impl ComputeDriver for LibvirtDriver {
    fn name(&self) -> &'static str {
        "QEMU"
    }

    fn attach_interface(&self, spec: &InstanceSpec, port: &driver::Port) -> driver::Result<()> {
        hotplug::attach(self, spec, port)
    }

    fn detach_interface(&self, spec: &InstanceSpec, port: &driver::Port) -> driver::Result<()> {
        hotplug::detach(self, spec, port)
    }

    fn attach_volume(&self, spec: &InstanceSpec, volume: &driver::Volume) -> driver::Result<()> {
        volumes::attach(self, spec, volume)
    }

    fn detach_volume(&self, spec: &InstanceSpec, volume: &driver::Volume) -> driver::Result<()> {
        volumes::detach(self, spec, volume)
    }

    fn extend_volume(
        &self,
        spec: &InstanceSpec,
        volume: &driver::Volume,
        new_bytes: u64,
    ) -> driver::Result<()> {
        volumes::extend(self, spec, volume, new_bytes)
    }

    fn watch(&self, sink: driver::StateSink) -> bool {
        events::watch(self.cfg.uri.clone(), sink, Arc::downgrade(&self.life));
        true
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
            rescue: true,
        }
    }

    fn spawn(&self, spec: &InstanceSpec) -> driver::Result<()> {
        if self.lookup(&spec.id)?.is_some() {
            return Err(DriverError::Failed(format!(
                "instance {} already exists",
                spec.id
            )));
        }
        let r = (|| -> Result<(), Error> {
            let def = self.build(spec, true)?;
            let d = self.define(&def)?;
            d.create()?;
            net::harden_taps(&d);
            Ok(())
        })();
        if let Err(e) = r {
            tracing::warn!(server_id = %spec.id, error = %e, "spawn failed; cleaning up");
            let _ = self.remove(&spec.id);
            return Err(e.into());
        }
        Ok(())
    }

    fn destroy(&self, id: &ServerId) -> driver::Result<()> {
        Ok(self.remove(id)?)
    }

    fn reboot(&self, id: &ServerId, kind: RebootKind) -> driver::Result<()> {
        let d = self.domain(id)?;
        match kind {
            RebootKind::Soft => self.stop(&d)?,
            RebootKind::Hard => {
                if d.is_active().map_err(Error::from)? {
                    Self::force_stop(&d)?;
                }
            }
        }
        // A suspended guest's saved state is dropped by a reboot, as Nova's is.
        let _ = d.managed_save_remove(0);
        d.create().map_err(Error::from)?;
        net::harden_taps(&d);
        Ok(())
    }

    fn power_off(&self, id: &ServerId) -> driver::Result<()> {
        let d = self.domain(id)?;
        Ok(self.stop(&d)?)
    }

    fn power_on(&self, id: &ServerId) -> driver::Result<()> {
        let d = self.domain(id)?;
        if !d.is_active().map_err(Error::from)? {
            d.create().map_err(Error::from)?;
            net::harden_taps(&d);
        } else if Self::is_state(&d, sys::VIR_DOMAIN_PAUSED) {
            d.resume().map_err(Error::from)?;
        }
        Ok(())
    }

    fn pause(&self, id: &ServerId) -> driver::Result<()> {
        let d = self.domain(id)?;
        d.suspend().map_err(Error::from)?;
        Ok(())
    }

    fn unpause(&self, id: &ServerId) -> driver::Result<()> {
        let d = self.domain(id)?;
        d.resume().map_err(Error::from)?;
        Ok(())
    }

    fn suspend(&self, id: &ServerId) -> driver::Result<()> {
        let d = self.domain(id)?;
        d.managed_save(0).map_err(Error::from)?;
        Ok(())
    }

    fn resume(&self, id: &ServerId) -> driver::Result<()> {
        let d = self.domain(id)?;
        if !d.is_active().map_err(Error::from)? {
            // Starts from the managed save when there is one.
            d.create().map_err(Error::from)?;
            net::harden_taps(&d);
        }
        Ok(())
    }

    fn console_output(&self, id: &ServerId, lines: Option<usize>) -> driver::Result<String> {
        let _ = self.domain(id)?;
        let log = self.console_log(id);
        self.cap_console(&log);
        // Nova returns at most the last 100 KiB, read here from the end of the files.
        let old = driver::console::rotated(&log);
        let raw = driver::console::tail(&[&old, &log], driver::console::TAIL_BYTES)
            .map_err(|e| Error::Io("reading the console log".into(), e))?;
        Ok(driver::console::last_lines(&raw, lines))
    }

    fn console_endpoint(
        &self,
        id: &ServerId,
        kind: driver::ConsoleKind,
    ) -> driver::Result<driver::ConsoleEndpoint> {
        let d = self.domain(id)?;
        if Self::power(&d)? != PowerState::Running {
            return Err(DriverError::Failed(format!("instance {id} is not running")));
        }
        let name = match kind {
            driver::ConsoleKind::Serial => "serial.sock",
            driver::ConsoleKind::Vnc => "vnc.sock",
        };
        // A domain defined before consoles were sockets (or whose path is too long for one)
        // has none until it is defined again (its next start from the API).
        xml::console_socket(&self.console_log(id), name)
            .filter(|p| p.exists())
            .map(driver::ConsoleEndpoint::Unix)
            .ok_or_else(|| {
                DriverError::Failed(format!("instance {id} has no {} console", kind.as_str()))
            })
    }

    fn get_info(&self, id: &ServerId) -> driver::Result<InstanceInfo> {
        let d = self.domain(id)?;
        // The power-state sync asks every few seconds: the serial log is capped here.
        self.cap_console(&self.console_log(id));
        Ok(InstanceInfo {
            power_state: Self::power(&d)?,
        })
    }

    fn list_instances(&self) -> driver::Result<Vec<ServerId>> {
        Ok(self.all()?.into_iter().map(|(id, _)| id).collect())
    }

    fn available_resources(&self) -> driver::Result<Resources> {
        let c = self.conn()?;
        let n = c.get_node_info().map_err(Error::from)?;
        Ok(Resources {
            vcpus: n.cpus,
            memory_mb: n.memory / 1024,
            local_gb: statvfs_gb(&self.cfg.data_dir),
            hypervisor_type: "QEMU".into(),
            hypervisor_version: u64::from(c.get_hyp_version().unwrap_or(0)),
        })
    }

    fn rebuild(&self, spec: &InstanceSpec) -> driver::Result<()> {
        let d = self.redefine(spec, true)?;
        // The console log starts afresh with the new disk.
        let log = self.console_log(&spec.id);
        let _ = std::fs::remove_file(driver::console::rotated(&log));
        let _ = std::fs::remove_file(log);
        d.create().map_err(Error::from)?;
        net::harden_taps(&d);
        Ok(())
    }

    fn resize(&self, spec: &InstanceSpec) -> driver::Result<()> {
        let dir = self.instance_dir(&spec.id);
        let disk = dir.join("disk");
        let backup = dir.join("disk.resize-backup");
        let d = self.domain(&spec.id)?;
        self.stop(&d)?;
        // The disk and definition before the resize are kept until confirm or revert. The
        // copy is complete before it takes the backup's name, so a backup that exists after
        // a crash is one a revert can trust.
        let backed = volumes::volume_backed(spec);
        if !backup.exists() && !dir.join("domain.resize-backup.xml").exists() {
            let xml = d
                .get_xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
                .map_err(Error::from)?;
            std::fs::write(dir.join("domain.resize-backup.xml"), xml)
                .map_err(|e| Error::Io("keeping the definition for a revert".into(), e))?;
            let part = dir.join("disk.resize-backup.part");
            let keep = || -> std::io::Result<()> {
                std::fs::copy(&disk, &part)?;
                std::fs::File::open(&part)?.sync_all()?;
                std::fs::rename(&part, &backup)?;
                std::fs::File::open(&dir)?.sync_all()
            };
            if !backed {
                keep().map_err(|e| Error::Io("keeping the disk for a revert".into(), e))?;
            }
        }
        // A volume-backed server has no disk of its own to grow.
        if !backed {
            self.disks.grow(&disk, spec.disk_gb)?;
        }
        let d = self.redefine(spec, false)?;
        d.create().map_err(Error::from)?;
        net::harden_taps(&d);
        Ok(())
    }

    fn confirm_resize(&self, id: &ServerId) -> driver::Result<()> {
        let dir = self.instance_dir(id);
        disk::remove_file(&dir.join("disk.resize-backup"))?;
        disk::remove_file(&dir.join("domain.resize-backup.xml"))?;
        disk::remove_file(&dir.join("disk.resize-backup.part"))?;
        Ok(())
    }

    fn revert_resize(&self, old: &InstanceSpec) -> driver::Result<()> {
        let dir = self.instance_dir(&old.id);
        let backup = dir.join("disk.resize-backup");
        let d = self.domain(&old.id)?;
        // The resized guest is discarded, as Nova's revert destroys it: forced off, not
        // asked. A guest still booting ignores the power button, and a restart that rolls
        // back an interrupted resize must not wait for it.
        Self::force_stop(&d)?;
        if backup.exists() {
            std::fs::rename(&backup, dir.join("disk"))
                .map_err(|e| Error::Io("restoring the disk".into(), e))?;
        }
        disk::remove_file(&dir.join("domain.resize-backup.xml"))?;
        disk::remove_file(&dir.join("disk.resize-backup.part"))?;
        let d = self.redefine(old, false)?;
        d.create().map_err(Error::from)?;
        net::harden_taps(&d);
        Ok(())
    }

    fn rescue(
        &self,
        spec: &InstanceSpec,
        rescue: &RescueImage,
        admin_pass: &str,
    ) -> driver::Result<()> {
        let dir = self.instance_dir(&spec.id);
        let d = self.domain(&spec.id)?;
        // The guest is shut down cleanly first, as Nova does.
        self.stop(&d)?;
        let _ = d.managed_save_remove(0);
        // The definition to go back to is kept, written whole under a `.part` name and
        // renamed. A rescue of a domain already rescued (one that failed half-way) keeps
        // the definition the first rescue saved.
        let saved = dir.join(RESCUE_XML);
        if !saved.exists() {
            let x = d
                .get_xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
                .map_err(Error::from)?;
            write_whole(&saved, x.as_bytes())
                .map_err(|e| Error::Io("keeping the definition for an unrescue".into(), e))?;
        }
        let r = (|| -> Result<(), Error> {
            let def = self.build_rescue(spec, rescue, admin_pass)?;
            let d = self.define(&def)?;
            d.create()?;
            net::harden_taps(&d);
            Ok(())
        })();
        if let Err(e) = r {
            tracing::warn!(server_id = %spec.id, error = %e, "rescue failed; restoring the definition");
            if let Ok(Some(d)) = self.lookup(&spec.id)
                && d.is_active().unwrap_or(false)
            {
                let _ = Self::force_stop(&d);
            }
            let _ = self.end_rescue(spec);
            return Err(e.into());
        }
        Ok(())
    }

    fn unrescue(&self, spec: &InstanceSpec) -> driver::Result<()> {
        let d = self.domain(&spec.id)?;
        // The rescue system is not shut down cleanly, as Nova's is not.
        if d.is_active().map_err(Error::from)? {
            Self::force_stop(&d)?;
        }
        let _ = d.managed_save_remove(0);
        let d = self.end_rescue(spec)?;
        d.create().map_err(Error::from)?;
        net::harden_taps(&d);
        Ok(())
    }

    fn snapshot(&self, id: &ServerId, dest: &Path) -> driver::Result<Snapshot> {
        let d = self.domain(id)?;
        let running = Self::is_state(&d, sys::VIR_DOMAIN_RUNNING);
        // Paused, the guest writes nothing while its disk is copied.
        if running {
            d.suspend().map_err(Error::from)?;
        }
        let r = self
            .disks
            .flatten(&self.instance_dir(id).join("disk"), dest);
        if running {
            d.resume().map_err(Error::from)?;
        }
        r?;
        Ok(Snapshot {
            disk_format: "qcow2".into(),
            container_format: "bare".into(),
        })
    }

    fn prune_image_cache(&self, min_unused_age: Duration) -> driver::Result<usize> {
        // The definitions name the kernels and ramdisks; a definition that cannot be read
        // stops the prune (a domain undefined meanwhile needs nothing).
        let mut defs = Vec::new();
        for (_, d) in self.all()? {
            for flags in [sys::VIR_DOMAIN_XML_INACTIVE, 0] {
                match d.get_xml_desc(flags) {
                    Ok(x) => defs.push(x),
                    Err(e) if no_domain(&e) => {}
                    Err(e) => return Err(Error::from(e).into()),
                }
            }
        }
        let swept =
            self.disks
                .prune(&self.cfg.data_dir.join("instances"), &defs, min_unused_age)?;
        for id in &swept.removed {
            tracing::info!(image_id = %id, "unused cached image removed");
        }
        for name in &swept.leftovers {
            tracing::info!(name = %name, "leftover of an interrupted image conversion removed");
        }
        for (id, e) in &swept.failed {
            tracing::warn!(image_id = %id, error = %e, "cannot remove a cached image");
        }
        Ok(swept.removed.len())
    }

    fn diagnostics(&self, id: &ServerId) -> driver::Result<Diagnostics> {
        let d = self.domain(id)?;
        let info = d.get_info().map_err(Error::from)?;
        let active = d.is_active().unwrap_or(false);
        let mut diag = Diagnostics {
            power_state: Some(Self::power(&d)?),
            hypervisor: self.virt_type.as_str().into(),
            hypervisor_os: "linux".into(),
            uptime_s: None,
            num_cpus: info.nr_virt_cpu,
            memory_max_kb: info.max_mem,
            memory_used_kb: active.then_some(info.memory),
            cpu_time_ns: vec![info.cpu_time],
            ..Diagnostics::default()
        };
        if active {
            if let Ok(s) = d.get_block_stats("vda") {
                diag.disks.push(DiskStats {
                    read_bytes: s.rd_bytes.max(0) as u64,
                    read_requests: s.rd_req.max(0) as u64,
                    write_bytes: s.wr_bytes.max(0) as u64,
                    write_requests: s.wr_req.max(0) as u64,
                    errors_count: s.errs.max(0) as u64,
                });
            }
            let xml = d.get_xml_desc(0).unwrap_or_default();
            for (mac, tap) in interfaces(&xml) {
                let s = d.interface_stats(&tap).ok();
                let g = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
                diag.nics.push(NicStats {
                    mac_address: mac,
                    rx_octets: g(s.as_ref().map(|s| s.rx_bytes)),
                    rx_packets: g(s.as_ref().map(|s| s.rx_packets)),
                    rx_errors: g(s.as_ref().map(|s| s.rx_errs)),
                    rx_drop: g(s.as_ref().map(|s| s.rx_drop)),
                    tx_octets: g(s.as_ref().map(|s| s.tx_bytes)),
                    tx_packets: g(s.as_ref().map(|s| s.tx_packets)),
                    tx_errors: g(s.as_ref().map(|s| s.tx_errs)),
                    tx_drop: g(s.as_ref().map(|s| s.tx_drop)),
                });
            }
        }
        Ok(diag)
    }
}

/// (mac, tap device) of each interface in a live domain's XML.
fn interfaces(xml: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for chunk in xml.split("<interface ").skip(1) {
        let body = chunk.split("</interface>").next().unwrap_or("");
        let attr = |tag: &str, name: &str| -> Option<String> {
            let i = body.find(&format!("<{tag} "))?;
            let rest = &body[i..];
            let j = rest.find(&format!("{name}='"))? + name.len() + 2;
            let end = rest[j..].find('\'')?;
            Some(rest[j..j + end].to_string())
        };
        if let (Some(mac), Some(tap)) = (attr("mac", "address"), attr("target", "dev")) {
            out.push((mac, tap));
        }
    }
    out
}

/// The libvirt domain name of a server (for tests and tools that inspect libvirt).
pub fn domain_name_of(id: &ServerId) -> String {
    domain_name(id)
}
