//! A real guest's interactive consoles: the serial console's socket carries a shell both
//! ways while the console log keeps recording, and the VNC socket speaks RFB. No TCP port is
//! opened for either.
//!
//! Needs root and a libvirtd (`scripts/libvirtd.sh start`); skips otherwise, or fails when
//! `ONEBOX_REQUIRE_BACKENDS` is set.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use base64::Engine;
use driver::{ComputeDriver, ConsoleEndpoint, ConsoleKind};
use driver_libvirt::{LibvirtConfig, LibvirtDriver};

const BOOT: Duration = Duration::from_secs(120);

/// Starts a shell on the serial port, as a getty would.
const SHELL: &str = "#!/bin/sh\n(setsid /bin/sh -i </dev/ttyS0 >/dev/ttyS0 2>&1 &)\n";

struct Cleanup<'a>(&'a LibvirtDriver, model::compute::ServerId, String);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.destroy(&self.1);
        let _ = hostnet::delete_link(&self.2);
    }
}

/// Reads from `s` until what was read contains `needle`.
fn read_until(s: &mut UnixStream, needle: &str, timeout: Duration) -> String {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let end = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(needle) {
        assert!(
            Instant::now() < end,
            "{needle:?} not read; got {:?}",
            String::from_utf8_lossy(&got)
        );
        match s.read(&mut buf) {
            Ok(0) => panic!("the console closed"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn a_guests_serial_console_runs_a_shell_and_its_screen_speaks_rfb() {
    if !common::available() {
        return;
    }
    let data = tempfile::Builder::new()
        .prefix("onebox-consoles-")
        .tempdir()
        .expect("tempdir");
    let d = LibvirtDriver::connect(LibvirtConfig::new(data.path().to_path_buf()))
        .expect("connect to libvirt");
    let mut spec = common::spec(9);
    spec.user_data = Some(base64::engine::general_purpose::STANDARD.encode(SHELL));
    spec.config_drive = true;
    let br = hostnet::bridge_name(&spec.ports[0].network_id);
    let _guard = Cleanup(&d, spec.id.clone(), br);
    d.spawn(&spec).expect("spawn");
    let log = d.console_log(&spec.id);
    common::wait_console(&log, "user-data-exit=0", BOOT);

    let ConsoleEndpoint::Unix(path) = d
        .console_endpoint(&spec.id, ConsoleKind::Serial)
        .expect("serial endpoint");
    let mut s = UnixStream::connect(&path).expect("connect to the serial console");
    s.write_all(b"echo onebox-console-$((6*7))\n")
        .expect("type");
    read_until(&mut s, "onebox-console-42", BOOT);
    drop(s);
    // The log recorded the session, and a second session works after the first closed.
    common::wait_console(&log, "onebox-console-42", Duration::from_secs(10));
    let mut s = UnixStream::connect(&path).expect("connect again");
    s.write_all(b"echo second-$((2+3))\n").expect("type");
    read_until(&mut s, "second-5", BOOT);
    drop(s);

    // The screen: QEMU's VNC server greets with the RFB version.
    let ConsoleEndpoint::Unix(vnc) = d
        .console_endpoint(&spec.id, ConsoleKind::Vnc)
        .expect("vnc endpoint");
    let mut v = UnixStream::connect(&vnc).expect("connect to the VNC socket");
    let banner = read_until(&mut v, "\n", Duration::from_secs(10));
    assert!(banner.starts_with("RFB 003."), "{banner:?}");

    // Stopped: no console.
    d.power_off(&spec.id).expect("stop");
    assert!(d.console_endpoint(&spec.id, ConsoleKind::Serial).is_err());
}
