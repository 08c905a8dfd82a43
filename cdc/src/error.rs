//! Errors of the replication consumer, each retryable or permanent. Retryable ones (lost
//! connection, server restarting, slot briefly still held by a previous session) are retried
//! with backoff by the consumer itself; permanent ones stop it with a message that says what
//! to do.

use august_schema::error::classify;
use august_schema::{DbError, ErrorKind};
use tokio_postgres::error::SqlState;

/// Why the consumer stopped or had to reconnect.
#[derive(Debug, thiserror::Error)]
pub enum CdcError {
    /// The slot can no longer stream: Postgres removed WAL it still needed.
    #[error(
        "replication slot `{slot}` is invalidated (wal_status = lost): Postgres removed WAL it still needed. \
         Run `august replicate --resnapshot` to recreate it and copy every table again"
    )]
    SlotLost {
        /// The slot.
        slot: String,
    },
    /// The slot disappeared while streaming.
    #[error(
        "replication slot `{slot}` does not exist any more (dropped while August was streaming). \
         Run `august replicate --resnapshot` to recreate it and copy every table again"
    )]
    SlotMissing {
        /// The slot.
        slot: String,
    },
    /// The slot exists but decodes another database of the cluster (slots are cluster-wide):
    /// streaming from it would fail after the copy, so it is refused before.
    #[error(
        "replication slot `{slot}` belongs to database `{database}`, not `{here}`: replication slots are shared by \
         every database of a server, so each August needs its own. Set AUGUST_SLOT to another name, or unset it \
         for this database's default `{}`", crate::slot::default_slot_name(.here)
    )]
    SlotOfAnotherDatabase {
        /// The slot.
        slot: String,
        /// The database it decodes.
        database: String,
        /// The database August is connected to.
        here: String,
    },
    /// A published table that does not log whole old rows.
    #[error(
        "published table `{table}` has REPLICA IDENTITY {identity}; August needs FULL so that deletes and \
         unchanged TOASTed values carry the old row: ALTER TABLE {table} REPLICA IDENTITY FULL"
    )]
    IdentityNotFull {
        /// The table.
        table: String,
        /// Its identity.
        identity: String,
    },
    /// The publication is missing.
    #[error("publication `{0}` does not exist: run `august migrate`")]
    NoPublication(String),
    /// The server answered a replication command with an error.
    #[error("{context}: {} (SQLSTATE {code})", server_message(.code, .message))]
    Server {
        /// What August was doing.
        context: String,
        /// SQLSTATE.
        code: String,
        /// The server's message (replication commands name slots and options, not row data).
        message: String,
    },
    /// The connection failed.
    #[error("{context}: {source}")]
    Io {
        /// What August was doing.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A query on a normal connection failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The server sent something this consumer does not understand.
    #[error("replication protocol error: {0}")]
    Protocol(String),
    /// The server asks for an authentication method August does not speak.
    #[error("the server asks for an authentication method August does not support ({0})")]
    Auth(String),
    /// Whoever reads the change stream has gone away.
    #[error("the change stream's reader has gone away")]
    ReaderGone,
    /// The consumer was asked to stop (not a failure; [`crate::ChangeStream::finish`] returns
    /// `Ok` for it).
    #[error("the consumer was asked to stop")]
    Stopped,
}

/// The server's message, unless its class may quote row data.
fn server_message<'a>(code: &str, message: &'a str) -> &'a str {
    if august_schema::error::message_quotes_data(code) {
        "message withheld: it may quote row data"
    } else {
        message
    }
}

impl CdcError {
    /// Wraps a client error from a normal connection.
    pub fn db(context: &str, e: tokio_postgres::Error) -> Self {
        CdcError::Db(DbError::new(context, e))
    }

    /// Wraps an I/O error.
    pub fn io(context: &str, source: std::io::Error) -> Self {
        CdcError::Io { context: context.to_string(), source }
    }

    /// Whether reconnecting and trying again can help: the one SQLSTATE classification
    /// ([`august_schema::error::classify`]) for server errors, on either connection.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CdcError::Io { .. } => ErrorKind::Retryable,
            CdcError::Db(e) => e.kind(),
            CdcError::Server { code, .. } => classify(&SqlState::from_code(code)),
            _ => ErrorKind::Permanent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str) -> CdcError {
        CdcError::Server { context: "START_REPLICATION".into(), code: code.into(), message: String::new() }
    }

    #[test]
    fn a_replication_error_is_classified_like_the_same_sqlstate_on_a_query() {
        // The codes on which this crate and `august_schema` used to answer differently, and a
        // few on which they agreed.
        for code in ["40001", "40P01", "55000", "55006", "55P03", "57P01", "57P04", "08006", "53300", "42704", "XX000"]
        {
            let state = SqlState::from_code(code);
            assert_eq!(server(code).kind(), classify(&state), "{code}");
        }
        assert_eq!(server("40001").kind(), ErrorKind::Retryable, "serialization failure");
        assert_eq!(server("55000").kind(), ErrorKind::Permanent, "object not in prerequisite state");
        assert_eq!(server("55006").kind(), ErrorKind::Retryable, "the slot is still held");
    }

    #[test]
    fn a_replication_error_about_data_does_not_show_its_message() {
        let error = |code: &str, message: &str| CdcError::Server {
            context: "decode".into(),
            code: code.into(),
            message: message.into(),
        };
        let quoting = error("22007", "invalid input syntax for type date: \"Jane Roe\"").to_string();
        assert_eq!(quoting, "decode: message withheld: it may quote row data (SQLSTATE 22007)");
        let naming = error("42704", "replication slot \"august\" does not exist").to_string();
        assert!(naming.contains("slot \"august\""), "other classes keep the message: {naming}");
    }
}
