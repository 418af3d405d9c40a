//! Network namespaces for the kernel tests: one per "host" or "guest", each held by a
//! `sleep` that the test kills when the namespace is dropped (its links and tables go with
//! it), and guests plugged into project bridges as the container backend plugs them.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use hostnet::{InterfaceConfig, NetworkDef};

/// A network namespace held by a `sleep` in it; killing the sleep ends the namespace and
/// every link in it.
pub struct Netns {
    child: Child,
}

impl Netns {
    pub fn new() -> Self {
        let child = Command::new("unshare")
            .args(["--net", "sleep", "300"])
            .spawn()
            .expect("unshare");
        let pid = child.id();
        let ns = Self { child };
        let own = std::fs::read_link("/proc/self/ns/net").ok();
        for _ in 0..100 {
            let its = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
            if its.is_some() && its != own {
                ns.sh(&["ip", "link", "set", "lo", "up"]);
                return ns;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("unshare did not enter a new namespace");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `f` on a thread that joined this namespace; child processes it starts (`nft`)
    /// are in the namespace too.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/proc/{}/ns/net", self.pid());
        let file = std::fs::File::open(&path).expect("netns file");
        std::thread::scope(|s| {
            s.spawn(move || {
                nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("setns");
                f()
            })
            .join()
            .expect("namespace thread")
        })
    }

    /// Runs a command in the namespace; panics when it fails.
    pub fn sh(&self, args: &[&str]) -> String {
        let out = Command::new("nsenter")
            .args(["-t", &self.pid().to_string(), "-n"])
            .args(args)
            .output()
            .expect("nsenter");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn listen(&self, addr: SocketAddr) -> TcpListener {
        self.run(|| {
            let l = TcpListener::bind(addr).expect("bind");
            l.set_nonblocking(true).expect("nonblocking");
            l
        })
    }

    pub fn connect(&self, to: SocketAddr) -> std::io::Result<()> {
        self.run(|| TcpStream::connect_timeout(&to, Duration::from_millis(1500)).map(|_| ()))
    }

    pub fn read(&self, path: &str) -> String {
        let p = path.to_owned();
        self.run(move || std::fs::read_to_string(&p).expect("read").trim().to_owned())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The peer of the next connection the listener gets within a few seconds.
pub fn accepted(l: &TcpListener) -> Option<SocketAddr> {
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        match l.accept() {
            Ok((_, peer)) => return Some(peer),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    None
}

pub fn net(id: &str, third: u8, forwarding: bool) -> NetworkDef {
    NetworkDef {
        id: id.into(),
        cidr: format!("10.251.{third}.0/24"),
        gateway: format!("10.251.{third}.1"),
        forwarding,
    }
}

/// A guest namespace on `bridge` (made in `edge`) with `address` on `net`.
pub fn plug(edge: &Netns, guest: &Netns, bridge: &str, host_if: &str, net: &NetworkDef, host: u8) {
    let pid = guest.pid();
    let (bridge, host_if) = (bridge.to_owned(), host_if.to_owned());
    let prefix = net.prefix_len().expect("prefix");
    let gw = net.gateway_addr().expect("gateway");
    let o = gw.octets();
    let address = Ipv4Addr::new(o[0], o[1], o[2], host);
    edge.run(move || {
        let peer = format!("{host_if}p");
        hostnet::create_veth(&host_if, &peer, &bridge).expect("veth");
        hostnet::move_to_netns(&peer, pid).expect("move");
        hostnet::configure_in_netns(
            pid,
            &InterfaceConfig {
                current_name: peer,
                name: "eth0".into(),
                mac: format!("fa:16:3e:00:00:{host:02x}"),
                address,
                prefix,
                gateway: Some(gw),
                routes: Vec::new(),
            },
        )
        .expect("configure");
    });
}
