//! The client against Debian's `ipmi_sim` on loopback, whose power-on starts a process
//! standing in for the machine (see `scripts/ipmi-sim.sh`).

mod sim;

use std::time::{Duration, Instant};

use ipmi::{BootDevice, ChassisControl, Error, Session};
use sim::{Sim, wait_for};

#[test]
fn device_id_power_and_boot_device() {
    if !sim::available() {
        return;
    }
    let sim = Sim::start();
    let mut s = Session::open(&sim.config()).expect("open session");
    let id = s.device_id().expect("device id");
    assert_eq!(id.ipmi_version, "2.0");
    assert_eq!(id.manufacturer_id, 4753);
    assert_eq!(id.product_id, 0x0f02);

    assert!(!s.power_is_on().expect("status"));
    assert!(sim.machine_pid().is_none());

    s.set_boot_device(BootDevice::Pxe, false, true)
        .expect("bootdev pxe");
    assert!(wait_for(Duration::from_secs(2), || sim
        .events()
        .contains("bootdev=pxe")));
    let b = s.boot_device().expect("get bootdev");
    assert_eq!(b.device, Some(BootDevice::Pxe));

    s.chassis_control(ChassisControl::PowerOn)
        .expect("power on");
    assert!(s.power_is_on().expect("status"));
    let first = sim.machine_pid().expect("the machine runs after power on");
    assert!(sim.events().contains("bootdev=pxe"), "{}", sim.events());

    s.chassis_control(ChassisControl::HardReset).expect("reset");
    let second = sim.machine_pid().expect("the machine runs after reset");
    assert_ne!(first, second, "reset restarts the machine");

    s.chassis_control(ChassisControl::PowerOff)
        .expect("power off");
    assert!(!s.power_is_on().expect("status"));
    assert!(
        sim.machine_pid().is_none(),
        "the machine is gone after power off"
    );

    s.chassis_control(ChassisControl::PowerOn)
        .expect("power on");
    let before = sim.machine_pid().expect("on");
    s.chassis_control(ChassisControl::PowerCycle)
        .expect("cycle");
    // ipmi_sim powers off at once and on again a second later.
    assert!(wait_for(Duration::from_secs(5), || {
        sim.machine_pid().is_some_and(|p| p != before)
    }));
    s.chassis_control(ChassisControl::Soft).expect("soft off");
    assert!(wait_for(Duration::from_secs(5), || sim
        .machine_pid()
        .is_none()));

    for dev in [BootDevice::Disk, BootDevice::Cdrom, BootDevice::Bios] {
        s.set_boot_device(dev, true, false).expect("bootdev");
        assert_eq!(s.boot_device().expect("get").device, Some(dev));
    }
    s.close();
}

#[test]
fn sensors_from_the_sdr_walk() {
    if !sim::available() {
        return;
    }
    let sim = Sim::start();
    let mut s = Session::open(&sim.config()).expect("open session");
    let records = s.sdr_records().expect("sdr walk");
    let names: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
    assert!(names.contains(&"MBTemp"), "{names:?}");
    assert!(names.contains(&"onebox sim"), "{names:?}");
    let sensors = s.sensors().expect("sensors");
    let t = sensors.iter().find(|r| r.name == "MBTemp").expect("MBTemp");
    assert_eq!(t.value, Some(45.0));
    assert_eq!(t.unit.as_deref(), Some("degrees C"));
    s.close();
}

