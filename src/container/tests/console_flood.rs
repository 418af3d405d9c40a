//! A container whose init floods its console, against the real kernel as root: the log on
//! disk stays under `console_max_bytes` and the console output is its last lines. Skipped
//! with a message without root, unless ONEBOX_REQUIRE_BACKENDS=1.

mod common;

use std::time::Duration;

use common::{Env, SERIAL, wait_until};
use container::ContainerDriver;
use driver::ComputeDriver;

/// Writes 40,000 numbered lines (about 1.3 MB) as fast as it can, then idles.
const FLOOD_INIT: &str = r#"#!/bin/sh
i=0
while [ $i -lt 40000 ]; do echo "flood line $i"; i=$((i+1)); done
echo "flood done"
while :; do sleep 1 & wait $!; done
"#;

#[test]
fn a_container_flooding_its_console_leaves_a_capped_log_and_its_last_lines_are_shown() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::can_run() {
        return;
    }
    let mut env = Env::new("flood");
    common::with_init(&env.image.path, FLOOD_INIT);
    // The image changed: its content hash (the cache's key) with it.
    env.image.content_hash =
        driver::imagecache::content_hash_of(&env.image.path).expect("the image's hash");
    let cap: u64 = 64 * 1024;
    env.cfg.console_max_bytes = cap;
    env.driver = Some(ContainerDriver::new(env.cfg.clone()).expect("driver"));
    let spec = env.spec("flood-1");
    let id = spec.id.clone();
    env.d().spawn(&spec).expect("spawn");
    env.observe(&id);
    let d = env.d();
    assert!(
        wait_until(Duration::from_secs(60), || d
            .console_output(&id, Some(1))
            .is_ok_and(|o| o == "flood done\n")),
        "the flood ends: {:?}",
        d.console_output(&id, Some(3))
    );
    // On disk: the log and its one rotated generation, each under the cap, though init
    // wrote twenty times the cap.
    let dir = env.cfg.data_dir.clone();
    let mut total = 0;
    for entry in walk(&dir) {
        let name = entry.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.as_deref().is_some_and(|n| n.starts_with("console")) {
            let len = std::fs::metadata(&entry).expect("metadata").len();
            assert!(len <= cap, "{} holds {len} bytes", entry.display());
            total += len;
        }
    }
    assert!(
        total > 0 && total <= 2 * cap,
        "{total} bytes of console on disk"
    );
    // The console output is the end of the flood, in order.
    let out = d.console_output(&id, Some(3)).expect("console");
    assert_eq!(out, "flood line 39998\nflood line 39999\nflood done\n");
    env.teardown_and_check();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
