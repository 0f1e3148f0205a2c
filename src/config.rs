//! Settings: command-line flags and `OPENLINE_*` environment variables (INTERFACE.md), plus the
//! optional TOML file with operators, API tokens and tuning. Everything is validated here, at start,
//! so a bad value is one clear error instead of a surprise mid-call.

use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod queues;
pub use queues::*;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `message` starts with `line:column: ` when the parser knows where: shown as
    /// `file:line:column: what`, the form editors and `check-flows` use.
    #[error("{}", located(path, message))]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// `file:line:column: what` when `message` has a position, else `file: what`.
fn located(path: &Path, message: &str) -> String {
    let positioned = message
        .split(':')
        .take(2)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .count()
        == 2;
    if positioned {
        format!("{}:{message}", path.display())
    } else {
        format!("{}: {message}", path.display())
    }
}

/// The flags of `openline serve` after clap has merged command line and environment.
#[derive(Debug, Clone)]
pub struct ServeArgs {
    pub config: Option<PathBuf>,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    pub database: Option<String>,
    pub data_dir: PathBuf,
    pub flows: PathBuf,
    pub sounds: PathBuf,
    pub rtp_ports: String,
    pub public_ip: Option<IpAddr>,
    /// The wall clock starts at this instant (tests and demos of calling windows).
    pub clock_start: Option<chrono::DateTime<chrono::Utc>>,
}

/// An inclusive, even-aligned RTP port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl PortRange {
    pub fn parse(s: &str) -> Result<PortRange, ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            key: "rtp-ports",
            reason: format!("{reason} (got {s:?}, expected LOW-HIGH such as 20000-30000)"),
        };
        let (low, high) = s.split_once('-').ok_or_else(|| invalid("missing '-'"))?;
        let low: u16 = low.trim().parse().map_err(|_| invalid("bad low port"))?;
        let high: u16 = high.trim().parse().map_err(|_| invalid("bad high port"))?;
        if low == 0 || low >= high || high - low < 2 {
            return Err(invalid("the range must hold at least one even port pair"));
        }
        Ok(PortRange { low, high })
    }
}

/// The whole, validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sip: SocketAddr,
    pub http: SocketAddr,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub flows: PathBuf,
    pub sounds: PathBuf,
    pub rtp_ports: PortRange,
    pub public_ip: Option<IpAddr>,
    pub clock_start: Option<chrono::DateTime<chrono::Utc>>,
    /// The file `file` was read from (`None`: no file, the defaults); a reload reads it again.
    pub config_path: Option<PathBuf>,
    pub file: FileConfig,
}

