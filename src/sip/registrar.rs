//! The registrar: digest-authenticated REGISTER and the bindings of operators' softphones
//! (RFC 3261 §10.3, RFC 7616/8760 digest, RFC 3581 NAT handling).
//!
//! Bindings live here, in memory, owned by the endpoint; every change is also returned as a
//! [`BindingChange`] so the shell can persist it. The address a REGISTER came from is kept with its
//! binding: calls to the operator go there, which is what works behind NAT.

use super::auth::{
    self, AuthThrottle, Challenge, Credentials, NonceIssuer, Verdict, is_scanner_user_agent,
};
use super::message::grammar::uri_scheme;
use super::message::{NameAddr, Request};
use super::transport::Peer;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    pub realm: String,
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    /// Failed digest attempts per (source IP, user) within `failure_window` before a cool-down.
    pub max_failures: u32,
    pub failure_window: Duration,
    pub cooldown: Duration,
    /// Users given a wrong password from one source (IPv6: one /64) within `failure_window`
    /// before the whole source is ignored for `cooldown` (a scanner walking extensions).
    pub max_failed_users_per_source: u32,
    pub nonce_lifetime_secs: u64,
    /// Challenges offered, most preferred first (RFC 8760 §2.4).
    pub algorithms: Vec<auth::Algorithm>,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            realm: "openline".into(),
            min_expires: 60,
            max_expires: 7200,
            default_expires: 3600,
            max_failures: 5,
            failure_window: Duration::from_secs(60),
            cooldown: Duration::from_secs(300),
            max_failed_users_per_source: 20,
            nonce_lifetime_secs: 300,
            algorithms: vec![auth::Algorithm::Md5, auth::Algorithm::Sha256],
        }
    }
}

/// Digest secrets of one operator (HA1 per algorithm; the password itself is never kept).
#[derive(Debug, Clone)]
pub struct OperatorSecret {
    pub ha1_md5: String,
    pub ha1_sha256: String,
}

impl OperatorSecret {
    /// The digests of `extension`'s password in `realm` (what a challenge's answer is checked
    /// against; the password itself is not kept).
    pub fn from_password(extension: &str, realm: &str, password: &str) -> OperatorSecret {
        use crate::sip::auth::{Algorithm, ha1};
        OperatorSecret {
            ha1_md5: ha1(Algorithm::Md5, extension, realm, password),
            ha1_sha256: ha1(Algorithm::Sha256, extension, realm, password),
        }
    }
}

/// One registered contact of an operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub extension: String,
    pub contact_uri: String,
    /// Where the REGISTER came from (received/rport): calls to this contact go here.
    pub peer: Peer,
    pub expires_at: Instant,
    pub expires_utc: DateTime<Utc>,
    pub call_id: String,
    pub cseq: u32,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BindingChange {
    Upsert(Binding),
    Remove {
        extension: String,
        contact_uri: String,
    },
}

/// What the endpoint does with a REGISTER.
#[derive(Debug, Clone, PartialEq)]
pub enum RegisterOutcome {
    /// Answer with this status and extra headers.
    Reply {
        status: u16,
        reason: &'static str,
        extra: Vec<(String, String)>,
        changes: Vec<BindingChange>,
    },
    /// Say nothing (a known scanner gets no challenge at all).
    Ignore,
}

fn reply(status: u16, reason: &'static str, extra: Vec<(String, String)>) -> RegisterOutcome {
    RegisterOutcome::Reply {
        status,
        reason,
        extra,
        changes: Vec::new(),
    }
}

/// The outcome of a digest check.
enum DigestCheck {
    Valid(String),
    /// The (source, user) pair is blocked: no answer at all. The attempt that tripped the block
    /// got 403; answering every later one would only feed a tool that retries without end
    /// (SIPVicious svcrack sends REGISTERs as fast as 403s come back).
    Ignore,
    Refuse {
        status: u16,
        reason: &'static str,
        extra: Vec<(String, String)>,
    },
}

/// Who places an INVITE.
#[derive(Debug, Clone, PartialEq)]
pub enum InviteAuth {
    /// No credentials and none needed: an outside caller.
    Anonymous,
    /// An operator, by extension, proven by digest.
    Operator(String),
    /// No answer: the caller is blocked for brute force.
    Ignore,
    /// Answer with this (a 407 challenge, or 403).
    Refuse {
        status: u16,
        reason: &'static str,
        extra: Vec<(String, String)>,
    },
}

