//! Operators repository: who may register and take calls, their digest HA1s and presence status.

use chrono::{DateTime, Utc};

use super::{OperatorRecord, Store, StoreError, query_err};

/// Presence values an operator's `status` may hold.
const OPERATOR_STATUSES: [&str; 3] = ["online", "away", "offline"];

pub(super) fn check_status(status: &str) -> Result<(), StoreError> {
    if OPERATOR_STATUSES.contains(&status) {
        Ok(())
    } else {
        Err(StoreError::InvalidValue {
            field: "operator status",
            value: status.to_owned(),
            expected: "online, away, offline",
        })
    }
}

/// `SELECT` of every `OperatorRecord` column, followed by `$tail`.
macro_rules! select_operator {
    ($tail:literal) => {
        concat!(
            "SELECT extension, name, realm, ha1_md5, ha1_sha256, max_calls, status, \
             status_reason, status_changed_at FROM operators",
            $tail
        )
    };
}

impl Store {
    /// An operator taken out of the config (a reload): no longer listed. Their calls keep
    /// their extension as text.
    pub async fn delete_operator(&self, extension: &str) -> Result<(), StoreError> {
        on_writer!(self, pool => sqlx::query("DELETE FROM operators WHERE extension = $1")
            .bind(extension)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
        .map_err(query_err("delete_operator"))?;
        Ok(())
    }

    /// Creates the operator, or updates name, realm, HA1s and `max_calls` of the one with this
    /// extension. An existing operator keeps its status (with its reason and change time); a new
    /// one starts with `op.status` and `op.status_reason`, changed at `op.status_changed_at` (now
    /// when `None`).
    pub async fn upsert_operator(&self, op: &OperatorRecord) -> Result<(), StoreError> {
        check_status(&op.status)?;
        let now = Utc::now();
        on_writer!(self, pool => sqlx::query(
            "INSERT INTO operators \
                 (extension, name, realm, ha1_md5, ha1_sha256, max_calls, status, status_reason, \
                  status_changed_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
             ON CONFLICT (extension) DO UPDATE SET \
                 name = excluded.name, realm = excluded.realm, \
                 ha1_md5 = excluded.ha1_md5, ha1_sha256 = excluded.ha1_sha256, \
                 max_calls = excluded.max_calls, updated_at = excluded.updated_at",
        )
        .bind(&op.extension)
        .bind(&op.name)
        .bind(&op.realm)
        .bind(&op.ha1_md5)
        .bind(&op.ha1_sha256)
        .bind(op.max_calls)
        .bind(&op.status)
        .bind(&op.status_reason)
        .bind(op.status_changed_at.unwrap_or(now))
        .bind(now)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))
        .map_err(query_err("upsert_operator"))?;
        Ok(())
    }

    /// The operator with this extension.
    pub async fn operator(&self, extension: &str) -> Result<Option<OperatorRecord>, StoreError> {
        const SQL: &str = select_operator!(" WHERE extension = $1");
        on_reader!(self, pool => sqlx::query_as::<_, OperatorRecord>(SQL)
            .bind(extension)
            .fetch_optional(pool)
            .await)
        .map_err(query_err("operator"))
    }

    /// All operators, by extension.
    pub async fn operators(&self) -> Result<Vec<OperatorRecord>, StoreError> {
        const SQL: &str = select_operator!(" ORDER BY extension");
        on_reader!(self, pool => sqlx::query_as::<_, OperatorRecord>(SQL)
            .fetch_all(pool)
            .await)
        .map_err(query_err("operators"))
    }

    /// Sets an operator's presence (`online`, `away`, `offline`) at `at`, with the reason when the
    /// server sets it (`missed_rings:3`; `None` when an operator or admin sets it).
    /// `status_changed_at` moves to `at` only when the status or the reason changes, so setting
    /// the same status again keeps the time it started. `Ok(false)`: no such operator.
    pub async fn set_operator_status(
        &self,
        extension: &str,
        status: &str,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let changed = self
            .apply_record(super::RecordEntry::OperatorStatus {
                extension: extension.to_owned(),
                status: status.to_owned(),
                reason: reason.map(str::to_owned),
                at,
            })
            .await?;
        Ok(changed > 0)
    }
}
