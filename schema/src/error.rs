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
///
/// Its `Display` and `Debug` keep the SQLSTATE, its condition name and the names of the
/// objects involved (schema, table, column, constraint, type), and hold back what may quote a
/// row: the server's DETAIL and HINT always, and its message for the classes that quote data
/// (22 data exception, 23 integrity constraint violation, P0 PL/pgSQL). It has no
/// [`std::error::Error::source`]: the client error underneath prints the DETAIL
/// (`Key (email)=(…) already exists`, `Failing row contains (…)`), and `{:#}` and `anyhow`
/// chains print every source.
pub struct DbError {
    context: String,
    raw: tokio_postgres::Error,
}

impl DbError {
    /// Wraps a client error with a short description of the operation (no values).
    pub fn new(context: impl Into<String>, raw: tokio_postgres::Error) -> Self {
        Self { context: context.into(), raw }
    }

    /// Whether trying again may help.
    pub fn kind(&self) -> ErrorKind {
        match self.raw.code() {
            // A certificate the settings refuse is refused again on every try.
            None if crate::tls::refuses_certificate(&self.raw) => ErrorKind::Permanent,
            None => ErrorKind::Retryable, // I/O, closed connection, timeout
            Some(code) => classify(code),
        }
    }

    /// The SQLSTATE, when the server sent one.
    pub fn code(&self) -> Option<&SqlState> {
        self.raw.code()
    }

    /// Whether Postgres refused the data itself (a class 22 data exception or a class 23
    /// integrity constraint violation): the same rows will be refused every time.
    pub fn refuses_data(&self) -> bool {
        self.raw.code().is_some_and(|code| matches!(class(code.code()), "22" | "23"))
    }

    /// The SQLSTATE with its condition name and the names of the objects involved, never the
    /// server's message: e.g. `check_violation (SQLSTATE 23514) table=patients
    /// constraint=patients_patient_status_check`. Client-side errors give their kind.
    pub fn summary(&self) -> String {
        match self.raw.as_db_error() {
            Some(db) => {
                let mut text = condition(db.code().code());
                push_names(&mut text, db);
                text
            }
            None => self.raw.to_string(),
        }
    }

    /// The client error underneath, with the server's full message and DETAIL, which may
    /// quote row values (PHI) or secrets: for code that inspects it, never for a log line,
    /// an error message or a metric label.
    pub fn unredacted_postgres_error(&self) -> &tokio_postgres::Error {
        &self.raw
    }
}

/// `unique_violation (SQLSTATE 23505)`, or `SQLSTATE 23505` for a code without a name here.
fn condition(code: &str) -> String {
    match condition_name(code) {
        Some(name) => format!("{name} (SQLSTATE {code})"),
        None => format!("SQLSTATE {code}"),
    }
}

fn push_names(text: &mut String, db: &tokio_postgres::error::DbError) {
    use std::fmt::Write;
    let names = [
        ("schema", db.schema()),
        ("table", db.table()),
        ("column", db.column()),
        ("constraint", db.constraint()),
        ("type", db.datatype()),
    ];
    for (what, name) in names {
        if let Some(name) = name {
            let _ = write!(text, " {what}={name}");
        }
    }
}

/// Whether the server's message for SQLSTATE `code` may quote the data (classes 22, 23 and
/// P0: `invalid input syntax for type date: "…"`), so that it must not be shown.
pub fn message_quotes_data(code: &str) -> bool {
    matches!(class(code), "22" | "23" | "P0")
}

/// The first two characters of a SQLSTATE: its class.
fn class(code: &str) -> &str {
    code.get(..2).unwrap_or(code)
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.context)?;
        let Some(db) = self.raw.as_db_error() else {
            // A client-side error: its kind, then its cause unless that may hold a value (a
            // parameter that would not serialize, a column that would not deserialize).
            write!(f, "{}", self.raw)?;
            let kind = self.raw.to_string();
            let may_quote = kind.starts_with("error serializing") || kind.starts_with("error deserializing");
            return match std::error::Error::source(&self.raw) {
                Some(cause) if !may_quote => write!(f, ": {cause}"),
                _ => Ok(()),
            };
        };
        let code = db.code().code();
        if message_quotes_data(code) {
            write!(f, "{} (row data withheld)", self.summary())
        } else {
            let mut text = format!("{} ({})", db.message(), condition(code));
            push_names(&mut text, db);
            f.write_str(&text)
        }
    }
}

impl fmt::Debug for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The same redacted text as `Display`, never the client error's own `Debug` (which
        // holds the DETAIL, the message and the query position).
        f.debug_struct("DbError")
            .field("sqlstate", &self.code().map(SqlState::code))
            .field("error", &self.to_string())
            .finish()
    }
}

impl std::error::Error for DbError {}

/// Whether an error with SQLSTATE `code` may go away if the same operation is tried again.
/// The one classification every crate uses (through [`DbError::kind`], or directly for a code
/// that came without a client error, like a replication command's).
pub fn classify(code: &SqlState) -> ErrorKind {
    let code = code.code();
    let retryable = match class(code) {
        // connection exception, transaction rollback (serialization failure, deadlock),
        // insufficient resources (too many connections, disk full)
        "08" | "40" | "53" => true,
        // operator intervention: shutdown, restart, query cancelled; but not a dropped database
        "57" => code != "57P04",
        // object in use (a slot still held by a session going away), lock not available; not
        // "object not in prerequisite state" (wal_level, an invalidated slot) nor the others
        "55" => matches!(code, "55006" | "55P03"),
        _ => false,
    };
    if retryable {
        ErrorKind::Retryable
    } else {
        ErrorKind::Permanent
    }
}

