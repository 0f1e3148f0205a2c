//! Web repository: browser sessions of the managers' page (only SHA-256 hashes of the cookie value
//! are kept, tied to the API token that opened them) and `Idempotency-Key` records of POSTs.

use chrono::{DateTime, Utc};

use super::{ApiTokenRecord, Store, StoreError, query_err};

/// A live browser session: what its token grants and the CSRF token writes must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub token: ApiTokenRecord,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// What an earlier request with the same idempotency key left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyState {
    /// No earlier request: this one now holds the key.
    Claimed,
    /// The earlier request is still running.
    InProgress { request_sha256: String },
    /// The earlier request finished with this response.
    Done {
        request_sha256: String,
        status: u16,
        body: String,
    },
}

impl Store {
    /// Opens a session for the token with this hash.
    pub async fn insert_session(
        &self,
        id_sha256: &str,
        token_sha256: &str,
        csrf: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_writer!(self, pool => sqlx::query(
            "INSERT INTO web_sessions (id_sha256, token_sha256, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_sha256)
        .bind(token_sha256)
        .bind(csrf)
        .bind(now)
        .bind(expires_at)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))
        .map_err(query_err("insert_session"))?;
        Ok(())
    }

    /// The unexpired session with this hash and what its token grants.
    pub async fn session(
        &self,
        id_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = on_reader!(self, pool => sqlx::query_as::<_, (String, Option<String>, String, String, DateTime<Utc>)>(
            "SELECT t.role, t.extension, t.label, s.csrf, s.expires_at \
             FROM web_sessions s JOIN api_tokens t ON t.token_sha256 = s.token_sha256 \
             WHERE s.id_sha256 = $1 AND s.expires_at > $2",
        )
        .bind(id_sha256)
        .bind(now)
        .fetch_optional(pool)
        .await)
        .map_err(query_err("session"))?;
        Ok(
            row.map(|(role, extension, label, csrf, expires_at)| SessionRecord {
                token: ApiTokenRecord {
                    role,
                    extension,
                    label,
                },
                csrf,
                expires_at,
            }),
        )
    }

    /// Ends a session (sign-out).
    pub async fn delete_session(&self, id_sha256: &str) -> Result<(), StoreError> {
        on_writer!(self, pool => sqlx::query("DELETE FROM web_sessions WHERE id_sha256 = $1")
            .bind(id_sha256)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
        .map_err(query_err("delete_session"))?;
        Ok(())
    }

    /// Claims `key` for this credential, or reports what an earlier request with it did. The claim
    /// is an insert on the primary key, so two concurrent requests cannot both run.
    pub async fn claim_idempotency_key(
        &self,
        principal: &str,
        key: &str,
        request_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<IdempotencyState, StoreError> {
        let claimed = on_writer!(self, pool => sqlx::query(
            "INSERT INTO idempotency_keys (principal, key, request_sha256, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (principal, key) DO NOTHING",
        )
        .bind(principal)
        .bind(key)
        .bind(request_sha256)
        .bind(now)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))
        .map_err(query_err("claim_idempotency_key"))?;
        if claimed == 1 {
            return Ok(IdempotencyState::Claimed);
        }
        let row =
            on_writer!(self, pool => sqlx::query_as::<_, (String, Option<i32>, Option<String>)>(
            "SELECT request_sha256, status, body FROM idempotency_keys \
             WHERE principal = $1 AND key = $2",
        )
        .bind(principal)
        .bind(key)
        .fetch_optional(pool)
        .await)
            .map_err(query_err("claim_idempotency_key"))?;
        Ok(match row {
            // Deleted by the sweep between the two statements: treat as running, the client retries.
            None => IdempotencyState::InProgress {
                request_sha256: request_sha256.to_owned(),
            },
            Some((request_sha256, Some(status), body)) => IdempotencyState::Done {
                request_sha256,
                status: u16::try_from(status).unwrap_or(500),
                body: body.unwrap_or_default(),
            },
            Some((request_sha256, None, _)) => IdempotencyState::InProgress { request_sha256 },
        })
    }

    /// Stores the response of the request that claimed `key`.
    pub async fn finish_idempotency_key(
        &self,
        principal: &str,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        on_writer!(self, pool => sqlx::query(
            "UPDATE idempotency_keys SET status = $3, body = $4 WHERE principal = $1 AND key = $2",
        )
        .bind(principal)
        .bind(key)
        .bind(i32::from(status))
        .bind(body)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))
        .map_err(query_err("finish_idempotency_key"))?;
        Ok(())
    }

    /// Gives `key` up (the request failed in a way worth retrying, e.g. a 5xx).
    pub async fn release_idempotency_key(
        &self,
        principal: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        on_writer!(self, pool => sqlx::query(
            "DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2",
        )
        .bind(principal)
        .bind(key)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))
        .map_err(query_err("release_idempotency_key"))?;
        Ok(())
    }
}
