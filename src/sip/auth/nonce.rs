//! Stateless digest nonces (RFC 7616 §3.3 "nonce" and §5.4, RFC 3261 §22.4): the nonce carries its issue
//! time, a random salt and an HMAC-SHA256 over them and the realm, so any node sharing the secret can
//! verify it and nothing is stored per challenge.
//!
//! Layout: 64 lowercase hex digits = issue time (u64, 16 digits) ‖ salt (8 bytes, 16 digits) ‖ first
//! 16 bytes of `HMAC-SHA256(secret, "openline-nonce-v1" ‖ time ‖ salt ‖ realm)` (32 digits).

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const DOMAIN: &[u8] = b"openline-nonce-v1";
const SALT_LEN: usize = 8;
const TAG_LEN: usize = 16;
const NONCE_LEN: usize = 2 * (8 + SALT_LEN + TAG_LEN);
/// Tolerated clock difference between the node that issued a nonce and the node checking it.
const MAX_SKEW_SECS: u64 = 5;

/// Outcome of [`NonceIssuer::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Valid,
    /// Authentic but older than the lifetime: re-challenge with `stale=true`.
    Stale,
    /// Forged, garbled, for another realm or secret, or issued more than 5 s in the future.
    Invalid,
}

/// Issues and checks stateless nonces with a server secret.
#[derive(Clone)]
pub struct NonceIssuer {
    secret: [u8; 32],
    lifetime_secs: u64,
}

impl std::fmt::Debug for NonceIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceIssuer")
            .field("secret", &"<redacted>")
            .field("lifetime_secs", &self.lifetime_secs)
            .finish()
    }
}

impl NonceIssuer {
    pub fn new(secret: [u8; 32], lifetime_secs: u64) -> Self {
        NonceIssuer {
            secret,
            lifetime_secs,
        }
    }

    /// A fresh nonce for `realm` issued at `unix_secs`, with 8 random bytes mixed in so two
    /// challenges in the same second differ.
    pub fn issue(&self, realm: &str, unix_secs: u64) -> String {
        self.issue_with_salt(realm, unix_secs, rand::random())
    }

    fn issue_with_salt(&self, realm: &str, unix_secs: u64, salt: [u8; SALT_LEN]) -> String {
        let tag = self.mac(unix_secs, &salt, realm).finalize().into_bytes();
        let tag = tag.get(..TAG_LEN).unwrap_or_default();
        format!("{unix_secs:016x}{}{}", hex::encode(salt), hex::encode(tag))
    }

    /// Checks a nonce received in credentials for `realm` at `unix_secs`.
    pub fn check(&self, nonce: &str, realm: &str, unix_secs: u64) -> NonceCheck {
        let Some((issued, salt, tag)) = split(nonce) else {
            return NonceCheck::Invalid;
        };
        if self
            .mac(issued, &salt, realm)
            .verify_truncated_left(&tag)
            .is_err()
        {
            return NonceCheck::Invalid;
        }
        if issued > unix_secs.saturating_add(MAX_SKEW_SECS) {
            return NonceCheck::Invalid;
        }
        if unix_secs.saturating_sub(issued) > self.lifetime_secs {
            NonceCheck::Stale
        } else {
            NonceCheck::Valid
        }
    }

    fn mac(&self, unix_secs: u64, salt: &[u8; SALT_LEN], realm: &str) -> HmacSha256 {
        // HMAC zero-pads keys shorter than the hash block, so keying with the secret padded to the
        // 64-byte block is exactly HMAC-SHA256 keyed with the 32-byte secret, and infallible.
        let mut key = [0u8; 64];
        for (k, s) in key.iter_mut().zip(self.secret) {
            *k = s;
        }
        let mut mac = <HmacSha256 as KeyInit>::new(&key.into());
        mac.update(DOMAIN);
        mac.update(&unix_secs.to_be_bytes());
        mac.update(salt);
        mac.update(realm.as_bytes());
        mac
    }
}