/// The condition names (Postgres Appendix A) of the codes August meets or withholds the
/// message of; others show as their bare SQLSTATE.
fn condition_name(code: &str) -> Option<&'static str> {
    Some(match code {
        "08000" => "connection_exception",
        "08003" => "connection_does_not_exist",
        "08006" => "connection_failure",
        "08001" => "sqlclient_unable_to_establish_sqlconnection",
        "08004" => "sqlserver_rejected_establishment_of_sqlconnection",
        "08P01" => "protocol_violation",
        "22000" => "data_exception",
        "22001" => "string_data_right_truncation",
        "22003" => "numeric_value_out_of_range",
        "22004" => "null_value_not_allowed",
        "22007" => "invalid_datetime_format",
        "22008" => "datetime_field_overflow",
        "22009" => "invalid_time_zone_displacement_value",
        "22012" => "division_by_zero",
        "22021" => "character_not_in_repertoire",
        "22023" => "invalid_parameter_value",
        "22025" => "invalid_escape_sequence",
        "22026" => "string_data_length_mismatch",
        "22030" => "duplicate_json_object_key_value",
        "22032" => "invalid_json_text",
        "22P01" => "floating_point_exception",
        "22P02" => "invalid_text_representation",
        "22P03" => "invalid_binary_representation",
        "22P05" => "untranslatable_character",
        "23000" => "integrity_constraint_violation",
        "23001" => "restrict_violation",
        "23502" => "not_null_violation",
        "23503" => "foreign_key_violation",
        "23505" => "unique_violation",
        "23514" => "check_violation",
        "23P01" => "exclusion_violation",
        "25006" => "read_only_sql_transaction",
        "25P02" => "in_failed_sql_transaction",
        "28000" => "invalid_authorization_specification",
        "28P01" => "invalid_password",
        "3D000" => "invalid_catalog_name",
        "40001" => "serialization_failure",
        "40P01" => "deadlock_detected",
        "42501" => "insufficient_privilege",
        "42601" => "syntax_error",
        "42703" => "undefined_column",
        "42704" => "undefined_object",
        "42804" => "datatype_mismatch",
        "42883" => "undefined_function",
        "42P01" => "undefined_table",
        "53000" => "insufficient_resources",
        "53100" => "disk_full",
        "53200" => "out_of_memory",
        "53300" => "too_many_connections",
        "53400" => "configuration_limit_exceeded",
        "55000" => "object_not_in_prerequisite_state",
        "55006" => "object_in_use",
        "55P03" => "lock_not_available",
        "57014" => "query_canceled",
        "57P01" => "admin_shutdown",
        "57P02" => "crash_shutdown",
        "57P03" => "cannot_connect_now",
        "57P04" => "database_dropped",
        "P0001" => "raise_exception",
        "XX000" => "internal_error",
        _ => return None,
    })
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
        assert_eq!(classify(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION), ErrorKind::Permanent);
        assert_eq!(classify(&SqlState::INVALID_CATALOG_NAME), ErrorKind::Permanent);
        assert_eq!(classify(&SqlState::CHECK_VIOLATION), ErrorKind::Permanent);
        assert_eq!(classify(&SqlState::UNIQUE_VIOLATION), ErrorKind::Permanent);
        assert_eq!(classify(&SqlState::INVALID_TEXT_REPRESENTATION), ErrorKind::Permanent);
        assert_eq!(classify(&SqlState::UNDEFINED_TABLE), ErrorKind::Permanent);
    }

    #[test]
    fn the_classes_cdc_and_schema_used_to_disagree_on_have_one_answer() {
        // schema said retryable for all of 40 and 55, cdc said permanent for all but 55006.
        assert_eq!(classify(&SqlState::T_R_DEADLOCK_DETECTED), ErrorKind::Retryable);
        assert_eq!(classify(&SqlState::T_R_SERIALIZATION_FAILURE), ErrorKind::Retryable);
        assert_eq!(classify(&SqlState::OBJECT_IN_USE), ErrorKind::Retryable);
        assert_eq!(classify(&SqlState::LOCK_NOT_AVAILABLE), ErrorKind::Retryable);
        // wal_level too low, an invalidated slot: waiting changes nothing.
        assert_eq!(classify(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE), ErrorKind::Permanent);
        assert_eq!(classify(&SqlState::CANT_CHANGE_RUNTIME_PARAM), ErrorKind::Permanent);
        assert_eq!(classify(&SqlState::DATABASE_DROPPED), ErrorKind::Permanent);
        assert_eq!(classify(&SqlState::QUERY_CANCELED), ErrorKind::Retryable);
    }

    #[test]
    fn conditions_are_named_with_their_sqlstate() {
        for code in ["22P02", "23505", "40001", "55006", "57P01"] {
            assert!(condition(code).contains(code));
            assert!(condition_name(code).is_some(), "{code}");
        }
        assert_eq!(condition("22P99"), "SQLSTATE 22P99");
    }
}
