//! Opening a `Store` from a database URL: pool setup per backend and the embedded migrations.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Backend, Pools, Store, StoreError};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// How long SQLite waits on a lock held by another process before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Read-only SQLite connections next to the single writer.
const SQLITE_READERS: u32 = 4;
/// PostgreSQL pool size.
const POSTGRES_CONNECTIONS: u32 = 10;
/// How long a caller may wait for a free connection (the SQLite writer is a queue of one).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

impl Store {
    /// Opens the database at `url` and applies pending migrations.
    ///
    /// `sqlite://PATH` (relative or `sqlite:///absolute`) creates the file and its parent directory
    /// when missing. `postgres://…` and `postgresql://…` connect to an existing database.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
        match scheme {
            "sqlite" => connect_sqlite(url).await,
            "postgres" | "postgresql" => connect_postgres(url).await,
            other => Err(StoreError::UnsupportedUrl {
                scheme: other.to_owned(),
            }),
        }
    }
}

async fn connect_sqlite(url: &str) -> Result<Store, StoreError> {
    let backend = Backend::Sqlite;
    let rest = url.strip_prefix("sqlite:").unwrap_or(url);
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.split('&').any(|kv| kv == "mode=memory") {
        return Err(StoreError::InMemorySqlite);
    }

    let base = SqliteConnectOptions::from_str(url)
        .map_err(|source| StoreError::InvalidUrl { backend, source })?
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    create_parent_dir(base.get_filename()).await?;

    // The writer creates the file and switches it to WAL (a persistent setting), so it connects
    // and migrates before any reader opens the file read-only.
    let writer_options = base
        .clone()
        .create_if_missing(true)
        .read_only(false)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    // One connection that never idles out: it keeps the WAL and shared-memory files in place for
    // the read-only connections, and serialises all writes inside this process.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(writer_options)
        .await
        .map_err(|source| StoreError::Connect { backend, source })?;

    SQLITE_MIGRATIONS
        .run(&writer)
        .await
        .map_err(|source| StoreError::Migrate { backend, source })?;

    let reader_options = base.read_only(true);
    let reader = SqlitePoolOptions::new()
        .max_connections(SQLITE_READERS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(reader_options)
        .await
        .map_err(|source| StoreError::Connect { backend, source })?;

    tracing::info!(path = %writer_path(&writer), "sqlite store ready");
    Ok(Store {
        pools: Pools::Sqlite { writer, reader },
    })
}

fn writer_path(pool: &sqlx::SqlitePool) -> String {
    pool.connect_options().get_filename().display().to_string()
}

async fn create_parent_dir(file: &Path) -> Result<(), StoreError> {
    let Some(dir) = file.parent().filter(|dir| !dir.as_os_str().is_empty()) else {
        return Ok(());
    };
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
}

async fn connect_postgres(url: &str) -> Result<Store, StoreError> {
    let backend = Backend::Postgres;
    let options = PgConnectOptions::from_str(url)
        .map_err(|source| StoreError::InvalidUrl { backend, source })?;
    let pool = PgPoolOptions::new()
        .max_connections(POSTGRES_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect { backend, source })?;

    POSTGRES_MIGRATIONS
        .run(&pool)
        .await
        .map_err(|source| StoreError::Migrate { backend, source })?;

    tracing::info!(
        database = pool.connect_options().get_database().unwrap_or_default(),
        "postgres store ready"
    );
    Ok(Store {
        pools: Pools::Postgres(pool),
    })
}
