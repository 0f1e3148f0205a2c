//! Recordings repository: one row per recording file the media engine writes (path relative to the
//! data directory), its completion or failure, and the look-ups the API and the retention sweep use.
//! The API finds a file only through a row here, never from request input.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Store, StoreError, builder, query_err};

/// A recording as it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NewRecording {
    /// UUIDv7.
    pub id: String,
    pub call_id: String,
    /// Relative to the data directory, e.g. `recordings/2026/05/01/ID.wav`.
    pub path: String,
    /// `wav`.
    pub format: String,
    pub channels: i32,
    pub sample_rate: i32,
    pub created_at: DateTime<Utc>,
}

/// A recording as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RecordingRecord {
    pub id: String,
    pub call_id: String,
    #[serde(skip_serializing)]
    pub path: String,
    pub format: String,
    pub channels: i32,
    pub sample_rate: i32,
    pub duration_ms: Option<i64>,
    pub size_bytes: Option<i64>,
    /// `recording` | `complete` | `failed`.
    pub status: String,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl RecordingRecord {
    /// The file under `data_dir`, when `path` is a plain relative path (no `..`, no root, no
    /// prefix). Rows are written by the server, but a path is never trusted blindly.
    pub fn file_in(&self, data_dir: &std::path::Path) -> Option<std::path::PathBuf> {
        Self::relative_file(data_dir, &self.path)
    }

    /// `data_dir/path` when `path` is plain and relative, as in [`RecordingRecord::file_in`].
    pub fn relative_file(data_dir: &std::path::Path, path: &str) -> Option<std::path::PathBuf> {
        let rel = std::path::Path::new(path);
        let plain = !path.is_empty()
            && rel
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        plain.then(|| data_dir.join(rel))
    }
}

macro_rules! select_recording {
    ($tail:literal) => {
        concat!(
            "SELECT id, call_id, path, format, channels, sample_rate, duration_ms, size_bytes, \
             status, error, created_at, completed_at FROM recordings",
            $tail
        )
    };
}

impl Store {
    /// Records that a recording has started (status `recording`).
    pub async fn insert_recording(&self, r: &NewRecording) -> Result<(), StoreError> {
        self.apply_record(super::RecordEntry::RecordingStarted {
            recording: r.clone(),
        })
        .await
        .map(drop)
    }

    /// Marks a recording complete with its length and file size. If the call is already being
    /// synced to an external CRM (its register event is in the outbox), an attachRecord event is
    /// queued in the same transaction.
    pub async fn recording_completed(
        &self,
        id: &str,
        duration_ms: i64,
        size_bytes: i64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let updated = self
            .apply_record(super::RecordEntry::RecordingFinished {
                id: id.to_owned(),
                duration_ms,
                size_bytes,
                at,
            })
            .await?;
        if updated == 0 {
            return Err(StoreError::RecordingNotFound { id: id.to_owned() });
        }
        Ok(())
    }

    /// Marks a recording failed with a reason (a stable dotted code or a message).
    pub async fn recording_failed(
        &self,
        id: &str,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let updated = self
            .apply_record(super::RecordEntry::RecordingFailed {
                id: id.to_owned(),
                error: error.to_owned(),
                at,
            })
            .await?;
        if updated == 0 {
            return Err(StoreError::RecordingNotFound { id: id.to_owned() });
        }
        Ok(())
    }

    /// One recording by id.
    pub async fn recording(&self, id: &str) -> Result<Option<RecordingRecord>, StoreError> {
        const SQL: &str = select_recording!(" WHERE id = $1");
        on_reader!(self, pool => sqlx::query_as::<_, RecordingRecord>(SQL)
            .bind(id)
            .fetch_optional(pool)
            .await)
        .map_err(query_err("recording"))
    }

    /// Recordings still marked as being written whose calls belong to `node_id` and are closed:
    /// what a crash of that node left behind (start-up repair).
    pub async fn unfinished_recordings(
        &self,
        node_id: &str,
    ) -> Result<Vec<RecordingRecord>, StoreError> {
        const SQL: &str = "SELECT r.id, r.call_id, r.path, r.format, r.channels, r.sample_rate, \
             r.duration_ms, r.size_bytes, r.status, r.error, r.created_at, r.completed_at \
             FROM recordings r JOIN calls c ON c.id = r.call_id \
             WHERE r.status = 'recording' AND c.node_id = $1 AND c.ended_at IS NOT NULL ORDER BY r.id";
        on_reader!(self, pool => sqlx::query_as::<_, RecordingRecord>(SQL)
            .bind(node_id)
            .fetch_all(pool)
            .await)
        .map_err(query_err("unfinished_recordings"))
    }

    /// A call's recordings, oldest first.
    pub async fn recordings_for_call(
        &self,
        call_id: &str,
    ) -> Result<Vec<RecordingRecord>, StoreError> {
        const SQL: &str = select_recording!(" WHERE call_id = $1 ORDER BY id");
        on_reader!(self, pool => sqlx::query_as::<_, RecordingRecord>(SQL)
            .bind(call_id)
            .fetch_all(pool)
            .await)
        .map_err(query_err("recordings_for_call"))
    }

    /// The newest complete recording of each of these calls (for call lists).
    pub async fn latest_recordings(
        &self,
        call_ids: &[String],
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        if call_ids.is_empty() {
            return Ok(Default::default());
        }
        let rows = on_reader!(self, pool => {
            let mut qb = builder(
                pool,
                "SELECT call_id, id FROM recordings WHERE status = 'complete' AND call_id IN (",
            );
            let mut list = qb.separated(", ");
            for id in call_ids {
                list.push_bind(id.clone());
            }
            qb.push(") ORDER BY id");
            let query = qb.build_query_as::<(String, String)>();
            query.fetch_all(pool).await
        })
        .map_err(query_err("latest_recordings"))?;
        Ok(rows.into_iter().collect())
    }
}