/// The source a failure is counted against: the address, or its /64 for IPv6 (one host
/// holds a whole /64 and could walk it to start a fresh count with every try).
fn source_of(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0).into()
        }
        other => other,
    }
}

/// A brute-force block in force (`GET /api/v1/sip/blocks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthBlock {
    pub ip: std::net::IpAddr,
    /// The user tried, for a (source, user) block; `None` when the whole source is blocked.
    pub user: Option<String>,
    pub until: Instant,
}

pub struct Registrar {
    config: RegistrarConfig,
    operators: HashMap<String, OperatorSecret>,
    bindings: HashMap<String, Vec<Binding>>,
    nonces: NonceIssuer,
    throttle: AuthThrottle,
    /// Users with a wrong password per source (`source_of`; the user part of its keys is
    /// empty: each counted failure is a user new to the source in its window).
    sources: AuthThrottle,
    /// Nonce counts already accepted (replay protection).
    used: auth::replay::NonceCounts,
}

impl Registrar {
    pub fn new(config: RegistrarConfig, nonce_secret: [u8; 32]) -> Self {
        let throttle = AuthThrottle::new(
            config.max_failures,
            config.failure_window,
            config.cooldown,
            100_000,
        );
        let sources = AuthThrottle::new(
            config.max_failed_users_per_source,
            config.failure_window,
            config.cooldown,
            100_000,
        );
        Registrar {
            nonces: NonceIssuer::new(nonce_secret, config.nonce_lifetime_secs),
            sources,
            used: auth::replay::NonceCounts::new(config.nonce_lifetime_secs, 200_000),
            throttle,
            config,
            operators: HashMap::new(),
            bindings: HashMap::new(),
        }
    }

    pub fn realm(&self) -> &str {
        &self.config.realm
    }

    pub fn set_operator(&mut self, extension: &str, secret: OperatorSecret) {
        self.operators.insert(extension.to_string(), secret);
    }

    /// The operator is no more (a config reload): their credentials and bindings go. The
    /// contacts that were bound, for the store to forget.
    pub fn remove_operator(&mut self, extension: &str) -> Vec<String> {
        self.operators.remove(extension);
        self.bindings
            .remove(extension)
            .unwrap_or_default()
            .into_iter()
            .map(|b| b.contact_uri)
            .collect()
    }

    /// Current, unexpired bindings of an extension.
    pub fn bindings(&self, extension: &str, now: Instant) -> Vec<&Binding> {
        self.bindings
            .get(extension)
            .map(|list| list.iter().filter(|b| b.expires_at > now).collect())
            .unwrap_or_default()
    }

    /// Puts back a binding persisted by an earlier run (start-up).
    pub fn restore(&mut self, binding: Binding) {
        let list = self.bindings.entry(binding.extension.clone()).or_default();
        list.retain(|b| b.contact_uri != binding.contact_uri);
        list.push(binding);
    }

    /// Drops expired bindings; returns them so the shell can delete them from storage.
    pub fn expire(&mut self, now: Instant) -> Vec<BindingChange> {
        let mut removed = Vec::new();
        for list in self.bindings.values_mut() {
            list.retain(|b| {
                let keep = b.expires_at > now;
                if !keep {
                    removed.push(BindingChange::Remove {
                        extension: b.extension.clone(),
                        contact_uri: b.contact_uri.clone(),
                    });
                }
                keep
            });
        }
        self.bindings.retain(|_, list| !list.is_empty());
        self.throttle.prune(now);
        self.sources.prune(now);
        removed
    }

    /// True while `ip` as a whole is blocked (too many failed attempts across users): the
    /// endpoint drops its new requests unanswered, which costs nothing and tells a scanner
    /// nothing.
    pub fn source_blocked(&mut self, now: Instant, ip: std::net::IpAddr) -> bool {
        self.sources.is_blocked(now, source_of(ip), "")
    }

