//! Timeline repository: which person each ended call belongs to (`crm_call_links`), the timeline
//! entries themselves (JSON snapshots), the backfill query for calls not yet handled (crash repair,
//! upgrades), and GDPR erasure of a person.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{CallRecord, Store, StoreError, query_err};

/// Replaces numbers and names of calls whose person was erased.
pub const ERASED: &str = "erased";

/// A timeline entry to write.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTimelineEntry {
    pub person_id: String,
    /// `call` | `voicemail` | `note` (broadcast results later).
    pub kind: String,
    pub call_id: Option<String>,
    pub at: DateTime<Utc>,
    /// A snapshot of what the entry shows (for a call: direction, number, times, disposition…).
    pub data: serde_json::Value,
}

/// A timeline entry as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineRecord {
    pub id: String,
    pub person_id: String,
    pub kind: String,
    pub call_id: Option<String>,
    pub at: DateTime<Utc>,
    pub data: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct TimelineRow {
    id: String,
    person_id: String,
    kind: String,
    call_id: Option<String>,
    at: DateTime<Utc>,
    data: String,
}

impl From<TimelineRow> for TimelineRecord {
    fn from(r: TimelineRow) -> Self {
        TimelineRecord {
            data: serde_json::from_str(&r.data).unwrap_or(serde_json::Value::Null),
            id: r.id,
            person_id: r.person_id,
            kind: r.kind,
            call_id: r.call_id,
            at: r.at,
        }
    }
}

/// What an erasure removed; the caller deletes the recording files after the rows are gone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erasure {
    /// Calls whose numbers, names and leg addresses were replaced by `erased`.
    pub calls_anonymised: u64,
    /// Paths (relative to the data directory) of the recordings whose rows were deleted.
    pub recording_paths: Vec<String>,
}

impl Store {
    /// Puts an ended call on a person's timeline (or records that it belongs to nobody when
    /// `person_id` is `None`). Idempotent: `Ok(false)` when the call was linked already.
    pub async fn link_call(
        &self,
        call_id: &str,
        person_id: Option<&str>,
        entry: Option<&NewTimelineEntry>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let entry_id = uuid::Uuid::now_v7().to_string();
        on_writer!(self, pool => async {
            let mut tx = pool.begin().await?;
            let linked = sqlx::query(
                "INSERT INTO crm_call_links (call_id, person_id, linked_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (call_id) DO NOTHING",
            )
            .bind(call_id)
            .bind(person_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if linked && let Some(e) = entry {
                sqlx::query(
                    "INSERT INTO crm_timeline (id, person_id, kind, call_id, at, data) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (call_id, kind) DO NOTHING",
                )
                .bind(&entry_id)
                .bind(&e.person_id)
                .bind(&e.kind)
                .bind(&e.call_id)
                .bind(e.at)
                .bind(e.data.to_string())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<bool, sqlx::Error>(linked)
        }
        .await)
        .map_err(query_err("link_call"))
    }

    /// Adds an entry that is not a call's own (a voicemail, a note). A second entry of one kind
    /// for one call is ignored; returns the entry's id, or `None` when it was a repeat.
    pub async fn add_timeline_entry(
        &self,
        e: &NewTimelineEntry,
    ) -> Result<Option<String>, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let n = on_writer!(self, pool => sqlx::query(
            "INSERT INTO crm_timeline (id, person_id, kind, call_id, at, data) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (call_id, kind) DO NOTHING",
        )
        .bind(&id)
        .bind(&e.person_id)
        .bind(&e.kind)
        .bind(&e.call_id)
        .bind(e.at)
        .bind(e.data.to_string())
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))
        .map_err(query_err("add_timeline_entry"))?;
        Ok((n == 1).then_some(id))
    }

