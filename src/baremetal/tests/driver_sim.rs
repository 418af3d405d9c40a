//! The bare-metal driver against a simulated BMC (ipmi_sim on loopback, whose power-on starts
//! a process standing in for the machine): enrol, manage, provide, spawn, console, reboot,
//! stop, start, destroy; and a BMC that stops answering mid-operation.

#[path = "../../ipmi/tests/sim/mod.rs"]
mod sim;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use baremetal::driver::IronicDriver;
use baremetal::{Baremetal, BaremetalConfig, NewNode};
use driver::{ComputeDriver, DriverError, InstanceSpec, RebootKind};
use model::compute::{PowerState, ServerId};
use serde_json::json;
use sim::{Sim, wait_for};

fn service(dir: &std::path::Path) -> Baremetal {
    let store = store::Store::open_in_memory().expect("store");
    Baremetal::new(
        store,
        BaremetalConfig {
            ipmi_timeout: Duration::from_millis(700),
            ipmi_retries: 1,
            console_dir: dir.join("consoles"),
        },
    )
}

fn enrol(bm: &Baremetal, sim: &Sim, class: &str) -> String {
    let info = json!({
        "ipmi_address": "127.0.0.1",
        "ipmi_port": sim.port.to_string(),
        "ipmi_username": "admin",
        "ipmi_password": "password",
    });
    let node = bm
        .create(NewNode {
            name: Some(format!("node-{}", sim.port)),
            driver: "ipmi".into(),
            driver_info: info.as_object().cloned().unwrap_or_default(),
            resource_class: Some(class.into()),
            properties: json!({"cpus": 2, "memory_mb": 2048, "local_gb": 10})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            initial_state: "enroll".into(),
            ..Default::default()
        })
        .expect("create");
    let n = bm.provision(&node.uuid, "manage").expect("manage");
    assert_eq!(n.provision_state, "manageable", "{:?}", n.last_error);
    assert_eq!(n.power_state.as_deref(), Some("power off"));
    let n = bm.provision(&node.uuid, "provide").expect("provide");
    assert_eq!(n.provision_state, "available");
    node.uuid
}

fn spec(class: &str) -> InstanceSpec {
    let mut extra = BTreeMap::new();
    extra.insert(
        format!("resources:{}", baremetal::placement_class(class)),
        "1".to_string(),
    );
    InstanceSpec {
        id: ServerId::generate(),
        name: "bm-server".into(),
        hostname: "bm-server".into(),
        extra_specs: extra,
        ..Default::default()
    }
}

