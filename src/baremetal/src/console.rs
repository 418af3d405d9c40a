//! A node's interactive serial console: a Unix socket (0600, beside the node's console log)
//! relaying Serial-over-LAN both ways on the BMC's one RMCP+ session, the session the console
//! capture polls. What a client writes is sent to the machine with SOL; what the machine
//! writes is appended to the capture log first, then given to the client. One client at a
//! time: the newest connection takes the console over and the one before it is closed, as
//! with a container's console. A client leaving changes nothing on the node: the capture
//! goes on, the power is not touched.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::{Baremetal, Error, Node, Result};

/// How long a client may take to read what the machine writes before it is let go (the
/// capture, which feeds it, never waits longer).
const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The connected client: its number (to tell a newer one apart) and its stream.
type Client = Arc<Mutex<Option<(u64, UnixStream)>>>;

/// One node's console socket, served for as long as the node holds a server.
struct Relay {
    path: PathBuf,
    bmc: Arc<ipmi::Bmc>,
    client: Client,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn shut(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some((_, c)) = lock(&self.client).take() {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        // Wake the accepting thread so it sees the stop.
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
        self.bmc.set_console_tap(None);
    }
}

/// The console sockets of the nodes, by node UUID.
#[derive(Default)]
pub(crate) struct Relays(Mutex<HashMap<String, Relay>>);

/// Gives the machine's output to the client; a client that cannot take it in time, or has
/// gone, is dropped.
fn tap(client: Client) -> ipmi::ConsoleTap {
    Arc::new(move |data: &[u8]| {
        let mut c = lock(&client);
        if let Some((_, stream)) = c.as_mut()
            && stream.write_all(data).is_err()
        {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            *c = None;
        }
    })
}

/// Sends what the client `n` types to the machine until it closes or is replaced.
fn pump_input(mut reader: UnixStream, n: u64, bmc: Arc<ipmi::Bmc>, client: Client) {
    let mut buf = [0u8; 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                if let Err(e) = bmc.console_send(&buf[..k]) {
                    tracing::info!(bmc = %bmc.config().host, error = %e, "console input not delivered");
                }
            }
        }
    }
    let mut c = lock(&client);
    if c.as_ref().is_some_and(|(m, _)| *m == n) {
        *c = None;
    }
}

fn serve(listener: UnixListener, bmc: Arc<ipmi::Bmc>, client: Client, stop: Arc<AtomicBool>) {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        let _ = conn.set_write_timeout(Some(CLIENT_WRITE_TIMEOUT));
        let Ok(reader) = conn.try_clone() else {
            continue;
        };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        if let Some((_, old)) = lock(&client).replace((n, conn)) {
            let _ = old.shutdown(std::net::Shutdown::Both);
        }
        let (bmc, client) = (bmc.clone(), client.clone());
        let spawned = std::thread::Builder::new()
            .name("sol-console-in".into())
            .spawn(move || pump_input(reader, n, bmc, client));
        if spawned.is_err() {
            tracing::warn!("no thread for a console connection");
        }
    }
}

/// Makes the consoles' directory, the owner's only: the captured logs and the sockets in
/// it are nobody else's to read.
pub(crate) fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Binds `path` with no moment where it is open to others: the directory is the owner's only.
fn bind_private(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

impl Baremetal {
    /// The interactive console socket of a node.
    pub fn console_socket(&self, node_uuid: &str) -> PathBuf {
        self.cfg.console_dir.join(format!("{node_uuid}.sock"))
    }

    /// Serves the node's interactive serial console (starting the SOL capture if it is not
    /// running) and returns its socket. Idempotent: a console already served is reused.
    pub fn serve_console(&self, node: &Node) -> Result<PathBuf> {
        let bmc = self.bmc(node)?;
        if !bmc.capturing() {
            bmc.start_console_capture(self.console_path(&node.uuid));
        }
        let mut relays = lock(&self.relays.0);
        if let Some(r) = relays.get(&node.uuid) {
            if Arc::ptr_eq(&r.bmc, &bmc) && r.path.exists() {
                bmc.set_console_tap(Some(tap(r.client.clone())));
                return Ok(r.path.clone());
            }
            if let Some(old) = relays.remove(&node.uuid) {
                old.shut();
            }
        }
        let path = self.console_socket(&node.uuid);
        let listener = bind_private(&path)
            .map_err(|e| Error::Bmc(format!("console socket of node {}: {e}", node.uuid)))?;
        let relay = Relay {
            path: path.clone(),
            bmc: bmc.clone(),
            client: Arc::default(),
            stop: Arc::default(),
        };
        let (b, c, s) = (bmc.clone(), relay.client.clone(), relay.stop.clone());
        std::thread::Builder::new()
            .name("sol-console".into())
            .spawn(move || serve(listener, b, c, s))
            .map_err(|e| Error::Bmc(format!("console of node {}: {e}", node.uuid)))?;
        bmc.set_console_tap(Some(tap(relay.client.clone())));
        relays.insert(node.uuid.clone(), relay);
        Ok(path)
    }

    /// Stops serving the node's interactive console: the client is disconnected and the
    /// socket removed. The capture and the power are left as they are.
    pub fn stop_console(&self, node_uuid: &str) {
        if let Some(r) = lock(&self.relays.0).remove(node_uuid) {
            r.shut();
        }
        let _ = std::fs::remove_file(self.console_socket(node_uuid));
    }
}