    /// A person's timeline, newest first; `before` is the id of the last entry of the previous page.
    pub async fn timeline(
        &self,
        person_id: &str,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<TimelineRecord>, StoreError> {
        let limit = limit.clamp(1, 1000);
        let rows = on_reader!(self, pool => sqlx::query_as::<_, TimelineRow>(
            "SELECT id, person_id, kind, call_id, at, data FROM crm_timeline \
             WHERE person_id = $1 AND ($2 IS NULL OR at < (SELECT at FROM crm_timeline WHERE id = $2) \
                 OR (at = (SELECT at FROM crm_timeline WHERE id = $2) AND id < $2)) \
             ORDER BY at DESC, id DESC LIMIT $3",
        )
        .bind(person_id)
        .bind(before)
        .bind(limit)
        .fetch_all(pool)
        .await)
        .map_err(query_err("timeline"))?;
        Ok(rows.into_iter().map(TimelineRecord::from).collect())
    }

    /// The person an ended call was put on, if any.
    pub async fn call_person(&self, call_id: &str) -> Result<Option<String>, StoreError> {
        on_reader!(self, pool => sqlx::query_scalar::<_, Option<String>>(
            "SELECT person_id FROM crm_call_links WHERE call_id = $1",
        )
        .bind(call_id)
        .fetch_optional(pool)
        .await)
        .map(Option::flatten)
        .map_err(query_err("call_person"))
    }

    /// Ended calls that were never linked (the start-up backfill: calls closed by crash repair,
    /// or from before the CRM existed), oldest first.
    pub async fn unlinked_ended_calls(&self, limit: i64) -> Result<Vec<CallRecord>, StoreError> {
        on_reader!(self, pool => sqlx::query_as::<_, CallRecord>(
            "SELECT id, node_id, direction, caller, caller_name, callee, started_at, answered_at, \
                 ended_at, duration_ms, disposition, hangup_by FROM calls c \
             WHERE ended_at IS NOT NULL \
               AND NOT EXISTS (SELECT 1 FROM crm_call_links l WHERE l.call_id = c.id) \
             ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(pool)
        .await)
        .map_err(query_err("unlinked_ended_calls"))
    }

    /// GDPR erasure: the person, their numbers, e-mails and timeline, the recordings of their
    /// calls and any CRM sync events about them are deleted; their calls stay for statistics with
    /// numbers, names and leg addresses replaced by `erased`. `Ok(None)`: no such person.
    pub async fn erase_person(&self, id: &str) -> Result<Option<Erasure>, StoreError> {
        on_writer!(self, pool => async {
            let mut tx = pool.begin().await?;
            let exists = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM crm_people WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            if exists == 0 {
                return Ok(None);
            }
            const CALLS: &str = "(SELECT call_id FROM crm_call_links WHERE person_id = $1 \
                 UNION SELECT call_id FROM crm_timeline WHERE person_id = $1 AND call_id IS NOT NULL)";
            let recording_paths = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
                "SELECT path FROM recordings WHERE call_id IN {CALLS}"
            )))
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            for sql in [
                format!("DELETE FROM recordings WHERE call_id IN {CALLS}"),
                format!("DELETE FROM crm_outbox WHERE call_id IN {CALLS}"),
                format!("DELETE FROM crm_sync_calls WHERE call_id IN {CALLS}"),
                format!(
                    "UPDATE call_legs SET remote_uri = '{ERASED}', remote_addr = NULL \
                     WHERE call_id IN {CALLS}"
                ),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).execute(&mut *tx).await?;
            }
            let calls_anonymised = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE calls SET caller_name = NULL, \
                     caller = CASE WHEN direction = 'outbound' THEN caller ELSE '{ERASED}' END, \
                     callee = CASE WHEN direction = 'outbound' THEN '{ERASED}' ELSE callee END \
                 WHERE id IN {CALLS}"
            )))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("DELETE FROM crm_people WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<Option<Erasure>, sqlx::Error>(Some(Erasure {
                calls_anonymised,
                recording_paths,
            }))
        }
        .await)
        .map_err(query_err("erase_person"))
    }
}
