//! Errors at the system of record's boundary. Each says whether trying again can help
//! ([`ErrorKind`]), so every retry loop in August asks one question, and none prints a value
//! from a row: Postgres messages about bad data or violated constraints quote the data, so
//! those are reduced to their SQLSTATE and the names of the objects involved.

use std::fmt;

use tokio_postgres::error::SqlState;

/// Whether an operation that failed may succeed if tried again unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A passing condition: connection lost, server restarting, serialization failure.
    Retryable,
    /// Trying again cannot help: bad credentials, missing database, invalid data, a bug.
    Permanent,
}

/// A setting that is missing or malformed. Displays as one line that names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct SettingError {
    /// The setting's name as the operator writes it (an environment variable or file key).
    pub setting: String,
    /// What is wrong with it, never its value.
    pub message: String,
}

impl SettingError {
    /// A problem with `setting`.
    pub fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self { setting: setting.into(), message: message.into() }
    }
}

/// A failed database operation, with what August was doing when it failed.
#[derive(Debug, thiserror::Error)]
pub struct DbError {
    context: String,
    #[source]
    source: tokio_postgres::Error,
}

impl DbError {
    /// Wraps a client error with a short description of the operation (no values).
    pub fn new(context: impl Into<String>, source: tokio_postgres::Error) -> Self {
        Self { context: context.into(), source }
    }

    /// Whether trying again may help.
    pub fn kind(&self) -> ErrorKind {
        match self.source.code() {
            None => ErrorKind::Retryable, // I/O, closed connection, timeout
            Some(code) => classify(code),
        }
    }

    /// The SQLSTATE, when the server sent one.
    pub fn code(&self) -> Option<&SqlState> {
        self.source.code()
    }

    /// The underlying client error.
    pub fn source_error(&self) -> &tokio_postgres::Error {
        &self.source
    }
}

fn classify(code: &SqlState) -> ErrorKind {
    let class = &code.code()[..2];
    let retryable =
        matches!(class, "08" | "53" | "57" | "40" | "55") && *code != SqlState::INVALID_AUTHORIZATION_SPECIFICATION;
    if retryable {
        ErrorKind::Retryable
    } else {
        ErrorKind::Permanent
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.context)?;
        let Some(db) = self.source.as_db_error() else {
            // Client-side errors (I/O, protocol) carry no row data.
            return write!(f, "{}", self.source);
        };
        let class = &db.code().code()[..2];
        if matches!(class, "22" | "23") {
            write!(f, "SQLSTATE {} (data withheld)", db.code().code())?;
        } else {
            write!(f, "{} (SQLSTATE {})", db.message(), db.code().code())?;
        }
        if let Some(table) = db.table() {
            write!(f, " table={table}")?;
        }
        if let Some(column) = db.column() {
            write!(f, " column={column}")?;
        }
        if let Some(constraint) = db.constraint() {
            write!(f, " constraint={constraint}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_and_concurrency_states_are_retryable() {
        assert_eq!(classify(&SqlState::CONNECTION_FAILURE), ErrorKind::Retryable);
        assert_eq!(classify(&SqlState::ADMIN_SHUTDOWN), ErrorKind::Retryable);
        assert_eq!(classify(&SqlState::T_R_SERIALIZATION_FAILURE), ErrorKind::Retryable);
        assert_eq!(classify(&SqlState::TOO_MANY_CONNECTIONS), ErrorKind::Retryable);
    }

    #[test]
    fn credentials_data_and_missing_objects_are_permanent() {
        assert_eq!(classify(&SqlState::INVALID_PASSWORD), ErrorKind::Permanent);
        assert_eq!(classify(&SqlState::INVALID_CATALOG_NAME), ErrorKind::Permanent);
        assert_eq!(classify(&SqlState::CHECK_VIOLATION), ErrorKind::Permanent);
        assert_eq!(classify(&SqlState::UNDEFINED_TABLE), ErrorKind::Permanent);
    }
}
