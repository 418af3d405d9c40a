//! One RMCP+ session with one BMC over UDP: setup (Get Channel Authentication Capabilities,
//! Open Session, RAKP 1–4, Set Session Privilege Level), requests with timeouts and retries,
//! Serial-over-LAN payloads, close.

use std::net::{ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use crate::codec::{self, CipherSuite, Inbound, Rakp, SessionKeys, payload};
use crate::{Config, Error, Result};

/// The privilege levels of IPMI.
pub const PRIV_ADMINISTRATOR: u8 = 0x04;
/// RAKP 1 role byte flag: look the user up by name only.
const NAME_ONLY_LOOKUP: u8 = 0x10;

pub struct Session {
    sock: UdpSocket,
    target: String,
    timeout: Duration,
    retries: u32,
    keys: SessionKeys,
    bmc_sid: u32,
    console_sid: u32,
    out_seq: u32,
    rq_seq: u8,
    pub(crate) sol: Option<SolState>,
    last_used: Instant,
}

/// Serial-over-LAN state of the session, once the payload is activated.
#[derive(Debug, Default)]
pub(crate) struct SolState {
    /// Our next packet sequence number (1..=15).
    next_seq: u8,
    /// The BMC's last packet we accepted, to drop retransmissions.
    last_in: u8,
    /// Console bytes received and not yet taken.
    pub(crate) buffer: Vec<u8>,
    /// The sequence of the BMC's ack for our last data packet, when it came.
    acked: Option<u8>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| Error::Io(format!("no randomness: {e}")))?;
    Ok(b)
}

fn io(e: std::io::Error) -> Error {
    Error::Io(e.to_string())
}

/// Sends `packet` and waits for an answer `accept` takes, resending after each timeout.
/// Other packets that arrive are given to `other` (SOL data) or dropped.
fn exchange<T>(
    sock: &UdpSocket,
    timeout: Duration,
    retries: u32,
    target: &str,
    what: &str,
    mut packet: impl FnMut() -> Result<Vec<u8>>,
    mut accept: impl FnMut(&[u8]) -> Option<Result<T>>,
) -> Result<T> {
    let mut buf = [0u8; 2048];
    for _attempt in 0..=retries {
        let p = packet()?;
        let mut sent = sock.send(&p);
        if matches!(&sent, Err(e) if e.kind() == std::io::ErrorKind::Interrupted) {
            sent = sock.send(&p);
        }
        match sent {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::thread::sleep(timeout.min(Duration::from_millis(200)));
                continue;
            }
            Err(e) => return Err(io(e)),
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left)).map_err(io)?;
            match sock.recv(&mut buf) {
                Ok(n) => {
                    if let Some(r) = accept(&buf[..n]) {
                        return r;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                // A signal interrupted the wait: keep waiting until the deadline.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // An ICMP port unreachable: nothing listens there (yet); wait out the attempt.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    std::thread::sleep(left.min(Duration::from_millis(200)));
                }
                Err(e) => return Err(io(e)),
            }
        }
    }
    Err(Error::NoAnswer {
        target: target.to_string(),
        detail: format!(
            "no answer to {what} after {} attempts of {} ms",
            retries + 1,
            timeout.as_millis()
        ),
    })
}

