//! A simulated BMC for the tests: `scripts/ipmi-sim.sh` starts Debian's `ipmi_sim` on a free
//! loopback port with its own state directory; dropping the guard stops the machine's process
//! group and the simulator, by PID.

#![allow(dead_code)]

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Sim {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub console_port: u16,
    pub pid: u32,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free udp port")
}

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free tcp port")
}

/// Whether the simulator can run here. With `ONEBOX_REQUIRE_BACKENDS=1` a missing simulator
/// fails the test; otherwise the test is skipped with a note.
pub fn available() -> bool {
    let ok = Command::new("sh")
        .args([
            "-c",
            "command -v ipmi_sim && command -v sdrcomp && command -v socat",
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("ONEBOX_REQUIRE_BACKENDS").as_deref() == Ok("1") {
            panic!(
                "ipmi_sim/sdrcomp/socat not installed (apt-get install openipmi socat) and ONEBOX_REQUIRE_BACKENDS=1"
            );
        }
        eprintln!("skipping: ipmi_sim (openipmi) or socat is not installed");
    }
    ok
}

impl Sim {
    pub fn start() -> Sim {
        let dir = tempfile::tempdir().expect("tempdir");
        for _ in 0..5 {
            let (port, console_port) = (free_udp_port(), free_tcp_port());
            let out = Command::new(repo_root().join("scripts/ipmi-sim.sh"))
                .arg("start")
                .arg(dir.path())
                .arg(port.to_string())
                .arg(console_port.to_string())
                .output()
                .expect("run scripts/ipmi-sim.sh");
            if out.status.success() {
                let pid = String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .expect("pid");
                return Sim {
                    dir,
                    port,
                    console_port,
                    pid,
                };
            }
            eprintln!("ipmi-sim.sh: {}", String::from_utf8_lossy(&out.stderr));
        }
        panic!("could not start ipmi_sim");
    }

    pub fn config(&self) -> ipmi::Config {
        let mut c = ipmi::Config::new("127.0.0.1", self.port, "admin", "password");
        c.timeout = Duration::from_millis(1000);
        c.retries = 2;
        c
    }

    pub fn machine_dir(&self) -> PathBuf {
        self.dir.path().join("machine")
    }

    /// PID of the process standing in for the machine, if it runs.
    pub fn machine_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.machine_dir().join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        // Nothing may reap the machine's processes here: a zombie counts as gone.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let state = stat
            .rsplit(')')
            .next()?
            .split_whitespace()
            .next()?
            .to_string();
        (state != "Z").then_some(pid)
    }

    pub fn events(&self) -> String {
        std::fs::read_to_string(self.machine_dir().join("events.log")).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid.to_string())
            .status();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/ipmi-sim.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .status();
        // Wait for the simulator to go before its directory is removed.
        let t = Instant::now();
        while Path::new(&format!("/proc/{}", self.pid)).exists()
            && t.elapsed() < Duration::from_secs(3)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Polls `f` until it is true or `within` has passed.
pub fn wait_for(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < within {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}