    /// Every block in force: whole sources (no user) and (source, user) pairs.
    pub fn auth_blocks(&mut self, now: Instant) -> Vec<AuthBlock> {
        let sources = self
            .sources
            .blocked(now)
            .into_iter()
            .map(|(ip, _, until)| AuthBlock {
                ip,
                user: None,
                until,
            });
        let pairs = self
            .throttle
            .blocked(now)
            .into_iter()
            .map(|(ip, user, until)| AuthBlock {
                ip,
                user: Some(user),
                until,
            });
        sources.chain(pairs).collect()
    }

    /// (whole sources, (source, user) pairs) blocked as of the last prune.
    pub fn block_counts(&self) -> (usize, usize) {
        (self.sources.blocked_count(), self.throttle.blocked_count())
    }

    /// Lifts every block and failure count of `ip`; returns how many entries went.
    pub fn lift_blocks(&mut self, ip: std::net::IpAddr) -> usize {
        self.sources.forget_ip(source_of(ip)) + self.throttle.forget_ip(ip)
    }

    /// What a nonce is bound to: the realm and the client's address.
    fn nonce_scope(&self, ip: std::net::IpAddr) -> String {
        format!("{}\u{0}{ip}", self.config.realm)
    }

    fn challenges(
        &self,
        utc: DateTime<Utc>,
        stale: bool,
        ip: std::net::IpAddr,
    ) -> Vec<(String, String)> {
        let unix = utc.timestamp().max(0) as u64;
        let scope = self.nonce_scope(ip);
        // RFC 8760 §2.4: the preferred algorithm's challenge comes first.
        self.config
            .algorithms
            .iter()
            .copied()
            .map(|algorithm| {
                let challenge = Challenge {
                    realm: self.config.realm.clone(),
                    nonce: self.nonces.issue(&scope, unix),
                    opaque: None,
                    algorithm,
                    qop_auth: true,
                    stale,
                };
                ("WWW-Authenticate".to_string(), challenge.to_header_value())
            })
            .collect()
    }

    pub fn handle_register(
        &mut self,
        now: Instant,
        utc: DateTime<Utc>,
        request: &Request,
        peer: Peer,
    ) -> RegisterOutcome {
        let user_agent = request.headers.get("User-Agent");
        if user_agent.is_some_and(is_scanner_user_agent) {
            return RegisterOutcome::Ignore;
        }
        // §10.2: the address-of-record in To must be a SIP or SIPS URI (RFC 4475 §3.3.4: 400).
        if !matches!(uri_scheme(&request.to.uri).as_deref(), Some("sip" | "sips")) {
            return reply(400, "Bad Request", Vec::new());
        }
        let Some(aor_user) = request.to.user().map(str::to_string) else {
            return reply(404, "Not Found", Vec::new());
        };
        let username = match self.check_digest(now, utc, request, "Authorization", peer, &aor_user)
        {
            DigestCheck::Valid(username) => username,
            DigestCheck::Ignore => return RegisterOutcome::Ignore,
            DigestCheck::Refuse {
                status,
                reason,
                extra,
            } => return reply(status, reason, extra),
        };
        let creds_username = username;
        if creds_username != aor_user {
            // An operator may only register its own extension.
            return reply(403, "Forbidden", Vec::new());
        }
        self.update_bindings(now, utc, request, peer, &aor_user)
    }

