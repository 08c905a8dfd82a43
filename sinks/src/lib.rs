//! Where view updates become durable: the Postgres sink that writes link results back
//! ([`link_writeback`]), and the rate-limited Coda sink ([`coda`]). The Coda emulator its tests
//! run against lives in `august-emulators`, a dev-dependency only.
//!
//! Every sink reads the dataflow's output and publishes, on a watch channel, the LSN below
//! which everything it received is durable. [`durability`] fans the output out to the sinks
//! and hands `cdc` the smallest of their durable LSNs: the slot moves only past what every
//! sink holds.
#![forbid(missing_docs)]

pub mod coda;
pub mod durability;
mod error;
pub mod link_writeback;

pub use error::SinkError;