impl Session {
    /// Opens an authenticated, encrypted session and raises it to ADMINISTRATOR.
    pub fn open(cfg: &Config) -> Result<Session> {
        let suite = CipherSuite::from_id(cfg.cipher_suite)?;
        let target = format!("{}:{}", cfg.host, cfg.port);
        let addr = (cfg.host.as_str(), cfg.port)
            .to_socket_addrs()
            .map_err(|e| Error::NoAnswer {
                target: target.clone(),
                detail: e.to_string(),
            })?
            .next()
            .ok_or_else(|| Error::NoAnswer {
                target: target.clone(),
                detail: "address does not resolve".into(),
            })?;
        let bind = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let sock = UdpSocket::bind(bind).map_err(io)?;
        sock.connect(addr).map_err(io)?;
        let (timeout, retries) = (cfg.timeout, cfg.retries);
        let user = cfg.username.as_bytes();
        if user.len() > 16 {
            return Err(Error::WrongCredentials(
                "user names are at most 16 bytes".into(),
            ));
        }
        let password = cfg.password.as_bytes();

        // 1. Get Channel Authentication Capabilities (IPMI 1.5 framing, outside a session).
        let msg = codec::ipmi_request(0, 0x06, 0x38, &[0x8e, PRIV_ADMINISTRATOR]);
        let caps = exchange(
            &sock,
            timeout,
            retries,
            &target,
            "Get Channel Authentication Capabilities",
            || Ok(codec::v15_packet(&msg)),
            |b| match codec::parse_packet(b, None) {
                Ok(Inbound::V15 { msg }) => match codec::parse_ipmi_response(&msg) {
                    Ok(r) if r.cmd == 0x38 => Some(Ok(r)),
                    _ => None,
                },
                _ => None,
            },
        )?;
        if caps.completion != 0 || caps.data.len() < 2 || caps.data[1] & 0x80 == 0 {
            return Err(Error::Protocol(format!(
                "{target} does not offer IPMI 2.0 / RMCP+ (channel authentication capabilities {:02x?}, completion 0x{:02x})",
                caps.data, caps.completion
            )));
        }

        // 2. Open Session.
        let console_sid = u32::from_le_bytes(random::<4>()?) | 1;
        let req = codec::open_session_request(1, console_sid, suite);
        let open = exchange(
            &sock,
            timeout,
            retries,
            &target,
            "Open Session",
            || {
                Ok(codec::v20_packet(
                    payload::OPEN_SESSION_REQUEST,
                    0,
                    0,
                    &req,
                    None,
                    [0; 16],
                ))
            },
            |b| match codec::parse_packet(b, None) {
                Ok(Inbound::V20 {
                    payload_type: payload::OPEN_SESSION_RESPONSE,
                    payload,
                    ..
                }) if payload.len() >= 2 => Some(Ok(payload)),
                _ => None,
            },
        )?;
        let status = open[1];
        if status != 0 {
            let text = codec::rmcp_status_text(status);
            return Err(if codec::is_cipher_status(status) {
                Error::UnsupportedCipherSuite(format!(
                    "{target} refused cipher suite {}: {text} (0x{status:02x})",
                    suite.id()
                ))
            } else {
                Error::Protocol(format!(
                    "{target} refused to open a session: {text} (0x{status:02x})"
                ))
            });
        }
        if open.len() < 36 {
            return Err(Error::Protocol("short Open Session response".into()));
        }
        let bmc_sid = u32::from_le_bytes([open[8], open[9], open[10], open[11]]);
        let (a, i, c) = suite.algorithms();
        if open[16] != a || open[24] != i || open[32] != c {
            return Err(Error::UnsupportedCipherSuite(format!(
                "{target} answered with other algorithms than cipher suite {}",
                suite.id()
            )));
        }

        // 3. RAKP 1 / 2.
        let console_random = random::<16>()?;
        let role = PRIV_ADMINISTRATOR | NAME_ONLY_LOOKUP;
        let r1 = codec::rakp1(2, bmc_sid, &console_random, role, user);
        let r2 = exchange(
            &sock,
            timeout,
            retries,
            &target,
            "RAKP 1",
            || Ok(codec::v20_packet(payload::RAKP1, 0, 0, &r1, None, [0; 16])),
            |b| match codec::parse_packet(b, None) {
                Ok(Inbound::V20 {
                    payload_type: payload::RAKP2,
                    payload,
                    ..
                }) if payload.len() >= 2 => Some(Ok(payload)),
                _ => None,
            },
        )?;
        if r2[1] != 0 {
            let text = codec::rmcp_status_text(r2[1]);
            return Err(match r2[1] {
                0x0d | 0x0f | 0x09 | 0x0a => Error::WrongCredentials(format!(
                    "{target} refused user {:?}: {text} (0x{:02x})",
                    cfg.username, r2[1]
                )),
                s if codec::is_cipher_status(s) => Error::UnsupportedCipherSuite(format!(
                    "{target} refused cipher suite {}: {text}",
                    suite.id()
                )),
                s => Error::Protocol(format!("RAKP 2 status {text} (0x{s:02x})")),
            });
        }
        let mut bmc_random = [0u8; 16];
        let mut bmc_guid = [0u8; 16];
        if r2.len() < 40 {
            return Err(Error::Protocol("short RAKP 2".into()));
        }
        bmc_random.copy_from_slice(&r2[8..24]);
        bmc_guid.copy_from_slice(&r2[24..40]);
        let rakp = Rakp {
            suite,
            password,
            console_sid,
            bmc_sid,
            console_random,
            bmc_random,
            bmc_guid,
            role,
            username: user,
        };
        if !codec::ct_eq(&rakp.rakp2_auth(), &r2[40..]) {
            return Err(Error::WrongCredentials(format!(
                "{target}: the BMC's key exchange code does not match the password of user {:?}",
                cfg.username
            )));
        }

        // 4. RAKP 3 / 4.
        let r3 = codec::rakp3(3, bmc_sid, &rakp.rakp3_auth());
        let r4 = exchange(
            &sock,
            timeout,
            retries,
            &target,
            "RAKP 3",
            || Ok(codec::v20_packet(payload::RAKP3, 0, 0, &r3, None, [0; 16])),
            |b| match codec::parse_packet(b, None) {
                Ok(Inbound::V20 {
                    payload_type: payload::RAKP4,
                    payload,
                    ..
                }) if payload.len() >= 2 => Some(Ok(payload)),
                _ => None,
            },
        )?;
        if r4[1] != 0 {
            return Err(Error::WrongCredentials(format!(
                "{target} rejected RAKP 3: {} (0x{:02x})",
                codec::rmcp_status_text(r4[1]),
                r4[1]
            )));
        }
        let sik = rakp.sik();
        if r4.len() < 8 || !codec::ct_eq(&rakp.rakp4_icv(&sik), &r4[8..]) {
            return Err(Error::Protocol(format!(
                "{target}: RAKP 4 integrity check value mismatch"
            )));
        }
        let keys = rakp.session_keys(&sik);

        let mut s = Session {
            sock,
            target,
            timeout,
            retries,
            keys,
            bmc_sid,
            console_sid,
            out_seq: 0,
            rq_seq: 0,
            sol: None,
            last_used: Instant::now(),
        };
        // 5. Sessions start at USER on many BMCs: ask for ADMINISTRATOR.
        let granted = s
            .request(0x06, 0x3b, &[PRIV_ADMINISTRATOR])
            .map_err(|e| match e {
                Error::Completion { code, .. } => Error::WrongCredentials(format!(
                    "{}: user {:?} may not act as ADMINISTRATOR (completion 0x{code:02x})",
                    s.target, cfg.username
                )),
                e => e,
            })?;
        if granted.first().map(|p| p & 0x0f) != Some(PRIV_ADMINISTRATOR) {
            return Err(Error::WrongCredentials(format!(
                "{}: session privilege is {granted:02x?}, not ADMINISTRATOR",
                s.target
            )));
        }
        Ok(s)
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    /// How long the session has been idle.
    pub fn idle(&self) -> Duration {
        self.last_used.elapsed()
    }

    fn next_out_seq(&mut self) -> u32 {
        self.out_seq = self.out_seq.wrapping_add(1).max(1);
        self.out_seq
    }

    fn seal(&mut self, ptype: u8, data: &[u8]) -> Result<Vec<u8>> {
        let seq = self.next_out_seq();
        let iv = random::<16>()?;
        Ok(codec::v20_packet(
            ptype,
            self.bmc_sid,
            seq,
            data,
            Some(&self.keys),
            iv,
        ))
    }

    /// Handles a SOL packet from the BMC: keeps new data and acknowledges it.
    fn on_sol(&mut self, p: &[u8]) {
        if p.len() < 4 {
            return;
        }
        let (seq, ack, status) = (p[0], p[1], p[3]);
        let Some(sol) = self.sol.as_mut() else { return };
        if ack != 0 && status & 0x40 == 0 {
            sol.acked = Some(ack);
        }
        if seq == 0 {
            return;
        }
        let data = &p[4..];
        if seq != sol.last_in {
            sol.last_in = seq;
            sol.buffer.extend_from_slice(data);
        }
        let ackp = [0, seq, data.len() as u8, 0];
        if let Ok(pk) = self.seal(payload::SOL, &ackp) {
            let _ = self.sock.send(&pk);
        }
    }

    /// Decodes a datagram of this session; SOL data is handled on the way.
    fn inbound(&mut self, b: &[u8]) -> Option<(u8, Vec<u8>)> {
        match codec::parse_packet(b, Some(&self.keys)) {
            Ok(Inbound::V20 {
                payload_type,
                session_id,
                payload,
                ..
            }) if session_id == self.console_sid => {
                if payload_type == payload::SOL {
                    self.on_sol(&payload);
                    None
                } else {
                    Some((payload_type, payload))
                }
            }
            _ => None,
        }
    }

    /// Sends one IPMI request and returns the response data after the completion code.
    pub fn request(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> Result<Vec<u8>> {
        let r = self.request_raw(netfn, cmd, data)?;
        if r.completion != 0 {
            return Err(Error::Completion {
                netfn,
                cmd,
                code: r.completion,
            });
        }
        Ok(r.data)
    }

    /// Sends one IPMI request; the caller judges the completion code.
    pub fn request_raw(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> Result<codec::IpmiResponse> {
        self.rq_seq = (self.rq_seq + 1) & 0x3f;
        let rq_seq = self.rq_seq;
        let msg = codec::ipmi_request(rq_seq, netfn, cmd, data);
        let what = format!("IPMI request netfn 0x{netfn:02x} cmd 0x{cmd:02x}");
        let (timeout, retries, target) = (self.timeout, self.retries, self.target.clone());
        let sock = self.sock.try_clone().map_err(io)?;
        // The closures need the session mutably; route through a cell-like split.
        let this = std::cell::RefCell::new(self);
        let r = exchange(
            &sock,
            timeout,
            retries,
            &target,
            &what,
            || this.borrow_mut().seal(payload::IPMI, &msg),
            |b| {
                let mut s = this.borrow_mut();
                match s.inbound(b) {
                    Some((payload::IPMI, p)) => match codec::parse_ipmi_response(&p) {
                        Ok(r) if r.rq_seq == rq_seq && r.cmd == cmd && r.netfn == netfn + 1 => {
                            Some(Ok(r))
                        }
                        _ => None,
                    },
                    _ => None,
                }
            },
        );
        this.into_inner().last_used = Instant::now();
        r
    }

    /// Waits up to `wait` for SOL data and returns what arrived (empty if none).
    pub fn sol_poll(&mut self, wait: Duration) -> Result<Vec<u8>> {
        self.pump(wait)?;
        Ok(self
            .sol
            .as_mut()
            .map(|s| std::mem::take(&mut s.buffer))
            .unwrap_or_default())
    }

    /// Receives and handles packets for up to `wait`.
    fn pump(&mut self, wait: Duration) -> Result<()> {
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 2048];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.sock.set_read_timeout(Some(left)).map_err(io)?;
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let b = buf[..n].to_vec();
                    self.inbound(&b);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(io(e)),
            }
        }
        Ok(())
    }

