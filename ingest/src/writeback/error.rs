//! The write-back's refusals: every one is `{"error": {"code", "message"}}` (a 409 adds the
//! row's current `updated_at`), with a message that names fields, targets, roles and
//! constraints, never a value. The transport refusals (401, 415, 413, 400, 503) are the
//! webhooks' own [`IngestError`]s.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::IngestError;

/// A refused write-back.
#[derive(Debug, thiserror::Error)]
pub enum WritebackError {
    /// Refused before the body was understood (401, 415, 413, 400) or the database failed (503).
    #[error(transparent)]
    Transport(#[from] IngestError),
    /// A field the table does not have (422 `unknown_field`).
    #[error("field {0} is not a field of {1}")]
    UnknownField(String, &'static str),
    /// A column staff may not set: ids, DrChrono-owned columns, timestamps (422
    /// `read_only_field`).
    #[error("field {0} is read-only in {1}")]
    ReadOnlyField(String, &'static str),
    /// A value of the wrong type, outside its enum, length or range (422 `invalid_field`).
    #[error("field {field}: {problem}")]
    InvalidField {
        /// The field.
        field: String,
        /// What is wrong (never the value).
        problem: String,
    },
    /// The body sets no field (422 `no_fields`).
    #[error("the body sets no field of {0}")]
    NoFields(&'static str),
    /// Postgres refused the change by a check over several columns (422
    /// `constraint_violation`), named with its columns.
    #[error("the change breaks {constraint} (columns {})", .columns.join(", "))]
    Constraint {
        /// The constraint's name.
        constraint: String,
        /// Its columns.
        columns: Vec<String>,
    },
    /// No such row, or it is deleted (404 `not_found`).
    #[error("no {0} row has this id")]
    NotFound(&'static str),
    /// The editor may not edit the target (403 `forbidden`).
    #[error("edited_by is not an active staff member with a role that may edit {target} ({})", .roles.join(", "))]
    Forbidden {
        /// The target's name.
        target: &'static str,
        /// The roles that may edit it.
        roles: &'static [&'static str],
    },
    /// `expected_updated_at` is older than the row (409 `conflict`).
    #[error("the row changed since expected_updated_at; read it again")]
    Conflict {
        /// The row's current `updated_at` (RFC 3339).
        updated_at: String,
    },
}

/// The body of every refusal but a conflict.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: `unauthorized`, `unknown_field`, `read_only_field`, `invalid_field`,
    /// `no_fields`, `constraint_violation`, `not_found`, `forbidden`, …
    pub code: String,
    /// Names fields, targets, roles and constraints; never a value.
    pub message: String,
}

/// The body of a 409.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictBody {
    /// What went wrong, with the row's current `updated_at`.
    pub error: ConflictDetail,
}

/// A conflict's code, message and the row's current `updated_at`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictDetail {
    /// Always `conflict`.
    pub code: String,
    /// What to do: read the row again.
    pub message: String,
    /// The row's current `updated_at` (RFC 3339).
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl WritebackError {
    /// The status and the machine-readable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            WritebackError::Transport(e) => e.status_and_code(),
            WritebackError::UnknownField(..) => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_field"),
            WritebackError::ReadOnlyField(..) => (StatusCode::UNPROCESSABLE_ENTITY, "read_only_field"),
            WritebackError::InvalidField { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            WritebackError::NoFields(_) => (StatusCode::UNPROCESSABLE_ENTITY, "no_fields"),
            WritebackError::Constraint { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "constraint_violation"),
            WritebackError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            WritebackError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            WritebackError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
        }
    }

    /// An invalid value of `field`.
    pub fn invalid(field: &str, problem: impl Into<String>) -> Self {
        WritebackError::InvalidField { field: field.to_string(), problem: problem.into() }
    }
}

impl From<august_schema::DbError> for WritebackError {
    fn from(e: august_schema::DbError) -> Self {
        WritebackError::Transport(e.into())
    }
}

impl IntoResponse for WritebackError {
    fn into_response(self) -> Response {
        match self {
            WritebackError::Transport(e) => e.into_response(),
            WritebackError::Conflict { updated_at } => {
                let message = WritebackError::Conflict { updated_at: String::new() }.to_string();
                let body = ConflictBody { error: ConflictDetail { code: "conflict".into(), message, updated_at } };
                (StatusCode::CONFLICT, Json(body)).into_response()
            }
            other => {
                let (status, code) = other.status_and_code();
                let body = ErrorBody { error: ErrorDetail { code: code.into(), message: other.to_string() } };
                (status, Json(body)).into_response()
            }
        }
    }
}
