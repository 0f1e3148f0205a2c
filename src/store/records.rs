//! Plain data that goes in and out of the store: one struct per row shape, plus the call-list filter.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An operator (a SIP user who takes calls). Digest credentials are kept as HA1 values only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct OperatorRecord {
    pub extension: String,
    pub name: String,
    pub realm: String,
    /// MD5(extension ":" realm ":" password), hex. Password-equivalent: never serialized.
    #[serde(skip_serializing)]
    pub ha1_md5: String,
    /// SHA-256(extension ":" realm ":" password), hex. Password-equivalent: never serialized.
    #[serde(skip_serializing)]
    pub ha1_sha256: String,
    pub max_calls: i32,
    /// `online` | `away` | `offline`.
    pub status: String,
    /// Why the status is what it is, when the server set it (`missed_rings:3`); `None` when an
    /// operator or admin set it.
    pub status_reason: Option<String>,
    /// When the status last changed.
    pub status_changed_at: Option<DateTime<Utc>>,
}

/// A registrar binding: one Contact of one extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct BindingRecord {
    pub extension: String,
    pub contact_uri: String,
    /// `ip:port` the REGISTER came from (where to send requests behind NAT).
    pub received: Option<String>,
    /// `udp` | `tcp`.
    pub transport: String,
    pub call_id: String,
    pub cseq: i64,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    /// Which Openline node accepted the REGISTER.
    pub node_id: String,
}

/// A call as it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCall {
    /// UUIDv7, shared by all legs of the call.
    pub id: String,
    pub node_id: String,
    /// `inbound` | `outbound` | `internal`.
    pub direction: String,
    pub caller: String,
    pub caller_name: Option<String>,
    pub callee: String,
    pub started_at: DateTime<Utc>,
}

/// A call record (CDR).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CallRecord {
    pub id: String,
    pub node_id: String,
    pub direction: String,
    pub caller: String,
    pub caller_name: Option<String>,
    pub callee: String,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `ended_at - started_at` in milliseconds, set when the call ends.
    pub duration_ms: Option<i64>,
    /// Stable dotted code, e.g. `answered.completed`, `system.crashed`.
    pub disposition: Option<String>,
    /// `caller` | `callee` | `system`.
    pub hangup_by: Option<String>,
    /// The IVR flow that answered the call.
    #[sqlx(default)]
    pub flow_id: Option<String>,
    /// JSON array of the nodes visited: `[{"flow","node","digits"}]`.
    #[sqlx(default)]
    pub flow_path: Option<String>,
    /// The caller's rating, 1–5.
    #[sqlx(default)]
    pub rating: Option<i32>,
    /// The queue the caller waited in (the last one, after an overflow).
    #[sqlx(default)]
    pub queue: Option<String>,
    /// The extension that talked to the caller from the queue.
    #[sqlx(default)]
    pub operator: Option<String>,
    /// Time waited in the queue until bridged to `operator` or until the caller left.
    #[sqlx(default)]
    pub wait_ms: Option<i64>,
    /// The voice broadcast that placed this call.
    #[sqlx(default)]
    pub broadcast_id: Option<String>,
    /// The broadcast attempt's result, JSON: `{"attempt","answered","amd","amd_reason","message","digit","opted_out","sip"}` (the recipient's outcome is on the broadcast_recipients row).
    #[sqlx(default)]
    pub broadcast_result: Option<String>,
}

/// A SIP leg of a call as it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLeg {
    pub call_id: String,
    /// The SIP Call-ID header of this leg's dialog.
    pub sip_call_id: String,
    pub direction: String,
    pub local_tag: Option<String>,
    pub remote_tag: Option<String>,
    pub remote_uri: String,
    pub remote_addr: Option<String>,
    pub transport: String,
    pub started_at: DateTime<Utc>,
}

/// A SIP leg of a call as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LegRecord {
    pub id: i64,
    pub call_id: String,
    pub sip_call_id: String,
    pub direction: String,
    pub local_tag: Option<String>,
    pub remote_tag: Option<String>,
    pub remote_uri: String,
    pub remote_addr: Option<String>,
    pub transport: String,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Final SIP status of the leg's INVITE (or BYE), when known.
    pub final_status: Option<i32>,
}

/// Which calls `Store::calls` returns. Every field is optional; the default lists the newest 100.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CallFilter {
    /// Calls that started at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Calls that started before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Calls whose caller or callee is exactly this number.
    pub number: Option<String>,
    /// Page size, clamped to 1..=1000; 100 when absent.
    pub limit: Option<i64>,
    /// Keyset paging cursor: only calls whose id sorts before this one (older, for UUIDv7 ids).
    pub before_id: Option<String>,
    /// Calls with this disposition, or one under it (`answered` matches `answered.caller_hangup`).
    pub disposition: Option<String>,
    /// `inbound` | `outbound` | `internal`.
    pub direction: Option<String>,
    /// Calls that waited in this queue (the last one, after an overflow).
    pub queue: Option<String>,
    /// Calls this extension took as the queue's operator (the `operator` column).
    pub operator: Option<String>,
    /// Calls the caller rated so (1–5).
    pub rating: Option<i32>,
    /// Calls this extension took part in: as caller, callee or operator. An operator token's scope.
    pub party: Option<String>,
}

impl CallFilter {
    pub const DEFAULT_LIMIT: i64 = 100;
    pub const MAX_LIMIT: i64 = 1000;

    /// The page size actually used.
    pub fn effective_limit(&self) -> i64 {
        clamp_limit(self.limit)
    }
}

/// A page size clamped to 1..=`CallFilter::MAX_LIMIT`; `CallFilter::DEFAULT_LIMIT` when absent.
fn clamp_limit(limit: Option<i64>) -> i64 {
    limit
        .unwrap_or(CallFilter::DEFAULT_LIMIT)
        .clamp(1, CallFilter::MAX_LIMIT)
}

/// Which rated calls `Store::ratings` and `Store::rating_averages` cover.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RatingFilter {
    /// Calls this extension took as the queue's operator.
    pub operator: Option<String>,
    /// Calls that started at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Calls that started before this instant.
    pub until: Option<DateTime<Utc>>,
    /// How many ratings `Store::ratings` returns, clamped like `CallFilter::limit`. Averages
    /// cover every matching call.
    pub limit: Option<i64>,
}

impl RatingFilter {
    /// The page size actually used.
    pub fn effective_limit(&self) -> i64 {
        clamp_limit(self.limit)
    }
}

/// A caller's rating of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RatingRecord {
    pub call_id: String,
    /// The extension that talked to the caller; `None` when no operator took the call.
    pub operator: Option<String>,
    pub queue: Option<String>,
    /// 1–5.
    pub rating: i32,
    pub caller: String,
    pub started_at: DateTime<Utc>,
}

/// One operator's ratings summed up.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RatingAverage {
    pub operator: String,
    /// How many rated calls.
    pub count: i64,
    /// Their mean rating, 1.0–5.0.
    pub average: f64,
}

/// What an API token grants. The token itself is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ApiTokenRecord {
    /// `admin` | `manager` | `operator`.
    pub role: String,
    /// The extension an `operator` token acts for.
    pub extension: Option<String>,
    pub label: String,
}
