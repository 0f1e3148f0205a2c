//! `/api/v1/session`: the web page trades an API token for a session cookie (HttpOnly,
//! SameSite=Strict, `Secure` when configured) and gets the CSRF token its writes must carry.
//! Only SHA-256 hashes of the cookie value are stored.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::session_cookie;
use super::params::json_body;
use super::{ApiError, ApiState, Caller, SESSION_COOKIE};
use crate::runtime::token_hash;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    token: String,
}

#[derive(Serialize, ToSchema)]
pub struct SessionView {
    role: String,
    extension: Option<String>,
    /// Send as `X-CSRF-Token` with every write made with the cookie.
    csrf: Option<String>,
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

#[utoipa::path(post, path = "/api/v1/session", tag = "session", security(),
    request_body = SignIn,
    responses(
        (status = 200, body = SessionView, description = "Set-Cookie: openline_session (HttpOnly, SameSite=Strict)"),
        (status = 401, description = "auth.invalid_token"),
    ))]
pub async fn sign_in(State(state): State<ApiState>, body: Bytes) -> Result<Response, ApiError> {
    let b: SignIn = json_body(&body)?;
    let token_sha256 = token_hash(b.token.trim());
    let record = state
        .store()
        .api_token(&token_sha256)
        .await?
        .ok_or_else(|| ApiError::unauthorized("auth.invalid_token", "unknown or revoked token"))?;
    let id = random_hex();
    let csrf = random_hex();
    let now = Utc::now();
    let options = state.options();
    let ttl =
        chrono::Duration::from_std(options.session_ttl).unwrap_or(chrono::Duration::hours(12));
    state
        .store()
        .insert_session(&token_hash(&id), &token_sha256, &csrf, now, now + ttl)
        .await?;
    let secure = if options.secure_cookie {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        ttl.num_seconds()
    );
    let mut response = Json(SessionView {
        role: record.role,
        extension: record.extension,
        csrf: Some(csrf),
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// Who is signed in, and the session's CSRF token (so a reloaded page can write again).
#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses((status = 200, body = SessionView), (status = 401)))]
pub async fn current(
    caller: Caller,
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<SessionView>, ApiError> {
    let csrf = match session_cookie(&headers) {
        Some(cookie) if caller.principal.starts_with("session:") => state
            .store()
            .session(&token_hash(&cookie), Utc::now())
            .await?
            .map(|s| s.csrf),
        _ => None,
    };
    Ok(Json(SessionView {
        role: caller.role.as_str().into(),
        extension: caller.extension,
        csrf,
    }))
}

#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses((status = 204, description = "signed out; the cookie is cleared")))]
pub async fn sign_out(
    _caller: Caller,
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(cookie) = session_cookie(&headers) {
        state.store().delete_session(&token_hash(&cookie)).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&clear) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}