#[test]
fn serial_over_lan_capture_to_a_file() {
    if !sim::available() {
        return;
    }
    let sim = Sim::start();
    let bmc = ipmi::Bmc::shared(sim.config());
    bmc.chassis_control(ChassisControl::PowerOn)
        .expect("power on");
    let log = sim.dir.path().join("console.log");
    bmc.start_console_capture(log.clone());
    // ipmi_sim connects to the machine's console a few seconds after power on; keep typing
    // until the machine's echo shows up in the capture file.
    let mut n = 0;
    let seen = wait_for(Duration::from_secs(40), || {
        n += 1;
        if n % 10 == 1 {
            let _ = bmc.console_send(b"hello-from-onebox\r");
        }
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("machine got: hello-from-onebox")
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(seen, "console capture: {text:?}");
    // Power stays controllable through the same session while SOL is captured.
    assert!(bmc.power_is_on().expect("status"));
    bmc.stop_console_capture();
    bmc.chassis_control(ChassisControl::PowerOff).expect("off");
}

#[test]
fn wrong_password_is_a_credentials_error() {
    if !sim::available() {
        return;
    }
    let sim = Sim::start();
    let mut cfg = sim.config();
    cfg.password = "not-the-password".into();
    match Session::open(&cfg) {
        Err(Error::WrongCredentials(msg)) => assert!(!msg.contains("not-the-password"), "{msg}"),
        other => panic!("expected WrongCredentials, got {other:?}"),
    }
    cfg.username = "nobody".into();
    assert!(matches!(
        Session::open(&cfg),
        Err(Error::WrongCredentials(_))
    ));
}

#[test]
fn nothing_listening_fails_within_the_timeout() {
    let mut cfg = ipmi::Config::new("127.0.0.1", sim::free_udp_port(), "admin", "password");
    cfg.timeout = Duration::from_millis(300);
    cfg.retries = 2;
    let t = Instant::now();
    match Session::open(&cfg) {
        Err(Error::NoAnswer { detail, .. }) => assert!(detail.contains("3 attempts"), "{detail}"),
        other => panic!("expected NoAnswer, got {other:?}"),
    }
    assert!(
        t.elapsed() < cfg.max_wait() + Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn a_bmc_that_stops_answering_mid_session() {
    if !sim::available() {
        return;
    }
    let sim = Sim::start();
    let cfg = sim.config();
    let bmc = ipmi::Bmc::shared(cfg.clone());
    assert!(!bmc.power_is_on().expect("status"));
    sim.signal("STOP");
    let t = Instant::now();
    let r = bmc.chassis_control(ChassisControl::PowerOn);
    let took = t.elapsed();
    sim.signal("CONT");
    assert!(matches!(r, Err(Error::NoAnswer { .. })), "{r:?}");
    assert!(
        took >= cfg.max_wait() - Duration::from_millis(100),
        "{took:?}"
    );
    assert!(
        took < cfg.max_wait() + Duration::from_millis(500),
        "{took:?}"
    );
    // The dead session was dropped: the next call opens a new one and works.
    assert!(wait_for(Duration::from_secs(10), || bmc
        .power_is_on()
        .is_ok()));
}

#[test]
fn cipher_suite_zero_is_refused_and_seventeen_is_reported_unsupported() {
    let mut cfg = ipmi::Config::new("127.0.0.1", 1, "admin", "password");
    cfg.cipher_suite = 0;
    assert!(matches!(
        Session::open(&cfg),
        Err(Error::UnsupportedCipherSuite(_))
    ));
    if !sim::available() {
        return;
    }
    // ipmi_sim 2.0.33 has no SHA-256 algorithms: suite 17 is refused by the BMC, clearly.
    let sim = Sim::start();
    let mut cfg = sim.config();
    cfg.cipher_suite = 17;
    match Session::open(&cfg) {
        Err(Error::UnsupportedCipherSuite(msg)) => assert!(msg.contains("17"), "{msg}"),
        other => panic!("expected UnsupportedCipherSuite, got {other:?}"),
    }
}

#[test]
fn one_session_per_bmc() {
    if !sim::available() {
        return;
    }
    let sim = Sim::start();
    let a = ipmi::Bmc::shared(sim.config());
    let b = ipmi::Bmc::shared(sim.config());
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || (0..5).all(|_| b.power_is_on().is_ok()))
        })
        .collect();
    for t in threads {
        assert!(t.join().expect("join"));
    }
}
