//! The replication consumer against a real Postgres: types, hand-off, durability, faults,
//! bounded memory.
#![allow(clippy::unwrap_used, missing_docs)]

mod durability;
mod faults;
mod handoff;
mod metrics;
mod mirror;
mod types;

pub use mirror::{current_lsn, table_rows, Consumer, Mirror};
