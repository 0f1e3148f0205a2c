//! CRM sync outbox repository: webhook events queued in the same database as the calls, picked up
//! when due, retried with backoff and marked done once the external CRM answered. Each event's id
//! is generated once and sent with every attempt, so the receiver can drop repeats.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Store, StoreError, query_err};

/// A queued webhook call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxEvent {
    /// UUIDv7; the event id the receiver deduplicates on.
    pub id: String,
    pub dedupe_key: String,
    pub call_id: String,
    /// e.g. `telephony.externalcall.register`.
    pub method: String,
    pub payload: serde_json::Value,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

type OutboxRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    DateTime<Utc>,
);

const SELECT_OUTBOX: &str = "SELECT id, dedupe_key, call_id, method, payload, status, attempts, \
     last_error, created_at FROM crm_outbox";

fn event(row: OutboxRow) -> OutboxEvent {
    let (id, dedupe_key, call_id, method, payload, status, attempts, last_error, created_at) = row;
    OutboxEvent {
        id,
        dedupe_key,
        call_id,
        method,
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
        status,
        attempts,
        last_error,
        created_at,
    }
}

impl Store {
    /// Queues an event unless one with this `dedupe_key` exists. `Ok(true)`: queued now.
    pub async fn enqueue_outbox(
        &self,
        dedupe_key: &str,
        call_id: &str,
        method: &str,
        payload: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = on_writer!(self, pool => sqlx::query(
            "INSERT INTO crm_outbox (id, dedupe_key, call_id, method, payload, status, \
                 next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6) \
             ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(dedupe_key)
        .bind(call_id)
        .bind(method)
        .bind(payload.to_string())
        .bind(now)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))
        .map_err(query_err("enqueue_outbox"))?;
        Ok(n == 1)
    }

    /// Pending events due at `now`, oldest first.
    pub async fn due_outbox(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let sql = format!(
            "{SELECT_OUTBOX} WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT $2"
        );
        let rows =
            on_reader!(self, pool => sqlx::query_as::<_, OutboxRow>(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await)
            .map_err(query_err("due_outbox"))?;
        Ok(rows.into_iter().map(event).collect())
    }

    /// Every event of a call, oldest first (tests, diagnostics).
    pub async fn outbox_for_call(&self, call_id: &str) -> Result<Vec<OutboxEvent>, StoreError> {
        let sql = format!("{SELECT_OUTBOX} WHERE call_id = $1 ORDER BY id");
        let rows =
            on_reader!(self, pool => sqlx::query_as::<_, OutboxRow>(sqlx::AssertSqlSafe(sql))
            .bind(call_id)
            .fetch_all(pool)
            .await)
            .map_err(query_err("outbox_for_call"))?;
        Ok(rows.into_iter().map(event).collect())
    }

    /// When the next pending event falls due, if any.
    pub async fn next_outbox_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        on_reader!(self, pool => sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
            "SELECT MIN(next_attempt_at) FROM crm_outbox WHERE status = 'pending'",
        )
        .fetch_one(pool)
        .await)
        .map_err(query_err("next_outbox_due"))
    }

    /// The event was accepted by the external CRM.
    pub async fn outbox_delivered(&self, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.outbox_update(
            "UPDATE crm_outbox SET status = 'done', attempts = attempts + 1, delivered_at = $2, \
             last_error = NULL WHERE id = $1",
            id,
            now,
            None,
        )
        .await
    }

    /// The attempt failed; try again at `next_at`.
    pub async fn outbox_retry(
        &self,
        id: &str,
        error: &str,
        next_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.outbox_update(
            "UPDATE crm_outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 \
             WHERE id = $1",
            id,
            next_at,
            Some(error),
        )
        .await
    }

    /// The event is given up (too old, or refused for good).
    pub async fn outbox_failed(
        &self,
        id: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.outbox_update(
            "UPDATE crm_outbox SET status = 'failed', attempts = attempts + 1, \
             next_attempt_at = $2, last_error = $3 WHERE id = $1",
            id,
            now,
            Some(error),
        )
        .await
    }

    async fn outbox_update(
        &self,
        sql: &'static str,
        id: &str,
        at: DateTime<Utc>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        on_writer!(self, pool => {
            let mut q = sqlx::query(sql).bind(id).bind(at);
            if let Some(error) = error {
                q = q.bind(error);
            }
            q.execute(pool).await.map(|done| done.rows_affected())
        })
        .map_err(query_err("outbox_update"))?;
        Ok(())
    }

    /// The external CRM's id of a call, once its register event was answered.
    pub async fn sync_external_id(&self, call_id: &str) -> Result<Option<String>, StoreError> {
        on_reader!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT external_id FROM crm_sync_calls WHERE call_id = $1",
        )
        .bind(call_id)
        .fetch_optional(pool)
        .await)
        .map_err(query_err("sync_external_id"))
    }

    /// Keeps the external CRM's id of a call (the first one stored wins).
    pub async fn set_sync_external_id(
        &self,
        call_id: &str,
        external_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_writer!(self, pool => sqlx::query(
            "INSERT INTO crm_sync_calls (call_id, external_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (call_id) DO NOTHING",
        )
        .bind(call_id)
        .bind(external_id)
        .bind(now)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))
        .map_err(query_err("set_sync_external_id"))?;
        Ok(())
    }
}
