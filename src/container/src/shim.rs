//! The per-container supervisor ("shim"): one process per boot of a container, started by
//! the driver (`onebox container-shim <instance dir>`, or the crate's
//! `onebox-container-shim` binary) in a session of its own, so it outlives onebox.
//!
//! It clones init into new user (unless the flavor opted out), pid, mount, uts, ipc and net
//! namespaces, writes the user namespace's id map (the container's own range, see
//! [`crate::userns`]) and mounts the root overlay on the idmapped image inside the child's
//! mount namespace, puts the child into the container's cgroup (whose device allow-list the
//! driver set, see [`crate::devices`]), gives it its network (a veth from the project
//! network's bridge, configured inside over netlink), then lets it go on: the child becomes
//! its namespace's root, mounts the overlay itself when it has no user namespace, writes
//! `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf`, mounts `/proc` (with masked and
//! read-only paths), a read-only `/sys` and a `/dev` of the standard nodes
//! ([`crate::mounts`]), sets the hostname, pivots into the root, writes the server's user
//! data, key and config drive there ([`crate::seed`]), drops capabilities to a
//! default set, sets `no_new_privs`, installs the seccomp filter ([`crate::seccomp`]) and
//! executes init. The shim records the boot (pids and start times) in `boot.json`, copies
//! init's stdout and stderr into the capped console log, waits for init and records how it
//! ended in `exit.json`.

use std::collections::HashSet;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::mount::{MntFlags, MsFlags, umount2};
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::mounts::{self, etc_files, mnt};
use crate::state::{self, Boot, Exit, Instance, Paths};

/// The capabilities init keeps (the usual container default set, less `CAP_MKNOD` and
/// `CAP_NET_RAW`: no device node can be made, no raw packet sent; ping works through ICMP
/// echo sockets, open to every group by `ping_group_range`); every other one is dropped
/// from the bounding set, so no process of the container can regain it.
pub const KEPT_CAPABILITIES: [caps::Capability; 12] = [
    caps::Capability::CAP_CHOWN,
    caps::Capability::CAP_DAC_OVERRIDE,
    caps::Capability::CAP_FSETID,
    caps::Capability::CAP_FOWNER,
    caps::Capability::CAP_SETGID,
    caps::Capability::CAP_SETUID,
    caps::Capability::CAP_SETFCAP,
    caps::Capability::CAP_SETPCAP,
    caps::Capability::CAP_NET_BIND_SERVICE,
    caps::Capability::CAP_SYS_CHROOT,
    caps::Capability::CAP_KILL,
    caps::Capability::CAP_AUDIT_WRITE,
];

/// The overlay's mount point, relative to the instance directory (see [`Paths`]).
const ROOTFS: &str = "rootfs";

fn overlay_options(lower: &str, upper: &Path, work: &Path) -> String {
    format!(
        "lowerdir={lower},upperdir={},workdir={}",
        upper.display(),
        work.display()
    )
}

/// Makes the calling process uid and gid 0 of its (new, mapped) user namespace, with no
/// supplementary groups.
fn become_namespace_root() -> Result<(), String> {
    let root_g = nix::unistd::Gid::from_raw(0);
    let root_u = nix::unistd::Uid::from_raw(0);
    nix::unistd::setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    nix::unistd::setresgid(root_g, root_g, root_g).map_err(|e| format!("setresgid: {e}"))?;
    nix::unistd::setresuid(root_u, root_u, root_u).map_err(|e| format!("setresuid: {e}"))
}

