//! API tokens repository: SHA-256 hashes of bearer tokens and the role each grants.

use chrono::Utc;

use super::{ApiTokenRecord, Store, StoreError, builder, query_err};

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
        if !ROLES.contains(&role) {
            return Err(StoreError::InvalidValue {
                field: "api token role",
                value: role.to_owned(),
                expected: "admin, manager, operator",
            });
        }
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
