//! Control groups for containers, on either layout a host may have.
//!
//! - **cgroup v2** (a pure unified hierarchy at `/sys/fs/cgroup` whose root offers the memory,
//!   cpu and pids controllers; Debian 12's default): one directory
//!   `/sys/fs/cgroup/<parent>/<name>`, with `memory.max`, `memory.swap.max`, `cpu.max`,
//!   `pids.max`, `cgroup.freeze`, `cgroup.kill` and the `oom_kill` counter of `memory.events`.
//! - **cgroup v1** (a legacy or hybrid layout, where cgroup2 offers none of those controllers):
//!   one directory per controller, `/sys/fs/cgroup/{memory,cpu,pids,freezer}/<parent>/<name>`,
//!   with `memory.limit_in_bytes` (and `memory.memsw.limit_in_bytes` where swap accounting
//!   exists), `cpu.cfs_quota_us`/`cpu.cfs_period_us`, `pids.max`, `freezer.state` and the
//!   `oom_kill` counter of `memory.oom_control`.
//!
//! The layout is detected once at start-up ([`Layout::detect`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Which cgroup layout the host has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// Unified hierarchy mounted at this root.
    V2(PathBuf),
    /// Per-controller hierarchies under this root (`<root>/memory`, `<root>/cpu`, …).
    V1(PathBuf),
}

const V1_CONTROLLERS: [&str; 4] = ["memory", "cpu", "pids", "freezer"];
/// The v1 hierarchy of the device allow-list.
const V1_DEVICES: &str = "devices";
/// The v1 hierarchy that reports CPU time (`cpuacct.usage`).
const V1_CPUACCT: &str = "cpuacct";

impl Layout {
    /// The layout of the host's `/sys/fs/cgroup`.
    pub fn detect() -> Result<Layout, String> {
        Self::detect_at(Path::new("/sys/fs/cgroup"))
    }

    pub fn detect_at(root: &Path) -> Result<Layout, String> {
        let controllers = std::fs::read_to_string(root.join("cgroup.controllers"));
        if let Ok(c) = &controllers {
            let have: Vec<&str> = c.split_whitespace().collect();
            if ["memory", "cpu", "pids"].iter().all(|w| have.contains(w)) {
                return Ok(Layout::V2(root.to_owned()));
            }
        }
        if V1_CONTROLLERS
            .iter()
            .all(|c| root.join(c).join("tasks").exists())
        {
            return Ok(Layout::V1(root.to_owned()));
        }
        Err(format!(
            "{} offers neither cgroup v2 with the memory, cpu and pids controllers nor the v1 \
             memory, cpu, pids and freezer hierarchies",
            root.display()
        ))
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Layout::V2(_) => "cgroup v2",
            Layout::V1(_) => "cgroup v1",
        }
    }
}

/// Limits applied to a container's cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_bytes: u64,
    /// CPU time per period, in microseconds; `None` is unlimited.
    pub cpu_quota_us: Option<u64>,
    pub cpu_period_us: u64,
    pub pids_max: u64,
}

/// One container's cgroup (`<parent>/<name>` in each hierarchy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    pub layout: Layout,
    pub parent: String,
    pub name: String,
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("writing {value:?} to {}: {e}", path.display()))
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// The value of `key` in a flat keyed file (`memory.events`, `memory.oom_control`).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some(key))
            .then(|| w.next().and_then(|v| v.parse().ok()))
            .flatten()
    })
}

impl Cgroup {
    pub fn new(layout: Layout, parent: &str, name: &str) -> Self {
        Self {
            layout,
            parent: parent.to_owned(),
            name: name.to_owned(),
        }
    }

    fn v1(&self, controller: &str) -> PathBuf {
        match &self.layout {
            Layout::V1(root) => root.join(controller).join(&self.parent).join(&self.name),
            Layout::V2(root) => root.join(&self.parent).join(&self.name),
        }
    }

