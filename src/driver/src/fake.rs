//! A driver that keeps instances in memory: for API tests and demos. Each operation can be
//! made to take time and to fail on demand, so tests can watch servers in transition and in
//! error.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use model::compute::{PowerState, ServerId};

use crate::{
    Capabilities, ComputeDriver, DriverError, InstanceInfo, InstanceSpec, Operation, RebootKind,
    Resources, Result,
};

#[derive(Debug)]
struct Instance {
    power: PowerState,
    console: String,
}

#[derive(Default)]
pub struct FakeDriver {
    /// Instances by id. Held only for map operations, never while sleeping.
    instances: Mutex<HashMap<ServerId, Instance>>,
    /// Operations told to fail, and how long each operation takes.
    behaviour: Mutex<Behaviour>,
}

#[derive(Default)]
struct Behaviour {
    failing: HashSet<Operation>,
    delay: Duration,
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

    fn begin(&self, op: Operation) -> Result<()> {
        let (delay, fail) = {
            let b = self.behaviour.lock().unwrap_or_else(|e| e.into_inner());
            (b.delay, b.failing.contains(&op))
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if fail {
            return Err(DriverError::Failed(format!(
                "the fake driver was told to fail {}",
                op.as_str()
            )));
        }
        Ok(())
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

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            pause: true,
            suspend: true,
            snapshot: true,
            resize: true,
            console_output: true,
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
