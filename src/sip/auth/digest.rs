//! Digest computation (RFC 7616 §3.4.1–3.4.2, RFC 2617 §3.2.2), server-side verification and
//! client-side answers to challenges (RFC 3261 §22.2–22.4).

use md5::Md5;
use sha2::{Digest, Sha256};

use super::{Algorithm, Challenge, Credentials, NonceCheck, NonceIssuer};

/// Result of checking credentials against the stored HA1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Wrong password, unknown user, or a response that cannot be checked (e.g. `qop=auth-int`).
    WrongPassword,
    /// Correct response to an authentic but expired nonce: re-challenge with `stale=true`.
    StaleNonce,
    /// The nonce was not issued by us (forged, garbled, other realm, from the future).
    BadNonce,
    RealmMismatch,
    UriMismatch,
}

/// Stand-in HA1 values for unknown users, one per digest length.
const DUMMY_HA1_MD5: &str = "00000000000000000000000000000000";
const DUMMY_HA1_SHA256: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn feed<D: Digest>(mut d: D, parts: &[&[u8]]) -> String {
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            d.update(b":");
        }
        d.update(part);
    }
    hex::encode(d.finalize())
}

/// `H(p1:p2:…)` as lowercase hex.
fn h(alg: Algorithm, parts: &[&[u8]]) -> String {
    match alg {
        Algorithm::Md5 => feed(Md5::new(), parts),
        Algorithm::Sha256 => feed(Sha256::new(), parts),
    }
}

/// `HA1 = H(username:realm:password)`, lowercase hex.
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    h(
        alg,
        &[username.as_bytes(), realm.as_bytes(), password.as_bytes()],
    )
}

/// Request digest (RFC 7616 §3.4.1), lowercase hex. `HA2 = H(method:uri)`; with `qop_auth = Some((nc, cnonce))`
/// the result is `KD(HA1, nonce:nc:cnonce:auth:HA2)` with `nc` as 8 lowercase hex digits, otherwise the
/// RFC 2069 form `KD(HA1, nonce:HA2)`.
pub fn response(
    alg: Algorithm,
    ha1: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop_auth: Option<(u32, &str)>,
) -> String {
    let ha2 = h(alg, &[method.as_bytes(), uri.as_bytes()]);
    match qop_auth {
        Some((nc, cnonce)) => {
            let nc = format!("{nc:08x}");
            h(
                alg,
                &[
                    ha1.as_bytes(),
                    nonce.as_bytes(),
                    nc.as_bytes(),
                    cnonce.as_bytes(),
                    b"auth",
                    ha2.as_bytes(),
                ],
            )
        }
        None => h(alg, &[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]),
    }
}

/// Equality whose running time depends only on the lengths (which are public: a digest's length).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
    diff == 0
}

/// Checks `creds` for a request with `method` and Request-URI `request_uri` in our `realm`.
///
/// `stored_ha1` is the user's HA1 for `creds.algorithm` (hex, any case); `None` means the user is unknown:
/// the response is still computed against a dummy HA1 and the verdict is `WrongPassword`, so an unknown
/// user looks like a wrong password (no extension enumeration).
///
/// Order: `RealmMismatch`, `BadNonce` (nonce not ours), `UriMismatch` (credentials' `uri` differs from the
/// Request-URI after trimming), `WrongPassword`, `StaleNonce` (right response, expired nonce), `Ok`.
/// `qop` may be absent (RFC 2069 clients); if present it must be `auth`. Nonce counts are checked
/// by the caller after an `Ok` ([`super::replay::NonceCounts`]): this function is pure.
pub fn verify(
    creds: &Credentials,
    method: &str,
    request_uri: &str,
    realm: &str,
    stored_ha1: Option<&str>,
    nonces: &NonceIssuer,
    unix_secs: u64,
) -> Verdict {
    verify_scoped(
        creds,
        method,
        request_uri,
        realm,
        realm,
        stored_ha1,
        nonces,
        unix_secs,
    )
}