    /// Checks the digest credentials in `header` (`Authorization` for REGISTER,
    /// `Proxy-Authorization` for INVITE): the operator's user name when they hold, else the
    /// refusal to send (a fresh challenge, or 403 while the source is cooling down).
    fn check_digest(
        &mut self,
        now: Instant,
        utc: DateTime<Utc>,
        request: &Request,
        header: &str,
        peer: Peer,
        claimed_user: &str,
    ) -> DigestCheck {
        let (status, reason, challenge_header) = if header == "Authorization" {
            (401, "Unauthorized", "WWW-Authenticate")
        } else {
            (407, "Proxy Authentication Required", "Proxy-Authenticate")
        };
        let challenge = |this: &Self, stale: bool| DigestCheck::Refuse {
            status,
            reason,
            extra: this
                .challenges(utc, stale, peer.addr.ip())
                .into_iter()
                .map(|(_, v)| (challenge_header.to_string(), v))
                .collect(),
        };
        let forbidden = DigestCheck::Refuse {
            status: 403,
            reason: "Forbidden",
            extra: Vec::new(),
        };
        let ip = peer.addr.ip();
        let Some(authorization) = request.headers.get(header) else {
            if self.throttle.is_blocked(now, ip, claimed_user) {
                return DigestCheck::Ignore;
            }
            return challenge(self, false);
        };
        let creds = match Credentials::parse(authorization) {
            Ok(creds) => creds,
            // An unknown scheme or broken header is answered with a fresh Digest challenge.
            Err(_) => return challenge(self, false),
        };
        if self.throttle.is_blocked(now, ip, &creds.username) {
            return DigestCheck::Ignore;
        }
        let stored = self
            .operators
            .get(&creds.username)
            .map(|s| match creds.algorithm {
                auth::Algorithm::Md5 => s.ha1_md5.as_str(),
                auth::Algorithm::Sha256 => s.ha1_sha256.as_str(),
            });
        let unix = utc.timestamp().max(0) as u64;
        let verdict = auth::digest::verify_scoped(
            &creds,
            request.method.as_str(),
            &request.uri,
            &self.config.realm,
            &self.nonce_scope(ip),
            stored,
            &self.nonces,
            unix,
        );
        match verdict {
            Verdict::Ok
                if self.used.check(&creds.nonce, creds.nc, unix) == auth::replay::Use::Replayed =>
            {
                // A captured response sent again (or a client reusing a count): a fresh nonce.
                challenge(self, true)
            }
            Verdict::Ok => {
                self.throttle.record_success(ip, &creds.username);
                DigestCheck::Valid(creds.username)
            }
            Verdict::StaleNonce => challenge(self, true),
            Verdict::WrongPassword
            | Verdict::BadNonce
            | Verdict::RealmMismatch
            | Verdict::UriMismatch => {
                let failures = self.throttle.record_failure(now, ip, &creds.username);
                // The source counts users, not tries, and only wrong passwords: a nonce from
                // before a restart (BadNonce) is what every phone of an office sends once, and
                // a wrong password needs a nonce we issued, which a forged UDP source cannot
                // easily get answered to it.
                if failures == 1 && verdict == Verdict::WrongPassword {
                    let source = source_of(ip);
                    self.sources.record_failure(now, source, "");
                    if self.sources.is_blocked(now, source, "") {
                        tracing::warn!(%source, "wrong passwords for too many users from this source: blocked");
                        return forbidden;
                    }
                }
                if self.throttle.is_blocked(now, ip, &creds.username) {
                    return forbidden;
                }
                challenge(self, false)
            }
        }
    }

    /// Who is calling, for an INVITE (RFC 3261 §22.3, proxy-style 407 as PBXes do). `required`:
    /// the call may only go ahead authenticated (its From names an operator, or it dials an
    /// external number). Operators' phones answer the 407 and are then known by their extension;
    /// anyone else is anonymous and only reaches `[routes]`.
    pub fn authorize_invite(
        &mut self,
        now: Instant,
        utc: DateTime<Utc>,
        request: &Request,
        peer: Peer,
        required: bool,
    ) -> InviteAuth {
        if !required && request.headers.get("Proxy-Authorization").is_none() {
            return InviteAuth::Anonymous;
        }
        let claimed = request.from.user().unwrap_or_default().to_string();
        match self.check_digest(now, utc, request, "Proxy-Authorization", peer, &claimed) {
            DigestCheck::Valid(user) if user == claimed || claimed.is_empty() => {
                InviteAuth::Operator(user)
            }
            // An operator's credentials may not place calls in another's name.
            DigestCheck::Valid(_) => InviteAuth::Refuse {
                status: 403,
                reason: "Forbidden",
                extra: Vec::new(),
            },
            DigestCheck::Ignore => InviteAuth::Ignore,
            DigestCheck::Refuse {
                status,
                reason,
                extra,
            } => InviteAuth::Refuse {
                status,
                reason,
                extra,
            },
        }
    }

    /// An operator's extension (REGISTER user name) is configured.
    pub fn is_operator(&self, user: &str) -> bool {
        self.operators.contains_key(user)
    }