/// Runs one boot of the container in `dir`; returns the shim's exit code.
pub fn main(dir: &Path) -> i32 {
    // A session of its own: no signal aimed at onebox's process group or terminal reaches it.
    let _ = nix::unistd::setsid();
    let paths = Paths::new(dir);
    match run(&paths) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("onebox-container-shim: {e}");
            let _ = state::write_json(&paths.failed(), &e);
            1
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

fn run(paths: &Paths) -> Result<(), String> {
    let inst: Instance =
        state::read_json(&paths.instance()).map_err(|e| format!("reading instance.json: {e}"))?;
    let (console_r, console_w) = terminal()?;
    let (go_r, go_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let oom_kills_at_start = inst.cgroup.oom_kills();

    let mut flags = CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET;
    if inst.user_namespace.is_some() {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    let parent_ends = [console_r.as_raw_fd(), go_w.as_raw_fd(), err_r.as_raw_fd()];
    let child = {
        let inst = inst.clone();
        let dir = paths.dir.clone();
        spawn_child(flags, move || {
            for fd in parent_ends {
                let _ = nix::unistd::close(fd);
            }
            let r = child_main(&inst, &dir, &go_r, &console_w);
            // Only reached when setting up or executing init failed.
            let msg = match r {
                Err(e) => e,
                Ok(()) => "init returned".into(),
            };
            let _ = nix::unistd::write(&err_w, msg.as_bytes());
            126
        })?
    };
    // The child holds its ends now (the closure that owned them was dropped here).
    let fail = |msg: String| -> String {
        let _ = kill(child, Signal::SIGKILL);
        let _ = waitpid(child, None);
        msg
    };
    let pid = child.as_raw();
    if let Some(base) = inst.user_namespace {
        let map = crate::userns::map_line(base);
        for f in ["uid_map", "gid_map"] {
            if let Err(e) = std::fs::write(format!("/proc/{pid}/{f}"), &map) {
                return Err(fail(format!("writing {f}: {e}")));
            }
        }
        // Before any thread is started: entering a mount namespace needs a single thread.
        let mounted = if inst.lower_shifted {
            let opts =
                overlay_options(&inst.lower.to_string_lossy(), &paths.upper(), &paths.work());
            crate::userns::mount_root_in(pid, &opts, &paths.rootfs())
        } else {
            crate::userns::idmapped_lower(&inst.lower, pid).and_then(|lower| {
                let opts = overlay_options(
                    &format!("/proc/self/fd/{}", lower.as_raw_fd()),
                    &paths.upper(),
                    &paths.work(),
                );
                crate::userns::mount_root_in(pid, &opts, &paths.rootfs())
            })
        };
        if let Err(e) = mounted {
            return Err(fail(format!("the root file system: {e}")));
        }
        // The volumes, idmapped with the container's user namespace, before init runs.
        if !inst.volumes.is_empty() {
            let grafted = crate::volumes::trees(paths, &inst.volumes, Some(pid)).and_then(|t| {
                crate::volumes::in_mount_ns(pid, || {
                    crate::volumes::graft(&paths.rootfs(), &t, Some(base))
                })
            });
            if let Err(e) = grafted {
                return Err(fail(format!("volumes: {e}")));
            }
        }
    }
    // The cgroup is joined while the network is made (both wait on the kernel).
    let cgroup = inst.cgroup.clone();
    let joining = std::thread::spawn(move || cgroup.add(pid));
    let net = network(&inst, pid as u32);
    match joining.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(fail(format!("joining the cgroup: {e}"))),
        Err(_) => return Err(fail("joining the cgroup: the thread panicked".into())),
    }
    if let Err(e) = net {
        return Err(fail(format!("network: {e}")));
    }
    if nix::unistd::write(&go_w, b"g").is_err() {
        return Err(fail(
            "the container process went away before it started".into(),
        ));
    }
    drop(go_w);
    // The error pipe closes on exec (close-on-exec) with nothing in it when init started.
    let mut msg = String::new();
    let _ = std::fs::File::from(err_r).read_to_string(&mut msg);
    if !msg.is_empty() {
        return Err(fail(format!("starting init: {msg}")));
    }
    let boot = Boot {
        boot: inst.boot,
        shim_pid: std::process::id() as i32,
        shim_start: state::start_time(std::process::id() as i32).unwrap_or(0),
        init_pid: pid,
        init_start: state::start_time(pid).unwrap_or(0),
        oom_kills_at_start,
    };
    state::write_json(&paths.boot(), &boot).map_err(|e| fail(format!("boot.json: {e}")))?;

    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let console = (paths.console(), paths.console_old(), inst.console_max_bytes);
    let session = Session::default();
    match console_r.try_clone() {
        Ok(input) => serve_console(&paths.console_socket(), input, session.clone()),
        Err(e) => eprintln!("onebox-shim: no interactive console: {e}"),
    }
    std::thread::spawn(move || {
        pump_console(console_r, &console.0, &console.1, console.2, &session);
        let _ = done_tx.send(());
    });
    let status = loop {
        match waitpid(child, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("waiting for init: {e}")),
            Ok(s) => break s,
        }
    };
    // The pid namespace dies with init, so the console's writers are gone; drain what is left.
    let _ = done_rx.recv_timeout(Duration::from_secs(2));
    let (code, signal) = match status {
        WaitStatus::Exited(_, c) => (Some(c), None),
        WaitStatus::Signaled(_, s, _) => (None, Some(s as i32)),
        _ => (None, None),
    };
    let exit = Exit {
        boot: inst.boot,
        code,
        signal,
        oom_kills: inst.cgroup.oom_kills(),
    };
    state::write_json(&paths.exit(), &exit).map_err(|e| format!("exit.json: {e}"))?;
    let _ = std::fs::remove_file(paths.console_socket());
    Ok(())
}

/// The terminal init runs on: (the shim's end, init's end). Output is passed through as
/// written (no `\n` → `\r\n`), so the console log reads as a pipe's would; input is a
/// terminal's (line editing, echo, ^C), for whoever holds the interactive console.
fn terminal() -> Result<(OwnedFd, OwnedFd), String> {
    use nix::sys::termios::{OutputFlags, SetArg, tcgetattr, tcsetattr};
    let pty = nix::pty::openpty(None, None).map_err(|e| format!("openpty: {e}"))?;
    let mut t = tcgetattr(&pty.slave).map_err(|e| format!("tcgetattr: {e}"))?;
    t.output_flags.remove(OutputFlags::ONLCR);
    tcsetattr(&pty.slave, SetArg::TCSANOW, &t).map_err(|e| format!("tcsetattr: {e}"))?;
    for fd in [&pty.master, &pty.slave] {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(|e| format!("cloexec: {e}"))?;
    }
    Ok((pty.master, pty.slave))
}

/// The client of the interactive console, if one is connected: it gets what init writes.
#[derive(Clone, Default)]
struct Session(std::sync::Arc<std::sync::Mutex<Option<std::os::unix::net::UnixStream>>>);

impl Session {
    /// Sends `data` to the client; a client that cannot take it within a second is let go
    /// (the console log and init never wait on a slow reader for longer).
    fn send(&self, data: &[u8]) {
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(stream) = c.as_mut()
            && stream.write_all(data).is_err()
        {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            *c = None;
        }
    }

    /// Makes `stream` the client; the one before it, if any, is disconnected (the newest
    /// connection takes the console over).
    fn replace(&self, stream: std::os::unix::net::UnixStream) {
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = c.take() {
            let _ = old.shutdown(std::net::Shutdown::Both);
        }
        *c = Some(stream);
    }
}

/// Listens on `sock` (0600, the driver's console endpoint) for as long as the shim lives:
/// each connection becomes the session, its bytes typed into init's terminal.
fn serve_console(sock: &Path, input: OwnedFd, session: Session) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_file(sock);
    let listener = match std::os::unix::net::UnixListener::bind(sock) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("onebox-shim: console socket: {e}");
            return;
        }
    };
    let _ = std::fs::set_permissions(sock, std::fs::Permissions::from_mode(0o600));
    let input = std::sync::Arc::new(std::fs::File::from(input));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let _ = conn.set_write_timeout(Some(Duration::from_secs(1)));
            let Ok(mut reader) = conn.try_clone() else {
                continue;
            };
            session.replace(conn);
            let input = input.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if (&*input).write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
}

