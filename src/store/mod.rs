//! Storage shell: the sqlx repositories behind one `Store`, SQLite (embedded default) or PostgreSQL.
//!
//! Every repository method is written once. The `on_writer!` / `on_reader!` macros expand the same
//! body for each backend's pool type, and all SQL uses `$N` placeholders, which both PostgreSQL and
//! sqlx's SQLite driver understand. Dialect differences live only in the migrations
//! (`migrations/sqlite`, `migrations/postgres`), which `Store::connect` applies.
//!
//! SQLite runs in WAL mode with a single writer connection, so concurrent calls queue for the
//! writer in the pool instead of failing with "database is locked", and a few read-only
//! connections serve queries alongside it.
//!
//! ```text
//! runtime / api ──> Store ──┬─ Sqlite { writer (1 conn), reader (N read-only conns) }
//!                           └─ Postgres(PgPool)
//! ```

use std::fmt;

use sqlx::{PgPool, SqlitePool};

/// Runs `$body` with `$pool` bound to the pool that takes writes, once per backend.
macro_rules! on_writer {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pools {
            $crate::store::Pools::Sqlite { writer: $pool, .. } => $body,
            $crate::store::Pools::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$pool` bound to the pool that serves reads, once per backend.
macro_rules! on_reader {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pools {
            $crate::store::Pools::Sqlite { reader: $pool, .. } => $body,
            $crate::store::Pools::Postgres($pool) => $body,
        }
    };
}

/// Inserts a `calls` row for a `NewCall` on `$exec` (a pool or a transaction); the statement's
/// result. Shared by `Store::insert_call` and the records batch.
macro_rules! insert_call_row {
    ($exec:expr, $call:expr) => {{
        let call: &$crate::store::NewCall = $call;
        sqlx::query(
            "INSERT INTO calls (id, node_id, direction, caller, caller_name, callee, started_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&call.id)
        .bind(&call.node_id)
        .bind(&call.direction)
        .bind(&call.caller)
        .bind(&call.caller_name)
        .bind(&call.callee)
        .bind(call.started_at)
        .execute($exec)
        .await
    }};
}

mod broadcasts;
mod calls;
mod connect;
mod crm;
mod error;
mod events;
mod hygiene;
mod operators;
mod outbox;
mod ratings;
mod record_batch;
mod recordings;
mod records;
mod registrations;
mod timeline;
mod tokens;
mod web;

pub use broadcasts::{
    AttemptEnd, BroadcastProgress, BroadcastRecord, ClaimedAttempt, DoNotCallRecord, NewBroadcast,
    NewRecipient, OpenAttempt, RecipientNext, RecipientRecord,
};
pub use calls::DISPOSITION_CRASHED;
pub use crm::{NewPerson, NumberMatch, PersonFilter, PersonKind, PersonRecord};
pub use error::StoreError;
pub use events::CallEventRecord;
pub use outbox::OutboxEvent;
pub use record_batch::{Checkpoint, RecordEntry};
pub use recordings::{NewRecording, RecordingRecord};
pub use records::{
    ApiTokenRecord, BindingRecord, CallFilter, CallRecord, LegRecord, NewCall, NewLeg,
    OperatorRecord, RatingAverage, RatingFilter, RatingRecord,
};
pub use timeline::{ERASED, Erasure, NewTimelineEntry, TimelineRecord};
pub use tokens::{ApiTokenInfo, Revoked};
pub use web::{IdempotencyState, SessionRecord};

/// Which database a `Store` talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// Handle to the database. Cheap to clone: the pools inside are reference-counted.
#[derive(Debug, Clone)]
pub struct Store {
    pools: Pools,
}

#[derive(Debug, Clone)]
enum Pools {
    Sqlite {
        /// Exactly one connection: every write goes through it, one at a time.
        writer: SqlitePool,
        /// Several read-only connections; WAL lets them read while the writer writes.
        reader: SqlitePool,
    },
    Postgres(PgPool),
}

impl Store {
    /// The backend this store was opened on.
    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// Whether the database answers a trivial query on the connection writes use (health).
    pub async fn ping(&self) -> bool {
        on_writer!(self, pool => sqlx::query("SELECT 1").execute(pool).await.is_ok())
    }

    /// Closes every pool, waiting for connections in use to be returned. Part of shutdown; the
    /// store must not be used afterwards (queries then fail with `StoreError::Query`).
    pub async fn close(&self) {
        match &self.pools {
            Pools::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            Pools::Postgres(pool) => pool.close().await,
        }
    }
}

/// A query builder for the pool's backend (fixes the builder's database type by inference).
fn builder<DB: sqlx::Database>(_pool: &sqlx::Pool<DB>, init: &str) -> sqlx::QueryBuilder<DB> {
    sqlx::QueryBuilder::new(init)
}

/// Maps a sqlx error from the query named `op` into `StoreError::Query`.
fn query_err(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { op, source }
}