/// The TOML file. Keys are documented in `openline.example.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Stable id of this node; rows of running calls carry it. Default: kept in `DATA_DIR/node-id`.
    pub node_id: Option<String>,
    #[serde(default)]
    pub sip: SipConfig,
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    #[serde(default)]
    pub calls: CallsConfig,
    #[serde(default)]
    pub crm: CrmConfig,
    /// Outbound sync of calls to an external CRM (Bitrix24's external-telephony webhooks).
    #[serde(default)]
    pub crm_sync: Option<CrmSyncConfig>,
    #[serde(default)]
    pub retention: RetentionConfig,
    #[serde(default)]
    pub web: WebConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub broadcasts: BroadcastsConfig,
    #[serde(default)]
    pub operators: Vec<OperatorConfig>,
    #[serde(default)]
    pub api_tokens: Vec<ApiTokenConfig>,
    /// Call queues (ACD): who is rung for callers a flow's `queue` node puts in them.
    #[serde(default)]
    pub queues: Vec<QueueFileConfig>,
    /// SIP peers outbound calls go through (external numbers).
    #[serde(default)]
    pub trunks: Vec<TrunkConfig>,
    /// Dialed number (Request-URI user) → flow id; `default` catches the rest. With no table at
    /// all, every call goes to the flow `main` (the shipped sample), so a first start works.
    #[serde(default)]
    pub routes: Option<std::collections::BTreeMap<String, String>>,
    /// What an authenticated operator may dial beyond extensions.
    #[serde(default)]
    pub dialplan: DialplanConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Digest realm operators' phones authenticate against.
    pub realm: String,
    /// RFC 3261 timer values.
    #[serde(with = "duration_text")]
    pub t1: Duration,
    #[serde(with = "duration_text")]
    pub t2: Duration,
    #[serde(with = "duration_text")]
    pub t4: Duration,
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    /// Failed digest attempts per (source address, user) before a cool-down without challenges.
    pub max_auth_failures: u32,
    /// Users given a wrong password from one source address (IPv6: one /64) within the
    /// window before that whole source is ignored for the cool-down (a scanner walking
    /// extensions; an office's phones each stop at their own `max_auth_failures`).
    pub max_failed_users_per_source: u32,
    #[serde(with = "duration_text")]
    pub auth_failure_window: Duration,
    #[serde(with = "duration_text")]
    pub auth_cooldown: Duration,
    /// 64 hex characters; nodes sharing it accept each other's digest nonces. Random per start if unset.
    pub nonce_secret: Option<String>,
    /// Digest challenges offered, in order. Many phones (and SIPp) answer only the first challenge
    /// and only know MD5, so MD5 comes first by default; RFC 8760 clients may pick SHA-256.
    pub digest_algorithms: Vec<String>,
    /// A TCP message must arrive whole within this from its first byte (slow-loris: a byte now
    /// and then does not keep a connection).
    #[serde(with = "duration_text")]
    pub tcp_message_timeout: Duration,
    /// TCP connections open at once on this node; more are closed as they arrive.
    pub max_tcp_connections: usize,
    /// TCP connections open at once from one IP address (an office NAT holds many phones).
    pub max_tcp_connections_per_source: usize,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            realm: "openline".into(),
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            min_expires: 60,
            max_expires: 7200,
            default_expires: 3600,
            max_auth_failures: 5,
            max_failed_users_per_source: 20,
            auth_failure_window: Duration::from_secs(60),
            auth_cooldown: Duration::from_secs(300),
            nonce_secret: None,
            digest_algorithms: vec!["MD5".into(), "SHA-256".into()],
            tcp_message_timeout: Duration::from_secs(32),
            max_tcp_connections: 4096,
            max_tcp_connections_per_source: 256,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// How long running calls may go on after SIGTERM before they are hung up.
    #[serde(with = "duration_text")]
    pub drain_timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            drain_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsConfig {
    /// How long a caller hears ringing (180) before the server answers.
    #[serde(with = "duration_text")]
    pub answer_delay: Duration,
    /// Record every answered call (stereo WAV under DATA_DIR/recordings).
    pub record: bool,
    /// No RTP or RTCP from the peer for this long ends the call (suspended while on hold).
    #[serde(with = "duration_text")]
    pub media_timeout: Duration,
    /// Memory for decoded prompts shared by all calls.
    pub prompt_cache_mb: usize,
    /// Calls up at once on this node; a new INVITE beyond it gets 503 (0: only
    /// the RTP port range bounds it).
    pub max_calls: usize,
    /// Calls up at once from one source IP address; beyond it 486 (0: no limit). Authenticated
    /// operators and trunks' proxies are not limited by it (an office NAT, a carrier).
    pub max_calls_per_source: usize,
    /// Call records journaled but not yet in the database beyond which new INVITEs get 503
    /// (the database is down or slow): the calls up go on being recorded, and memory stays
    /// bounded. Never 0.
    pub max_records_backlog: usize,
    /// New calls per second the node takes (token bucket, one second of burst); beyond it
    /// 503 with Retry-After. 0: no fixed ceiling (the lag below still protects the node).
    pub max_call_rate: f64,
    /// Smoothed scheduler lateness beyond which new calls get 503 with Retry-After until it is
    /// below half of it: the node is behind, and more calls would spoil the ones up. "0s": off.
    /// 5 ms by measurement (BENCHMARKS.md "Overload"): at twice the sustainable rate 10 ms let
    /// admitted calls skip 9 % of their packets, 3 ms under 1 %; an idle node runs < 1 ms late.
    #[serde(with = "duration_text")]
    pub overload_lag: Duration,
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            answer_delay: Duration::ZERO,
            record: false,
            media_timeout: Duration::from_secs(60),
            prompt_cache_mb: 64,
            max_calls: 0,
            max_calls_per_source: 0,
            max_records_backlog: 100_000,
            max_call_rate: 0.0,
            overload_lag: Duration::from_millis(5),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrmConfig {
    /// ISO 3166 country whose national notation numbers without `+` are read in.
    pub default_country: String,
}

impl Default for CrmConfig {
    fn default() -> Self {
        CrmConfig {
            default_country: "UA".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmSyncConfig {
    /// The inbound webhook's base URL; the method name and `.json` are appended
    /// (`https://example.bitrix24.ua/rest/1/SECRET/` + `telephony.externalcall.register.json`).
    pub url: String,
    /// Bitrix24 user id calls are registered for when the operator has none in `users`.
    #[serde(default = "one_u64")]
    pub default_user_id: u64,
    /// Operator extension → Bitrix24 user id.
    #[serde(default)]
    pub users: std::collections::BTreeMap<String, u64>,
    /// LINE_NUMBER sent with register (optional).
    pub line_number: Option<String>,
    /// First retry delay; doubles per failed attempt up to `retry_max`.
    #[serde(with = "duration_text", default = "five_seconds")]
    pub retry_min: Duration,
    #[serde(with = "duration_text", default = "ten_minutes")]
    pub retry_max: Duration,
    /// Events still undelivered this long after they were queued are given up.
    #[serde(with = "duration_text", default = "seven_days")]
    pub give_up_after: Duration,
    /// Per-request timeout.
    #[serde(with = "duration_text", default = "ten_seconds")]
    pub timeout: Duration,
}

fn one_u64() -> u64 {
    1
}
fn five_seconds() -> Duration {
    Duration::from_secs(5)
}
pub(super) fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}
fn ten_minutes() -> Duration {
    Duration::from_secs(600)
}
fn seven_days() -> Duration {
    Duration::from_secs(7 * 86_400)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Recordings older than this are deleted (file and row); unset keeps them.
    #[serde(with = "optional_duration_text")]
    pub recordings: Option<Duration>,
    /// Call rows older than this are deleted with their legs and recordings; unset keeps them.
    #[serde(with = "optional_duration_text")]
    pub calls: Option<Duration>,
    /// How often the sweep runs (the first run is at start).
    #[serde(with = "duration_text")]
    pub sweep_every: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            recordings: None,
            calls: None,
            sweep_every: Duration::from_secs(86_400),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// How long a browser session of the managers' page lasts.
    #[serde(with = "duration_text")]
    pub session_ttl: Duration,
    /// Mark the session cookie `Secure` (set when the page is served over HTTPS by a proxy).
    pub secure_cookie: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            session_ttl: Duration::from_secs(12 * 3600),
            secure_cookie: false,
        }
    }
}

/// The HTTP listener (API and managers' page).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// A request must be answered within this (reading its body included); then 503.
    #[serde(with = "duration_text")]
    pub request_timeout: Duration,
    /// Requests handled at once; more get 503 `server.busy` (`/healthz`, `/metrics` exempt).
    pub max_concurrent_requests: usize,
    /// Requests handled at once from one IP address (behind a reverse proxy: set it to the
    /// total, every request comes from the proxy).
    pub max_concurrent_requests_per_source: usize,
    /// A request head must arrive within this; keep-alive connections idle this long close.
    #[serde(with = "duration_text")]
    pub header_timeout: Duration,
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_connections_per_source: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            request_timeout: Duration::from_secs(60),
            max_concurrent_requests: 256,
            max_concurrent_requests_per_source: 32,
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_connections_per_source: 128,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BroadcastsConfig {
    /// How long a claimed recipient stays this node's without renewal (renewed every 2 s while
    /// the node lives): after a node dies, its recipients are taken over this long later.
    #[serde(with = "duration_text")]
    pub lease: Duration,
    /// Largest message upload.
    pub max_upload_mb: usize,
}

impl Default for BroadcastsConfig {
    fn default() -> Self {
        BroadcastsConfig {
            lease: Duration::from_secs(60),
            max_upload_mb: 20,
        }
    }
}

/// (`Debug` leaves the password out: changes and configs are logged and asserted on.)
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    pub extension: String,
    pub name: String,
    pub password: String,
    #[serde(default = "one")]
    pub max_calls: u32,
    /// May dial out through the dialplan's trunk (`[dialplan] external`).
    #[serde(default = "yes")]
    pub dial_external: bool,
    /// Numbers this operator may dial even where `[dialplan] external.deny` (or a narrower
    /// `allow`) says no, as dial patterns.
    #[serde(default)]
    pub dial_allow: Vec<String>,
    /// What callers may ask a queue for (`queue: { skills: [...] }` in a flow): languages, topics.
    #[serde(default)]
    pub skills: Vec<String>,
    /// May listen to, whisper into and barge into other operators' calls (their phone is rung
    /// for it, `POST /api/v1/calls/{id}/supervise`).
    #[serde(default)]
    pub supervisor: bool,
}