/// Clones a child running `f` in new namespaces given by `flags`.
#[allow(unsafe_code)]
fn spawn_child(flags: CloneFlags, f: impl FnMut() -> isize) -> Result<Pid, String> {
    let mut stack = vec![0u8; 1 << 20];
    // SAFETY: the shim is single-threaded when it clones (no thread is started before), so
    // the child's copy of the address space has no lock held by another thread; the child
    // runs `f` on its own 1 MiB stack, which the setup code stays well within, and either
    // executes init or returns (which ends the child). The parent never touches `stack`
    // while the child uses it: the child has its own copy of the memory (no CLONE_VM).
    unsafe { nix::sched::clone(Box::new(f), &mut stack, flags, Some(libc::SIGCHLD)) }
        .map_err(|e| format!("clone: {e}"))
}

fn network(inst: &Instance, pid: u32) -> Result<(), String> {
    for (i, nic) in inst.nics.iter().enumerate() {
        let net = hostnet::NetworkDef {
            id: nic.network_id.clone(),
            cidr: nic.cidr.clone(),
            gateway: nic.gateway.clone(),
            forwarding: inst.forwarding,
        };
        let bridge = hostnet::ensure_bridge(&net).map_err(|e| e.to_string())?;
        hostnet::create_veth(&nic.host_if, &nic.peer_if, &bridge).map_err(|e| e.to_string())?;
        hostnet::move_to_netns(&nic.peer_if, pid).map_err(|e| e.to_string())?;
        let cfg = hostnet::InterfaceConfig {
            current_name: nic.peer_if.clone(),
            name: nic.name.clone(),
            mac: nic.mac.clone(),
            address: nic
                .address
                .parse()
                .map_err(|_| format!("bad address {}", nic.address))?,
            prefix: nic.prefix,
            // The first interface carries the default route.
            gateway: if i == 0 {
                nic.gateway.parse().ok()
            } else {
                None
            },
            routes: hostnet::parse_routes(&nic.routes),
        };
        hostnet::configure_in_netns(pid, &cfg).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Copies init's output into `log`, moving it to `old` when it passes half the cap, so the
/// two files together never hold more than `cap` bytes.
fn pump_console(from: OwnedFd, log: &Path, old: &Path, cap: u64, session: &Session) {
    let half = (cap / 2).max(4096);
    let mut src = std::fs::File::from(from);
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
    };
    let Ok(mut out) = open(log) else { return };
    let mut size = out.metadata().map(|m| m.len()).unwrap_or(0);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        session.send(&buf[..n]);
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            if size >= half {
                let _ = std::fs::rename(log, old);
                let Ok(f) = open(log) else { return };
                out = f;
                size = 0;
            }
            let take = rest.len().min((half - size) as usize);
            if out.write_all(&rest[..take]).is_err() {
                return;
            }
            size += take as u64;
            rest = &rest[take..];
        }
    }
}

