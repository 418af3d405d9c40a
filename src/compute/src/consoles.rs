//! Interactive consoles: the tokens that grant them and the sessions that use them.
//!
//! A member asks for a console URL (`remote-consoles`); the answer carries a random token,
//! kept here only as its SHA-256, bound to one server and one console kind, and good for
//! [`ComputeConfig::console_token_ttl_secs`](crate::ComputeConfig). The console proxy trades
//! the token for a [`ConsoleSession`]: the backend's endpoint, held exclusively while the
//! session lasts (one interactive writer per console; a second connection is refused). The
//! tokens live in memory: one process owns them, and a restart ends every console session
//! anyway.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use driver::{ConsoleEndpoint, ConsoleKind, DriverError};
use model::Context;
use model::compute::{PowerState, ServerId, TaskState, VmState};
use sha2::{Digest, Sha256};

use crate::{Compute, Error, Result};

/// Live tokens kept at most; the oldest go first.
const MAX_TOKENS: usize = 10_000;
/// Live tokens kept at most per server and kind.
const MAX_PER_CONSOLE: usize = 16;

struct Grant {
    server: ServerId,
    kind: ConsoleKind,
    issued: Instant,
    expires: Instant,
}

#[derive(Default)]
pub(crate) struct Registry {
    grants: Mutex<HashMap<[u8; 32], Grant>>,
    /// The consoles with a session open.
    open: Arc<Mutex<HashSet<(ServerId, ConsoleKind)>>>,
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Registry {
    fn issue(&self, server: ServerId, kind: ConsoleKind, ttl: Duration) -> String {
        let token = uuid::Uuid::new_v4().to_string();
        let now = Instant::now();
        let mut grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
        grants.retain(|_, g| g.expires > now);
        let mut same: Vec<([u8; 32], Instant)> = grants
            .iter()
            .filter(|(_, g)| g.server == server && g.kind == kind)
            .map(|(h, g)| (*h, g.issued))
            .collect();
        same.sort_by_key(|(_, issued)| *issued);
        for (h, _) in same
            .iter()
            .take((same.len() + 1).saturating_sub(MAX_PER_CONSOLE))
        {
            grants.remove(h);
        }
        if grants.len() >= MAX_TOKENS
            && let Some(oldest) = grants.iter().min_by_key(|(_, g)| g.issued).map(|(h, _)| *h)
        {
            grants.remove(&oldest);
        }
        grants.insert(
            hash(&token),
            Grant {
                server,
                kind,
                issued: now,
                expires: now + ttl,
            },
        );
        token
    }

    fn lookup(&self, token: &str) -> Option<(ServerId, ConsoleKind)> {
        let grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
        grants
            .get(&hash(token))
            .filter(|g| g.expires > Instant::now())
            .map(|g| (g.server.clone(), g.kind))
    }
}

/// What a console token grants, as `os-console-auth-tokens` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleGrant {
    pub server_id: ServerId,
    pub kind: ConsoleKind,
}

/// An open console: the endpoint to relay, exclusively this session's until it is dropped.
pub struct ConsoleSession {
    pub server_id: ServerId,
    pub kind: ConsoleKind,
    pub endpoint: ConsoleEndpoint,
    open: Arc<Mutex<HashSet<(ServerId, ConsoleKind)>>>,
}

impl Drop for ConsoleSession {
    fn drop(&mut self) {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(self.server_id.clone(), self.kind));
    }
}

/// Why a token could not be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("The token is invalid or has expired.")]
    Invalid,
    #[error("Another session is using this console.")]
    Busy,
    #[error("The server is not running.")]
    NotRunning,
}

