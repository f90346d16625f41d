//! The crate's one error type: what a request did wrong (a 4xx with a JSON body) or
//! what failed inside the server (a 5xx whose details go only to the log).

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Everything that can go wrong in `kith-server`.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed or breaks a validation rule (400).
    #[error("{message}")]
    Invalid {
        /// Stable machine-readable code, e.g. `invalid_key`.
        code: &'static str,
        /// What was wrong and what was expected.
        message: String,
    },
    /// Missing or wrong credentials: admin key or verification code (401).
    #[error("{message}")]
    Unauthorized {
        /// Stable machine-readable code.
        code: &'static str,
        /// What was wrong.
        message: String,
    },
    /// Valid credentials that cannot be used (any more): a used or expired code (403).
    #[error("{message}")]
    Forbidden {
        /// Stable machine-readable code.
        code: &'static str,
        /// What was wrong.
        message: String,
    },
    /// No such route (404).
    #[error("no such resource: {0}")]
    NotFound(String),
    /// The route exists but not with this method (405).
    #[error("method not allowed on this resource")]
    MethodNotAllowed,
    /// The body exceeds the route's limit (413).
    #[error("request body too large: at most {limit} bytes are accepted")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A content type the route does not take (415).
    #[error("unsupported content type: expected {expected}")]
    UnsupportedMediaType {
        /// The content types the route accepts.
        expected: &'static str,
    },
    /// The guessing budget for verification codes is spent; retry later (429).
    #[error("too many failed verification codes recently; retry in {retry_after_seconds} s")]
    TooManyGuesses {
        /// When the next attempt can succeed.
        retry_after_seconds: u64,
    },
    /// The body did not arrive in time (408).
    #[error("the request body did not arrive within {seconds} s")]
    RequestTimeout {
        /// The limit.
        seconds: u64,
    },
    /// The server is shutting down or its writer stopped (503).
    #[error("the server is shutting down")]
    Unavailable,
    /// The disk (or the database's configured maximum size) is full (503); nothing of
    /// the request was stored. Retry later.
    #[error("the server's storage is full; nothing was stored, retry later")]
    StorageFull,
    /// The database cannot be reached (PostgreSQL restarting, the network to it down);
    /// nothing of the request was stored (503). Retry later.
    #[error("the server's database cannot be reached; nothing was stored, retry later")]
    DatabaseUnavailable,
    /// Another server process holds the data directory.
    #[error("{path} is in use by another kith-server (it holds the lock on {path}/kith.lock)")]
    DataDirInUse {
        /// The data directory.
        path: String,
    },
    /// A file in the data directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A file (a key in the data directory, a risk configuration) is not what was expected.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database holds something this server did not write.
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    /// A database failure.
    #[error("database: {0}")]
    Database(#[from] rusqlite::Error),
    /// A chart could not be drawn.
    #[error("drawing the {chart} chart: {reason}")]
    Chart {
        /// Which chart.
        chart: &'static str,
        /// What the plotting library said.
        reason: String,
    },
    /// The export store (the bucket of `--export-store`) failed.
    #[error("export store, {path}: {source}")]
    ExportStore {
        /// The object.
        path: String,
        /// What the store said.
        source: object_store::Error,
    },
    /// A file already in the export store differs from the one this server made for its
    /// name; it is never overwritten.
    #[error(
        "{path} exists with other content than this server made for it, and is never \
         overwritten: do servers with different settings share the export store?"
    )]
    ExportConflict {
        /// The file.
        path: String,
    },
    /// `--export-store` is not a store this server can use.
    #[error("--export-store: {0}")]
    ExportStoreUrl(String),
    /// A PostgreSQL failure.
    #[error("PostgreSQL: {}", postgres_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had.
    #[error("PostgreSQL connection pool: {0}")]
    PostgresPool(#[from] deadpool_postgres::PoolError),
    /// The `--database` URL cannot be used.
    #[error("--database: {0}")]
    DatabaseUrl(String),
    /// The database was written by a newer server.
    #[error("database schema version {found} is newer than this server's {supported}")]
    SchemaTooNew {
        /// Version found in the file.
        found: u32,
        /// Newest version this build knows.
        supported: u32,
    },
}

/// A PostgreSQL error with the server's message and SQLSTATE (its `detail`, which may
/// quote stored values, is left out).
fn postgres_message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

/// What a client is told to wait when the disk is full.
pub const STORAGE_FULL_RETRY_SECONDS: u64 = 60;

/// What a client is told to wait when the database cannot be reached.
pub const DATABASE_RETRY_SECONDS: u64 = 5;

/// `Result` with [`AppError`].
pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `invalid_key`, `code_expired`.
    pub error: &'static str,
    /// Human-readable explanation: what was wrong and what was expected.
    pub message: String,
}

