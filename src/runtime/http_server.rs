//! The HTTP listener: the axum router served by hyper directly, with the limits `axum::serve`
//! cannot set. A request head must arrive within `[http] header_timeout` (a head sent a byte at
//! a time no longer holds a connection; hyper's timer also closes keep-alive connections left
//! idle that long), and open connections are capped in total and per source address
//! (`TcpLimits`, as for SIP over TCP), closed on arrival past a cap. Shutdown stops accepting and
//! lets requests in flight finish (hyper's graceful shutdown).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
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
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
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
