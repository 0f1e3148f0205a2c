//! Typed `WWW-Authenticate` / `Proxy-Authenticate` challenges and `Authorization` / `Proxy-Authorization`
//! credentials (RFC 3261 §22.4 and §25.1, RFC 2617 §3.2, RFC 7616 §3.3–3.4).

use std::fmt::Write as _;

use super::params::{Params, parse_digest, quote};
use super::{Algorithm, AuthError, clip};

/// Server challenge (`WWW-Authenticate` / `Proxy-Authenticate` value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// The server offers `qop=auth`.
    pub qop_auth: bool,
    /// The previous nonce was authentic but expired: retry with the new one without asking the user.
    pub stale: bool,
}

impl Challenge {
    /// `Digest realm="…", nonce="…", opaque="…", algorithm=SHA-256, qop="auth", stale=true`
    /// (`opaque`, `qop` and `stale` only when set).
    pub fn to_header_value(&self) -> String {
        let mut out = format!(
            "Digest realm={}, nonce={}",
            quote(&self.realm),
            quote(&self.nonce)
        );
        if let Some(opaque) = &self.opaque {
            let _ = write!(out, ", opaque={}", quote(opaque));
        }
        let _ = write!(out, ", algorithm={}", self.algorithm.as_str());
        if self.qop_auth {
            out.push_str(", qop=\"auth\"");
        }
        if self.stale {
            out.push_str(", stale=true");
        }
        out
    }

    /// Client side: parses a challenge. Unknown parameters (`domain`, `charset`, `userhash`…) are ignored;
    /// `qop` is a comma-separated list and `qop_auth` is true when it contains `auth`.
    pub fn parse(value: &str) -> Result<Challenge, AuthError> {
        let params = parse_digest(value)?;
        Ok(Challenge {
            realm: params.require("realm")?.to_owned(),
            nonce: params.require("nonce")?.to_owned(),
            opaque: params.get("opaque").map(str::to_owned),
            algorithm: algorithm(&params)?,
            qop_auth: params.get("qop").is_some_and(|list| {
                list.split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth"))
            }),
            stale: params
                .get("stale")
                .is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }
}

/// Parsed `Authorization` / `Proxy-Authorization` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    /// `MD5` when the parameter is absent.
    pub algorithm: Algorithm,
    pub cnonce: Option<String>,
    /// Nonce count, written on the wire as exactly 8 hex digits (`00000010` is 16).
    pub nc: Option<u32>,
    pub qop: Option<String>,
    pub opaque: Option<String>,
}

impl Credentials {
    /// Parses credentials. Requires `username`, `realm`, `nonce`, `uri` and `response`; when `qop` is
    /// present `cnonce` and `nc` are required too, and `nc` must be exactly 8 hex digits.
    pub fn parse(value: &str) -> Result<Credentials, AuthError> {
        let params = parse_digest(value)?;
        let username = params.require("username")?.to_owned();
        let realm = params.require("realm")?.to_owned();
        let nonce = params.require("nonce")?.to_owned();
        let uri = params.require("uri")?.to_owned();
        let response = params.require("response")?.to_owned();
        let algorithm = algorithm(&params)?;
        let nc = params.get("nc").map(parse_nc).transpose()?;
        let cnonce = params.get("cnonce").map(str::to_owned);
        let qop = params.get("qop").map(str::to_owned);
        if qop.is_some() {
            if cnonce.is_none() {
                return Err(AuthError::MissingParam("cnonce"));
            }
            if nc.is_none() {
                return Err(AuthError::MissingParam("nc"));
            }
        }
        Ok(Credentials {
            username,
            realm,
            nonce,
            uri,
            response,
            algorithm,
            cnonce,
            nc,
            qop,
            opaque: params.get("opaque").map(str::to_owned),
        })
    }