fn cstr(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} holds a NUL byte"))
}

/// The container side, between clone and exec. Returns only on failure.
fn child_main(inst: &Instance, dir: &Path, go: &OwnedFd, console: &OwnedFd) -> Result<(), String> {
    let root = Path::new(ROOTFS);
    // Wait until the shim has placed us in the cgroup and given us our network.
    let mut b = [0u8; 1];
    match nix::unistd::read(go, &mut b) {
        Ok(1) => {}
        _ => return Err("the shim went away".into()),
    }
    let _ = nix::unistd::setsid();
    // init's terminal: the console (its input is whoever holds the interactive console).
    crate::sys::set_controlling_terminal(console)?;
    nix::unistd::dup2_stdin(console.as_fd()).map_err(|e| format!("stdin: {e}"))?;
    nix::unistd::dup2_stdout(console.as_fd()).map_err(|e| format!("stdout: {e}"))?;
    nix::unistd::dup2_stderr(console.as_fd()).map_err(|e| format!("stderr: {e}"))?;

    // Nothing mounted from here on propagates to the host.
    mnt(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;
    // Paths from here on are relative to the instance directory, entered while still the
    // host's root (the data directory may be closed to others); then, in a user namespace,
    // init becomes the namespace's root: an unprivileged user of the host.
    nix::unistd::chdir(dir).map_err(|e| format!("entering {}: {e}", dir.display()))?;
    // Read as the host's root; written once inside the container's root.
    let seed = crate::seed::read(&Paths::new(dir).seed());
    if inst.user_namespace.is_some() {
        // The shim mounted the root already.
        become_namespace_root()?;
    } else {
        // The layers where the driver put them (its own file system when it has one).
        let paths = Paths::new(dir);
        let opts = overlay_options(&inst.lower.to_string_lossy(), &paths.upper(), &paths.work());
        // nodev: a device node on the root file system opens nothing.
        mnt(
            Some("overlay"),
            root,
            Some("overlay"),
            MsFlags::MS_NODEV,
            Some(&opts),
        )?;
        // The volumes (staged by the driver, visible in this copy of the host's mounts).
        if !inst.volumes.is_empty() {
            let trees = crate::volumes::trees(&paths, &inst.volumes, None)?;
            crate::volumes::graft(root, &trees, None)?;
        }
    }
    etc_files(inst, root)?;
    mounts::kernel_filesystems(root, inst.user_namespace.is_some())?;

    nix::unistd::sethostname(&inst.hostname).map_err(|e| format!("sethostname: {e}"))?;

    // pivot_root with the old root stacked under the new one, then detached: no directory
    // for the old root is left in the container's filesystem.
    nix::unistd::chdir(root).map_err(|e| format!("chdir: {e}"))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| format!("pivot_root: {e}"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("detaching the old root: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    if let Err(e) = crate::seed::apply(&seed, Path::new("/")) {
        eprintln!("onebox: the server's metadata was not written: {e}");
    }

    drop_capabilities()?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}"))?;
    // The last step before init: from here on no process of the container can make the
    // refused system calls.
    crate::seccomp::install()?;

    let argv: Vec<CString> = inst
        .init
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<_, _>>()?;
    let Some(first) = inst.init.first() else {
        return Err("no init command".into());
    };
    // A bare command name is looked up in the container's PATH.
    let prog = if first.contains('/') {
        cstr(first)?
    } else {
        let found = [
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ]
        .iter()
        .map(|d| format!("{d}/{first}"))
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| format!("{first} not found in PATH"))?;
        cstr(&found)?
    };
    let env: Vec<CString> = [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=/root",
        "TERM=linux",
        "container=onebox",
    ]
    .iter()
    .map(|e| cstr(e))
    .collect::<Result<_, _>>()?;
    let Err(e) = nix::unistd::execve(&prog, &argv, &env);
    Err(format!("executing {}: {e}", inst.init[0]))
}

