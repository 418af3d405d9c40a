//! A driver that keeps instances in memory: for API tests and demos. Each operation can be
//! made to take time and to fail on demand, so tests can watch servers in transition and in
//! error.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use model::compute::{PowerState, ServerId};

use crate::{
    Capabilities, ComputeDriver, ConsoleEndpoint, ConsoleKind, Diagnostics, DiskStats, DriverError,
    InstanceInfo, InstanceSpec, NicStats, Operation, Port, RebootKind, RescueImage, Resources,
    Result, Snapshot, Volume,
};

#[derive(Debug)]
struct Instance {
    power: PowerState,
    console: String,
    spec: InstanceSpec,
    /// The spec before a resize, until it is confirmed or reverted.
    resized_from: Option<InstanceSpec>,
    password: Option<String>,
    /// The rescue image and password while the instance is rescued.
    rescued: Option<(RescueImage, String)>,
    started: std::time::Instant,
}

#[derive(Default)]
pub struct FakeDriver {
    /// Instances by id. Held only for map operations, never while sleeping.
    instances: Mutex<HashMap<ServerId, Instance>>,
    /// Operations told to fail, and how long each operation takes.
    behaviour: Mutex<Behaviour>,
    /// Where [`set_power`](Self::set_power) reports, once the compute service watches.
    sinks: Mutex<Vec<crate::StateSink>>,
    /// The minimum ages of every `prune_image_cache` call, in order.
    prunes: Mutex<Vec<Duration>>,
    /// The echoing consoles' sockets, once one is asked for.
    consoles: Mutex<Option<FakeConsoles>>,
}

/// The fake's interactive consoles: one Unix socket per instance and kind in a private
/// directory, each echoing back what it is sent (a terminal with local echo and nothing
/// behind it).
struct FakeConsoles {
    dir: PathBuf,
    bound: HashSet<(ServerId, ConsoleKind)>,
}

impl Drop for FakeConsoles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn echo(listener: UnixListener) {
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { return };
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = conn.read(&mut buf) {
                if n == 0 || conn.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
}

#[derive(Default)]
struct Behaviour {
    failing: HashSet<Operation>,
    unsupported: HashSet<Operation>,
    delay: Duration,
    /// What a failing operation's error says after its name, as a real backend's error
    /// carries a tool's stderr and host paths.
    failure_detail: Option<String>,
}

impl FakeDriver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every operation sleeps this long before acting.
    pub fn set_delay(&self, d: Duration) {
        self.behaviour
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .delay = d;
    }

    /// Makes `op` fail (or succeed again).
    pub fn set_failing(&self, op: Operation, failing: bool) {
        let mut b = self.behaviour.lock().unwrap_or_else(|e| e.into_inner());
        if failing {
            b.failing.insert(op);
        } else {
            b.failing.remove(&op);
        }
    }

    /// Makes every failing operation's error end with `detail` (as a real backend's carries
    /// a tool's stderr or a host path), or with nothing more again.
    pub fn set_failure_detail(&self, detail: Option<&str>) {
        self.behaviour
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failure_detail = detail.map(str::to_owned);
    }

    /// Makes `op` answer `NotSupported`, as a backend without it does (or work again).
    pub fn set_unsupported(&self, op: Operation, unsupported: bool) {
        let mut b = self.behaviour.lock().unwrap_or_else(|e| e.into_inner());
        if unsupported {
            b.unsupported.insert(op);
        } else {
            b.unsupported.remove(&op);
        }
    }

    fn begin(&self, op: Operation) -> Result<()> {
        let (delay, fail, unsupported, detail) = {
            let b = self.behaviour.lock().unwrap_or_else(|e| e.into_inner());
            (
                b.delay,
                b.failing.contains(&op),
                b.unsupported.contains(&op),
                b.failure_detail.clone(),
            )
        };
        if unsupported {
            return Err(DriverError::NotSupported(op));
        }
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if fail {
            let tail = detail.map(|d| format!(": {d}")).unwrap_or_default();
            return Err(DriverError::Failed(format!(
                "the fake driver was told to fail {}{tail}",
                op.as_str()
            )));
        }
        Ok(())
    }

