//! The HTTP listener: the axum router served by hyper's HTTP/1.1 directly, with the limits
//! `axum::serve` cannot set. A connection must send its first byte, and then each request head
//! whole, within `[http] header_timeout` (a silent socket or a head sent a byte at a time no
//! longer holds a connection), and open connections are capped in total and per source address
//! (`TcpLimits`, as for SIP over TCP), closed on arrival past a cap. HTTP/2 is not offered:
//! browsers speak it only over TLS, which a reverse proxy terminates. Shutdown stops accepting
//! and lets requests in flight finish (hyper's graceful shutdown). An upgraded connection (the
//! event WebSocket) leaves the caps once upgraded: the streams are bounded by the request caps
//! at their start only.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::tcp_limits::TcpLimits;

/// What every HTTP connection is held to.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    pub limits: TcpLimits,
    pub header_timeout: Duration,
}

/// Serves `app` on `listener` until `stop`, then waits for the connections' requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    policy: HttpPolicy,
    stop: CancellationToken,
) {
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let slot = match policy.limits.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                metrics::counter!("openline_http_connections_refused_total", "reason" => refusal.as_str())
                    .increment(1);
                drop(stream);
                continue;
            }
        };
        let app = app.clone();
        let stop = stop.clone();
        let header_timeout = policy.header_timeout;
        connections.spawn(async move {
            let _slot = slot;
            connection(stream, peer, app, header_timeout, stop).await;
        });
    }
    connections.close();
    connections.wait().await;
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    header_timeout: Duration,
    stop: CancellationToken,
) {
    // The peer's address reaches the handlers (the per-source request cap).
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move {
            // The router never fails: its error type is `Infallible`.
            let response = match app.oneshot(request.map(Body::new)).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(response)
        }
    });
    // hyper's head timer starts with the head; a socket that never sends is cut here.
    let mut first = [0u8; 1];
    if !matches!(
        tokio::time::timeout(header_timeout, stream.peek(&mut first)).await,
        Ok(Ok(n)) if n > 0
    ) {
        return;
    }
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        done = conn.as_mut() => {
            if let Err(e) = done {
                tracing::debug!(error = %e, %peer, "http connection ended");
            }
        }
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