impl AppError {
    /// A 400 with this code and message.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyGuesses { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable | Self::StorageFull | Self::DatabaseUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ if self.is_database_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Io { .. }
            | Self::BadFile { .. }
            | Self::Corrupt(_)
            | Self::Database(_)
            | Self::Chart { .. }
            | Self::Postgres(_)
            | Self::PostgresPool(_)
            | Self::ExportStore { .. }
            | Self::ExportConflict { .. }
            | Self::ExportStoreUrl(_)
            | Self::DatabaseUrl(_)
            | Self::SchemaTooNew { .. }
            | Self::DataDirInUse { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body sent to the client. Server-side failures get a fixed text; their
    /// details are logged instead, since they may name files or SQL.
    pub fn body(&self) -> ErrorBody {
        let code = match self {
            Self::Invalid { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::Forbidden { code, .. } => code,
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::TooManyGuesses { .. } => "too_many_attempts",
            Self::RequestTimeout { .. } => "request_timeout",
            Self::Unavailable => "unavailable",
            Self::StorageFull => "storage_full",
            Self::DatabaseUnavailable => "database_unavailable",
            _ if self.is_database_unavailable() => {
                tracing::warn!(error = %self, "the database cannot be reached; answering 503");
                return Self::DatabaseUnavailable.body();
            }
            Self::Io { .. }
            | Self::BadFile { .. }
            | Self::Corrupt(_)
            | Self::Database(_)
            | Self::Chart { .. }
            | Self::Postgres(_)
            | Self::PostgresPool(_)
            | Self::ExportStore { .. }
            | Self::ExportConflict { .. }
            | Self::ExportStoreUrl(_)
            | Self::DatabaseUrl(_)
            | Self::SchemaTooNew { .. }
            | Self::DataDirInUse { .. } => {
                tracing::error!(error = %self, "request failed inside the server");
                return ErrorBody {
                    error: "internal_error",
                    message: "internal server error".to_owned(),
                };
            }
        };
        ErrorBody {
            error: code,
            message: self.to_string(),
        }
    }
}

impl AppError {
    /// Seconds after which a retry can succeed, for a 429 or a full disk.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            Self::TooManyGuesses {
                retry_after_seconds,
            } => Some(*retry_after_seconds),
            Self::StorageFull => Some(STORAGE_FULL_RETRY_SECONDS),
            _ if self.is_database_unavailable() => Some(DATABASE_RETRY_SECONDS),
            _ => None,
        }
    }

    /// Whether the error is a full disk, as SQLite or PostgreSQL reports it.
    pub fn is_storage_full(&self) -> bool {
        matches!(self, Self::StorageFull)
            || matches!(self, Self::Database(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DiskFull)
            || matches!(self, Self::Postgres(e) if e.code() == Some(&tokio_postgres::error::SqlState::DISK_FULL))
    }

    /// Whether the error says the database cannot be reached now (a lost or refused
    /// connection, a server shutting down or starting), rather than that a statement
    /// failed: a retry can succeed once the database is back.
    pub fn is_database_unavailable(&self) -> bool {
        use tokio_postgres::error::SqlState;
        match self {
            Self::DatabaseUnavailable | Self::PostgresPool(_) => true,
            Self::Postgres(e) => match e.code() {
                // Class 08 is connection exceptions; 57P01-57P03 are shutdowns and a
                // server that is starting.
                Some(code) => {
                    code.code().starts_with("08")
                        || [
                            SqlState::ADMIN_SHUTDOWN,
                            SqlState::CRASH_SHUTDOWN,
                            SqlState::CANNOT_CONNECT_NOW,
                        ]
                        .contains(code)
                }
                // No answer from the server at all: the connection is gone, or a socket
                // error (refused, reset).
                None => {
                    e.is_closed()
                        || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
                }
            },
            _ => false,
        }
    }

    /// Adds the headers this error implies to its response: `Retry-After`.
    pub fn add_headers(&self, response: &mut Response) {
        if let Some(seconds) = self.retry_after_seconds() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        self.add_headers(&mut response);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_show_their_message_and_server_errors_do_not() {
        let bad = AppError::invalid("invalid_key", "key must be 16 bytes, got 3");
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert_eq!(bad.body().error, "invalid_key");
        assert_eq!(bad.body().message, "key must be 16 bytes, got 3");

        let inner = AppError::BadFile {
            path: "/secret/place".into(),
            reason: "bad".into(),
        };
        assert_eq!(inner.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(inner.body().error, "internal_error");
        assert!(!inner.body().message.contains("/secret/place"));
    }

    #[test]
    fn too_many_guesses_says_when_to_retry() {
        let response = AppError::TooManyGuesses {
            retry_after_seconds: 7,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }
}