impl std::fmt::Debug for OperatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorConfig")
            .field("extension", &self.extension)
            .field("name", &self.name)
            .field("password", &"…")
            .field("max_calls", &self.max_calls)
            .field("dial_external", &self.dial_external)
            .field("dial_allow", &self.dial_allow)
            .field("skills", &self.skills)
            .field("supervisor", &self.supervisor)
            .finish()
    }
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Manager,
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "manager" => Some(Role::Manager),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTokenConfig {
    pub token: String,
    pub role: Role,
    /// For operator tokens: the extension whose calls and status the token may see.
    pub extension: Option<String>,
}

impl Settings {
    pub fn load(args: ServeArgs) -> Result<Settings, ConfigError> {
        let path = match &args.config {
            Some(p) => Some(p.clone()),
            None => Some(PathBuf::from("openline.toml")).filter(|p| p.exists()),
        };
        let file = match &path {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        file.validate()?;
        let database_url = args
            .database
            .unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join("openline.db").display()));
        Ok(Settings {
            sip: args.sip,
            http: args.http,
            database_url,
            data_dir: args.data_dir,
            flows: args.flows,
            sounds: args.sounds,
            rtp_ports: PortRange::parse(&args.rtp_ports)?,
            public_ip: args.public_ip,
            clock_start: args.clock_start,
            config_path: path,
            file,
        })
    }
}