#[test]
fn a_server_on_a_node_from_spawn_to_destroy() {
    if !sim::available() {
        return;
    }
    let sim = Sim::start();
    let bm = service(sim.dir.path());
    let uuid = enrol(&bm, &sim, "baremetal.small");
    let d = IronicDriver::new(bm.clone());

    // Another class gets no node.
    let other = spec("baremetal.large");
    assert!(matches!(d.spawn(&other), Err(DriverError::NoValidHost(_))));

    let s = spec("baremetal.small");
    d.spawn(&s).expect("spawn");
    let n = bm.get(&uuid).expect("node");
    assert_eq!(n.provision_state, "active");
    assert_eq!(n.instance_uuid.as_deref(), Some(s.id.as_str()));
    assert_eq!(n.power_state.as_deref(), Some("power on"));
    let first = sim.machine_pid().expect("the machine runs");
    assert!(sim.events().contains("bootdev=pxe"), "{}", sim.events());
    assert_eq!(
        d.get_info(&s.id).expect("info").power_state,
        PowerState::Running
    );
    assert_eq!(d.list_instances().expect("list"), vec![s.id.clone()]);
    // A second server of the class finds no free node.
    assert!(matches!(
        d.spawn(&spec("baremetal.small")),
        Err(DriverError::NoValidHost(_))
    ));

    // The machine's console reaches the server's console output through SOL.
    assert!(
        wait_for(Duration::from_secs(40), || d
            .console_output(&s.id, None)
            .is_ok_and(|t| t.contains("onebox-sim machine console"))),
        "console: {:?}",
        d.console_output(&s.id, None)
    );

    d.reboot(&s.id, RebootKind::Hard).expect("reboot");
    let second = sim.machine_pid().expect("runs after reboot");
    assert_ne!(first, second);

    d.power_off(&s.id).expect("stop");
    assert!(sim.machine_pid().is_none());
    assert_eq!(
        d.get_info(&s.id).expect("info").power_state,
        PowerState::Shutdown
    );
    d.power_on(&s.id).expect("start");
    assert!(sim.machine_pid().is_some());

    // Power changed behind onebox's back: the BMC wins.
    std::process::Command::new("ipmitool")
        .args([
            "-I",
            "lanplus",
            "-C",
            "3",
            "-H",
            "127.0.0.1",
            "-U",
            "admin",
            "-E",
            "-p",
            &sim.port.to_string(),
            "chassis",
            "power",
            "off",
        ])
        .env("IPMI_PASSWORD", "password")
        .output()
        .ok();
    assert_eq!(
        d.get_info(&s.id).expect("info").power_state,
        PowerState::Shutdown
    );
    assert_eq!(
        bm.get(&uuid).expect("node").power_state.as_deref(),
        Some("power off")
    );

    d.destroy(&s.id).expect("destroy");
    let n = bm.get(&uuid).expect("node");
    assert_eq!(n.provision_state, "available");
    assert!(n.instance_uuid.is_none());
    assert!(sim.machine_pid().is_none());
    assert!(d.list_instances().expect("list").is_empty());
    // Destroying again (nothing left) succeeds.
    d.destroy(&s.id).expect("destroy again");
}

#[test]
fn a_bmc_that_stops_answering_fails_the_operation_and_records_last_error() {
    if !sim::available() {
        return;
    }
    let sim = Sim::start();
    let bm = service(sim.dir.path());
    let uuid = enrol(&bm, &sim, "gold");
    let d = IronicDriver::new(bm.clone());
    let s = spec("gold");

    sim.signal("STOP");
    let t = Instant::now();
    let r = d.spawn(&s);
    let took = t.elapsed();
    sim.signal("CONT");
    let Err(DriverError::Failed(msg)) = r else {
        panic!("expected a failure, got {r:?}")
    };
    assert!(msg.contains("unreachable"), "{msg}");
    // Bounded: one BMC call's timeout × attempts, no hang.
    assert!(took < Duration::from_secs(5), "{took:?}");
    let n = bm.get(&uuid).expect("node");
    assert_eq!(n.provision_state, "deploy failed");
    assert!(n.target_provision_state.is_none());
    assert!(
        n.last_error
            .as_deref()
            .unwrap_or("")
            .contains("unreachable"),
        "{:?}",
        n.last_error
    );

    // Deleting the failed server returns the node once the BMC answers again.
    assert!(wait_for(Duration::from_secs(10), || d
        .destroy(&s.id)
        .is_ok()));
    let n = bm.get(&uuid).expect("node");
    assert_eq!(n.provision_state, "available");
    assert!(n.instance_uuid.is_none());
}

#[test]
fn wrong_password_keeps_the_node_in_enroll() {
    if !sim::available() {
        return;
    }
    let sim = Sim::start();
    let bm = service(sim.dir.path());
    let node = bm
        .create(NewNode {
            driver: "ipmi".into(),
            driver_info: json!({"ipmi_address": "127.0.0.1", "ipmi_port": sim.port, "ipmi_username": "admin", "ipmi_password": "wrong"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            initial_state: "enroll".into(),
            ..Default::default()
        })
        .expect("create");
    let n = bm.provision(&node.uuid, "manage").expect("manage answers");
    assert_eq!(n.provision_state, "enroll");
    let err = n.last_error.unwrap_or_default();
    assert!(err.contains("authentication failed"), "{err}");
    assert!(!err.contains("wrong"), "the password must not leak: {err}");
}
