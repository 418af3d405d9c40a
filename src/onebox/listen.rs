//! The API's listeners: `listen` (HTTPS when `[api] tls_cert`/`tls_key` are set, else plain
//! HTTP) and, when configured, `[api] plain_listen`, plain HTTP on loopback for local tools.
//!
//! TLS handshakes run in tasks of their own, bounded in number and in time, so a client that
//! opens connections and never completes a handshake holds up no one else; only finished
//! handshakes reach the HTTP server. Requests that came over TLS carry
//! `X-Forwarded-Proto: https` (whatever the client sent), so that links and the service
//! catalog name the scheme the client used.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use api::listener::ListenerLimits;
use axum::Router;
use axum::http::{HeaderValue, Request};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::Config;

/// How long a client has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; further connections wait to start theirs.
const HANDSHAKES_IN_FLIGHT: usize = 256;

/// The bound listeners, before they serve.
pub struct Listeners {
    main: Main,
    plain: Option<TcpListener>,
}

enum Main {
    Plain(TcpListener),
    Tls(TlsListener),
}

impl Listeners {
    /// Binds `listen` (with TLS when configured, the certificate created first when the
    /// configuration names files that do not exist) and `[api] plain_listen`.
    pub async fn bind(cfg: &Config) -> Result<Self> {
        cfg.check()?;
        let tcp = TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("listening on {}", cfg.listen))?;
        let main = match cfg.api.tls_files()? {
            Some((cert, key)) => {
                if let crate::tls::Outcome::Issued { new_ca } = crate::tls::ensure_certificate(cfg)?
                {
                    tracing::info!(cert = %cert.display(), new_ca, "created the TLS certificate");
                }
                let config = crate::tls::server_config(cert, key)?;
                Main::Tls(TlsListener::new(tcp, TlsAcceptor::from(config))?)
            }
            None => Main::Plain(tcp),
        };
        let plain = match cfg.api.plain_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("[api] plain_listen {addr}"))?,
            ),
            None => None,
        };
        Ok(Self { main, plain })
    }

    /// The address `listen` is bound to, and whether it serves HTTPS.
    pub fn main_addr(&self) -> Result<(SocketAddr, bool)> {
        Ok(match &self.main {
            Main::Plain(l) => (l.local_addr()?, false),
            Main::Tls(l) => (l.addr, true),
        })
    }

    /// The plain loopback listener's address, when there is one.
    pub fn plain_addr(&self) -> Result<Option<SocketAddr>> {
        Ok(match &self.plain {
            Some(l) => Some(l.local_addr()?),
            None => None,
        })
    }

    /// Serves `app` on every listener, each client within `limits`, until `shutdown`
    /// completes, then lets requests in progress finish.
    pub async fn serve(
        self,
        app: Router,
        limits: ListenerLimits,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let mut servers = tokio::task::JoinSet::new();
        match self.main {
            Main::Plain(l) => {
                servers.spawn(api::listener::serve(
                    api::listener::tcp(l),
                    plain_app(app.clone()),
                    limits.clone(),
                    stopped(),
                ));
            }
            Main::Tls(l) => {
                servers.spawn(api::listener::serve(
                    l,
                    tls_app(app.clone()),
                    limits.clone(),
                    stopped(),
                ));
            }
        }
        if let Some(l) = self.plain {
            servers.spawn(api::listener::serve(
                api::listener::tcp(l),
                plain_app(app),
                limits,
                stopped(),
            ));
        }
        let mut result = Ok(());
        tokio::select! {
            () = shutdown => {}
            Some(done) = servers.join_next() => {
                // A listener ended on its own: stop the others too.
                result = done.context("joining a listener");
            }
        }
        let _ = stop_tx.send(true);
        while let Some(done) = servers.join_next().await {
            let r = done.context("joining a listener");
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

const FORWARDED_PROTO: &str = "x-forwarded-proto";

/// Requests over TLS say so, whatever the client claimed.
fn tls_app(app: Router) -> Router {
    app.layer(axum::middleware::map_request(
        |mut req: Request<axum::body::Body>| async move {
            req.headers_mut()
                .insert(FORWARDED_PROTO, HeaderValue::from_static("https"));
            req
        },
    ))
}

/// Requests over plain HTTP cannot claim TLS either (a reverse proxy in front of onebox
/// sets `public_url` instead).
fn plain_app(app: Router) -> Router {
    app.layer(axum::middleware::map_request(
        |mut req: Request<axum::body::Body>| async move {
            req.headers_mut().remove(FORWARDED_PROTO);
            req
        },
    ))
}

/// A TCP listener whose connections are handed on once their TLS handshake completed.
pub struct TlsListener {
    addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    acceptor_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> Result<Self> {
        let addr = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor_task = tokio::spawn(accept_loop(tcp, acceptor, tx));
        Ok(Self {
            addr,
            ready,
            acceptor_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor_task.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let slots = Arc::new(Semaphore::new(HANDSHAKES_IN_FLIGHT));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match tcp.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "accepting a connection");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if ready.is_closed() {
            return;
        }
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop ended (only when the runtime shuts down): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
