//! Errors of the replication consumer, each retryable or permanent. Retryable ones (lost
//! connection, server restarting, slot briefly still held by a previous session) are retried
//! with backoff by the consumer itself; permanent ones stop it with a message that says what
//! to do.

use august_schema::{DbError, ErrorKind};

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
    #[error("{context}: {message} (SQLSTATE {code})")]
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

impl CdcError {
    /// Wraps a client error from a normal connection.
    pub fn db(context: &str, e: tokio_postgres::Error) -> Self {
        CdcError::Db(DbError::new(context, e))
    }

    /// Wraps an I/O error.
    pub fn io(context: &str, source: std::io::Error) -> Self {
        CdcError::Io { context: context.to_string(), source }
    }

    /// Whether reconnecting and trying again can help.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CdcError::Io { .. } => ErrorKind::Retryable,
            CdcError::Db(e) => e.kind(),
            // 08: connection exception, 57: operator intervention (shutdown, restart),
            // 55006: object in use (the slot is still held by a session that is going away),
            // 53: insufficient resources (too many connections).
            CdcError::Server { code, .. }
                if code.starts_with("08") || code.starts_with("57") || code.starts_with("53") || code == "55006" =>
            {
                ErrorKind::Retryable
            }
            _ => ErrorKind::Permanent,
        }
    }
}
