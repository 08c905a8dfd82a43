//! The replication consumer against a real Postgres: types, hand-off, durability, faults,
//! bounded memory.
#![allow(clippy::unwrap_used, missing_docs)]

mod differential;
mod durability;
mod errors;
mod faults;
mod handoff;
mod metrics;
mod mirror;
mod notices;
mod properties;
mod slots;
mod tls;
mod traces;
mod types;

pub use mirror::{current_lsn, table_rows, Consumer, Mirror};