/// [`verify`] for nonces issued for `nonce_scope` rather than the realm alone (the registrar
/// binds each nonce to the client's address: a nonce fetched from one address is `BadNonce`
/// from another, so a forged UDP source cannot spend it).
#[allow(clippy::too_many_arguments)]
pub fn verify_scoped(
    creds: &Credentials,
    method: &str,
    request_uri: &str,
    realm: &str,
    nonce_scope: &str,
    stored_ha1: Option<&str>,
    nonces: &NonceIssuer,
    unix_secs: u64,
) -> Verdict {
    if creds.realm != realm {
        return Verdict::RealmMismatch;
    }
    let nonce_state = nonces.check(&creds.nonce, nonce_scope, unix_secs);
    if nonce_state == NonceCheck::Invalid {
        return Verdict::BadNonce;
    }
    if creds.uri.trim() != request_uri.trim() {
        return Verdict::UriMismatch;
    }
    let qop = match (&creds.qop, creds.nc, &creds.cnonce) {
        (None, _, _) => Some(None),
        (Some(q), Some(nc), Some(cnonce)) if q.eq_ignore_ascii_case("auth") => {
            Some(Some((nc, cnonce.as_str())))
        }
        // auth-int or an incomplete set: nothing we can check.
        _ => None,
    };
    let dummy = match creds.algorithm {
        Algorithm::Md5 => DUMMY_HA1_MD5,
        Algorithm::Sha256 => DUMMY_HA1_SHA256,
    };
    let ha1 = stored_ha1.unwrap_or(dummy).to_ascii_lowercase();
    let expected = response(
        creds.algorithm,
        &ha1,
        method,
        &creds.uri,
        &creds.nonce,
        qop.flatten(),
    );
    let given = creds.response.to_ascii_lowercase();
    let matches = ct_eq(expected.as_bytes(), given.as_bytes());
    if !(matches && stored_ha1.is_some() && qop.is_some()) {
        return Verdict::WrongPassword;
    }
    match nonce_state {
        NonceCheck::Stale => Verdict::StaleNonce,
        NonceCheck::Valid | NonceCheck::Invalid => Verdict::Ok,
    }
}

