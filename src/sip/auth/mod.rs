//! SIP digest authentication (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760): algorithms, errors and re-exports.
//!
//! Pure code: no IO, no clock. Wall-clock seconds (`unix_secs`) and monotonic instants (`now`) are passed in.
//!
//! - [`header`]: `WWW-Authenticate` / `Authorization` values ([`Challenge`], [`Credentials`]).
//! - [`digest`]: HA1 / response computation, server-side [`verify`], client-side [`authorize`].
//! - [`nonce`]: stateless HMAC nonces ([`NonceIssuer`]).
//! - [`throttle`]: brute-force throttle per (source IP, username) ([`AuthThrottle`]).
//! - [`replay`]: nonce counts already used, per node ([`replay::NonceCounts`]).
//! - [`scanner`]: known SIP scanner User-Agents ([`is_scanner_user_agent`]).
//!
//! Only `qop=auth` (or no qop, RFC 2069 compatibility) is supported; `auth-int` and the `-sess`
//! algorithm variants are rejected.

pub mod digest;
pub mod header;
pub mod nonce;
mod params;
pub mod replay;
pub mod scanner;
pub mod throttle;

pub use digest::{Verdict, authorize, ha1, response, verify};
pub use header::{Challenge, Credentials};
pub use nonce::{NonceCheck, NonceIssuer};
pub use scanner::is_scanner_user_agent;
pub use throttle::AuthThrottle;

/// Digest hash algorithm (RFC 7616 §3.3, RFC 8760 for SIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `MD5`, the RFC 2617 default when the `algorithm` parameter is absent.
    Md5,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
}

impl Algorithm {
    /// The token as written on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Case-insensitive parse of `MD5` / `SHA-256`. The `-sess` variants and anything else give `None`.
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }
}

/// Longest attacker-supplied text kept inside an [`AuthError`] (bytes, cut at a char boundary).
const MAX_ERROR_TEXT: usize = 32;

/// Why an authentication header could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// The header value is empty or only whitespace.
    #[error("empty authentication header")]
    Empty,
    /// A scheme other than `Digest` (e.g. `Basic`).
    #[error("unsupported authentication scheme {0:?}")]
    UnsupportedScheme(String),
    /// The auth-param list does not follow the grammar.
    #[error("malformed digest header: {reason}")]
    Malformed { reason: &'static str },
    /// A required parameter is absent.
    #[error("missing digest parameter {0}")]
    MissingParam(&'static str),
    /// A parameter appears twice (names compared case-insensitively; the name is lowercased).
    #[error("duplicate digest parameter {0:?}")]
    DuplicateParam(String),
    /// `nc` is not exactly 8 hex digits.
    #[error("nonce count must be exactly 8 hex digits")]
    BadNonceCount,
    /// An algorithm other than `MD5` / `SHA-256` (including the `-sess` variants).
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
}

impl AuthError {
    /// Stable dotted code for logs and call records.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Empty => "auth.empty",
            AuthError::UnsupportedScheme(_) => "auth.unsupported_scheme",
            AuthError::Malformed { .. } => "auth.malformed",
            AuthError::MissingParam(_) => "auth.missing_param",
            AuthError::DuplicateParam(_) => "auth.duplicate_param",
            AuthError::BadNonceCount => "auth.bad_nonce_count",
            AuthError::UnsupportedAlgorithm(_) => "auth.unsupported_algorithm",
        }
    }
}

/// Copies at most [`MAX_ERROR_TEXT`] bytes of `s` (at a char boundary) so errors stay small.
fn clip(s: &str) -> String {
    let mut end = s.len().min(MAX_ERROR_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_tokens() {
        assert_eq!(Algorithm::parse("MD5"), Some(Algorithm::Md5));
        assert_eq!(Algorithm::parse("md5"), Some(Algorithm::Md5));
        assert_eq!(Algorithm::parse("SHA-256"), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::parse("sha-256"), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::parse("MD5-sess"), None);
        assert_eq!(Algorithm::parse("SHA-256-sess"), None);
        assert_eq!(Algorithm::parse("SHA-512-256"), None);
        assert_eq!(Algorithm::parse(""), None);
        for a in [Algorithm::Md5, Algorithm::Sha256] {
            assert_eq!(Algorithm::parse(a.as_str()), Some(a));
        }
    }

    #[test]
    fn error_text_is_clipped_at_char_boundary() {
        let long = "é".repeat(100);
        let c = clip(&long);
        assert!(c.len() <= MAX_ERROR_TEXT);
        assert!(c.chars().all(|ch| ch == 'é'));
        assert_eq!(clip("Basic"), "Basic");
        assert_eq!(AuthError::BadNonceCount.code(), "auth.bad_nonce_count");
    }
}
