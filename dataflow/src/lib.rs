//! The incremental graph: a timely/differential dataflow fed by `cdc`'s change stream, which
//! links Deep Cura notes to clinical notes and keeps the denormalised rows of the staff's Coda
//! docs, emitting only what changed.
//!
//! The views arrive with their issue.
#![forbid(missing_docs)]
