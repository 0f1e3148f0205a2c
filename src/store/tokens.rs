//! API tokens repository: SHA-256 hashes of bearer tokens and the role each grants.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{ApiTokenRecord, Store, StoreError, builder, query_err};

/// One API token as an admin sees it in the list: never the token, never its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ApiTokenInfo {
    pub id: i64,
    /// `admin` | `manager` | `operator`.
    pub role: String,
    pub extension: Option<String>,
    /// `config` for tokens from the config file, `generated at first start` for the one the
    /// server minted, otherwise what the admin who created it wrote.
    pub label: String,
    pub created_at: DateTime<Utc>,
}

const ROLES: [&str; 3] = ["admin", "manager", "operator"];

impl Store {
    /// How many API tokens exist (zero on a first start, when the server mints one).
    pub async fn api_token_count(&self) -> Result<i64, StoreError> {
        on_reader!(self, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM api_tokens")
            .fetch_one(pool)
            .await)
        .map_err(query_err("api_token_count"))
    }

    /// Stores a token by its hex SHA-256 (hashed by the caller; the token itself never gets here).
    /// Storing the same hash twice fails with a unique violation (`StoreError::is_unique_violation`).
    pub async fn insert_api_token(
        &self,
        token_sha256: &str,
        role: &str,
        extension: Option<&str>,
        label: &str,
    ) -> Result<(), StoreError> {
        check_role(role)?;
        on_writer!(self, pool => sqlx::query(
            "INSERT INTO api_tokens (token_sha256, role, extension, label, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_sha256)
        .bind(role)
        .bind(extension)
        .bind(label)
        .bind(Utc::now())
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))
        .map_err(query_err("insert_api_token"))?;
        Ok(())
    }

    /// Deletes the tokens that came from the config file (`label = 'config'`) except those
    /// whose hashes are in `keep`: a token taken out of the config stops working at the next
    /// start (its browser sessions go with it). Returns how many were deleted.
    pub async fn remove_config_tokens_except(&self, keep: &[String]) -> Result<u64, StoreError> {
        on_writer!(self, pool => {
            let mut qb = builder(pool, "DELETE FROM api_tokens WHERE label = 'config'");
            if !keep.is_empty() {
                qb.push(" AND token_sha256 NOT IN (");
                let mut list = qb.separated(", ");
                for hash in keep {
                    list.push_bind(hash.clone());
                }
                qb.push(")");
            }
            qb.build().execute(pool).await.map(|done| done.rows_affected())
        })
        .map_err(query_err("remove_config_tokens_except"))
    }

    /// Stores a token created through the API and returns its id (what the list and revocation
    /// name it by).
    pub async fn create_api_token(
        &self,
        token_sha256: &str,
        role: &str,
        extension: Option<&str>,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<ApiTokenInfo, StoreError> {
        check_role(role)?;
        on_writer!(self, pool => sqlx::query_as::<_, ApiTokenInfo>(
            "INSERT INTO api_tokens (token_sha256, role, extension, label, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id, role, extension, label, created_at",
        )
        .bind(token_sha256)
        .bind(role)
        .bind(extension)
        .bind(label)
        .bind(now)
        .fetch_one(pool)
        .await)
        .map_err(query_err("create_api_token"))
    }

    /// Every API token, oldest first.
    pub async fn api_tokens(&self) -> Result<Vec<ApiTokenInfo>, StoreError> {
        on_reader!(self, pool => sqlx::query_as::<_, ApiTokenInfo>(
            "SELECT id, role, extension, label, created_at FROM api_tokens ORDER BY id",
        )
        .fetch_all(pool)
        .await)
        .map_err(query_err("api_tokens"))
    }

    /// Deletes the token with this id unless it is the last admin token (nobody could manage
    /// tokens any more until a restart). Its browser sessions end with it.
    pub async fn revoke_api_token(&self, id: i64) -> Result<Revoked, StoreError> {
        // One statement decides and deletes. On PostgreSQL two admins revoking the last two
        // admin tokens in the same instant could both pass; a restart with no token left mints
        // a new admin token, so that is recoverable.
        let deleted = on_writer!(self, pool => sqlx::query_scalar::<_, i64>(
            "DELETE FROM api_tokens WHERE id = $1 AND (role <> 'admin' OR \
             (SELECT COUNT(*) FROM api_tokens WHERE role = 'admin') > 1) RETURNING id",
        )
        .bind(id)
        .fetch_optional(pool)
        .await)
        .map_err(query_err("revoke_api_token"))?;
        if deleted.is_some() {
            return Ok(Revoked::Done);
        }
        let exists = on_reader!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT id FROM api_tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await)
        .map_err(query_err("revoke_api_token"))?;
        Ok(if exists.is_some() {
            Revoked::LastAdmin
        } else {
            Revoked::NotFound
        })
    }

    /// What the token with this hex SHA-256 grants, if it exists.
    pub async fn api_token(
        &self,
        token_sha256: &str,
    ) -> Result<Option<ApiTokenRecord>, StoreError> {
        on_reader!(self, pool => sqlx::query_as::<_, ApiTokenRecord>(
            "SELECT role, extension, label FROM api_tokens WHERE token_sha256 = $1",
        )
        .bind(token_sha256)
        .fetch_optional(pool)
        .await)
        .map_err(query_err("api_token"))
    }
}

/// What [`Store::revoke_api_token`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    Done,
    NotFound,
    /// Refused: it is the only admin token left.
    LastAdmin,
}

fn check_role(role: &str) -> Result<(), StoreError> {
    if ROLES.contains(&role) {
        Ok(())
    } else {
        Err(StoreError::InvalidValue {
            field: "api token role",
            value: role.to_owned(),
            expected: "admin, manager, operator",
        })
    }
}
