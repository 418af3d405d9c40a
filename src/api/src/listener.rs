//! The HTTP listener: accepts connections and serves the router on each, within bounds a slow
//! or idle client cannot stretch.
//!
//! - At most `max_connections` connections are served at once; further clients wait in the
//!   kernel's accept queue until one ends.
//! - A request's headers must arrive within `header_read_timeout` of the connection being
//!   ready for them (also the keep-alive idle time between requests): a slowloris client that
//!   trickles header bytes is dropped when it runs out, however steadily it trickles.
//! - A request body that sends nothing for `body_timeout` fails the request.
//!
//! Each request carries the client's address as [`axum::extract::ConnectInfo`], which the
//! per-source limits of the identity service read.
//!
//! [`serve_connection`] serves one accepted stream of any kind (plain TCP here; a TLS stream
//! wrapped around it works the same), so a TLS acceptor only adds its handshake in front.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower_http::timeout::TimeoutBody;

/// How long a client may take, and how many may be served at once.
#[derive(Clone, Debug)]
pub struct ListenerLimits {
    /// Time for a request's headers to arrive, counted from when the connection is ready for
    /// them (so also the longest a kept-alive connection idles between requests).
    pub header_read_timeout: Duration,
    /// Longest pause within a request body.
    pub body_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// Serves `app` on `listener` (plain TCP, or a listener that hands on finished TLS
/// handshakes) until `shutdown` completes; then stops accepting, lets every open connection
/// finish the request it is serving, and returns.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    limits: ListenerLimits,
    shutdown: impl Future<Output = ()> + Send,
) where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        // The listener retries failed accepts itself (out of file descriptors, typically).
        let (io, remote) = tokio::select! {
            c = listener.accept() => c,
            () = &mut shutdown => break,
        };
        let (app, limits, stop) = (app.clone(), limits.clone(), stop_rx.clone());
        tokio::spawn(async move {
            serve_connection(TokioIo::new(io), remote, app, &limits, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every slot back means every connection has ended.
    let _ = slots
        .acquire_many(u32::try_from(max).unwrap_or(u32::MAX))
        .await;
}

/// A plain TCP listener whose connections send small responses at once (`TCP_NODELAY`).
pub fn tcp(listener: TcpListener) -> impl axum::serve::Listener<Addr = SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
    })
}

/// Serves HTTP/1.1 on one accepted stream from `remote` until the client goes, a limit ends
/// it, or `stop` turns true (then the request in progress finishes first).
pub async fn serve_connection<I>(
    io: I,
    remote: SocketAddr,
    app: Router,
    limits: &ListenerLimits,
    mut stop: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let body_timeout = limits.body_timeout;
    let svc = tower::ServiceExt::map_request(app, move |req: Request<Incoming>| {
        let mut req = req.map(|b| TimeoutBody::new(body_timeout, b));
        req.extensions_mut().insert(ConnectInfo(remote));
        req
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let conn = builder
        .serve_connection(io, TowerToHyperService::new(svc))
        .with_upgrades();
    tokio::pin!(conn);
    let stopping = tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%remote, error = %e, "connection ended");
            }
            false
        }
        _ = stop.wait_for(|s| *s) => true,
    };
    if stopping {
        conn.as_mut().graceful_shutdown();
        if let Err(e) = conn.await {
            tracing::debug!(%remote, error = %e, "connection ended during shutdown");
        }
    }
}
