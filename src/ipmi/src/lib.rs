//! An IPMI 2.0 over LAN client (RMCP+, `lanplus`).
//!
//! Sessions are authenticated and encrypted: cipher suite 3 (RAKP-HMAC-SHA1, HMAC-SHA1-96,
//! AES-CBC-128) or 17 (RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128); suite 0 and every
//! other suite are refused. [`Session`] is one session; [`Bmc`] is the handle the rest of
//! onebox uses: it keeps at most one session per BMC address for the whole process, opens it
//! on demand, drops it after a failure, and captures the Serial-over-LAN console to a file.
//!
//! Every wait is bounded: a request is sent `retries + 1` times, each waiting `timeout`, so
//! a BMC that does not answer fails in `(retries + 1) × timeout` at most.

pub mod codec;
pub mod commands;
pub mod sdr;
pub mod session;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

pub use codec::CipherSuite;
pub use commands::{BootDevice, BootSetting, ChassisControl, DeviceId};
pub use sdr::{SdrRecord, SensorReading};
pub use session::Session;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Nothing answered: wrong address, nothing listening, or a BMC that stopped answering.
    #[error("BMC {target} is unreachable: {detail}")]
    NoAnswer { target: String, detail: String },
    #[error("BMC authentication failed: {0}")]
    WrongCredentials(String),
    #[error("{0}")]
    UnsupportedCipherSuite(String),
    #[error("BMC answered netfn 0x{netfn:02x} cmd 0x{cmd:02x} with completion code 0x{code:02x}")]
    Completion { netfn: u8, cmd: u8, code: u8 },
    #[error("IPMI protocol error: {0}")]
    Protocol(String),
    #[error("IPMI I/O error: {0}")]
    Io(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a BMC is and how to talk to it.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: String,
    /// 3 or 17.
    pub cipher_suite: u8,
    /// How long to wait for each answer.
    pub timeout: Duration,
    /// How many times to resend a request that got no answer.
    pub retries: u32,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"******")
            .field("cipher_suite", &self.cipher_suite)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

impl Config {
    /// Defaults tuned for slow BMCs: 2 s per attempt, 2 resends, suite 3.
    pub fn new(host: &str, port: u16, username: &str, password: &str) -> Config {
        Config {
            host: host.to_string(),
            port,
            username: username.to_string(),
            password: password.to_string(),
            cipher_suite: 3,
            timeout: Duration::from_secs(2),
            retries: 2,
        }
    }

    /// The longest any one request can take before it fails.
    pub fn max_wait(&self) -> Duration {
        self.timeout * (self.retries + 1)
    }
}

struct Inner {
    session: Option<Session>,
    /// The SOL capture file, when capture is on.
    console: Option<PathBuf>,
}

/// Receives the console output the capture reads, right after it is appended to the log.
pub type ConsoleTap = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// A BMC, shared by everything in the process that talks to it.
pub struct Bmc {
    cfg: Config,
    inner: Mutex<Inner>,
    capture_stop: Mutex<Option<Arc<AtomicBool>>>,
    tap: Mutex<Option<ConsoleTap>>,
}

