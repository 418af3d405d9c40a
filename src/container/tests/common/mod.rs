//! Fixtures for the container tests: a busybox root filesystem tarball, a driver over a
//! temporary data directory with its own cgroup parent, a project network, and the checks
//! that nothing is left behind.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use container::{Config, ContainerDriver, ShimCommand};
use driver::{ComputeDriver, ImageFile, InstanceSpec, Port};
use model::compute::ServerId;

/// The tests drive real namespaces and cgroups; one at a time keeps their checks of
/// leftovers exact.
pub static SERIAL: Mutex<()> = Mutex::new(());

fn uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}

fn required() -> bool {
    std::env::var("ONEBOX_REQUIRE_BACKENDS").is_ok_and(|v| v == "1")
}

/// Whether the host can run the tests; prints why not and fails when backends are required.
pub fn can_run() -> bool {
    if uid() != 0 {
        assert!(!required(), "the container tests need root");
        eprintln!("skipped: the container tests need root");
        return false;
    }
    if let Some(why) = container::unavailable_reason() {
        assert!(!required(), "containers cannot run here: {why}");
        eprintln!("skipped: {why}");
        return false;
    }
    if busybox().is_none() {
        assert!(!required(), "busybox-static is not installed");
        eprintln!("skipped: busybox-static is not installed");
        return false;
    }
    true
}

fn busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// init of the test image: prints a boot line, serves HTTP on 8080 with its hostname, and
/// ends on SIGTERM.
pub const INIT: &str = r#"#!/bin/sh
echo "onebox-test: booted $(hostname)"
mkdir -p /www
echo "hello from $(hostname)" > /www/index.html
httpd -f -p 8080 -h /www &
HTTPD=$!
trap 'echo "onebox-test: stopping"; kill $HTTPD; exit 0' TERM
while :; do sleep 1 & wait $!; done
"#;

/// Two busy loops (more than one CPU's worth of demand).
pub const BURN: &str = "#!/bin/sh\nwhile :; do :; done &\nwhile :; do :; done\n";

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

/// Writes a busybox root filesystem tarball to `dest`.
pub fn build_rootfs(dest: &Path) {
    let bb = busybox().expect("busybox");
    let f = std::fs::File::create(dest).expect("tarball");
    let mut b = tar::Builder::new(f);
    let dir = |b: &mut tar::Builder<std::fs::File>, p: &str| {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, p, std::io::empty()).expect("dir");
    };
    let file = |b: &mut tar::Builder<std::fs::File>, p: &str, mode: u32, data: &[u8]| {
        let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
        b.append_data(&mut h, p, data).expect("file");
    };
    for d in [
        "bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "www",
    ] {
        dir(&mut b, d);
    }
    let data = std::fs::read(&bb).expect("read busybox");
    file(&mut b, "bin/busybox", 0o755, &data);
    let list = std::process::Command::new(&bb)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet == "busybox" || applet == "init" {
            continue;
        }
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .expect("link");
    }
    file(&mut b, "sbin/init", 0o755, INIT.as_bytes());
    file(&mut b, "bin/burn", 0o755, BURN.as_bytes());
    file(
        &mut b,
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\n",
    );
    file(&mut b, "etc/group", 0o644, b"root:x:0:\n");
    b.finish().expect("finish");
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub cfg: Config,
    pub driver: Option<ContainerDriver>,
    pub image: ImageFile,
    pub net_id: String,
    pub cidr: String,
    pub gateway: String,
    pub subnet: u8,
    next_host: u8,
    /// Everything each container held, for the leftover checks.
    pub seen: Vec<Seen>,
}

/// What one container held while it ran.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub pids: Vec<i32>,
    pub namespaces: Vec<(String, String)>,
    pub veths: Vec<String>,
}

pub fn shim() -> ShimCommand {
    ShimCommand {
        program: PathBuf::from(env!("CARGO_BIN_EXE_onebox-container-shim")),
        args: vec![],
    }
}