    /// The `min_unused_age` of every image-cache prune asked of this driver, in order.
    pub fn prune_calls(&self) -> Vec<Duration> {
        self.prunes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The spec the instance now runs with (for tests of rebuild and resize).
    pub fn spec_of(&self, id: &ServerId) -> Option<InstanceSpec> {
        self.with(id, |i| Ok(i.spec.clone())).ok()
    }

    /// The last password set by `set_admin_password`.
    pub fn password_of(&self, id: &ServerId) -> Option<String> {
        self.with(id, |i| Ok(i.password.clone())).ok().flatten()
    }

    /// The MACs of an instance's interfaces as the backend has them plugged.
    pub fn macs_of(&self, id: &ServerId) -> Vec<String> {
        self.with(id, |i| {
            Ok(i.spec.ports.iter().map(|p| p.mac.clone()).collect())
        })
        .unwrap_or_default()
    }

    /// The ids of the volumes the backend has attached to an instance, in order.
    pub fn volumes_of(&self, id: &ServerId) -> Vec<String> {
        self.with(id, |i| {
            Ok(i.spec.volumes.iter().map(|v| v.volume_id.clone()).collect())
        })
        .unwrap_or_default()
    }

    /// The rescue image and the rescue password while the instance is rescued.
    pub fn rescue_of(&self, id: &ServerId) -> Option<(RescueImage, String)> {
        self.with(id, |i| Ok(i.rescued.clone())).ok().flatten()
    }

    /// Changes an instance's power state as if it happened inside the guest (a shutdown
    /// from within, a crash), for tests of the power-state sync.
    /// Watchers hear of it as they would of a real backend's event.
    pub fn set_power(&self, id: &ServerId, power: PowerState) -> bool {
        let found = self
            .with(id, |i| {
                i.power = power;
                Ok(())
            })
            .is_ok();
        if found {
            let sinks = self.sinks.lock().unwrap_or_else(|e| e.into_inner()).clone();
            for sink in sinks {
                sink(id);
            }
        }
        found
    }

    fn with<T>(&self, id: &ServerId, f: impl FnOnce(&mut Instance) -> Result<T>) -> Result<T> {
        let mut map = self.instances.lock().unwrap_or_else(|e| e.into_inner());
        let inst = map
            .get_mut(id)
            .ok_or_else(|| DriverError::NotFound(id.clone()))?;
        f(inst)
    }

    fn power(
        &self,
        op: Operation,
        id: &ServerId,
        from: &[PowerState],
        to: PowerState,
    ) -> Result<()> {
        self.begin(op)?;
        self.with(id, |i| {
            if !from.contains(&i.power) {
                return Err(DriverError::Failed(format!(
                    "cannot {} an instance in power state {:?}",
                    op.as_str(),
                    i.power
                )));
            }
            i.power = to;
            i.console.push_str(&format!("{}\n", op.as_str()));
            Ok(())
        })
    }
}

impl ComputeDriver for FakeDriver {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn watch(&self, sink: crate::StateSink) -> bool {
        self.sinks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sink);
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
            set_admin_password: true,
            trigger_crash_dump: true,
            diagnostics: true,
            // A fake told rescue is unsupported is a backend without a rescue mode.
            rescue: !self
                .behaviour
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .unsupported
                .contains(&Operation::Rescue),
        }
    }

    fn spawn(&self, spec: &InstanceSpec) -> Result<()> {
        self.begin(Operation::Spawn)?;
        let mut map = self.instances.lock().unwrap_or_else(|e| e.into_inner());
        if map.contains_key(&spec.id) {
            return Err(DriverError::Failed(format!("instance {} exists", spec.id)));
        }
        map.insert(
            spec.id.clone(),
            Instance {
                power: PowerState::Running,
                console: format!("{} login:\n", spec.hostname),
                spec: spec.clone(),
                resized_from: None,
                password: spec.admin_pass.clone(),
                rescued: None,
                started: std::time::Instant::now(),
            },
        );
        Ok(())
    }

    fn destroy(&self, id: &ServerId) -> Result<()> {
        self.begin(Operation::Destroy)?;
        self.instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        Ok(())
    }

    fn reboot(&self, id: &ServerId, _kind: RebootKind) -> Result<()> {
        use PowerState as P;
        self.power(
            Operation::Reboot,
            id,
            &[P::Running, P::Shutdown, P::Paused, P::Suspended, P::Crashed],
            P::Running,
        )
    }

    fn power_off(&self, id: &ServerId) -> Result<()> {
        use PowerState as P;
        self.power(
            Operation::PowerOff,
            id,
            &[P::Running, P::Paused, P::Suspended, P::Crashed, P::Shutdown],
            P::Shutdown,
        )
    }

    fn power_on(&self, id: &ServerId) -> Result<()> {
        use PowerState as P;
        self.power(
            Operation::PowerOn,
            id,
            &[P::Shutdown, P::Crashed],
            P::Running,
        )
    }

    fn pause(&self, id: &ServerId) -> Result<()> {
        use PowerState as P;
        self.power(Operation::Pause, id, &[P::Running], P::Paused)
    }

    fn unpause(&self, id: &ServerId) -> Result<()> {
        use PowerState as P;
        self.power(Operation::Unpause, id, &[P::Paused], P::Running)
    }

    fn suspend(&self, id: &ServerId) -> Result<()> {
        use PowerState as P;
        self.power(Operation::Suspend, id, &[P::Running], P::Suspended)
    }

    fn resume(&self, id: &ServerId) -> Result<()> {
        use PowerState as P;
        self.power(Operation::Resume, id, &[P::Suspended], P::Running)
    }

    fn console_output(&self, id: &ServerId, lines: Option<usize>) -> Result<String> {
        self.begin(Operation::ConsoleOutput)?;
        self.with(id, |i| {
            Ok(match lines {
                Some(n) => {
                    let all: Vec<&str> = i.console.lines().collect();
                    let start = all.len().saturating_sub(n);
                    all[start..].iter().map(|l| format!("{l}\n")).collect()
                }
                None => i.console.clone(),
            })
        })
    }

    fn get_info(&self, id: &ServerId) -> Result<InstanceInfo> {
        self.with(id, |i| {
            Ok(InstanceInfo {
                power_state: i.power,
            })
        })
    }

    fn list_instances(&self) -> Result<Vec<ServerId>> {
        Ok(self
            .instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect())
    }

    fn rebuild(&self, spec: &InstanceSpec) -> Result<()> {
        self.begin(Operation::Rebuild)?;
        self.with(&spec.id, |i| {
            i.spec = spec.clone();
            i.power = PowerState::Running;
            i.console = format!("{} login:\n", spec.hostname);
            i.started = std::time::Instant::now();
            Ok(())
        })
    }

    fn resize(&self, spec: &InstanceSpec) -> Result<()> {
        self.begin(Operation::Resize)?;
        self.with(&spec.id, |i| {
            if spec.disk_gb < i.spec.disk_gb {
                return Err(DriverError::Failed("a disk cannot shrink".into()));
            }
            i.resized_from = Some(std::mem::replace(&mut i.spec, spec.clone()));
            i.power = PowerState::Running;
            Ok(())
        })
    }

    fn confirm_resize(&self, id: &ServerId) -> Result<()> {
        self.begin(Operation::ConfirmResize)?;
        self.with(id, |i| {
            i.resized_from = None;
            Ok(())
        })
    }

    fn revert_resize(&self, old: &InstanceSpec) -> Result<()> {
        self.begin(Operation::RevertResize)?;
        self.with(&old.id, |i| {
            i.resized_from = None;
            i.spec = old.clone();
            i.power = PowerState::Running;
            Ok(())
        })
    }

    fn snapshot(&self, id: &ServerId, dest: &std::path::Path) -> Result<Snapshot> {
        self.begin(Operation::Snapshot)?;
        let image = self.with(id, |i| Ok(i.spec.image.clone()))?;
        // A copy of the instance's image when it has one, else a small raw disk.
        match image {
            Some(img) if img.path.exists() => {
                std::fs::copy(&img.path, dest)
                    .map_err(|e| DriverError::Failed(format!("snapshot: {e}")))?;
                Ok(Snapshot {
                    disk_format: img.disk_format,
                    container_format: img.container_format,
                })
            }
            _ => {
                std::fs::write(dest, vec![0u8; 64 * 1024])
                    .map_err(|e| DriverError::Failed(format!("snapshot: {e}")))?;
                Ok(Snapshot {
                    disk_format: "raw".into(),
                    container_format: "bare".into(),
                })
            }
        }
    }

    fn set_admin_password(&self, id: &ServerId, password: &str) -> Result<()> {
        self.begin(Operation::SetAdminPassword)?;
        self.with(id, |i| {
            if i.power != PowerState::Running {
                return Err(DriverError::Failed("the guest is not running".into()));
            }
            i.password = Some(password.to_owned());
            Ok(())
        })
    }

    fn trigger_crash_dump(&self, id: &ServerId) -> Result<()> {
        self.begin(Operation::TriggerCrashDump)?;
        self.with(id, |i| {
            i.console.push_str("NMI received: crash dump triggered\n");
            i.power = PowerState::Crashed;
            Ok(())
        })
    }

    fn rescue(&self, spec: &InstanceSpec, rescue: &RescueImage, admin_pass: &str) -> Result<()> {
        self.begin(Operation::Rescue)?;
        self.with(&spec.id, |i| {
            i.rescued = Some((rescue.clone(), admin_pass.to_owned()));
            i.power = PowerState::Running;
            i.console
                .push_str(&format!("rescue from {}\nrescue login:\n", rescue.image_id));
            Ok(())
        })
    }

    fn attach_interface(&self, spec: &InstanceSpec, port: &Port) -> Result<()> {
        self.begin(Operation::AttachInterface)?;
        self.with(&spec.id, |i| {
            if !i.spec.ports.iter().any(|p| p.mac == port.mac) {
                i.spec.ports.push(port.clone());
            }
            Ok(())
        })
    }

    fn detach_interface(&self, spec: &InstanceSpec, port: &Port) -> Result<()> {
        self.begin(Operation::DetachInterface)?;
        self.with(&spec.id, |i| {
            i.spec.ports.retain(|p| p.mac != port.mac);
            Ok(())
        })
    }

    fn attach_volume(&self, spec: &InstanceSpec, volume: &Volume) -> Result<()> {
        self.begin(Operation::AttachVolume)?;
        self.with(&spec.id, |i| {
            if !i
                .spec
                .volumes
                .iter()
                .any(|v| v.volume_id == volume.volume_id)
            {
                i.spec.volumes.push(volume.clone());
            }
            Ok(())
        })
    }

    fn detach_volume(&self, spec: &InstanceSpec, volume: &Volume) -> Result<()> {
        self.begin(Operation::DetachVolume)?;
        self.with(&spec.id, |i| {
            i.spec.volumes.retain(|v| v.volume_id != volume.volume_id);
            Ok(())
        })
    }

    fn extend_volume(&self, spec: &InstanceSpec, volume: &Volume, new_bytes: u64) -> Result<()> {
        self.begin(Operation::ExtendVolume)?;
        let _ = new_bytes;
        self.with(&spec.id, |i| {
            if i.spec
                .volumes
                .iter()
                .any(|v| v.volume_id == volume.volume_id)
            {
                Ok(())
            } else {
                Err(DriverError::Failed(format!(
                    "volume {} is not attached",
                    volume.volume_id
                )))
            }
        })
    }

    fn console_endpoint(&self, id: &ServerId, kind: ConsoleKind) -> Result<ConsoleEndpoint> {
        self.begin(Operation::Console)?;
        self.with(id, |i| match i.power {
            PowerState::Running => Ok(()),
            _ => Err(DriverError::Failed(format!("instance {id} is not running"))),
        })?;
        let mut consoles = self.consoles.lock().unwrap_or_else(|e| e.into_inner());
        if consoles.is_none() {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "onebox-fake-consoles-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).map_err(|e| DriverError::Failed(e.to_string()))?;
            *consoles = Some(FakeConsoles {
                dir,
                bound: HashSet::new(),
            });
        }
        let c = consoles.as_mut().expect("made above");
        let path = c.dir.join(format!("{id}-{}.sock", kind.as_str()));
        if c.bound.insert((id.clone(), kind)) {
            let listener =
                UnixListener::bind(&path).map_err(|e| DriverError::Failed(e.to_string()))?;
            std::thread::spawn(move || echo(listener));
        }
        Ok(ConsoleEndpoint::Unix(path))
    }

    fn unrescue(&self, spec: &InstanceSpec) -> Result<()> {
        self.begin(Operation::Unrescue)?;
        self.with(&spec.id, |i| {
            if i.rescued.take().is_none() {
                return Err(DriverError::Failed("the instance is not rescued".into()));
            }
            i.power = PowerState::Running;
            i.console
                .push_str(&format!("unrescue\n{} login:\n", spec.hostname));
            Ok(())
        })
    }

    fn diagnostics(&self, id: &ServerId) -> Result<Diagnostics> {
        self.begin(Operation::Diagnostics)?;
        self.with(id, |i| {
            Ok(Diagnostics {
                power_state: Some(i.power),
                hypervisor: "fake".into(),
                hypervisor_os: "linux".into(),
                uptime_s: Some(i.started.elapsed().as_secs()),
                num_cpus: i.spec.vcpus,
                memory_max_kb: i.spec.ram_mb * 1024,
                memory_used_kb: Some(i.spec.ram_mb * 512),
                cpu_time_ns: vec![17_000_000; i.spec.vcpus as usize],
                disks: vec![DiskStats::default()],
                nics: i
                    .spec
                    .addresses
                    .iter()
                    .map(|a| NicStats {
                        mac_address: a.mac.clone(),
                        ..NicStats::default()
                    })
                    .collect(),
            })
        })
    }

    fn prune_image_cache(&self, min_unused_age: Duration) -> Result<usize> {
        self.prunes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(min_unused_age);
        // Nothing is cached: instances live in memory.
        Ok(0)
    }

    fn available_resources(&self) -> Result<Resources> {
        Ok(Resources {
            vcpus: 64,
            memory_mb: 256 * 1024,
            local_gb: 4096,
            hypervisor_type: "fake".into(),
            hypervisor_version: 1000,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fake_passes_the_conformance_suite() {
        crate::conformance::run(&FakeDriver::new(), crate::conformance::sample_spec());
    }

    #[test]
    fn failures_can_be_injected() {
        let d = FakeDriver::new();
        d.set_failing(Operation::Spawn, true);
        let spec = crate::conformance::sample_spec();
        assert!(matches!(d.spawn(&spec), Err(DriverError::Failed(_))));
        assert!(d.list_instances().expect("list").is_empty());
        d.set_failing(Operation::Spawn, false);
        d.spawn(&spec).expect("spawn");
    }
}
