//! Call records written in batches: every change the call path makes to calls, legs, recordings,
//! operators' status and bindings is one `RecordEntry`, and a batch of them is applied in one
//! transaction together with the journal checkpoint of the node that wrote them.
//!
//! The checkpoint (`records_journal.applied_seq`) commits with the rows, so after a crash the
//! node replays exactly the entries whose rows are not in the database: none twice, none lost.
//! Entries are plain data (serde) because the runtime journals them to disk before they reach
//! this layer. Legs are named by `(call_id, sip_call_id)`, not by row id, so an entry written
//! before a restart still finds its leg after it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::calls::duration_ms;
use super::operators::check_status;
use super::{BindingRecord, NewCall, NewLeg, NewRecording, Store, StoreError, query_err};

/// One change to the call records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RecordEntry {
    /// A call and its first leg.
    CallStarted {
        call: NewCall,
        leg: NewLeg,
    },
    /// The call and its leg `sip_call_id` answered (the first answer wins).
    CallAnswered {
        call_id: String,
        sip_call_id: String,
        at: DateTime<Utc>,
    },
    /// The call and its leg `sip_call_id` ended. A call already ended is left as it is.
    CallEnded {
        call_id: String,
        sip_call_id: String,
        at: DateTime<Utc>,
        disposition: String,
        hangup_by: Option<String>,
        final_status: Option<i32>,
    },
    CallEvent {
        call_id: String,
        at: DateTime<Utc>,
        kind: String,
        detail: serde_json::Value,
    },
    /// The IVR flow the call is in and its path so far.
    CallFlow {
        call_id: String,
        flow: String,
        path: serde_json::Value,
    },
    CallRating {
        call_id: String,
        rating: i32,
    },
    CallBroadcast {
        call_id: String,
        broadcast_id: String,
        result: serde_json::Value,
    },
    /// The caller joined `queue` at `position` (a later join, an overflow, overwrites it).
    CallQueued {
        call_id: String,
        queue: String,
        position: u32,
        at: DateTime<Utc>,
    },
    /// The caller left the queue: bridged to `operator`, or not (`operator` `None`).
    CallQueueOutcome {
        call_id: String,
        queue: String,
        operator: Option<String>,
        wait_ms: i64,
        /// `answered` | `abandoned` | `overflow`.
        outcome: String,
        at: DateTime<Utc>,
    },
    /// A leg we placed for an existing call.
    LegStarted {
        leg: NewLeg,
    },
    LegAnswered {
        call_id: String,
        sip_call_id: String,
        at: DateTime<Utc>,
    },
    LegEnded {
        call_id: String,
        sip_call_id: String,
        at: DateTime<Utc>,
        status: Option<i32>,
    },
    RecordingStarted {
        recording: NewRecording,
    },
    /// The recording is complete; with CRM sync on and the call already synced, its
    /// attachRecord event is queued in the same transaction.
    RecordingFinished {
        id: String,
        duration_ms: i64,
        size_bytes: i64,
        at: DateTime<Utc>,
    },
    RecordingFailed {
        id: String,
        error: String,
        at: DateTime<Utc>,
    },
    /// The operator's status; `status_changed_at` moves only when status or reason change.
    OperatorStatus {
        extension: String,
        status: String,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    BindingUpsert {
        binding: BindingRecord,
    },
    BindingRemove {
        extension: String,
        contact_uri: String,
    },
}

/// Where a node's replay starts: entries up to `applied_seq` are in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint<'a> {
    pub node_id: &'a str,
    pub applied_seq: u64,
}

/// Inserts a `call_legs` row inside the batch's transaction; the rows it changed. A macro, as
/// the transaction's type differs per backend (`on_writer!` expands the body once for each).
macro_rules! insert_leg {
    ($tx:ident, $leg:expr) => {{
        let leg: &NewLeg = $leg;
        sqlx::query(INSERT_LEG)
            .bind(&leg.call_id)
            .bind(&leg.sip_call_id)
            .bind(&leg.direction)
            .bind(&leg.local_tag)
            .bind(&leg.remote_tag)
            .bind(&leg.remote_uri)
            .bind(&leg.remote_addr)
            .bind(&leg.transport)
            .bind(leg.started_at)
            .execute(&mut *$tx)
            .await?
            .rows_affected()
    }};
}