type Registry = Mutex<HashMap<(String, u16), Arc<Bmc>>>;

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Bmc {
    /// The process's handle for the BMC at `cfg.host:cfg.port`. Callers with the same address
    /// share one handle and so one session; the handle lives as long as the process (its
    /// console capture runs without anyone holding it). A changed configuration (new
    /// credentials) stops the old handle's capture, closes its session and replaces it.
    pub fn shared(cfg: Config) -> Arc<Bmc> {
        let key = (cfg.host.clone(), cfg.port);
        let mut reg = lock(registry());
        if let Some(b) = reg.get(&key).cloned() {
            if b.cfg == cfg {
                return b;
            }
            b.stop_console_capture();
            b.reset();
        }
        let b = Arc::new(Bmc {
            cfg,
            inner: Mutex::new(Inner {
                session: None,
                console: None,
            }),
            capture_stop: Mutex::new(None),
            tap: Mutex::new(None),
        });
        reg.insert(key, b.clone());
        b
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Runs `f` on the BMC's session, opening one first if needed. After a failure other than
    /// a command's completion code the session is dropped; the next call opens a new one.
    pub fn with_session<T>(&self, f: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        let mut inner = lock(&self.inner);
        self.with_inner(&mut inner, f)
    }

    fn with_inner<T>(
        &self,
        inner: &mut Inner,
        f: impl FnOnce(&mut Session) -> Result<T>,
    ) -> Result<T> {
        if inner.session.is_none() {
            inner.session = Some(Session::open(&self.cfg)?);
        }
        let Some(s) = inner.session.as_mut() else {
            return Err(Error::Protocol("no session".into()));
        };
        let r = f(s);
        if let Err(e) = &r
            && !matches!(e, Error::Completion { .. })
        {
            // The session may be dead (BMC restarted, timed out): do not reuse it.
            inner.session = None;
        }
        r
    }

    /// Closes the session, if one is open.
    pub fn reset(&self) {
        if let Some(s) = lock(&self.inner).session.take() {
            s.close();
        }
    }

    pub fn power_is_on(&self) -> Result<bool> {
        self.with_session(|s| s.power_is_on())
    }

    pub fn chassis_control(&self, c: ChassisControl) -> Result<()> {
        self.with_session(|s| s.chassis_control(c))
    }

    pub fn set_boot_device(&self, d: BootDevice, persistent: bool, uefi: bool) -> Result<()> {
        self.with_session(|s| s.set_boot_device(d, persistent, uefi))
    }

    pub fn boot_device(&self) -> Result<BootSetting> {
        self.with_session(|s| s.boot_device())
    }

    pub fn device_id(&self) -> Result<DeviceId> {
        self.with_session(|s| s.device_id())
    }

    pub fn sensors(&self) -> Result<Vec<SensorReading>> {
        self.with_session(|s| s.sensors())
    }

    /// Sends characters to the serial console over SOL (activating it if needed).
    pub fn console_send(&self, data: &[u8]) -> Result<()> {
        self.with_session(|s| {
            s.sol_activate()?;
            s.sol_send(data)
        })
    }

    /// Starts appending the machine's SOL console output to `path`, in a background thread
    /// that shares the BMC's session with the other calls. Idempotent.
    pub fn start_console_capture(self: &Arc<Self>, path: PathBuf) {
        let mut stop = lock(&self.capture_stop);
        if stop.is_some() {
            return;
        }
        let flag = Arc::new(AtomicBool::new(false));
        *stop = Some(flag.clone());
        lock(&self.inner).console = Some(path.clone());
        let weak = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("ipmi-sol".into())
            .spawn(move || capture_loop(weak, flag, path));
        if spawned.is_err() {
            *stop = None;
        }
    }

    pub fn stop_console_capture(&self) {
        if let Some(flag) = lock(&self.capture_stop).take() {
            flag.store(true, Ordering::SeqCst);
        }
        let mut inner = lock(&self.inner);
        inner.console = None;
        if let Some(s) = inner.session.as_mut() {
            let _ = s.sol_deactivate();
        }
    }

    pub fn capturing(&self) -> bool {
        lock(&self.capture_stop).is_some()
    }

    /// Gives every piece of console output the capture reads to `tap` as well (after it is
    /// in the log), replacing the previous tap; `None` removes it. The tap runs on the
    /// capture's thread, so it must not block for long.
    pub fn set_console_tap(&self, tap: Option<ConsoleTap>) {
        *lock(&self.tap) = tap;
    }
}

impl Drop for Bmc {
    fn drop(&mut self) {
        if let Some(flag) = lock(&self.capture_stop).take() {
            flag.store(true, Ordering::SeqCst);
        }
        if let Some(s) = lock(&self.inner).session.take() {
            s.close();
        }
    }
}

/// Cap on a node's captured serial-over-LAN console, in bytes; past it the log moves to
/// `<log>.1` (replacing the previous one) and a new log starts.
pub const SOL_LOG_MAX_BYTES: u64 = 1 << 20;

/// Appends `data` to `path`, first rotating `path` to `<path>.1` when `data` would take it
/// past `cap`; a single write larger than `cap` keeps only its last `cap` bytes.
pub fn append_capped(path: &std::path::Path, data: &[u8], cap: u64) -> std::io::Result<()> {
    let data = &data[data.len().saturating_sub(cap as usize)..];
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if len > 0 && len + data.len() as u64 > cap {
        let mut old = path.as_os_str().to_owned();
        old.push(".1");
        std::fs::rename(path, old)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(data)
}

fn capture_loop(bmc: Weak<Bmc>, stop: Arc<AtomicBool>, path: PathBuf) {
    let mut backoff = Duration::from_millis(0);
    while !stop.load(Ordering::SeqCst) {
        let Some(b) = bmc.upgrade() else { return };
        std::thread::sleep(backoff);
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let got = {
            let mut inner = lock(&b.inner);
            b.with_inner(&mut inner, |s| {
                s.sol_activate()?;
                // Keep the session alive when the console is quiet.
                if s.idle() > Duration::from_secs(15) {
                    s.device_id()?;
                }
                s.sol_poll(Duration::from_millis(200))
            })
        };
        match got {
            Ok(data) => {
                backoff = Duration::from_millis(100);
                if !data.is_empty() {
                    let _ = append_capped(&path, &data, SOL_LOG_MAX_BYTES);
                    let tap = lock(&b.tap).clone();
                    if let Some(tap) = tap {
                        tap(&data);
                    }
                }
            }
            Err(_) => backoff = Duration::from_secs(2),
        }
        drop(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attack_a_node_flooding_its_sol_console_leaves_no_more_than_the_cap_on_disk() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = dir.path().join("sol.log");
        let cap = 4096;
        for i in 0..2000 {
            append_capped(&log, format!("sol line {i:05}\n").as_bytes(), cap).expect("append");
        }
        let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let old = dir.path().join("sol.log.1");
        assert!(size(&log) <= cap && size(&old) <= cap);
        let text = std::fs::read_to_string(&log).expect("log");
        assert!(text.ends_with("sol line 01999\n"), "{text}");
        // One huge burst keeps its end only.
        append_capped(&log, &vec![b'x'; 3 * cap as usize], cap).expect("burst");
        assert_eq!(size(&log), cap);
    }
}
