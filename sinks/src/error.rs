//! Errors at the sinks' boundary, retryable or permanent like every other.

use august_schema::{DbError, ErrorKind};

/// Why a sink stopped or must retry.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A database write failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Coda refused the sink's settings (token, doc or table).
    #[error(transparent)]
    Coda(#[from] crate::coda::client::CodaError),
    /// The Coda mapping does not match the views or Coda's tables.
    #[error(transparent)]
    Mapping(#[from] crate::coda::mapping::MappingError),
    /// A view row did not have the shape the sink expects (a bug, never retried).
    #[error("view {view}: {message}")]
    Shape {
        /// The view.
        view: &'static str,
        /// What was wrong (column names, never values).
        message: String,
    },
}

impl SinkError {
    /// Whether trying again can help.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SinkError::Db(e) => e.kind(),
            SinkError::Coda(e) => e.kind(),
            SinkError::Mapping(_) | SinkError::Shape { .. } => ErrorKind::Permanent,
        }
    }
}
