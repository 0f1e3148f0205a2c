//! Call events repository: the ordered story of a call (digits, recordings, media alerts), each a
//! kind and a small JSON detail.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Store, StoreError, query_err};

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct CallEventRecord {
    pub at: DateTime<Utc>,
    pub kind: String,
    /// JSON text; the API returns it parsed.
    pub detail: String,
}

impl Store {
    pub async fn insert_call_event(
        &self,
        call_id: &str,
        at: DateTime<Utc>,
        kind: &str,
        detail: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let detail = detail.to_string();
        on_writer!(self, pool => sqlx::query(
            "INSERT INTO call_events (call_id, at, kind, detail) VALUES ($1, $2, $3, $4)",
        )
        .bind(call_id)
        .bind(at)
        .bind(kind)
        .bind(&detail)
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(query_err("insert_call_event"))
    }

    pub async fn call_events(&self, call_id: &str) -> Result<Vec<CallEventRecord>, StoreError> {
        on_reader!(self, pool => sqlx::query_as::<_, CallEventRecord>(
            "SELECT at, kind, detail FROM call_events WHERE call_id = $1 ORDER BY id",
        )
        .bind(call_id)
        .fetch_all(pool)
        .await)
        .map_err(query_err("call_events"))
    }
}