    /// Every directory of this cgroup (one on v2, one per controller on v1).
    pub fn dirs(&self) -> Vec<PathBuf> {
        match &self.layout {
            Layout::V2(root) => vec![root.join(&self.parent).join(&self.name)],
            Layout::V1(_) => {
                let mut v: Vec<PathBuf> = V1_CONTROLLERS.iter().map(|c| self.v1(c)).collect();
                // cpuacct is usually co-mounted with cpu (`cpu,cpuacct`); when it is a
                // hierarchy of its own, the container gets a directory there too.
                if let Some(acct) = self.cpuacct_separate() {
                    v.push(acct);
                }
                // The device allow-list lives in the `devices` hierarchy, where there is one.
                if let Layout::V1(root) = &self.layout
                    && root.join(V1_DEVICES).join("tasks").exists()
                {
                    v.push(self.v1(V1_DEVICES));
                }
                v
            }
        }
    }

    fn cpuacct_separate(&self) -> Option<PathBuf> {
        let Layout::V1(root) = &self.layout else {
            return None;
        };
        let cpu = std::fs::canonicalize(root.join("cpu")).ok()?;
        let acct = std::fs::canonicalize(root.join(V1_CPUACCT)).ok()?;
        (cpu != acct).then(|| acct.join(&self.parent).join(&self.name))
    }