impl Env {
    pub fn new(tag: &str) -> Env {
        let dir = tempfile::Builder::new()
            .prefix(&format!("onebox-ctr-{tag}-"))
            .tempdir()
            .expect("tmp");
        let tarball = dir.path().join("rootfs.tar");
        build_rootfs(&tarball);
        let mut cfg = Config::new(&dir.path().join("data"));
        cfg.cgroup_parent = format!("onebox-test-{}-{tag}", std::process::id());
        cfg.stop_timeout = Duration::from_secs(5);
        cfg.shim = shim();
        let driver = ContainerDriver::new(cfg.clone()).expect("driver");
        let subnet = (std::process::id() % 150 + 50) as u8;
        let net_id = format!(
            "c7a1{:04x}-{:04x}-4000-8000-000000000000",
            std::process::id() & 0xffff,
            tag.len() as u32 * 97 + u32::from(tag.as_bytes()[0])
        );
        Env {
            image: ImageFile {
                id: uuid_like(tag),
                path: tarball.clone(),
                disk_format: "raw".into(),
                container_format: "bare".into(),
                content_hash: driver::imagecache::content_hash_of(&tarball).expect("hash"),
                properties: BTreeMap::from([("hypervisor_type".into(), "lxc".into())]),
            },
            dir,
            cfg,
            driver: Some(driver),
            net_id,
            cidr: format!("10.253.{subnet}.0/24"),
            gateway: format!("10.253.{subnet}.1"),
            subnet,
            next_host: 10,
            seen: Vec::new(),
        }
    }

    pub fn d(&self) -> &ContainerDriver {
        self.driver.as_ref().expect("driver")
    }

    /// A spec for a new container on the test network.
    pub fn spec(&mut self, name: &str) -> InstanceSpec {
        let host = self.next_host;
        self.next_host += 1;
        InstanceSpec {
            id: ServerId::generate(),
            name: name.into(),
            hostname: name.into(),
            vcpus: 1,
            ram_mb: 128,
            disk_gb: 1,
            flavor_name: "m1.tiny".into(),
            image_id: Some(self.image.id.clone()),
            image: Some(self.image.clone()),
            ports: vec![Port {
                network_id: self.net_id.clone(),
                network_name: "test".into(),
                cidr: self.cidr.clone(),
                gateway: self.gateway.clone(),
                address: format!("10.253.{}.{host}", self.subnet),
                mac: format!("fa:16:3e:00:{:02x}:{host:02x}", self.subnet),
                ..Default::default()
            }],
            ..InstanceSpec::default()
        }
    }

    /// Records what container `id` holds now (pids, namespaces, veths).
    pub fn observe(&mut self, id: &ServerId) {
        let mut s = Seen::default();
        if let Some(pid) = self.d().init_pid(id) {
            s.pids.push(pid);
            for ns in ["pid", "mnt", "net", "uts", "ipc"] {
                if let Ok(l) = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")) {
                    s.namespaces
                        .push((ns.into(), l.to_string_lossy().into_owned()));
                }
            }
        }
        s.pids.extend(self.d().cgroup(id).procs());
        let hex: String = id
            .as_str()
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(10)
            .collect();
        s.veths.push(format!("obv{hex}0"));
        s.veths.push(format!("obp{hex}0"));
        self.seen.push(s);
    }

    /// Destroys every instance and checks that nothing of them is left: no process, no
    /// namespace, no mount, no cgroup, no veth, no instance directory.
    pub fn teardown_and_check(&mut self) {
        let ids = self.d().list_instances().expect("list");
        for id in &ids {
            self.observe(id);
            self.d().destroy(id).expect("destroy");
        }
        assert!(self.d().list_instances().expect("list").is_empty());
        let data = self.cfg.data_dir.to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        assert!(
            !mounts.contains(&data),
            "no mount of the data directory is left:\n{mounts}"
        );
        for s in &self.seen {
            for pid in &s.pids {
                assert!(
                    !Path::new(&format!("/proc/{pid}")).exists()
                        || container::state::proc_state(*pid) == Some('Z'),
                    "process {pid} is gone"
                );
            }
            for v in &s.veths {
                assert!(
                    !Path::new(&format!("/sys/class/net/{v}")).exists(),
                    "veth {v} is gone"
                );
            }
        }
        // The kernel finishes a pid namespace's last exits on its own time: wait for it.
        let gone = |held: &std::collections::HashSet<String>| {
            self.seen
                .iter()
                .all(|s| s.namespaces.iter().all(|(_, ns)| !held.contains(ns)))
        };
        wait_until(Duration::from_secs(3), || gone(&namespaces_in_use()));
        let held = namespaces_in_use();
        for s in &self.seen {
            for (kind, ns) in &s.namespaces {
                assert!(!held.contains(ns), "the {kind} namespace {ns} is gone");
            }
        }
        assert!(
            no_process_mentions(&data),
            "no process runs from the data directory"
        );
        let layout = self.d().layout().clone();
        for p in container::cgroup::Cgroup::parent_dirs(&layout, &self.cfg.cgroup_parent) {
            if p.exists() {
                let children: Vec<_> = std::fs::read_dir(&p)
                    .expect("cgroup dir")
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name())
                    .collect();
                assert!(
                    children.is_empty(),
                    "no cgroup left in {}: {children:?}",
                    p.display()
                );
                std::fs::remove_dir(&p).expect("remove the test's cgroup parent");
            }
        }
        let inst = self.cfg.data_dir.join("instances");
        let left: Vec<_> = std::fs::read_dir(&inst)
            .map(|r| r.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "no instance directory is left: {left:?}");
        let _ = hostnet::remove_bridge(&self.net_id);
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Best effort when a test failed midway; the checks ran already otherwise.
        if let Some(d) = &self.driver {
            for id in d.list_instances().unwrap_or_default() {
                let _ = d.destroy(&id);
            }
            for p in container::cgroup::Cgroup::parent_dirs(d.layout(), &self.cfg.cgroup_parent) {
                let _ = std::fs::remove_dir(&p);
            }
        }
        let _ = hostnet::remove_bridge(&self.net_id);
    }
}