impl Compute {
    /// A console URL's token for `kind` on a server of the caller's project (Nova's
    /// `os_compute_api:os-remote-consoles`, members and admins), answered as Nova's libvirt
    /// driver answers: 409 while the server is building or being deleted, 400 "Unavailable
    /// console type" while it is not running, 501 when its backend has no such console.
    pub async fn remote_console(
        &self,
        ctx: &Context,
        id: &str,
        kind: ConsoleKind,
    ) -> Result<String> {
        let s = self.get_server(ctx, id).await?;
        if !ctx.can_write(&s.project_id) {
            return Err(Error::Forbidden(
                "Policy doesn't allow os_compute_api:os-remote-consoles to be performed.".into(),
            ));
        }
        let action = match kind {
            ConsoleKind::Serial => "get_serial_console",
            ConsoleKind::Vnc => "get_vnc_console",
        };
        if s.vm_state == VmState::Building || s.launched_at.is_none() {
            return Err(Error::Conflict(format!("Instance {} is not ready", s.id)));
        }
        if let Some(t) = s
            .task_state
            .filter(|t| matches!(t, TaskState::Deleting | TaskState::Migrating))
        {
            return Err(Error::Conflict(format!(
                "Cannot '{action}' instance {} while it is in task_state {}",
                s.id,
                t.as_str()
            )));
        }
        let unavailable =
            || Error::BadRequest(format!("Unavailable console type {}.", kind.as_str()));
        if s.power_state != PowerState::Running {
            return Err(unavailable());
        }
        let sid = s.id.clone();
        match self
            .blocking(&s.id, move |d| d.console_endpoint(&sid, kind))
            .await
        {
            Ok(_) => {}
            Err(DriverError::NotSupported(_)) => {
                return Err(Error::NotImplemented(
                    "The requested functionality is not supported.".into(),
                ));
            }
            Err(e) => {
                tracing::info!(server_id = %s.id, error = %e, "console unavailable");
                return Err(unavailable());
            }
        }
        let ttl = Duration::from_secs(self.cfg.console_token_ttl_secs.max(1));
        let token = self.consoles.issue(s.id.clone(), kind, ttl);
        tracing::info!(server_id = %s.id, kind = kind.as_str(), "console token issued");
        Ok(token)
    }

    /// The compute host's name, as console connection details name it.
    pub fn console_host(&self) -> &str {
        &self.cfg.host
    }

    /// What a console token grants (`os-console-auth-tokens`, admins only).
    pub async fn console_auth_token(&self, ctx: &Context, token: &str) -> Result<ConsoleGrant> {
        if !ctx.is_admin() {
            return Err(Error::Forbidden(
                "Policy doesn't allow os_compute_api:os-console-auth-tokens to be performed."
                    .into(),
            ));
        }
        self.consoles
            .lookup(token)
            .map(|(server_id, kind)| ConsoleGrant { server_id, kind })
            .ok_or_else(|| Error::NotFound("Token not found".into()))
    }

    /// Whether `token` grants `kind` on some server now, without opening a session (the
    /// console pages are served only with a token that can open their console).
    pub fn console_token_grants(&self, token: &str, kind: ConsoleKind) -> bool {
        self.consoles
            .lookup(token)
            .is_some_and(|(_, granted)| granted == kind)
    }

    /// Trades a token for an open session on its console, for the console proxy. The token
    /// is the only credential: it names the server and the kind, and must be unexpired; the
    /// console must have no other session open and the server must still be running.
    pub async fn open_console(
        &self,
        token: &str,
        kind: ConsoleKind,
    ) -> Result<ConsoleSession, OpenError> {
        let (server_id, granted) = self.consoles.lookup(token).ok_or(OpenError::Invalid)?;
        if granted != kind {
            return Err(OpenError::Invalid);
        }
        if !self
            .consoles
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((server_id.clone(), kind))
        {
            return Err(OpenError::Busy);
        }
        let session = |endpoint| ConsoleSession {
            server_id: server_id.clone(),
            kind,
            endpoint,
            open: self.consoles.open.clone(),
        };
        let sid = server_id.clone();
        // The session's guard is made before the backend is asked, so a failure releases it.
        let guard = session(ConsoleEndpoint::Unix(Default::default()));
        let endpoint = self
            .blocking(&server_id, move |d| d.console_endpoint(&sid, kind))
            .await
            .map_err(|_| OpenError::NotRunning)?;
        let mut s = guard;
        s.endpoint = endpoint;
        Ok(s)
    }
}