    /// Activates the SOL payload (instance 1) with encryption and authentication.
    pub fn sol_activate(&mut self) -> Result<()> {
        if self.sol.is_some() {
            return Ok(());
        }
        let r = self.request_raw(0x06, 0x48, &[payload::SOL, 0x01, 0xc0, 0, 0, 0])?;
        match r.completion {
            0 => {}
            // Already active (in this or a stale session): deactivate and try once more.
            0x80 => {
                let _ = self.request_raw(0x06, 0x49, &[payload::SOL, 0x01, 0, 0, 0, 0]);
                self.request(0x06, 0x48, &[payload::SOL, 0x01, 0xc0, 0, 0, 0])?;
            }
            code => {
                return Err(Error::Completion {
                    netfn: 0x06,
                    cmd: 0x48,
                    code,
                });
            }
        }
        self.sol = Some(SolState {
            next_seq: 1,
            ..SolState::default()
        });
        Ok(())
    }

    pub fn sol_deactivate(&mut self) -> Result<()> {
        if self.sol.take().is_some() {
            let r = self.request_raw(0x06, 0x49, &[payload::SOL, 0x01, 0, 0, 0, 0])?;
            if r.completion != 0 && r.completion != 0x80 {
                return Err(Error::Completion {
                    netfn: 0x06,
                    cmd: 0x49,
                    code: r.completion,
                });
            }
        }
        Ok(())
    }

