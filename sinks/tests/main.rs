//! The sinks on a real Postgres.
#![allow(clippy::unwrap_used, missing_docs)]

mod coda_echo;
mod coda_health;
mod coda_metrics;
mod coda_quota;
mod coda_restart;
mod coda_sink;
mod coda_traces;
mod errors;
mod link_writeback;
