//! Change data capture: the logical replication consumer. It turns Postgres' WAL, read
//! through the `august_cdc` publication, into committed transactions of typed changes, and
//! confirms a position to Postgres only once everything before it is durable downstream.
//!
//! The consumer arrives with its issue; the publication and replica identities it relies on
//! are defined in `migrations/0005_publication.sql`.
#![forbid(missing_docs)]
