//! August's system of record: the PostgreSQL schema every other stage stands on.
//!
//! This crate owns what it takes to reach and shape that database, and nothing that moves
//! data out of it:
//! - [`settings`]: connection settings, validated once at start-up, with secrets that never
//!   reach a log line;
//! - [`pool`]: single connections and the shared pool;
//! - [`tls`]: libpq's five `sslmode`s over rustls, for every connection;
//! - [`migrate`]: the embedded `migrations/*.sql` files and the runner behind `august migrate`;
//! - [`upsert`]: the one write pattern the ingest code uses, built so that replaying a payload
//!   changes nothing: no row version, no audit row, no change on the replication stream;
//! - [`embedded`]: a private server from the installed binaries, for zero-setup runs and tests;
//! - [`catalog`]: the tables by role (mirrors, operational, published, audit);
//! - [`access_log`]: one `access_log` row per call to an external API;
//! - [`audit_chain`]: the hash chains over `change_log` and `access_log`, and their verifier;
//! - [`actor`]: the names written into `change_log.actor` by each writer;
//! - [`error`]: errors that say whether trying again can help;
//! - [`writeback`]: the Coda write-back contract (targets, staff-owned fields, roles, notices);
//! - [`metrics`]: the catalog of every Prometheus metric August records;
//! - [`trace`]: the trace context a transaction carries into the WAL.
#![forbid(missing_docs)]

pub mod access_log;
pub mod actor;
pub mod audit_chain;
pub mod audit_report;
pub mod audit_retention;
pub mod catalog;
pub mod embedded;
pub mod error;
pub mod metrics;
pub mod migrate;
pub mod pool;
pub mod secret;
pub mod settings;
pub mod tls;
pub mod trace;
pub mod upsert;
pub mod writeback;

pub use actor::{set_actor, Actor};
pub use error::{DbError, ErrorKind, SettingError};
pub use migrate::{migrate, MigrateError, Migration, MigrationReport};
pub use pool::{connect, connect_pool, PgPool};
pub use secret::Secret;
pub use settings::{DbSettings, PoolSettings};
pub use upsert::{Upsert, UpsertOutcome};

/// The publication the replication consumer reads; created by the migrations.
pub const PUBLICATION: &str = "august_cdc";
