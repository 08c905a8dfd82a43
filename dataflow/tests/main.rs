//! The dataflow: incremental views equal a from-scratch computation after every step, for any
//! sequence of changes; 1 and 4 workers agree; end to end through `cdc` on a real Postgres.
#![allow(clippy::unwrap_used, missing_docs)]

mod backpressure;
mod chunks;
mod end_to_end;
mod model;
mod properties;
mod traces;