    /// Sends characters to the machine's serial console and waits for the BMC's ack.
    pub fn sol_send(&mut self, data: &[u8]) -> Result<()> {
        for chunk in data.chunks(200) {
            let seq = {
                let sol = self
                    .sol
                    .as_mut()
                    .ok_or_else(|| Error::Protocol("SOL is not active".into()))?;
                let s = sol.next_seq;
                sol.next_seq = if s >= 15 { 1 } else { s + 1 };
                sol.acked = None;
                s
            };
            let mut p = vec![seq, 0, 0, 0];
            p.extend_from_slice(chunk);
            let mut done = false;
            for _ in 0..=self.retries {
                let pk = self.seal(payload::SOL, &p)?;
                self.sock.send(&pk).map_err(io)?;
                let deadline = Instant::now() + self.timeout;
                while Instant::now() < deadline {
                    self.pump(Duration::from_millis(50))?;
                    if self.sol.as_ref().and_then(|s| s.acked) == Some(seq) {
                        done = true;
                        break;
                    }
                }
                if done {
                    break;
                }
            }
            if !done {
                return Err(Error::NoAnswer {
                    target: self.target.clone(),
                    detail: "no acknowledgement of SOL data".into(),
                });
            }
        }
        Ok(())
    }

    /// Closes the session (best effort: one attempt, short wait).
    pub fn close(mut self) {
        let _ = self.sol_deactivate();
        self.retries = 0;
        self.timeout = self.timeout.min(Duration::from_millis(500));
        let sid = self.bmc_sid.to_le_bytes();
        let _ = self.request_raw(0x06, 0x3c, &sid);
    }
}