impl FileConfig {
    pub fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        FileConfig::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML; the error names line and column.
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| {
            let position = e
                .span()
                .map(|span| {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!("{line}:{column}: ")
                })
                .unwrap_or_default();
            format!("{position}{}", e.message())
        })
    }

    /// Time limits of a second or more and caps of at least 1 (0 would refuse everything).
    fn validate_limits(&self) -> Result<(), ConfigError> {
        let second = Duration::from_secs(1);
        let checks: [(&'static str, bool); 9] = [
            (
                "sip.tcp_message_timeout",
                self.sip.tcp_message_timeout >= second,
            ),
            ("sip.max_tcp_connections", self.sip.max_tcp_connections >= 1),
            (
                "sip.max_tcp_connections_per_source",
                self.sip.max_tcp_connections_per_source >= 1,
            ),
            ("http.request_timeout", self.http.request_timeout >= second),
            (
                "http.max_concurrent_requests",
                self.http.max_concurrent_requests >= 1,
            ),
            (
                "http.max_concurrent_requests_per_source",
                self.http.max_concurrent_requests_per_source >= 1,
            ),
            ("http.header_timeout", self.http.header_timeout >= second),
            ("http.max_connections", self.http.max_connections >= 1),
            (
                "http.max_connections_per_source",
                self.http.max_connections_per_source >= 1,
            ),
        ];
        if let Some((key, _)) = checks.into_iter().find(|(_, ok)| !ok) {
            return Err(ConfigError::Invalid {
                key,
                reason: "use at least 1 (a time: at least 1s); 0 would refuse everything".into(),
            });
        }
        // Brute-force windows beyond a day are a typo, and would overflow the block's end.
        let day = Duration::from_secs(86_400);
        for (key, value) in [
            ("sip.auth_failure_window", self.sip.auth_failure_window),
            ("sip.auth_cooldown", self.sip.auth_cooldown),
        ] {
            if value > day {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "at most 1d".into(),
                });
            }
        }
        Ok(())
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for op in &self.operators {
            let valid = !op.extension.is_empty()
                && op
                    .extension
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !valid {
                return Err(ConfigError::Invalid {
                    key: "operators.extension",
                    reason: format!("{:?} is not a valid SIP user name", op.extension),
                });
            }
            if !seen.insert(op.extension.as_str()) {
                return Err(ConfigError::Invalid {
                    key: "operators.extension",
                    reason: format!("extension {} is listed twice", op.extension),
                });
            }
            if op.password.len() < 8 {
                return Err(ConfigError::Invalid {
                    key: "operators.password",
                    reason: format!("operator {}: use at least 8 characters", op.extension),
                });
            }
            if let Err(e) = crate::dialplan::patterns(&op.dial_allow) {
                return Err(ConfigError::Invalid {
                    key: "operators.dial_allow",
                    reason: format!("operator {}: {e}", op.extension),
                });
            }
        }
        self.validate_queues()?;
        self.validate_limits()?;
        for token in &self.api_tokens {
            if token.token.len() < 16 {
                return Err(ConfigError::Invalid {
                    key: "api_tokens.token",
                    reason: "use at least 16 random characters".into(),
                });
            }
            if token.role == Role::Operator && token.extension.is_none() {
                return Err(ConfigError::Invalid {
                    key: "api_tokens.extension",
                    reason: "an operator token names its extension".into(),
                });
            }
        }
        if let Some(secret) = &self.sip.nonce_secret
            && decode_secret(secret).is_none()
        {
            return Err(ConfigError::Invalid {
                key: "sip.nonce_secret",
                reason: "expected 64 hex characters".into(),
            });
        }
        if self.sip.digest_algorithms.is_empty()
            || self
                .sip
                .digest_algorithms
                .iter()
                .any(|a| crate::sip::auth::Algorithm::parse(a).is_none())
        {
            return Err(ConfigError::Invalid {
                key: "sip.digest_algorithms",
                reason: "list one or both of \"MD5\" and \"SHA-256\"".into(),
            });
        }
        if crate::crm::DefaultCountry::parse(&self.crm.default_country).is_none() {
            return Err(ConfigError::Invalid {
                key: "crm.default_country",
                reason: format!(
                    "{:?} is not an ISO 3166 country code such as \"UA\"",
                    self.crm.default_country
                ),
            });
        }
        if let Some(sync) = &self.crm_sync {
            let scheme_ok = sync.url.starts_with("https://") || sync.url.starts_with("http://");
            if !scheme_ok || sync.retry_min.is_zero() || sync.retry_max < sync.retry_min {
                return Err(ConfigError::Invalid {
                    key: "crm_sync",
                    reason: "need an http(s) url, retry_min > 0 and retry_max >= retry_min".into(),
                });
            }
        }
        if self.retention.sweep_every.is_zero() {
            return Err(ConfigError::Invalid {
                key: "retention.sweep_every",
                reason: "must be more than zero".into(),
            });
        }
        let t = &self.sip;
        if t.t1.is_zero() || t.t2 < t.t1 || t.min_expires > t.max_expires {
            return Err(ConfigError::Invalid {
                key: "sip",
                reason: "need t1 > 0, t2 >= t1 and min_expires <= max_expires".into(),
            });
        }
        Ok(())
    }
}

pub fn decode_secret(hex_text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hex_text.trim()).ok()?;
    bytes.try_into().ok()
}

/// Durations written as text: `500ms`, `20s`, `5m`, `2h`, `90d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit {
        "us" => Some(Duration::from_micros(n)),
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        "d" => Some(Duration::from_secs(n.checked_mul(86_400)?)),
        _ => None,
    }
}

mod duration_text {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?}: use a number with us, ms, s, m, h or d, e.g. \"20s\""
            ))
        })
    }
}

mod optional_duration_text {
    use serde::Deserializer;
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration_text::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests;
