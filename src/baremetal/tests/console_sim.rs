//! A bare-metal server's interactive serial console against a simulated BMC (ipmi_sim, whose
//! SOL is the simulated machine's serial line, a console that answers each line it gets):
//! bytes written to the console socket reach the machine over SOL and its answer comes back
//! on the socket and lands in the capture log; the newest connection takes over; closing
//! stops neither the capture nor the machine; no VNC; the socket is the owner's only.

#[path = "../../ipmi/tests/sim/mod.rs"]
mod sim;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use baremetal::driver::IronicDriver;
use baremetal::{Baremetal, BaremetalConfig, NewNode};
use driver::{ComputeDriver, ConsoleEndpoint, ConsoleKind, DriverError, InstanceSpec};
use model::compute::ServerId;
use serde_json::json;
use sim::{Sim, wait_for};

fn service(dir: &std::path::Path) -> Baremetal {
    Baremetal::new(
        store::Store::open_in_memory().expect("store"),
        BaremetalConfig {
            ipmi_timeout: Duration::from_millis(700),
            ipmi_retries: 1,
            console_dir: dir.join("consoles"),
        },
    )
}

/// An available node of class `metal` whose BMC is `sim`.
fn enrol(bm: &Baremetal, sim: &Sim) -> String {
    let node = bm
        .create(NewNode {
            driver: "ipmi".into(),
            driver_info: json!({"ipmi_address": "127.0.0.1", "ipmi_port": sim.port.to_string(),
                                "ipmi_username": "admin", "ipmi_password": "password"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
            resource_class: Some("metal".into()),
            initial_state: "enroll".into(),
            ..Default::default()
        })
        .expect("create");
    let n = bm.provision(&node.uuid, "manage").expect("manage");
    assert_eq!(n.provision_state, "manageable", "{:?}", n.last_error);
    bm.provision(&node.uuid, "provide").expect("provide");
    node.uuid
}

fn spec() -> InstanceSpec {
    let mut extra = BTreeMap::new();
    extra.insert("resources:CUSTOM_METAL".to_string(), "1".to_string());
    InstanceSpec {
        id: ServerId::generate(),
        name: "metal".into(),
        hostname: "metal".into(),
        extra_specs: extra,
        ..Default::default()
    }
}

fn endpoint(d: &IronicDriver, id: &ServerId) -> PathBuf {
    let ConsoleEndpoint::Unix(p) = d
        .console_endpoint(id, ConsoleKind::Serial)
        .expect("serial console");
    p
}

/// Reads from `s` until `needle` has been read (or `within` passes); returns what was read.
fn read_until(s: &mut UnixStream, needle: &str, within: Duration) -> String {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let (t, mut got, mut buf) = (Instant::now(), Vec::new(), [0u8; 4096]);
    while t.elapsed() < within && !String::from_utf8_lossy(&got).contains(needle) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Types `line` until the machine's answer to it comes back on `s` (the machine's serial
/// line may take a while to be relayed after power on).
fn typed(s: &mut UnixStream, line: &str, within: Duration) -> String {
    let want = format!("machine got: {line}");
    let t = Instant::now();
    let mut seen = String::new();
    while t.elapsed() < within {
        s.write_all(format!("{line}\r").as_bytes()).expect("write");
        seen += &read_until(s, &want, Duration::from_secs(3));
        if seen.contains(&want) {
            return seen;
        }
    }
    panic!("{want:?} never came back; read {seen:?}");
}

#[test]
fn the_serial_console_relays_sol_both_ways_and_the_log_keeps_it() {
    if !sim::available() {
        return;
    }
    let sim = Sim::start();
    let bm = service(sim.dir.path());
    let uuid = enrol(&bm, &sim);
    let d = IronicDriver::new(bm.clone());
    let s = spec();
    d.spawn(&s).expect("spawn");
    let machine = sim.machine_pid().expect("the machine runs");

    // No screen on a machine: Nova's 501 path.
    assert!(matches!(
        d.console_endpoint(&s.id, ConsoleKind::Vnc),
        Err(DriverError::NotSupported(_))
    ));
    let path = endpoint(&d, &s.id);
    assert_eq!(path, bm.console_socket(&uuid));
    assert_eq!(endpoint(&d, &s.id), path, "asking again reuses the socket");

    let mut c = UnixStream::connect(&path).expect("connect");
    let seen = typed(&mut c, "hello-sol-1", Duration::from_secs(60));
    assert!(seen.contains("machine got: hello-sol-1"), "{seen}");
    // The same output is in the capture log, which the console log reads.
    assert!(
        wait_for(Duration::from_secs(5), || d
            .console_output(&s.id, None)
            .is_ok_and(|t| t.contains("machine got: hello-sol-1"))),
        "{:?}",
        d.console_output(&s.id, None)
    );
    assert!(
        std::fs::read_to_string(bm.console_path(&uuid))
            .expect("log")
            .contains("machine got: hello-sol-1")
    );

    // The newest connection takes the console over; the one before is closed.
    let mut newer = UnixStream::connect(&path).expect("connect again");
    let seen = typed(&mut newer, "hello-sol-2", Duration::from_secs(20));
    assert!(seen.contains("machine got: hello-sol-2"), "{seen}");
    c.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(
        !String::from_utf8_lossy(&rest).contains("hello-sol-2"),
        "the replaced client saw the newer session"
    );

    // Leaving stops neither the capture nor the machine.
    drop(newer);
    drop(c);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sim.machine_pid(), Some(machine));
    assert!(
        bm.bmc(&bm.get(&uuid).expect("node"))
            .expect("bmc")
            .capturing()
    );
    assert!(
        wait_for(Duration::from_secs(10), || d
            .console_output(&s.id, None)
            .is_ok_and(|t| t.matches("onebox-sim machine up").count() > 1)),
        "the capture goes on after the client left"
    );
    let mut again = UnixStream::connect(&path).expect("reconnect");
    typed(&mut again, "hello-sol-3", Duration::from_secs(20));

    // Deleting the server ends the console: the client is closed, the socket removed.
    d.destroy(&s.id).expect("destroy");
    again
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut rest = Vec::new();
    let _ = again.read_to_end(&mut rest);
    assert!(!path.exists());
    assert!(d.console_endpoint(&s.id, ConsoleKind::Serial).is_err());
}

#[test]
fn attack_the_console_socket_is_the_owners_only_and_needs_a_running_server() {
    if !sim::available() {
        return;
    }
    let sim = Sim::start();
    let bm = service(sim.dir.path());
    let uuid = enrol(&bm, &sim);
    let d = IronicDriver::new(bm.clone());
    let s = spec();
    // No console for a server that is not on the node.
    assert!(d.console_endpoint(&s.id, ConsoleKind::Serial).is_err());
    d.spawn(&s).expect("spawn");
    let path = endpoint(&d, &s.id);
    let mode = std::fs::metadata(&path)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
    let dir = path.parent().expect("dir");
    let mode = std::fs::metadata(dir).expect("dir").permissions().mode();
    assert_eq!(mode & 0o077, 0, "directory mode {mode:o}");
    // The capture log beside it is not for others either.
    assert_eq!(bm.console_path(&uuid).parent(), Some(dir));

    // A stopped machine has no console (and asking does not power it on).
    d.power_off(&s.id).expect("stop");
    assert!(matches!(
        d.console_endpoint(&s.id, ConsoleKind::Serial),
        Err(DriverError::Failed(_))
    ));
    assert!(sim.machine_pid().is_none());
    d.destroy(&s.id).expect("destroy");
    assert!(!path.exists());
}
