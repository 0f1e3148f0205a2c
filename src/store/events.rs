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
