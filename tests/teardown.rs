//! `onebox teardown`, what the package runs when it is removed, against the real kernel as
//! root: a container that onebox left running (its supervisor outlives the service by
//! design) is powered off by a plain teardown, keeping its files, and gone with `--purge`,
//! its cgroup too. The firmware root filesystem (scripts/setup.sh builds it) is the
//! container's image. Skipped with a message without root or without that image, unless
//! ONEBOX_REQUIRE_BACKENDS=1. The host's bridges and nft tables are left alone
//! (`--keep-network`): other tests' bridges may exist on this machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use driver::{ComputeDriver, ImageFile, InstanceSpec};
use model::compute::{PowerState, ServerId};

const BIN: &str = env!("CARGO_BIN_EXE_onebox");

fn skip(why: &str) -> bool {
    if std::env::var("ONEBOX_REQUIRE_BACKENDS").is_ok_and(|v| v == "1") {
        panic!("required: {why}");
    }
    eprintln!("skipped: {why}");
    true
}

fn rootfs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware/build/onebox-rootfs.tar")
}

fn teardown(config: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("teardown")
        .arg("--keep-network")
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .expect("onebox teardown")
}

fn gone(pid: i32) -> bool {
    // A zombie is gone too: it runs nothing.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

/// Live processes whose command line names `data` (the container supervisors of that data
/// directory: `onebox container-shim <data>/...`).
fn supervisors(data: &Path) -> Vec<i32> {
    let needle = data.to_string_lossy().into_owned();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != std::process::id() as i32 && !gone(*pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .collect()
}

fn wait(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < within {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

#[test]
fn attack_package_removal_stops_the_containers_onebox_left_running() {
    if let Some(why) = container::unavailable_reason()
        && skip(&why)
    {
        return;
    }
    if !rootfs().is_file() && skip("no firmware/build/onebox-rootfs.tar (scripts/setup.sh)") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let parent = format!("onebox-teardown-test-{}", std::process::id());
    let config = dir.path().join("onebox.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[container]\ncgroup_parent = \"{parent}\"\n[libvirt]\nenabled = false\n",
            data.display()
        ),
    )
    .expect("config");

    // A container started as onebox starts them: its supervisor is `onebox container-shim`.
    let mut cfg = container::Config::new(&data);
    cfg.cgroup_parent = parent.clone();
    cfg.stop_timeout = Duration::from_secs(3);
    cfg.shim = container::ShimCommand {
        program: PathBuf::from(BIN),
        args: vec!["container-shim".into()],
    };
    let d = container::ContainerDriver::new(cfg.clone()).expect("driver");
    let _cleanup = Cleanup {
        driver: container::ContainerDriver::new(cfg.clone()).expect("driver"),
        parent: parent.clone(),
    };
    let id = ServerId::generate();
    let spec = InstanceSpec {
        id: id.clone(),
        name: "left-running".into(),
        hostname: "left-running".into(),
        vcpus: 1,
        ram_mb: 128,
        disk_gb: 1,
        flavor_name: "m1.tiny".into(),
        image_id: Some("teardown-test".into()),
        image: Some(ImageFile {
            id: "teardown-test".into(),
            path: rootfs(),
            disk_format: "raw".into(),
            container_format: "bare".into(),
            content_hash: driver::imagecache::content_hash_of(&rootfs()).expect("hash"),
            properties: BTreeMap::from([("hypervisor_type".into(), "lxc".into())]),
        }),
        ..InstanceSpec::default()
    };
    d.spawn(&spec).expect("spawn");
    let init = d.init_pid(&id).expect("init runs");
    let cgroup = d.cgroup(&id);
    assert!(cgroup.exists());
    assert!(
        !supervisors(&data).is_empty(),
        "the container has a supervisor"
    );

    // Removal: powered off, its files kept for a reinstall.
    let out = teardown(&config, &[]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("powered off 1 guest(s)"),
        "{out:?}"
    );
    assert!(
        wait(Duration::from_secs(5), || gone(init)),
        "init {init} still runs"
    );
    assert!(
        cgroup.procs().is_empty(),
        "processes left in the container's cgroup"
    );
    assert!(
        wait(Duration::from_secs(5), || supervisors(&data).is_empty()),
        "container supervisors left: {:?}",
        supervisors(&data)
    );
    assert_eq!(
        d.get_info(&id).expect("still known").power_state,
        PowerState::Shutdown
    );

    // Purge: nothing of it is left, not even its cgroup.
    let out = teardown(&config, &["--purge"]);
    assert!(out.status.success(), "{out:?}");
    assert!(d.list_instances().expect("list").is_empty());
    assert!(!cgroup.exists(), "the container's cgroup is left");
}

/// Destroys what the test started, also when it failed midway, and the test's cgroup
/// parent.
struct Cleanup {
    driver: container::ContainerDriver,
    parent: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for id in self.driver.list_instances().unwrap_or_default() {
            let _ = self.driver.destroy(&id);
        }
        for p in container::cgroup::Cgroup::parent_dirs(self.driver.layout(), &self.parent) {
            let _ = std::fs::remove_dir(&p);
        }
    }
}