fn drop_capabilities() -> Result<(), String> {
    use caps::CapSet;
    // What the shim itself may not hold (a tighter bounding set from systemd) cannot be
    // given to init either.
    let permitted = caps::read(None, CapSet::Permitted)
        .map_err(|e| format!("reading the capabilities: {e}"))?;
    let keep: HashSet<caps::Capability> = KEPT_CAPABILITIES
        .into_iter()
        .filter(|c| permitted.contains(c))
        .collect();
    for c in caps::all() {
        if !keep.contains(&c) {
            // A capability the running kernel does not know cannot be dropped; ignore it.
            let _ = caps::drop(None, CapSet::Bounding, c);
        }
    }
    let err = |what: &str, e: caps::errors::CapsError| format!("capabilities ({what}): {e}");
    caps::clear(None, CapSet::Ambient).map_err(|e| err("ambient", e))?;
    caps::set(None, CapSet::Effective, &keep).map_err(|e| err("effective", e))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(|e| err("permitted", e))?;
    caps::set(None, CapSet::Inheritable, &keep).map_err(|e| err("inheritable", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_log_never_holds_more_than_its_cap() {
        let t = tempfile::tempdir().expect("tmp");
        let (log, old) = (t.path().join("console.log"), t.path().join("console.log.1"));
        let (r, w) = pipe().expect("pipe");
        let writer = std::thread::spawn(move || {
            let mut f = std::fs::File::from(w);
            for i in 0..2000 {
                writeln!(f, "line {i:05} of the console").expect("write");
            }
        });
        pump_console(r, &log, &old, 16 * 1024, &Session::default());
        writer.join().expect("writer");
        let a = std::fs::read_to_string(&old).expect("old");
        let b = std::fs::read_to_string(&log).expect("log");
        assert!(
            a.len() + b.len() <= 16 * 1024,
            "{} bytes",
            a.len() + b.len()
        );
        assert!(
            b.ends_with("line 01999 of the console\n"),
            "the newest output is kept"
        );
    }
}
