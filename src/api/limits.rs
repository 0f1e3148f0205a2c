//! Every HTTP request is held to a deadline and to a cap on how many run at once, so a slow or
//! flooding client cannot pin the API's workers or the database pool: past the cap a request is
//! answered 503 at once (`server.busy`, `Retry-After: 1`), past the deadline 503 `http.timeout`
//! (which also ends a body sent a byte at a time). `/healthz` and `/metrics` are not capped, so
//! monitoring still sees a busy node as up. The deadline covers producing the response: a
//! recording's body streams after it, and the event WebSocket lives after its upgrade.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::ApiError;

#[derive(Debug, Clone)]
pub struct HttpLimits {
    permits: Arc<Semaphore>,
    timeout: Duration,
}

impl HttpLimits {
    pub fn new(max_concurrent: usize, timeout: Duration) -> HttpLimits {
        HttpLimits {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            timeout,
        }
    }
}

/// Paths monitoring reads: never refused for being busy.
fn uncapped(path: &str) -> bool {
    matches!(path, "/healthz" | "/metrics")
}

pub async fn guard(State(limits): State<HttpLimits>, request: Request, next: Next) -> Response {
    let _permit = if uncapped(request.uri().path()) {
        None
    } else {
        match limits.permits.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                metrics::counter!("openline_http_refused_total", "reason" => "busy").increment(1);
                return retry_soon(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server.busy",
                    "too many requests at once; retry in a moment",
                ));
            }
        }
    };
    match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("openline_http_refused_total", "reason" => "timeout").increment(1);
            retry_soon(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "http.timeout",
                &format!(
                    "the request was not done within {} s",
                    limits.timeout.as_secs()
                ),
            ))
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
