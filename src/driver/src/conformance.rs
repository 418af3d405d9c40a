//! The conformance suite: what every driver must do, checked against the driver itself. It
//! runs against the fake in every test run and against each real backend where that backend
//! is available on the machine.

use model::compute::{PowerState, ServerId};

use crate::{ComputeDriver, DriverError, InstanceSpec, RebootKind};

/// A small instance for the suite.
pub fn sample_spec() -> InstanceSpec {
    InstanceSpec {
        id: ServerId::generate(),
        name: "conformance".into(),
        hostname: "conformance".into(),
        vcpus: 1,
        ram_mb: 128,
        disk_gb: 1,
        image_id: None,
        user_data: None,
        key_data: None,
        addresses: Vec::new(),
    }
}

fn power(d: &dyn ComputeDriver, id: &ServerId) -> PowerState {
    d.get_info(id).expect("get_info").power_state
}

/// Runs the whole lifecycle on `spec`; panics with a message on the first departure from the
/// contract. Cleans up the instance whatever happens before it panics.
pub fn run(d: &dyn ComputeDriver, spec: InstanceSpec) {
    struct Cleanup<'a>(&'a dyn ComputeDriver, ServerId);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = self.0.destroy(&self.1);
        }
    }
    let id = spec.id.clone();
    let _cleanup = Cleanup(d, id.clone());
    let caps = d.capabilities();

    d.spawn(&spec).expect("spawn");
    assert_eq!(power(d, &id), PowerState::Running, "running after spawn");
    assert!(
        d.list_instances().expect("list").contains(&id),
        "listed after spawn"
    );
    assert!(
        d.spawn(&spec).is_err(),
        "a second spawn of the same id fails"
    );

    d.power_off(&id).expect("power_off");
    assert_eq!(
        power(d, &id),
        PowerState::Shutdown,
        "shut down after power_off"
    );
    d.power_on(&id).expect("power_on");
    assert_eq!(power(d, &id), PowerState::Running, "running after power_on");

    d.reboot(&id, RebootKind::Soft).expect("soft reboot");
    assert_eq!(
        power(d, &id),
        PowerState::Running,
        "running after soft reboot"
    );
    d.reboot(&id, RebootKind::Hard).expect("hard reboot");
    assert_eq!(
        power(d, &id),
        PowerState::Running,
        "running after hard reboot"
    );

    if caps.pause {
        d.pause(&id).expect("pause");
        assert_eq!(power(d, &id), PowerState::Paused);
        d.unpause(&id).expect("unpause");
        assert_eq!(power(d, &id), PowerState::Running);
    } else {
        assert!(matches!(d.pause(&id), Err(DriverError::NotSupported(_))));
    }
    if caps.suspend {
        d.suspend(&id).expect("suspend");
        assert_eq!(power(d, &id), PowerState::Suspended);
        d.resume(&id).expect("resume");
        assert_eq!(power(d, &id), PowerState::Running);
    } else {
        assert!(matches!(d.suspend(&id), Err(DriverError::NotSupported(_))));
    }
    if caps.console_output {
        d.console_output(&id, None).expect("console output");
        let one = d.console_output(&id, Some(1)).expect("last line");
        assert!(one.lines().count() <= 1, "length limits the output");
    }

    d.destroy(&id).expect("destroy");
    assert!(
        !d.list_instances().expect("list").contains(&id),
        "gone after destroy"
    );
    assert!(
        matches!(d.get_info(&id), Err(DriverError::NotFound(_))),
        "get_info of a destroyed instance is NotFound"
    );
    d.destroy(&id).expect("destroying twice succeeds");
    let r = d.available_resources().expect("resources");
    assert!(r.vcpus > 0 && r.memory_mb > 0, "resources are reported");
}
