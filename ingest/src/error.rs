//! The one error type of the HTTP handlers: every failure is a JSON body
//! `{"error": {"code", "message"}}` with the right status, and the message never holds a
//! payload value (field names and codes only). Internal detail is logged by id, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// A failed delivery.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The signature or shared secret is wrong (401). Nothing is written, nothing logged of
    /// the payload.
    #[error("the delivery is not signed with the configured secret")]
    Unauthorized,
    /// The body is not what the endpoint takes: bad JSON, base64, padding or key (400).
    #[error("{0}")]
    BadRequest(String),
    /// A required field is missing or has the wrong type (422), named.
    #[error("field {field}: {problem}")]
    Unprocessable {
        /// The field's path, e.g. `object.id`.
        field: String,
        /// What is wrong with it (never its value).
        problem: &'static str,
    },
    /// The content type is not JSON (415).
    #[error("the body must be application/json")]
    UnsupportedMediaType,
    /// A required header is missing (400).
    #[error("header {0} is missing")]
    MissingHeader(&'static str),
    /// No database connection could be had in time (503: the sender will retry).
    #[error("the database is busy")]
    Busy,
    /// More requests are in flight than the server takes at once (503 with `Retry-After`:
    /// the sender will retry).
    #[error("the server is handling as many requests as it takes; try again")]
    Overloaded,
    /// The body is larger than 1 MiB (413).
    #[error("the body is larger than 1 MiB")]
    TooLarge,
    /// The database failed (503: the sender will retry).
    #[error("the database is unavailable")]
    Unavailable(#[source] august_schema::DbError),
    /// Postgres refused the delivery's data (a data exception or a violated constraint):
    /// sending it again cannot help (422). The message names the SQLSTATE condition and the
    /// table, column and constraint, never a value.
    #[error("the database refused the delivery: {}", .0.summary())]
    Rejected(august_schema::DbError),
}

impl IngestError {
    /// The status and the machine-readable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            IngestError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            IngestError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            IngestError::MissingHeader(_) => (StatusCode::BAD_REQUEST, "missing_header"),
            IngestError::Unprocessable { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            IngestError::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            IngestError::Unavailable(_) | IngestError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            IngestError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            IngestError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            IngestError::Rejected(_) => (StatusCode::UNPROCESSABLE_ENTITY, "rejected"),
        }
    }

    /// A missing field.
    pub fn missing(field: impl Into<String>) -> Self {
        IngestError::Unprocessable { field: field.into(), problem: "is required" }
    }
}

impl From<august_schema::DbError> for IngestError {
    /// A refusal of the data itself is answered 422 (the sender stops); every other database
    /// error 503 (the sender retries): a lost connection, and also a permanent error such as a
    /// missing table, which an operator fixes while the sender keeps the delivery.
    fn from(e: august_schema::DbError) -> Self {
        if e.refuses_data() {
            IngestError::Rejected(e)
        } else {
            IngestError::Unavailable(e)
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            IngestError::Unavailable(e) => tracing::error!(error = %e, "delivery not stored; the sender will retry"),
            IngestError::Rejected(e) => {
                tracing::warn!(error = %e, "delivery refused by the database; recorded as rejected in sync_log")
            }
            _ => {}
        }
        let body = serde_json::json!({"error": {"code": code, "message": self.to_string()}});
        (status, Json(body)).into_response()
    }
}