/// Splits a nonce into (issue time, salt, tag); `None` unless it is exactly 64 lowercase hex digits.
fn split(nonce: &str) -> Option<(u64, [u8; SALT_LEN], Vec<u8>)> {
    if nonce.len() != NONCE_LEN
        || !nonce
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let issued = u64::from_str_radix(nonce.get(..16)?, 16).ok()?;
    let salt: [u8; SALT_LEN] = hex::decode(nonce.get(16..32)?).ok()?.try_into().ok()?;
    let tag = hex::decode(nonce.get(32..)?).ok()?;
    Some((issued, salt, tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REALM: &str = "pbx.example.com";
    const T: u64 = 1_700_000_000;

    fn issuer() -> NonceIssuer {
        NonceIssuer::new([42; 32], 300)
    }

    #[test]
    fn padded_key_equals_plain_hmac() {
        let n = issuer();
        let mut plain = <HmacSha256 as KeyInit>::new_from_slice(&[42; 32]).unwrap();
        plain.update(DOMAIN);
        plain.update(&T.to_be_bytes());
        plain.update(&[1; 8]);
        plain.update(REALM.as_bytes());
        assert_eq!(
            n.mac(T, &[1; 8], REALM).finalize().into_bytes(),
            plain.finalize().into_bytes()
        );
    }

    #[test]
    fn valid_within_lifetime_then_stale() {
        let n = issuer();
        let nonce = n.issue(REALM, T);
        assert_eq!(nonce.len(), NONCE_LEN);
        assert_eq!(n.check(&nonce, REALM, T), NonceCheck::Valid);
        assert_eq!(n.check(&nonce, REALM, T + 300), NonceCheck::Valid);
        assert_eq!(n.check(&nonce, REALM, T + 301), NonceCheck::Stale);
        assert_eq!(n.check(&nonce, REALM, u64::MAX), NonceCheck::Stale);
    }

    #[test]
    fn same_second_nonces_differ() {
        let n = issuer();
        let a = n.issue(REALM, T);
        let b = n.issue(REALM, T);
        assert_ne!(a, b);
        assert_eq!(n.check(&a, REALM, T), NonceCheck::Valid);
        assert_eq!(n.check(&b, REALM, T), NonceCheck::Valid);
        assert_eq!(
            n.issue_with_salt(REALM, T, [3; 8]),
            n.issue_with_salt(REALM, T, [3; 8])
        );
    }

    #[test]
    fn every_single_char_flip_is_invalid() {
        let n = issuer();
        let nonce = n.issue_with_salt(REALM, T, [9; 8]);
        for i in 0..nonce.len() {
            for replacement in ['0', 'f', 'A', 'z'] {
                let mut chars: Vec<char> = nonce.chars().collect();
                let Some(c) = chars.get_mut(i) else { continue };
                if *c == replacement {
                    continue;
                }
                *c = replacement;
                let tampered: String = chars.into_iter().collect();
                assert_eq!(
                    n.check(&tampered, REALM, T),
                    NonceCheck::Invalid,
                    "pos {i} -> {replacement}"
                );
            }
        }
        assert_eq!(
            n.check(&nonce.to_ascii_uppercase(), REALM, T),
            NonceCheck::Invalid
        );
    }

    #[test]
    fn wrong_realm_or_secret() {
        let n = issuer();
        let nonce = n.issue(REALM, T);
        assert_eq!(n.check(&nonce, "other.example.com", T), NonceCheck::Invalid);
        assert_eq!(n.check(&nonce, "", T), NonceCheck::Invalid);
        let other = NonceIssuer::new([43; 32], 300);
        assert_eq!(other.check(&nonce, REALM, T), NonceCheck::Invalid);
        // Another node with the same secret accepts it.
        let peer = NonceIssuer::new([42; 32], 300);
        assert_eq!(peer.check(&nonce, REALM, T + 1), NonceCheck::Valid);
    }

    #[test]
    fn future_timestamps() {
        let n = issuer();
        let nonce = n.issue(REALM, T + 5);
        assert_eq!(n.check(&nonce, REALM, T), NonceCheck::Valid);
        let nonce = n.issue(REALM, T + 6);
        assert_eq!(n.check(&nonce, REALM, T), NonceCheck::Invalid);
        let nonce = n.issue(REALM, u64::MAX);
        assert_eq!(n.check(&nonce, REALM, T), NonceCheck::Invalid);
        assert_eq!(n.check(&nonce, REALM, u64::MAX), NonceCheck::Valid);
    }

    #[test]
    fn garbage_is_invalid() {
        let n = issuer();
        let valid = n.issue(REALM, T);
        let long = format!("{valid}0");
        let multibyte = format!("é{}", valid.get(2..).unwrap_or_default());
        for g in [
            "",
            "x",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            &"0".repeat(NONCE_LEN),
            &"g".repeat(NONCE_LEN),
            valid.get(..NONCE_LEN - 1).unwrap_or_default(),
            &long,
            &multibyte,
        ] {
            assert_eq!(n.check(g, REALM, T), NonceCheck::Invalid, "{g:?}");
        }
        assert!(!format!("{n:?}").contains("42"));
    }
}
