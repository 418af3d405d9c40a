//! The listener on a real loopback socket: slowloris clients are cut off by the header
//! timeout, and while they hold every connection slot other clients are still served within
//! that bound.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use api::extract::ClientAddr;
use api::listener::{ListenerLimits, serve};
use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Server = (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
);

/// A server on 127.0.0.1 that answers `GET /` with the client address it saw and `POST /`
/// with the length of the body.
async fn start(limits: ListenerLimits) -> Server {
    let app = Router::new().route(
        "/",
        get(|ClientAddr(ip): ClientAddr| async move { format!("{ip:?}") })
            .post(|body: String| async move { body.len().to_string() }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(serve(listener, app, limits, async move {
        let _ = stopped.await;
    }));
    (addr, stop, served)
}

/// A slowloris client: half a request, then one more header line every 200 ms, for as long
/// as the server keeps the connection. Returns when the server has closed it.
async fn slowloris(addr: SocketAddr) -> Duration {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: onebox\r\n")
        .await
        .expect("start");
    let mut buf = [0u8; 512];
    loop {
        tokio::select! {
            r = s.read(&mut buf) => match r {
                // Closed (perhaps after a 408): the server let go.
                Ok(0) | Err(_) => return t0.elapsed(),
                Ok(_) => {}
            },
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if s.write_all(b"X-Trickle: a\r\n").await.is_err() {
                    return t0.elapsed();
                }
            }
        }
    }
}

/// One complete request; the status line and body of the answer.
async fn get_root(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: onebox\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("response");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_slowloris_is_dropped_after_the_header_timeout_and_blocks_no_one() {
    let (addr, stop, _served) = start(ListenerLimits {
        header_read_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        max_connections: 3,
    })
    .await;
    // With a slot free a client is served at once, and the handler sees its address.
    let answer = get_root(addr).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("Some(127.0.0.1)"), "{answer}");
    // Three slowloris clients take every slot.
    let t0 = Instant::now();
    let lorises: Vec<_> = (0..3).map(|_| tokio::spawn(slowloris(addr))).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A fourth client is still served: as soon as the header timeout frees a slot.
    let answer = tokio::time::timeout(Duration::from_secs(5), get_root(addr))
        .await
        .expect("served despite the slowloris clients");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // Each slowloris connection was cut off at about the timeout, trickling or not.
    for l in lorises {
        let held = tokio::time::timeout(Duration::from_secs(5), l)
            .await
            .expect("slowloris dropped")
            .expect("join");
        assert!(
            held >= Duration::from_millis(900) && held < Duration::from_secs(3),
            "{held:?}"
        );
    }
    let _ = stop.send(());
}

#[tokio::test]
async fn stalled_bodies_and_idle_connections_are_dropped_and_shutdown_waits_for_neither() {
    let (addr, stop, served) = start(ListenerLimits {
        header_read_timeout: Duration::from_secs(5),
        body_timeout: Duration::from_millis(500),
        max_connections: 8,
    })
    .await;
    // Headers promise a body that never comes: the connection does not stay held.
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: onebox\r\nConnection: close\r\nContent-Length: 100\r\n\r\nab",
    )
    .await
    .expect("request");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("connection ended");
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    let out = String::from_utf8_lossy(&out);
    assert!(!out.starts_with("HTTP/1.1 200"), "{out}");
    // A kept-alive connection left idle after its request is closed at the header timeout.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: onebox\r\n\r\n")
        .await
        .expect("request");
    let t0 = Instant::now();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("idle connection closed")
        .expect("read");
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    let idle = t0.elapsed();
    assert!(
        idle >= Duration::from_millis(4500) && idle < Duration::from_secs(8),
        "{idle:?}"
    );
    // An idle kept-alive client does not hold up shutdown.
    let _idle = TcpStream::connect(addr).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(3), served)
        .await
        .expect("serve returned")
        .expect("join");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}
