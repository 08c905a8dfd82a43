//! One module per `august` subcommand: each turns settings into a running stage.

pub mod audit;
pub mod audit_report;
pub mod coda_emulator;
pub mod dead_letters;
pub mod drchrono_emulator;
pub mod ingest;
pub mod migrate;
pub mod replicate;
pub mod retention;
pub mod serve;
pub mod sql;
pub mod sync;
pub mod tail;
pub mod verify;
pub mod views;