fn uuid_like(tag: &str) -> String {
    let mut n: u64 = 1469598103934665603;
    for b in tag.bytes().chain(std::process::id().to_le_bytes()) {
        n = (n ^ u64::from(b)).wrapping_mul(1099511628211);
    }
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        n >> 32,
        (n >> 16) & 0xffff,
        n & 0xfff,
        (n >> 20) & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

/// Every namespace some process on the host holds.
pub fn namespaces_in_use() -> std::collections::HashSet<String> {
    let mut out = std::collections::HashSet::new();
    for e in std::fs::read_dir("/proc").expect("proc").flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .chars()
            .all(|c| c.is_ascii_digit())
        {
            continue;
        }
        for ns in ["pid", "mnt", "net", "uts", "ipc"] {
            if let Ok(l) = std::fs::read_link(e.path().join("ns").join(ns)) {
                out.insert(l.to_string_lossy().into_owned());
            }
        }
    }
    out
}

fn no_process_mentions(s: &str) -> bool {
    for e in std::fs::read_dir("/proc").expect("proc").flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline"))
            && String::from_utf8_lossy(&c).contains(s)
        {
            return false;
        }
    }
    true
}

/// `GET /` on `addr:8080`, with a deadline for the whole exchange.
pub fn http_get(addr: &str, timeout: Duration) -> Option<String> {
    let sa: std::net::SocketAddr = format!("{addr}:8080").parse().ok()?;
    let mut s = TcpStream::connect_timeout(&sa, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    (!body.is_empty()).then_some(body)
}

/// Waits until the service inside answers, up to `within`.
pub fn wait_http(addr: &str, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(b) = http_get(addr, Duration::from_millis(500)) {
            return Some(b);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Field 4 of /proc/<pid>/stat.
pub fn ppid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn status_field(pid: i32, key: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(key))
        .map(|l| l[key.len()..].trim().to_owned())
}

/// The test image with its `/sbin/init` replaced by `init`.
pub fn with_init(tarball: &std::path::Path, init: &str) {
    let orig = std::fs::read(tarball).expect("tarball");
    let mut out = tar::Builder::new(Vec::new());
    let mut archive = tar::Archive::new(orig.as_slice());
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").into_owned();
        let mut header = entry.header().clone();
        if path == std::path::Path::new("sbin/init") {
            header.set_size(init.len() as u64);
            header.set_cksum();
            out.append(&header, init.as_bytes()).expect("init");
        } else if header.entry_type().is_symlink() {
            let target = entry
                .link_name()
                .expect("link")
                .expect("target")
                .into_owned();
            out.append_link(&mut header, &path, target).expect("link");
        } else {
            out.append(&header, &mut entry).expect("copy");
        }
    }
    std::fs::write(tarball, out.into_inner().expect("tar")).expect("write");
}