    /// `user` has the shape of an extension here (digits, as long as the configured ones),
    /// whether or not one exists. INVITEs from such a user are challenged either way, so an
    /// unauthenticated caller cannot tell existing extensions from missing ones.
    pub fn looks_like_extension(&self, user: &str) -> bool {
        let lengths = self.operators.keys().map(String::len);
        let (Some(shortest), Some(longest)) = (lengths.clone().min(), lengths.max()) else {
            return false;
        };
        let all_digits = self
            .operators
            .keys()
            .all(|ext| ext.bytes().all(|b| b.is_ascii_digit()));
        if all_digits {
            (shortest..=longest).contains(&user.len()) && user.bytes().all(|b| b.is_ascii_digit())
        } else {
            // Named extensions ("olena"): every From user might be one; only known ones are
            // challenged (they cannot be enumerated by shape).
            self.is_operator(user)
        }
    }

    fn update_bindings(
        &mut self,
        now: Instant,
        utc: DateTime<Utc>,
        request: &Request,
        peer: Peer,
        extension: &str,
    ) -> RegisterOutcome {
        let header_expires = match request.headers.get("Expires") {
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => return reply(400, "Bad Expires", Vec::new()),
            },
            None => None,
        };
        let contacts: Vec<&str> = request.headers.get_all("Contact").collect();
        let mut changes = Vec::new();
        if contacts.contains(&"*") {
            // §10.3 step 6: "*" only alone and only with Expires: 0.
            if contacts.len() != 1 || header_expires != Some(0) {
                return reply(400, "Invalid Wildcard Contact", Vec::new());
            }
            for b in self.bindings.remove(extension).unwrap_or_default() {
                changes.push(BindingChange::Remove {
                    extension: b.extension,
                    contact_uri: b.contact_uri,
                });
            }
            return self.ok(now, extension, changes);
        }
        let mut planned = Vec::new();
        for contact in contacts {
            let Ok(addr) = NameAddr::parse(contact) else {
                return reply(400, "Bad Contact", Vec::new());
            };
            let expires = match addr.param("expires").flatten() {
                Some(v) => match v.parse::<u64>() {
                    Ok(n) => n,
                    Err(_) => return reply(400, "Bad Contact Expires", Vec::new()),
                },
                None => header_expires.unwrap_or(self.config.default_expires.into()),
            };
            if expires != 0 && expires < self.config.min_expires.into() {
                let min = (
                    "Min-Expires".to_string(),
                    self.config.min_expires.to_string(),
                );
                return reply(423, "Interval Too Brief", vec![min]);
            }
            planned.push((addr.uri, expires.min(self.config.max_expires.into())));
        }
        let list = self.bindings.entry(extension.to_string()).or_default();
        for (uri, expires) in planned {
            if let Some(existing) = list.iter().find(|b| b.contact_uri == uri) {
                // §10.3 step 7: an older or repeated CSeq from the same Call-ID is out of order.
                if existing.call_id == request.call_id && request.cseq <= existing.cseq {
                    return reply(500, "Out Of Order Request", Vec::new());
                }
            }
            list.retain(|b| b.contact_uri != uri);
            if expires == 0 {
                changes.push(BindingChange::Remove {
                    extension: extension.to_string(),
                    contact_uri: uri,
                });
                continue;
            }
            let binding = Binding {
                extension: extension.to_string(),
                contact_uri: uri,
                peer,
                expires_at: now + Duration::from_secs(expires),
                expires_utc: utc + chrono::Duration::seconds(expires as i64),
                call_id: request.call_id.clone(),
                cseq: request.cseq,
                user_agent: request.headers.get("User-Agent").map(str::to_string),
            };
            list.push(binding.clone());
            changes.push(BindingChange::Upsert(binding));
        }
        self.ok(now, extension, changes)
    }

    fn ok(&self, now: Instant, extension: &str, changes: Vec<BindingChange>) -> RegisterOutcome {
        let extra = self
            .bindings(extension, now)
            .into_iter()
            .map(|b| {
                let left = b.expires_at.saturating_duration_since(now).as_secs();
                (
                    "Contact".to_string(),
                    format!("<{}>;expires={left}", b.contact_uri),
                )
            })
            .collect();
        RegisterOutcome::Reply {
            status: 200,
            reason: "OK",
            extra,
            changes,
        }
    }
}

#[cfg(test)]
mod tests;
