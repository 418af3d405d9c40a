//! A container's interactive console against the real kernel as root: what is typed into
//! the supervisor's console socket reaches init's terminal, the answer comes back and the
//! console log records it; the socket is the host's alone. Skipped with a message without
//! root, unless ONEBOX_REQUIRE_BACKENDS=1.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{Env, SERIAL, wait_until};
use driver::{ComputeDriver, ConsoleEndpoint, ConsoleKind};

/// Runs each line typed on its terminal.
const SHELL_INIT: &str = r#"#!/bin/sh
echo "onebox-test: console ready"
trap 'exit 0' TERM
while read -r line; do eval "$line"; done
"#;

fn read_until(s: &mut UnixStream, needle: &str) -> String {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let end = Instant::now() + Duration::from_secs(20);
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
fn typing_on_a_containers_console_reaches_init_and_the_log() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::can_run() {
        return;
    }
    let mut env = Env::new("console");
    common::with_init(&env.image.path, SHELL_INIT);
    env.image.content_hash =
        driver::imagecache::content_hash_of(&env.image.path).expect("the image's hash");
    let spec = env.spec("typist");
    env.d().spawn(&spec).expect("spawn");
    env.observe(&spec.id);
    let d = env.d();
    let logged = |needle: &str| {
        d.console_output(&spec.id, None)
            .unwrap_or_default()
            .contains(needle)
    };
    assert!(
        wait_until(Duration::from_secs(20), || logged("console ready")),
        "init did not start"
    );

    let ConsoleEndpoint::Unix(sock) = d
        .console_endpoint(&spec.id, ConsoleKind::Serial)
        .expect("endpoint");
    let meta = std::fs::metadata(&sock).expect("socket");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "the host's alone");
    let mut s = UnixStream::connect(&sock).expect("connect");
    s.write_all(b"echo onebox-$((6*7)) in $(hostname)\n")
        .expect("type");
    read_until(&mut s, "onebox-42 in typist");
    assert!(
        wait_until(Duration::from_secs(5), || logged("onebox-42 in typist")),
        "the log records the session"
    );
    // A newer connection takes the console over; the older one is disconnected.
    let mut t = UnixStream::connect(&sock).expect("second");
    std::thread::sleep(Duration::from_millis(200));
    t.write_all(b"echo taken-$((1+1))\n").expect("type");
    read_until(&mut t, "taken-2");
    let mut rest = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let _ = s.read_to_end(&mut rest);
    assert!(
        !String::from_utf8_lossy(&rest).contains("taken-2"),
        "the older session saw the newer one's output"
    );
    // No screen on a container.
    assert!(matches!(
        d.console_endpoint(&spec.id, ConsoleKind::Vnc),
        Err(driver::DriverError::NotSupported(_))
    ));
    drop(t);
    env.teardown_and_check();
    assert!(!sock.exists(), "the socket goes with the container");
}
