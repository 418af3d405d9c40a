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
        flavor_name: "conformance".into(),
        ..InstanceSpec::default()
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

    if caps.rebuild {
        let mut again = spec.clone();
        again.name = "conformance-rebuilt".into();
        d.rebuild(&again).expect("rebuild");
        assert_eq!(power(d, &id), PowerState::Running, "running after rebuild");
    } else {
        assert!(matches!(
            d.rebuild(&spec),
            Err(DriverError::NotSupported(_))
        ));
    }
    if caps.resize {
        let mut bigger = spec.clone();
        bigger.vcpus += 1;
        bigger.ram_mb += 64;
        bigger.disk_gb += 1;
        d.resize(&bigger).expect("resize");
        assert_eq!(power(d, &id), PowerState::Running, "running after resize");
        d.revert_resize(&spec).expect("revert resize");
        assert_eq!(power(d, &id), PowerState::Running, "running after revert");
        d.resize(&bigger).expect("resize again");
        d.confirm_resize(&id).expect("confirm resize");
        assert_eq!(power(d, &id), PowerState::Running, "running after confirm");
    }
    if caps.snapshot {
        let dir = std::env::temp_dir().join(format!("onebox-conformance-{id}"));
        std::fs::create_dir_all(&dir).expect("snapshot dir");
        let dest = dir.join("snapshot");
        let r = d.snapshot(&id, &dest);
        let size = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
        let _ = std::fs::remove_dir_all(&dir);
        r.expect("snapshot");
        assert!(size > 0, "a snapshot writes data");
        assert_eq!(power(d, &id), PowerState::Running, "running after snapshot");
    }
    if caps.diagnostics {
        let diag = d.diagnostics(&id).expect("diagnostics");
        assert!(diag.num_cpus > 0, "diagnostics count the cpus");
    }
    let rescue = crate::RescueImage {
        image_id: spec.image_id.clone().unwrap_or_default(),
        image: spec.image.clone(),
        kernel: spec.kernel.clone(),
        ramdisk: spec.ramdisk.clone(),
    };
    if caps.rescue {
        d.rescue(&spec, &rescue, "rescue-pass").expect("rescue");
        assert_eq!(power(d, &id), PowerState::Running, "running after rescue");
        d.unrescue(&spec).expect("unrescue");
        assert_eq!(power(d, &id), PowerState::Running, "running after unrescue");
        // Left rescued: destroy must take the rescue with it.
        d.rescue(&spec, &rescue, "rescue-pass")
            .expect("rescue again");
    } else {
        assert!(matches!(
            d.rescue(&spec, &rescue, "x"),
            Err(DriverError::NotSupported(_))
        ));
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
