//! `StoreError`: everything the storage layer can fail with, with structured fields and stable codes.

use std::path::PathBuf;

use super::Backend;

/// An error from the storage layer.
///
/// Database URLs never appear in messages (they may carry a password); only their scheme does.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL scheme {scheme:?}; expected sqlite://PATH or postgres://…")]
    UnsupportedUrl { scheme: String },

    #[error("in-memory SQLite is not supported; use sqlite://PATH")]
    InMemorySqlite,

    #[error("invalid {backend} database URL: {source}")]
    InvalidUrl {
        backend: Backend,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot create database directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot connect to the {backend} database: {source}")]
    Connect {
        backend: Backend,
        #[source]
        source: sqlx::Error,
    },

    #[error("applying {backend} migrations failed: {source}")]
    Migrate {
        backend: Backend,
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    #[error("database query {op} failed: {source}")]
    Query {
        /// Which repository operation failed, e.g. `"insert_call"`.
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },

    #[error("call {id} not found")]
    CallNotFound { id: String },

    #[error("call leg {id} not found")]
    LegNotFound { id: i64 },

    #[error("a lead with this number exists already")]
    NumberTaken,

    #[error("no lead or contact with number {e164}")]
    NumberNotFound { e164: String },

    #[error("lead or contact {id} not found")]
    PersonNotFound { id: String },

    #[error("recording {id} not found")]
    RecordingNotFound { id: String },

    #[error("invalid {field} {value:?}; expected one of {expected}")]
    InvalidValue {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl StoreError {
    /// Stable dotted code for API bodies and logs.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::UnsupportedUrl { .. }
            | StoreError::InMemorySqlite
            | StoreError::InvalidUrl { .. } => "store.invalid_url",
            StoreError::CreateDir { .. } | StoreError::Connect { .. } => "store.unavailable",
            StoreError::Migrate { .. } => "store.migration_failed",
            StoreError::Query { .. } if self.is_unique_violation() => "store.conflict",
            StoreError::Query { .. } => "store.query_failed",
            StoreError::CallNotFound { .. } => "call.not_found",
            StoreError::LegNotFound { .. } => "call.leg_not_found",
            StoreError::InvalidValue { .. } => "store.invalid_value",
            StoreError::NumberTaken => "crm.number_taken",
            StoreError::NumberNotFound { .. } | StoreError::PersonNotFound { .. } => {
                "crm.not_found"
            }
            StoreError::RecordingNotFound { .. } => "recording.not_found",
        }
    }

    /// True when retrying cannot help: the database refused the values (a constraint, a type),
    /// as opposed to being unavailable, locked or closed.
    ///
    /// A database error is judged by its code: PostgreSQL's SQLSTATE classes 22 (bad data: a
    /// NUL byte, a value too long), 23 (a constraint) and 42 (the statement; not 42501, a missing
    /// privilege) and SQLite's CONSTRAINT, TOOBIG, MISMATCH and RANGE are the record's and
    /// will fail again; anything else (a lost connection, a read-only standby after a failover,
    /// a lock, a full disk, an unknown code) is the database's state and is waited out.
    pub fn is_permanent(&self) -> bool {
        match self {
            StoreError::Query { source, .. } => match source {
                sqlx::Error::Database(db) => db.code().is_some_and(|code| permanent_code(&code)),
                sqlx::Error::Encode(_)
                | sqlx::Error::Decode(_)
                | sqlx::Error::ColumnDecode { .. }
                | sqlx::Error::ColumnNotFound(_)
                | sqlx::Error::TypeNotFound { .. } => true,
                _ => false,
            },
            StoreError::InvalidValue { .. } => true,
            _ => false,
        }
    }

    /// True when a query failed on a UNIQUE constraint (e.g. a token hash stored twice).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Query {
                source: sqlx::Error::Database(db),
                ..
            } => db.is_unique_violation(),
            _ => false,
        }
    }
}

/// Whether a database error code says the statement's values are wrong (see `is_permanent`).
fn permanent_code(code: &str) -> bool {
    // SQLite's primary result codes (extended codes keep them in the low byte; they have at
    // most 4 digits, while a SQLSTATE always has 5 characters).
    const SQLITE_CODES: [u32; 4] = [18, 19, 20, 25];
    if code.len() == 5 {
        return (code.starts_with("22") || code.starts_with("23") || code.starts_with("42"))
            && code != "42501";
    }
    code.parse::<u32>()
        .is_ok_and(|n| SQLITE_CODES.contains(&(n & 0xff)))
}

#[cfg(test)]
mod tests {
    use super::permanent_code;

    #[test]
    fn bad_data_and_constraints_are_permanent_and_the_databases_state_is_not() {
        // A NUL byte, a value too long, a unique violation, a missing table; SQLite FOREIGN KEY
        // (787), UNIQUE (2067), TOOBIG (18).
        for code in ["22021", "22001", "23505", "42P01", "787", "2067", "18"] {
            assert!(permanent_code(code), "{code}");
        }
        // BUSY, BUSY_SNAPSHOT, LOCKED, READONLY, IOERR, FULL; PostgreSQL connection, deadlock,
        // too many connections, admin shutdown, read-only transaction (a standby), bad password,
        // missing privilege, internal error.
        for code in [
            "5", "517", "6", "8", "10", "13", "08006", "40P01", "53300", "57P01", "25006", "28P01",
            "42501", "XX000",
        ] {
            assert!(!permanent_code(code), "{code}");
        }
    }
}
