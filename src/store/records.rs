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
}

/// A registrar binding: one Contact of one extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

/// A SIP leg of a call as it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl CallFilter {
    pub const DEFAULT_LIMIT: i64 = 100;
    pub const MAX_LIMIT: i64 = 1000;

    /// The page size actually used.
    pub fn effective_limit(&self) -> i64 {
        self.limit
            .unwrap_or(Self::DEFAULT_LIMIT)
            .clamp(1, Self::MAX_LIMIT)
    }
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
