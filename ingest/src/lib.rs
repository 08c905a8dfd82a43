//! HTTP in: where clinical data enters August. DrChrono webhooks, Deep Cura Gridhooks, the
//! DrChrono pull sync and Coda write-back land here and are written to the system of record
//! with the no-op-safe upsert of `august_schema::upsert`, each under its own actor.
//!
//! The handlers arrive with their issues; this crate holds the place in the workspace so the
//! data's journey reads in order: `ingest` → `cdc` → `dataflow` → `sinks`.
#![forbid(missing_docs)]
