//! Registrations repository: registrar bindings (extension → Contact), RFC 3261 §10.3.

use chrono::{DateTime, Utc};

use super::{BindingRecord, Store, StoreError, query_err};

impl Store {
    /// Adds or refreshes the binding of `b.contact_uri` for `b.extension`.
    pub async fn upsert_binding(&self, b: &BindingRecord) -> Result<(), StoreError> {
        self.apply_record(super::RecordEntry::BindingUpsert { binding: b.clone() })
            .await
            .map(drop)
    }

    /// Removes one binding (REGISTER with `Expires: 0` for that Contact). Missing is not an error.
    pub async fn remove_binding(
        &self,
        extension: &str,
        contact_uri: &str,
    ) -> Result<(), StoreError> {
        self.apply_record(super::RecordEntry::BindingRemove {
            extension: extension.to_owned(),
            contact_uri: contact_uri.to_owned(),
        })
        .await
        .map(drop)
    }

    /// Removes every binding of an extension (`Contact: *`); returns how many there were.
    pub async fn remove_bindings(&self, extension: &str) -> Result<u64, StoreError> {
        on_writer!(self, pool => sqlx::query("DELETE FROM registrations WHERE extension = $1")
            .bind(extension)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
        .map_err(query_err("remove_bindings"))
    }

    /// Every stored binding of an extension, latest expiry first, expired ones included: the
    /// caller compares `expires_at` with its own clock.
    pub async fn bindings(&self, extension: &str) -> Result<Vec<BindingRecord>, StoreError> {
        on_reader!(self, pool => sqlx::query_as::<_, BindingRecord>(
            "SELECT extension, contact_uri, received, transport, call_id, cseq, expires_at, \
                    user_agent, node_id \
             FROM registrations WHERE extension = $1 \
             ORDER BY expires_at DESC, contact_uri",
        )
        .bind(extension)
        .fetch_all(pool)
        .await)
        .map_err(query_err("bindings"))
    }

    /// Deletes bindings that expired at or before `now`; returns how many.
    pub async fn delete_expired_bindings(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        on_writer!(self, pool => sqlx::query("DELETE FROM registrations WHERE expires_at <= $1")
            .bind(now)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
        .map_err(query_err("delete_expired_bindings"))
    }
}