    /// Serialises as an `Authorization` value (`nc` as 8 lowercase hex digits, `qop` unquoted).
    pub fn to_header_value(&self) -> String {
        let mut out = format!(
            "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
            quote(&self.username),
            quote(&self.realm),
            quote(&self.nonce),
            quote(&self.uri),
            quote(&self.response),
            self.algorithm.as_str()
        );
        if let Some(cnonce) = &self.cnonce {
            let _ = write!(out, ", cnonce={}", quote(cnonce));
        }
        if let Some(nc) = self.nc {
            let _ = write!(out, ", nc={nc:08x}");
        }
        if let Some(qop) = &self.qop {
            let is_token =
                !qop.is_empty() && qop.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if is_token {
                let _ = write!(out, ", qop={qop}");
            } else {
                let _ = write!(out, ", qop={}", quote(qop));
            }
        }
        if let Some(opaque) = &self.opaque {
            let _ = write!(out, ", opaque={}", quote(opaque));
        }
        out
    }
}

/// `algorithm` parameter; `MD5` when absent.
fn algorithm(params: &Params) -> Result<Algorithm, AuthError> {
    match params.get("algorithm") {
        None => Ok(Algorithm::Md5),
        Some(a) => Algorithm::parse(a).ok_or_else(|| AuthError::UnsupportedAlgorithm(clip(a))),
    }
}

/// `nc-value = 8LHEX` (RFC 2617 §3.2.2): exactly 8 hex digits, read as hexadecimal.
fn parse_nc(s: &str) -> Result<u32, AuthError> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AuthError::BadNonceCount);
    }
    u32::from_str_radix(s, 16).map_err(|_| AuthError::BadNonceCount)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC2617_AUTH: &str = r#"Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#;

    fn creds_with(extra: &str) -> Result<Credentials, AuthError> {
        Credentials::parse(&format!(
            r#"Digest username="u", realm="r", nonce="n", uri="sip:a@b", response="x"{extra}"#
        ))
    }

    #[test]
    fn parses_rfc2617_example() {
        let c = Credentials::parse(RFC2617_AUTH).unwrap();
        assert_eq!(c.username, "Mufasa");
        assert_eq!(c.realm, "testrealm@host.com");
        assert_eq!(c.nonce, "dcd98b7102dd2f0e8b11d0f600bfb0c093");
        assert_eq!(c.uri, "/dir/index.html");
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert_eq!(c.nc, Some(1));
        assert_eq!(c.cnonce.as_deref(), Some("0a4f113b"));
        assert_eq!(c.response, "6629fae49393a05397450978507c4ef1");
        assert_eq!(
            c.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        assert_eq!(c.algorithm, Algorithm::Md5);
    }

    #[test]
    fn nonce_count_is_hex() {
        let nc = |v: &str| creds_with(&format!(r#", qop=auth, cnonce="c", nc={v}"#)).map(|c| c.nc);
        assert_eq!(nc("00000001"), Ok(Some(1)));
        assert_eq!(nc("00000010"), Ok(Some(16)));
        assert_eq!(nc("0000000a"), Ok(Some(10)));
        assert_eq!(nc("0000000A"), Ok(Some(10)));
        assert_eq!(nc("ffffffff"), Ok(Some(u32::MAX)));
        assert_eq!(nc("\"00000002\""), Ok(Some(2)));
        for bad in [
            "0000001",
            "000000001",
            "0000000g",
            "1",
            "+0000001",
            "-0000001",
            "\"\"",
        ] {
            assert_eq!(nc(bad), Err(AuthError::BadNonceCount), "{bad}");
        }
    }

    #[test]
    fn algorithm_param() {
        assert_eq!(creds_with("").unwrap().algorithm, Algorithm::Md5);
        assert_eq!(
            creds_with(", algorithm=md5").unwrap().algorithm,
            Algorithm::Md5
        );
        assert_eq!(
            creds_with(", algorithm=SHA-256").unwrap().algorithm,
            Algorithm::Sha256
        );
        assert_eq!(
            creds_with(", algorithm=\"SHA-256\"").unwrap().algorithm,
            Algorithm::Sha256
        );
        assert_eq!(
            creds_with(", algorithm=MD5-sess").unwrap_err(),
            AuthError::UnsupportedAlgorithm("MD5-sess".into())
        );
        assert_eq!(
            creds_with(", algorithm=SHA-256-sess").unwrap_err(),
            AuthError::UnsupportedAlgorithm("SHA-256-sess".into())
        );
    }

    #[test]
    fn missing_params() {
        let full = [
            ("username", r#"username="u""#),
            ("realm", r#"realm="r""#),
            ("nonce", r#"nonce="n""#),
            ("uri", r#"uri="sip:a@b""#),
            ("response", r#"response="x""#),
        ];
        for (skip, _) in full {
            let v = full
                .iter()
                .filter(|(n, _)| *n != skip)
                .map(|(_, p)| *p)
                .collect::<Vec<_>>()
                .join(", ");
            assert_eq!(
                Credentials::parse(&format!("Digest {v}")),
                Err(AuthError::MissingParam(skip))
            );
        }
        assert_eq!(
            creds_with(", qop=auth, nc=00000001"),
            Err(AuthError::MissingParam("cnonce"))
        );
        assert_eq!(
            creds_with(r#", qop=auth, cnonce="c""#),
            Err(AuthError::MissingParam("nc"))
        );
        assert_eq!(
            Credentials::parse("Digest"),
            Err(AuthError::MissingParam("username"))
        );
    }

    #[test]
    fn duplicates_and_schemes() {
        assert_eq!(
            creds_with(r#", Realm="other""#),
            Err(AuthError::DuplicateParam("realm".into()))
        );
        assert_eq!(
            Credentials::parse(r#"Basic dXNlcjpwYXNz"#),
            Err(AuthError::UnsupportedScheme("Basic".into()))
        );
        assert_eq!(
            Challenge::parse(r#"Negotiate abc"#),
            Err(AuthError::UnsupportedScheme("Negotiate".into()))
        );
    }

    #[test]
    fn quoted_values_with_escapes_and_commas() {
        let c = Credentials::parse(
            r#"Digest username="a\"b,c", realm="x, y", nonce="n\\", uri="sip:1@h;a=\"b\"", response="r""#,
        )
        .unwrap();
        assert_eq!(c.username, "a\"b,c");
        assert_eq!(c.realm, "x, y");
        assert_eq!(c.nonce, "n\\");
        assert_eq!(c.uri, "sip:1@h;a=\"b\"");
        let back = Credentials::parse(&c.to_header_value()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn challenge_round_trip() {
        let mut ch = Challenge {
            realm: "pbx.example.com".into(),
            nonce: "abc\"def".into(),
            opaque: Some("op, aque".into()),
            algorithm: Algorithm::Sha256,
            qop_auth: true,
            stale: true,
        };
        assert_eq!(
            ch.to_header_value(),
            r#"Digest realm="pbx.example.com", nonce="abc\"def", opaque="op, aque", algorithm=SHA-256, qop="auth", stale=true"#
        );
        assert_eq!(Challenge::parse(&ch.to_header_value()), Ok(ch.clone()));
        ch.opaque = None;
        ch.qop_auth = false;
        ch.stale = false;
        ch.algorithm = Algorithm::Md5;
        assert_eq!(
            ch.to_header_value(),
            r#"Digest realm="pbx.example.com", nonce="abc\"def", algorithm=MD5"#
        );
        assert_eq!(Challenge::parse(&ch.to_header_value()), Ok(ch));
    }

    #[test]
    fn challenge_parse_variants() {
        let ch = Challenge::parse(
            r#"digest realm="r",domain="sip:x", nonce="n", qop="auth-int, auth", stale=TRUE, userhash=true, charset=UTF-8"#,
        )
        .unwrap();
        assert!(ch.qop_auth);
        assert!(ch.stale);
        assert_eq!(ch.algorithm, Algorithm::Md5);
        assert_eq!(ch.opaque, None);
        let ch = Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth-int", stale=false"#)
            .unwrap();
        assert!(!ch.qop_auth);
        assert!(!ch.stale);
        assert_eq!(
            Challenge::parse(r#"Digest realm="r""#),
            Err(AuthError::MissingParam("nonce"))
        );
        assert_eq!(
            Challenge::parse(r#"Digest nonce="n""#),
            Err(AuthError::MissingParam("realm"))
        );
        assert_eq!(
            Challenge::parse(r#"Digest realm="r", nonce="n", algorithm=SHA-512-256"#),
            Err(AuthError::UnsupportedAlgorithm("SHA-512-256".into()))
        );
    }

    #[test]
    fn truncations_never_panic() {
        let valid = Credentials::parse(RFC2617_AUTH).unwrap().to_header_value();
        let extended = format!("{valid}, algorithm=SHA-256 ünï \"\\");
        for src in [RFC2617_AUTH, valid.as_str(), extended.as_str()] {
            for end in (0..=src.len()).filter(|&i| src.is_char_boundary(i)) {
                let s = src.get(..end).unwrap_or_default();
                let _ = Credentials::parse(s);
                let _ = Challenge::parse(s);
                let tail = src.get(end..).unwrap_or_default();
                let _ = Credentials::parse(tail);
                let _ = Challenge::parse(tail);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        // Deterministic xorshift so failures reproduce.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet: &[u8] =
            b"Digest usernamrlofqp=\",\\ \t\r\n0123456789abcdefABCDEF-/:;@\x00\x7f";
        for round in 0..20_000u32 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 80) as usize;
            let mut bytes = Vec::with_capacity(len + 7);
            if round % 2 == 0 {
                bytes.extend_from_slice(b"Digest ");
            }
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let idx = (state % alphabet.len() as u64) as usize;
                bytes.push(alphabet.get(idx).copied().unwrap_or(b'x'));
            }
            let s = String::from_utf8_lossy(&bytes);
            let _ = Credentials::parse(&s);
            let _ = Challenge::parse(&s);
        }
    }
}
