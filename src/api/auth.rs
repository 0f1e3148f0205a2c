//! Who is calling: a bearer token (`Authorization: Bearer TOKEN`, stored as SHA-256) or the web
//! page's session cookie (HttpOnly, SameSite=Strict, only its SHA-256 stored). Requests that change
//! something and come with the cookie must carry the session's CSRF token in `X-CSRF-Token`.
//!
//! Roles: `admin` everything; `manager` reads calls, recordings and the CRM and edits CRM entries;
//! `operator` sees its own calls (its extension is caller, callee or the queue's operator who took
//! it), its own status and its own ratings.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use chrono::Utc;

use super::{ApiError, ApiState};
use crate::config::Role;
use crate::runtime::token_hash;
use crate::store::StoreError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "openline_session";
/// The header writes from the page carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    pub extension: Option<String>,
    /// Identifies the credential (token hash, or session hash): the scope of idempotency keys.
    pub principal: String,
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let missing =
            || ApiError::unauthorized("auth.missing_token", "send Authorization: Bearer TOKEN");
        let store = &state.inner.store;
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(missing)?;
            let hash = token_hash(token);
            let record = store.api_token(&hash).await?.ok_or_else(|| {
                ApiError::unauthorized("auth.invalid_token", "unknown or revoked token")
            })?;
            return caller(&record.role, record.extension, hash);
        }
        let Some(cookie) = session_cookie(&parts.headers) else {
            return Err(missing());
        };
        let hash = token_hash(&cookie);
        let session = store
            .session(&hash, Utc::now())
            .await?
            .ok_or_else(|| ApiError::unauthorized("auth.session_expired", "sign in again"))?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !constant_time_eq(sent.as_bytes(), session.csrf.as_bytes()) {
                return Err(ApiError::forbidden(
                    "auth.csrf",
                    "writes from the web page need the session's X-CSRF-Token",
                ));
            }
        }
        caller(
            &session.token.role,
            session.token.extension,
            format!("session:{hash}"),
        )
    }
}

fn caller(role: &str, extension: Option<String>, principal: String) -> Result<Caller, ApiError> {
    let role = Role::parse(role)
        .ok_or_else(|| ApiError::unauthorized("auth.invalid_token", "token has an unknown role"))?;
    Ok(Caller {
        role,
        extension,
        principal,
    })
}

/// The value of the session cookie, if the request has one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Caller {
    /// Whether the credential this caller came with still grants access now: the session is
    /// unexpired and not signed out, the token not revoked. `Err` when the store cannot tell.
    pub async fn still_valid(&self, store: &crate::store::Store) -> Result<bool, StoreError> {
        match self.principal.strip_prefix("session:") {
            Some(hash) => Ok(store.session(hash, Utc::now()).await?.is_some()),
            None => Ok(store.api_token(&self.principal).await?.is_some()),
        }
    }

    fn forbidden(&self, what: &str) -> ApiError {
        ApiError::forbidden(
            "auth.forbidden",
            &format!("{} tokens cannot {what}", self.role.as_str()),
        )
    }

    /// Admins and managers.
    pub fn staff(&self, what: &str) -> Result<(), ApiError> {
        match self.role {
            Role::Admin | Role::Manager => Ok(()),
            Role::Operator => Err(self.forbidden(what)),
        }
    }

    /// Admins only.
    pub fn admin(&self, what: &str) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            _ => Err(self.forbidden(what)),
        }
    }

    /// The extension whose calls an operator is limited to; `None` for admins and managers.
    pub fn call_scope(&self) -> Option<&str> {
        match self.role {
            Role::Operator => Some(self.extension.as_deref().unwrap_or("")),
            _ => None,
        }
    }

    /// Whether a call with these parties (and the operator who took it from a queue) is visible
    /// to the caller.
    pub fn sees_call(&self, caller: &str, callee: &str, operator: Option<&str>) -> bool {
        match self.call_scope() {
            None => true,
            Some(ext) => {
                !ext.is_empty() && (caller == ext || callee == ext || operator == Some(ext))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_see_calls_of_their_extension_only() {
        let op = Caller {
            role: Role::Operator,
            extension: Some("101".into()),
            principal: String::new(),
        };
        assert!(op.sees_call("+380441234567", "101", None));
        assert!(!op.sees_call("+380441234567", "100", None));
        assert!(op.sees_call("+380441234567", "100", Some("101")));
        assert!(!op.sees_call("+380441234567", "100", Some("102")));
        assert!(op.staff("x").is_err());
        let manager = Caller {
            role: Role::Manager,
            extension: None,
            principal: String::new(),
        };
        assert!(manager.sees_call("a", "b", None));
        assert!(manager.admin("x").is_err());
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
    }
}