/// Client side: an `Authorization` / `Proxy-Authorization` value answering `challenge`. Uses `qop=auth`
/// with `nc` and `cnonce` when the challenge offers it, the RFC 2069 form otherwise; echoes `opaque`.
pub fn authorize(
    challenge: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: u32,
    cnonce: &str,
) -> String {
    let alg = challenge.algorithm;
    let qop = challenge.qop_auth.then_some((nc, cnonce));
    let ha1 = ha1(alg, username, &challenge.realm, password);
    let resp = response(alg, &ha1, method, uri, &challenge.nonce, qop);
    Credentials {
        username: username.to_owned(),
        realm: challenge.realm.clone(),
        nonce: challenge.nonce.clone(),
        uri: uri.to_owned(),
        response: resp,
        algorithm: alg,
        cnonce: qop.map(|(_, c)| c.to_owned()),
        nc: qop.map(|(n, _)| n),
        qop: qop.map(|_| "auth".to_owned()),
        opaque: challenge.opaque.clone(),
    }
    .to_header_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE_7616: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const CNONCE_7616: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    const REALM: &str = "pbx.example.com";
    const NOW: u64 = 1_700_000_000;

    #[test]
    fn rfc2617_section_3_5() {
        let ha1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let r = response(
            Algorithm::Md5,
            &ha1,
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some((1, "0a4f113b")),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_section_3_9_1() {
        for (alg, want) in [
            (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
            (
                Algorithm::Sha256,
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let ha1 = ha1(alg, "Mufasa", "http-auth@example.org", "Circle of Life");
            let r = response(
                alg,
                &ha1,
                "GET",
                "/dir/index.html",
                NONCE_7616,
                Some((1, CNONCE_7616)),
            );
            assert_eq!(r, want, "{alg:?}");
        }
    }

    #[test]
    fn rfc2069_form_without_qop() {
        // RFC 2069 §2.4 example: Mufasa / "CircleOfLife" / testrealm@host.com.
        let ha1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "CircleOfLife",
        );
        let r = response(
            Algorithm::Md5,
            &ha1,
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            None,
        );
        assert_eq!(r, "1949323746fe6a43ef61f9606e7febea");
    }

    fn issuer() -> NonceIssuer {
        NonceIssuer::new([7; 32], 300)
    }

    fn challenge(alg: Algorithm, nonces: &NonceIssuer, at: u64, qop_auth: bool) -> Challenge {
        Challenge {
            realm: REALM.into(),
            nonce: nonces.issue(REALM, at),
            opaque: Some("op".into()),
            algorithm: alg,
            qop_auth,
            stale: false,
        }
    }

    /// Signs a REGISTER for 100 with password "secret" and returns the parsed credentials and stored HA1.
    fn signed(alg: Algorithm, nonces: &NonceIssuer, at: u64, qop: bool) -> (Credentials, String) {
        let ch = challenge(alg, nonces, at, qop);
        let value = authorize(
            &ch,
            "100",
            "secret",
            "REGISTER",
            "sip:pbx.example.com",
            1,
            "c1",
        );
        let creds = Credentials::parse(&value).unwrap();
        (creds, ha1(alg, "100", REALM, "secret"))
    }

    #[test]
    fn authorize_then_verify_ok() {
        let n = issuer();
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            for qop in [true, false] {
                let (creds, stored) = signed(alg, &n, NOW, qop);
                assert_eq!(creds.algorithm, alg);
                assert_eq!(creds.qop.is_some(), qop);
                assert_eq!(creds.opaque.as_deref(), Some("op"));
                let v = verify(
                    &creds,
                    "REGISTER",
                    "sip:pbx.example.com",
                    REALM,
                    Some(&stored),
                    &n,
                    NOW + 10,
                );
                assert_eq!(v, Verdict::Ok, "{alg:?} qop={qop}");
                let upper = stored.to_ascii_uppercase();
                let v = verify(
                    &creds,
                    "REGISTER",
                    " sip:pbx.example.com ",
                    REALM,
                    Some(&upper),
                    &n,
                    NOW,
                );
                assert_eq!(v, Verdict::Ok);
                // The wrong algorithm's HA1 fails.
                let other = if alg == Algorithm::Md5 {
                    Algorithm::Sha256
                } else {
                    Algorithm::Md5
                };
                let wrong = ha1(other, "100", REALM, "secret");
                let v = verify(
                    &creds,
                    "REGISTER",
                    "sip:pbx.example.com",
                    REALM,
                    Some(&wrong),
                    &n,
                    NOW,
                );
                assert_eq!(v, Verdict::WrongPassword);
            }
        }
    }

    #[test]
    fn wrong_password_and_unknown_user() {
        let n = issuer();
        let (creds, _) = signed(Algorithm::Sha256, &n, NOW, true);
        let bad = ha1(Algorithm::Sha256, "100", REALM, "guess");
        let uri = "sip:pbx.example.com";
        assert_eq!(
            verify(&creds, "REGISTER", uri, REALM, Some(&bad), &n, NOW),
            Verdict::WrongPassword
        );
        assert_eq!(
            verify(&creds, "REGISTER", uri, REALM, None, &n, NOW),
            Verdict::WrongPassword
        );
        // Even a response computed against the dummy HA1 does not authenticate an unknown user.
        let mut forged = creds.clone();
        forged.response = response(
            Algorithm::Sha256,
            DUMMY_HA1_SHA256,
            "REGISTER",
            uri,
            &creds.nonce,
            Some((1, "c1")),
        );
        assert_eq!(
            verify(&forged, "REGISTER", uri, REALM, None, &n, NOW),
            Verdict::WrongPassword
        );
        // Same credentials, other method.
        let good = ha1(Algorithm::Sha256, "100", REALM, "secret");
        assert_eq!(
            verify(&creds, "INVITE", uri, REALM, Some(&good), &n, NOW),
            Verdict::WrongPassword
        );
    }

    #[test]
    fn stale_bad_nonce_realm_uri() {
        let n = issuer();
        let uri = "sip:pbx.example.com";
        let (creds, stored) = signed(Algorithm::Md5, &n, NOW, true);
        assert_eq!(
            verify(&creds, "REGISTER", uri, REALM, Some(&stored), &n, NOW + 301),
            Verdict::StaleNonce
        );
        let bad = ha1(Algorithm::Md5, "100", REALM, "guess");
        assert_eq!(
            verify(&creds, "REGISTER", uri, REALM, Some(&bad), &n, NOW + 301),
            Verdict::WrongPassword
        );
        assert_eq!(
            verify(
                &creds,
                "REGISTER",
                uri,
                "other.example.com",
                Some(&stored),
                &n,
                NOW
            ),
            Verdict::RealmMismatch
        );
        assert_eq!(
            verify(
                &creds,
                "REGISTER",
                "sip:other",
                REALM,
                Some(&stored),
                &n,
                NOW
            ),
            Verdict::UriMismatch
        );
        let other_secret = NonceIssuer::new([8; 32], 300);
        assert_eq!(
            verify(
                &creds,
                "REGISTER",
                uri,
                REALM,
                Some(&stored),
                &other_secret,
                NOW
            ),
            Verdict::BadNonce
        );
        let mut garbled = creds.clone();
        garbled.nonce = "nope".into();
        assert_eq!(
            verify(&garbled, "REGISTER", uri, REALM, Some(&stored), &n, NOW),
            Verdict::BadNonce
        );
        // Realm is checked before the nonce.
        assert_eq!(
            verify(&garbled, "REGISTER", uri, "x", Some(&stored), &n, NOW),
            Verdict::RealmMismatch
        );
    }

    #[test]
    fn qop_must_be_auth() {
        let n = issuer();
        let uri = "sip:pbx.example.com";
        let (creds, stored) = signed(Algorithm::Md5, &n, NOW, true);
        let mut int = creds.clone();
        int.qop = Some("auth-int".into());
        assert_eq!(
            verify(&int, "REGISTER", uri, REALM, Some(&stored), &n, NOW),
            Verdict::WrongPassword
        );
        let mut upper = creds.clone();
        upper.qop = Some("AUTH".into());
        upper.response = creds.response.to_ascii_uppercase();
        assert_eq!(
            verify(&upper, "REGISTER", uri, REALM, Some(&stored), &n, NOW),
            Verdict::Ok
        );
        let mut incomplete = creds;
        incomplete.cnonce = None;
        assert_eq!(
            verify(&incomplete, "REGISTER", uri, REALM, Some(&stored), &n, NOW),
            Verdict::WrongPassword
        );
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }
}
