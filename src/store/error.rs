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
    /// A database error is judged by its code: PostgreSQL's SQLSTATE classes 08 (connection),
    /// 40 (serialization, deadlock), 53 (resources), 55 (object in use), 57 (shutdown) and 58
    /// (system) and SQLite's BUSY, LOCKED, IOERR, FULL and CANTOPEN are the database's state;
    /// anything else (bad data such as a NUL byte or a too-long value, a constraint, a type) is
    /// the record's and will fail again.
    pub fn is_permanent(&self) -> bool {
        match self {
            StoreError::Query { source, .. } => match source {
                sqlx::Error::Database(db) => !db.code().is_some_and(|code| transient_code(&code)),
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

/// Whether a database error code is about the database's state rather than the statement.
fn transient_code(code: &str) -> bool {
    const POSTGRES_CLASSES: [&str; 6] = ["08", "40", "53", "55", "57", "58"];
    // SQLite's primary result codes (extended codes keep them in the low byte; they have at
    // most 4 digits, while a SQLSTATE always has 5 characters).
    const SQLITE_CODES: [u32; 5] = [5, 6, 10, 13, 14];
    if code.len() == 5 {
        return POSTGRES_CLASSES.iter().any(|class| code.starts_with(class));
    }
    code.parse::<u32>()
        .is_ok_and(|n| SQLITE_CODES.contains(&(n & 0xff)))
}

#[cfg(test)]
mod tests {
    use super::transient_code;

    #[test]
    fn database_state_codes_are_transient_and_bad_data_is_not() {
        for code in [
            "5", "517", "6", "10", "13", "14", "08006", "40P01", "53300", "57P01",
        ] {
            assert!(transient_code(code), "{code}");
        }
        // A NUL byte or an over-long value (22021, 22001), constraints (23505, 787 = SQLite
        // FOREIGN KEY, 2067 = UNIQUE), a missing table (42P01, 1).
        for code in ["22021", "22001", "23505", "787", "2067", "42P01", "1"] {
            assert!(!transient_code(code), "{code}");
        }
    }
}
