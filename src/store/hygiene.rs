//! Records hygiene: what the retention sweep deletes (old recordings, old call rows) and the
//! housekeeping of short-lived rows (expired sessions, old idempotency keys, delivered sync events).

use chrono::{DateTime, Utc};

use super::{RecordingRecord, Store, StoreError, query_err};

impl Store {
    /// Recordings created before `cutoff` (the caller deletes each file, then the row).
    pub async fn recordings_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<RecordingRecord>, StoreError> {
        on_reader!(self, pool => sqlx::query_as::<_, RecordingRecord>(
            "SELECT id, call_id, path, format, channels, sample_rate, duration_ms, size_bytes, \
                 status, error, created_at, completed_at FROM recordings \
             WHERE created_at < $1 AND status <> 'recording' ORDER BY id LIMIT $2",
        )
        .bind(cutoff)
        .bind(limit)
        .fetch_all(pool)
        .await)
        .map_err(query_err("recordings_before"))
    }

    /// Deletes one recording row.
    pub async fn delete_recording(&self, id: &str) -> Result<(), StoreError> {
        on_writer!(self, pool => sqlx::query("DELETE FROM recordings WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
        .map_err(query_err("delete_recording"))?;
        Ok(())
    }

    /// Ended calls that started before `cutoff`, with the paths of their recordings (delete the
    /// files, then `delete_calls`).
    pub async fn calls_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let ids = on_reader!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT id FROM calls WHERE started_at < $1 AND ended_at IS NOT NULL ORDER BY id LIMIT $2",
        )
        .bind(cutoff)
        .bind(limit)
        .fetch_all(pool)
        .await)
        .map_err(query_err("calls_before"))?;
        let mut paths = Vec::new();
        for id in &ids {
            paths.extend(
                self.recordings_for_call(id)
                    .await?
                    .into_iter()
                    .map(|r| r.path),
            );
        }
        Ok((ids, paths))
    }

    /// Deletes call rows with their legs, recordings rows and CRM links; timeline entries stay
    /// (they are snapshots) and lose only their call reference. Returns how many were deleted.
    pub async fn delete_calls(&self, ids: &[String]) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for id in ids {
            deleted += on_writer!(self, pool => sqlx::query("DELETE FROM calls WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected()))
            .map_err(query_err("delete_calls"))?;
        }
        Ok(deleted)
    }

    /// Deletes expired sessions, idempotency keys older than `keys_before` and sync events that
    /// were delivered or given up before `outbox_before`.
    pub async fn sweep_short_lived(
        &self,
        now: DateTime<Utc>,
        keys_before: DateTime<Utc>,
        outbox_before: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_writer!(self, pool => async {
            sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await?;
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                .bind(keys_before)
                .execute(pool)
                .await?;
            sqlx::query(
                "DELETE FROM crm_outbox WHERE status <> 'pending' AND next_attempt_at < $1",
            )
            .bind(outbox_before)
            .execute(pool)
            .await?;
            Ok::<(), sqlx::Error>(())
        }
        .await)
        .map_err(query_err("sweep_short_lived"))
    }
}
