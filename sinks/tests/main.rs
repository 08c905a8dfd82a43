//! The sinks on a real Postgres.
#![allow(clippy::unwrap_used, missing_docs)]

mod coda_restart;
mod coda_sink;
mod emulator_schema;
mod link_writeback;
