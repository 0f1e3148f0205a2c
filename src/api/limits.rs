//! Every HTTP request is held to a deadline and to caps on how many run at once, in total and
//! from one address, so a slow or flooding client cannot pin the API's workers or the database
//! pool: past a cap a request is answered 503 at once (`server.busy`, `Retry-After: 1`), past the
//! deadline 504 `http.timeout` (which also ends a body sent a byte at a time; no Retry-After,
//! as the request may have been partly carried out). The deadline grows with a declared body
//! past 1 MiB (at least 64 KiB/s, up to the largest body a route takes), so an audio upload on
//! a slow link is not cut off and a made-up `Content-Length` buys nothing.
//! `/healthz` and `/metrics` are not capped, so monitoring still sees a busy node as up. The
//! deadline covers producing the response: a recording's body streams after it, and the event
//! WebSocket lives after its upgrade. Behind a reverse proxy every request comes from the
//! proxy's address: raise the per-source cap to the total there.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::ApiError;
use crate::runtime::tcp_limits::TcpLimits;

#[derive(Debug, Clone)]
pub struct HttpLimits {
    permits: Arc<Semaphore>,
    /// Requests in progress per source address (the same counting as SIP/HTTP connections;
    /// its total is the semaphore's job).
    by_source: TcpLimits,
    timeout: Duration,
    /// The largest body any route takes: a declared length beyond it buys no extra time.
    max_body: u64,
}

impl HttpLimits {
    pub fn new(
        max_concurrent: usize,
        max_per_source: usize,
        timeout: Duration,
        max_body: u64,
    ) -> HttpLimits {
        HttpLimits {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            by_source: TcpLimits::new(usize::MAX, max_per_source.max(1)),
            timeout,
            max_body,
        }
    }

    /// The deadline for a request declaring `body_bytes`: at least 64 KiB/s for big bodies.
    fn deadline_for(&self, body_bytes: Option<u64>) -> Duration {
        let declared = body_bytes.unwrap_or(0).min(self.max_body);
        let slow_link = Duration::from_secs(declared / (64 * 1024));
        self.timeout.max(slow_link)
    }
}

/// Paths monitoring reads: never refused for being busy.
fn uncapped(path: &str) -> bool {
    matches!(path, "/healthz" | "/metrics")
}

pub async fn guard(State(limits): State<HttpLimits>, request: Request, next: Next) -> Response {
    let busy = |reason: &'static str| {
        metrics::counter!("openline_http_refused_total", "reason" => reason).increment(1);
        retry_soon(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server.busy",
            "too many requests at once; retry in a moment",
        ))
    };
    let mut places = None;
    if !uncapped(request.uri().path()) {
        // Tests that drive the router without a socket have no peer address.
        let source = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let from_source = match source {
            Some(ip) => match limits.by_source.admit(ip) {
                Ok(place) => Some(place),
                Err(_) => return busy("source_busy"),
            },
            None => None,
        };
        let Ok(permit) = limits.permits.clone().try_acquire_owned() else {
            return busy("busy");
        };
        places = Some((permit, from_source));
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let deadline = limits.deadline_for(declared);
    let response = tokio::time::timeout(deadline, next.run(request)).await;
    drop(places);
    match response {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("openline_http_refused_total", "reason" => "timeout").increment(1);
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "http.timeout",
                &format!("the request was not done within {} s", deadline.as_secs()),
            )
            .into_response()
        }
    }
}

fn retry_soon(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
