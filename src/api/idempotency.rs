//! `Idempotency-Key` on POSTs: the first request with a key (per credential) runs and its answer
//! is kept for a day; a repeat with the same body gets that answer again (with
//! `Idempotent-Replayed: true`), a repeat with another body is 422, and one that arrives while the
//! first still runs is 409. Answers of 5xx are not kept, so the client may retry them.

use std::future::Future;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use sha2::{Digest, Sha256};

use super::{ApiError, ApiState, Caller};
use crate::store::IdempotencyState;

pub const HEADER: &str = "idempotency-key";
/// Answers larger than this are not kept (none of ours come close).
const MAX_KEPT_BODY: usize = 1 << 20;

/// Runs `handler` once per (credential, key); without the header it just runs it.
pub async fn once<F, Fut>(
    state: &ApiState,
    caller: &Caller,
    headers: &HeaderMap,
    route: &str,
    body: &[u8],
    handler: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Response, ApiError>>,
{
    let Some(key) = headers.get(HEADER) else {
        return handler().await;
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 200 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "request.invalid_idempotency_key",
                "Idempotency-Key must be 1 to 200 visible ASCII characters",
            )
        })?;
    let mut hash = Sha256::new();
    hash.update(route.as_bytes());
    hash.update([0]);
    hash.update(body);
    let fingerprint = hex::encode(hash.finalize());
    let store = state.store();
    let principal = &caller.principal;
    match store
        .claim_idempotency_key(principal, key, &fingerprint, Utc::now())
        .await?
    {
        IdempotencyState::Claimed => {}
        IdempotencyState::InProgress { .. } => {
            return Err(ApiError::conflict(
                "idempotency.in_progress",
                "a request with this Idempotency-Key is still running",
            ));
        }
        IdempotencyState::Done { request_sha256, .. } if request_sha256 != fingerprint => {
            return Err(reused());
        }
        IdempotencyState::Done { status, body, .. } => return Ok(replay(status, body)),
    }
    let response = match handler().await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    let status = response.status();
    if status.is_server_error() {
        store.release_idempotency_key(principal, key).await?;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_KEPT_BODY)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "answer too large",
            )
        })?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    store
        .finish_idempotency_key(principal, key, status.as_u16(), &text)
        .await?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

fn reused() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency.key_reused",
        "this Idempotency-Key was used for a different request",
    )
}

fn replay(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}