    /// Creates the cgroup (and its parent), enabling the controllers it needs on v2.
    pub fn create(&self) -> Result<(), String> {
        if let Layout::V2(root) = &self.layout {
            // Controllers must be enabled in every ancestor's subtree_control.
            let _ = write(&root.join("cgroup.subtree_control"), "+memory +cpu +pids");
            let parent = root.join(&self.parent);
            std::fs::create_dir_all(&parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
            write(&parent.join("cgroup.subtree_control"), "+memory +cpu +pids")?;
        }
        for d in self.dirs() {
            std::fs::create_dir_all(&d).map_err(|e| format!("creating {}: {e}", d.display()))?;
        }
        Ok(())
    }

    /// Restricts the devices the cgroup's processes may create or open to
    /// [`crate::devices::ALLOWED`]: on v1 through the `devices` controller (a v1 host without
    /// it cannot confine devices and is refused), on v2 with the device program attached to
    /// the cgroup (once: a cgroup kept across boots keeps its program).
    pub fn restrict_devices(&self) -> Result<(), String> {
        match &self.layout {
            Layout::V1(root) => {
                if !root.join(V1_DEVICES).join("tasks").exists() {
                    return Err(format!(
                        "{} has no v1 devices hierarchy: containers cannot be confined to \
                         the standard devices",
                        root.display()
                    ));
                }
                let d = self.v1(V1_DEVICES);
                write(&d.join("devices.deny"), "a")?;
                for line in crate::devices::v1_allow_lines(&crate::devices::ALLOWED) {
                    write(&d.join("devices.allow"), &line)?;
                }
                Ok(())
            }
            Layout::V2(_) => {
                let d = self.v1("");
                if crate::sys::device_programs_attached(&d)? == 0 {
                    crate::devices::attach_v2(&d)?;
                }
                Ok(())
            }
        }
    }

    /// The device allow-list as the kernel holds it: the v1 `devices.list`, or on v2 how
    /// many device programs are attached (for checks and diagnostics).
    pub fn device_policy(&self) -> Result<String, String> {
        match &self.layout {
            Layout::V1(_) => read(&self.v1(V1_DEVICES).join("devices.list")),
            Layout::V2(_) => crate::sys::device_programs_attached(&self.v1(""))
                .map(|n| format!("{n} device program(s) attached")),
        }
    }

    pub fn exists(&self) -> bool {
        self.dirs().iter().any(|d| d.exists())
    }

    /// Applies `l`; works on a populated cgroup too (a resize in place).
    pub fn set_limits(&self, l: &Limits) -> Result<(), String> {
        match &self.layout {
            Layout::V2(_) => {
                let d = self.v1("");
                write(&d.join("memory.max"), &l.memory_bytes.to_string())?;
                if d.join("memory.swap.max").exists() {
                    write(&d.join("memory.swap.max"), "0")?;
                }
                let quota = l.cpu_quota_us.map_or("max".to_owned(), |q| q.to_string());
                write(&d.join("cpu.max"), &format!("{quota} {}", l.cpu_period_us))?;
                write(&d.join("pids.max"), &l.pids_max.to_string())?;
            }
            Layout::V1(_) => {
                let mem = self.v1("memory");
                let limit = mem.join("memory.limit_in_bytes");
                let memsw = mem.join("memory.memsw.limit_in_bytes");
                let bytes = l.memory_bytes.to_string();
                if memsw.exists() {
                    // memsw must never be below the memory limit: raising, memsw goes
                    // first; lowering, the memory limit goes first.
                    if write(&memsw, &bytes).is_err() {
                        write(&limit, &bytes)?;
                        write(&memsw, &bytes)?;
                    } else {
                        write(&limit, &bytes)?;
                    }
                } else {
                    write(&limit, &bytes)?;
                }
                let cpu = self.v1("cpu");
                write(&cpu.join("cpu.cfs_period_us"), &l.cpu_period_us.to_string())?;
                let quota = l.cpu_quota_us.map_or("-1".to_owned(), |q| q.to_string());
                write(&cpu.join("cpu.cfs_quota_us"), &quota)?;
                write(&self.v1("pids").join("pids.max"), &l.pids_max.to_string())?;
            }
        }
        Ok(())
    }

    /// The limits as the kernel holds them (for checks and diagnostics).
    pub fn memory_limit(&self) -> Result<u64, String> {
        let (file, dir) = match &self.layout {
            Layout::V2(_) => ("memory.max", self.v1("")),
            Layout::V1(_) => ("memory.limit_in_bytes", self.v1("memory")),
        };
        read(&dir.join(file))?
            .trim()
            .parse()
            .map_err(|e| format!("{file}: {e}"))
    }

    /// Puts process `pid` into the cgroup (every hierarchy).
    pub fn add(&self, pid: i32) -> Result<(), String> {
        // Each migration waits for an RCU grace period in the kernel (milliseconds); the v1
        // hierarchies are joined in parallel so the waits overlap.
        let dirs = self.dirs();
        std::thread::scope(|s| {
            let joins: Vec<_> = dirs
                .iter()
                .map(|d| s.spawn(move || write(&d.join("cgroup.procs"), &pid.to_string())))
                .collect();
            joins
                .into_iter()
                .map(|j| {
                    j.join()
                        .unwrap_or_else(|_| Err("cgroup thread panicked".into()))
                })
                .collect::<Result<Vec<()>, String>>()
        })?;
        Ok(())
    }

    /// The processes in the cgroup.
    pub fn procs(&self) -> Vec<i32> {
        let d = match &self.layout {
            Layout::V2(_) => self.v1(""),
            Layout::V1(_) => self.v1("pids"),
        };
        std::fs::read_to_string(d.join("cgroup.procs"))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Freezes or thaws every process of the cgroup and waits until the kernel says so.
    pub fn set_frozen(&self, frozen: bool) -> Result<(), String> {
        match &self.layout {
            Layout::V2(_) => write(
                &self.v1("").join("cgroup.freeze"),
                if frozen { "1" } else { "0" },
            )?,
            Layout::V1(_) => write(
                &self.v1("freezer").join("freezer.state"),
                if frozen { "FROZEN" } else { "THAWED" },
            )?,
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.is_frozen() != frozen {
            if Instant::now() > deadline {
                return Err(format!(
                    "the cgroup did not {} within 10 s",
                    if frozen { "freeze" } else { "thaw" }
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    pub fn is_frozen(&self) -> bool {
        match &self.layout {
            Layout::V2(_) => {
                std::fs::read_to_string(self.v1("").join("cgroup.events"))
                    .ok()
                    .and_then(|t| keyed(&t, "frozen"))
                    == Some(1)
            }
            Layout::V1(_) => std::fs::read_to_string(self.v1("freezer").join("freezer.state"))
                .is_ok_and(|s| s.trim() == "FROZEN"),
        }
    }

    /// How many times the kernel's OOM killer killed a process of this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let (dir, file) = match &self.layout {
            Layout::V2(_) => (self.v1(""), "memory.events"),
            Layout::V1(_) => (self.v1("memory"), "memory.oom_control"),
        };
        std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|t| keyed(&t, "oom_kill"))
            .unwrap_or(0)
    }

    /// CPU time the cgroup's processes used, in nanoseconds.
    pub fn cpu_usage_ns(&self) -> Option<u64> {
        match &self.layout {
            Layout::V2(_) => std::fs::read_to_string(self.v1("").join("cpu.stat"))
                .ok()
                .and_then(|t| keyed(&t, "usage_usec"))
                .map(|u| u * 1000),
            Layout::V1(_) => {
                let dir = self.cpuacct_separate().unwrap_or_else(|| self.v1("cpu"));
                std::fs::read_to_string(dir.join("cpuacct.usage"))
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
            }
        }
    }

    /// Memory the cgroup's processes use, in bytes.
    pub fn memory_usage(&self) -> Option<u64> {
        let (dir, file) = match &self.layout {
            Layout::V2(_) => (self.v1(""), "memory.current"),
            Layout::V1(_) => (self.v1("memory"), "memory.usage_in_bytes"),
        };
        std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|t| t.trim().parse().ok())
    }

    /// SIGKILLs every process of the cgroup (thawing it, so the kill is delivered) and waits
    /// until it is empty.
    pub fn kill_all(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let killer = self.v1("").join("cgroup.kill");
        loop {
            let procs = self.procs();
            if procs.is_empty() {
                break;
            }
            if matches!(self.layout, Layout::V2(_)) && killer.exists() {
                let _ = write(&killer, "1");
            } else {
                for p in &procs {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(*p),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            if self.is_frozen() {
                let _ = self.set_frozen(false);
            }
            if Instant::now() > deadline {
                return Err(format!("processes {procs:?} survived SIGKILL"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Kills what is left and removes the cgroup's directories (not the shared parent).
    pub fn remove(&self) -> Result<(), String> {
        if !self.exists() {
            return Ok(());
        }
        self.kill_all(Duration::from_secs(10))?;
        for d in self.dirs() {
            if !d.exists() {
                continue;
            }
            // An emptied cgroup can take a moment before rmdir succeeds.
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match std::fs::remove_dir(&d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if Instant::now() > deadline => {
                        return Err(format!("removing {}: {e}", d.display()));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        Ok(())
    }

    /// The parent directories (one per hierarchy) that hold every container's cgroup.
    pub fn parent_dirs(layout: &Layout, parent: &str) -> Vec<PathBuf> {
        let probe = Cgroup::new(layout.clone(), parent, "x");
        probe
            .dirs()
            .into_iter()
            .filter_map(|d| d.parent().map(Path::to_path_buf))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files_parse() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed(v1, "oom_kill"), Some(3));
        let v2 = "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(keyed(v2, "oom_kill"), Some(1));
        assert_eq!(keyed(v2, "nothing"), None);
    }

    #[test]
    fn layouts_are_told_apart() {
        let t = tempfile::tempdir().expect("tmp");
        // Hybrid: cgroup2 root without the controllers, v1 hierarchies beside.
        std::fs::write(t.path().join("cgroup.controllers"), "hugetlb\n").expect("w");
        assert!(Layout::detect_at(t.path()).is_err());
        for c in V1_CONTROLLERS {
            std::fs::create_dir_all(t.path().join(c)).expect("mkdir");
            std::fs::write(t.path().join(c).join("tasks"), "").expect("w");
        }
        assert_eq!(
            Layout::detect_at(t.path()),
            Ok(Layout::V1(t.path().to_owned()))
        );
        std::fs::write(
            t.path().join("cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids rdma misc\n",
        )
        .expect("w");
        assert_eq!(
            Layout::detect_at(t.path()),
            Ok(Layout::V2(t.path().to_owned()))
        );
        let cg = Cgroup::new(Layout::V2(t.path().to_owned()), "onebox", "abc");
        assert_eq!(cg.dirs(), vec![t.path().join("onebox/abc")]);
    }
}