impl Store {
    /// Applies `entries` in order in one transaction and, with a checkpoint, records it in the
    /// same transaction. Returns the rows each entry changed (0: its call, leg, recording or
    /// operator does not exist, or the change was already made). Any failure rolls back the
    /// whole batch.
    pub async fn apply_records(
        &self,
        checkpoint: Option<Checkpoint<'_>>,
        entries: &[RecordEntry],
    ) -> Result<Vec<u64>, StoreError> {
        on_writer!(self, pool => async {
            let mut tx = pool.begin().await?;
            let mut changed = Vec::with_capacity(entries.len());
            for entry in entries {
                let rows = match entry {
                    RecordEntry::CallStarted { call, leg } => {
                        let rows = insert_call_row!(&mut *tx, call)?.rows_affected();
                        insert_leg!(tx, leg);
                        rows
                    }
                    RecordEntry::LegStarted { leg } => insert_leg!(tx, leg),
                    RecordEntry::CallAnswered { call_id, sip_call_id, at } => {
                        sqlx::query(LEG_ANSWERED)
                            .bind(call_id)
                            .bind(sip_call_id)
                            .bind(at)
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query(
                            "UPDATE calls SET answered_at = $2 \
                             WHERE id = $1 AND answered_at IS NULL",
                        )
                        .bind(call_id)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                    }
                    RecordEntry::LegAnswered { call_id, sip_call_id, at } => {
                        sqlx::query(LEG_ANSWERED)
                            .bind(call_id)
                            .bind(sip_call_id)
                            .bind(at)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                    }
                    RecordEntry::LegEnded { call_id, sip_call_id, at, status } => {
                        sqlx::query(LEG_ENDED)
                            .bind(call_id)
                            .bind(sip_call_id)
                            .bind(at)
                            .bind(status)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                    }
                    RecordEntry::CallEnded {
                        call_id,
                        sip_call_id,
                        at,
                        disposition,
                        hangup_by,
                        final_status,
                    } => {
                        sqlx::query(LEG_ENDED)
                            .bind(call_id)
                            .bind(sip_call_id)
                            .bind(at)
                            .bind(final_status)
                            .execute(&mut *tx)
                            .await?;
                        let started_at = sqlx::query_scalar::<_, DateTime<Utc>>(
                            "SELECT started_at FROM calls WHERE id = $1",
                        )
                        .bind(call_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                        match started_at {
                            None => 0,
                            Some(started_at) => sqlx::query(
                                "UPDATE calls SET ended_at = $2, duration_ms = $3, \
                                     disposition = $4, hangup_by = $5 \
                                 WHERE id = $1 AND ended_at IS NULL",
                            )
                            .bind(call_id)
                            .bind(at)
                            .bind(duration_ms(started_at, *at))
                            .bind(disposition)
                            .bind(hangup_by)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected(),
                        }
                    }
                    RecordEntry::CallEvent { call_id, at, kind, detail } => sqlx::query(
                        "INSERT INTO call_events (call_id, at, kind, detail) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(call_id)
                    .bind(at)
                    .bind(kind)
                    .bind(detail.to_string())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    RecordEntry::CallFlow { call_id, flow, path } => sqlx::query(
                        "UPDATE calls SET flow_id = $2, flow_path = $3 WHERE id = $1",
                    )
                    .bind(call_id)
                    .bind(flow)
                    .bind(path.to_string())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    RecordEntry::CallRating { call_id, rating } => {
                        sqlx::query("UPDATE calls SET rating = $2 WHERE id = $1")
                            .bind(call_id)
                            .bind(rating)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                    }
                    RecordEntry::CallBroadcast { call_id, broadcast_id, result } => sqlx::query(
                        "UPDATE calls SET broadcast_id = $2, broadcast_result = $3 WHERE id = $1",
                    )
                    .bind(call_id)
                    .bind(broadcast_id)
                    .bind(result.to_string())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    RecordEntry::CallQueued { call_id, queue, .. } => {
                        sqlx::query("UPDATE calls SET queue = $2 WHERE id = $1")
                            .bind(call_id)
                            .bind(queue)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                    }
                    RecordEntry::CallQueueOutcome { call_id, operator, wait_ms, .. } => {
                        sqlx::query("UPDATE calls SET operator = $2, wait_ms = $3 WHERE id = $1")
                            .bind(call_id)
                            .bind(operator)
                            .bind((*wait_ms).max(0))
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                    }
                    RecordEntry::RecordingStarted { recording: r } => sqlx::query(
                        "INSERT INTO recordings (id, call_id, path, format, channels, \
                             sample_rate, status, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, 'recording', $7)",
                    )
                    .bind(&r.id)
                    .bind(&r.call_id)
                    .bind(&r.path)
                    .bind(&r.format)
                    .bind(r.channels)
                    .bind(r.sample_rate)
                    .bind(r.created_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    RecordEntry::RecordingFinished { id, duration_ms, size_bytes, at } => {
                        let rows = sqlx::query(
                            "UPDATE recordings SET status = 'complete', duration_ms = $2, \
                                 size_bytes = $3, completed_at = $4 WHERE id = $1",
                        )
                        .bind(id)
                        .bind(duration_ms)
                        .bind(size_bytes)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        sqlx::query(
                            "INSERT INTO crm_outbox (id, dedupe_key, call_id, method, payload, \
                                 status, next_attempt_at, created_at) \
                             SELECT $1, 'attach:' || r.id, r.call_id, \
                                 'telephony.externalCall.attachRecord', '{}', 'pending', $3, $3 \
                             FROM recordings r WHERE r.id = $2 AND EXISTS \
                                 (SELECT 1 FROM crm_outbox o WHERE o.call_id = r.call_id \
                                  AND o.method = 'telephony.externalcall.finish') \
                             ON CONFLICT (dedupe_key) DO NOTHING",
                        )
                        .bind(uuid::Uuid::now_v7().to_string())
                        .bind(id)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                        rows
                    }
                    RecordEntry::RecordingFailed { id, error, at } => sqlx::query(
                        "UPDATE recordings SET status = 'failed', error = $2, completed_at = $3 \
                         WHERE id = $1",
                    )
                    .bind(id)
                    .bind(error)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    RecordEntry::OperatorStatus { extension, status, reason, at } => sqlx::query(
                        "UPDATE operators SET \
                             status_changed_at = CASE \
                                 WHEN status = $2 AND COALESCE(status_reason, '') = COALESCE($3, '') \
                                     AND status_changed_at IS NOT NULL THEN status_changed_at \
                                 ELSE $4 END, \
                             status = $2, status_reason = $3, updated_at = $4 \
                         WHERE extension = $1",
                    )
                    .bind(extension)
                    .bind(status)
                    .bind(reason)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    RecordEntry::BindingUpsert { binding: b } => sqlx::query(
                        "INSERT INTO registrations \
                             (extension, contact_uri, received, transport, call_id, cseq, \
                              expires_at, user_agent, node_id, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                         ON CONFLICT (extension, contact_uri) DO UPDATE SET \
                             received = excluded.received, transport = excluded.transport, \
                             call_id = excluded.call_id, cseq = excluded.cseq, \
                             expires_at = excluded.expires_at, user_agent = excluded.user_agent, \
                             node_id = excluded.node_id, updated_at = excluded.updated_at",
                    )
                    .bind(&b.extension)
                    .bind(&b.contact_uri)
                    .bind(&b.received)
                    .bind(&b.transport)
                    .bind(&b.call_id)
                    .bind(b.cseq)
                    .bind(b.expires_at)
                    .bind(&b.user_agent)
                    .bind(&b.node_id)
                    .bind(Utc::now())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    RecordEntry::BindingRemove { extension, contact_uri } => sqlx::query(
                        "DELETE FROM registrations WHERE extension = $1 AND contact_uri = $2",
                    )
                    .bind(extension)
                    .bind(contact_uri)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                };
                changed.push(rows);
            }
            if let Some(Checkpoint { node_id, applied_seq }) = checkpoint {
                sqlx::query(
                    "INSERT INTO records_journal (node_id, applied_seq) VALUES ($1, $2) \
                     ON CONFLICT (node_id) DO UPDATE SET applied_seq = excluded.applied_seq",
                )
                .bind(node_id)
                .bind(i64::try_from(applied_seq).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(changed)
        }
        .await)
        .map_err(query_err("apply_records"))
    }

    /// The last journal entry of `node_id` whose rows are in the database (0: none yet).
    pub async fn records_applied(&self, node_id: &str) -> Result<u64, StoreError> {
        let seq = on_writer!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT applied_seq FROM records_journal WHERE node_id = $1",
        )
        .bind(node_id)
        .fetch_optional(pool)
        .await)
        .map_err(query_err("records_applied"))?;
        Ok(seq.map_or(0, |s| u64::try_from(s).unwrap_or(0)))
    }

    /// Applies one entry outside the journal (start-up repair, the API, tests); returns the rows
    /// it changed.
    pub async fn apply_record(&self, entry: RecordEntry) -> Result<u64, StoreError> {
        if let RecordEntry::OperatorStatus { status, .. } = &entry {
            check_status(status)?;
        }
        let changed = self
            .apply_records(None, std::slice::from_ref(&entry))
            .await?;
        Ok(changed.first().copied().unwrap_or(0))
    }
}

/// Inserts a `call_legs` row: `$1..$9` = call, SIP Call-ID, direction, tags, URI, address,
/// transport, start.
const INSERT_LEG: &str = "INSERT INTO call_legs (call_id, sip_call_id, direction, local_tag, \
         remote_tag, remote_uri, remote_addr, transport, started_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// Marks the leg `($1, $2)` answered at `$3`; the first answer wins.
const LEG_ANSWERED: &str = "UPDATE call_legs SET answered_at = $3 \
     WHERE call_id = $1 AND sip_call_id = $2 AND answered_at IS NULL";

/// Ends the leg `($1, $2)` at `$3` with final status `$4`, unless it has ended.
const LEG_ENDED: &str = "UPDATE call_legs SET ended_at = $3, final_status = $4 \
     WHERE call_id = $1 AND sip_call_id = $2 AND ended_at IS NULL";
