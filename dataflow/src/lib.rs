//! The incremental graph: a timely/differential dataflow fed by `cdc`'s change stream, which
//! links Deep Cura notes to clinical notes and keeps the denormalised rows of the staff's Coda
//! docs, emitting only what changed.
//!
//! * **Input** ([`input`]): change events become upserts of each published table, keyed by
//!   its natural key; dataflow time is a sequence mapped back to commit LSNs, so a big
//!   transaction can enter in chunks at successive times (the snapshot enters at time 0 and
//!   the copy's end moves the frontier to the snapshot LSN). Rows are projected onto fixed column lists
//!   ([`tables`]); soft-deleted rows become deletes.
//! * **Views** ([`views`]), one file each, each keyed by one column: `deepcura_links`,
//!   `clinical_notes`, `scheduling_ops`, `patient_intake`, `prior_auths`,
//!   `post_appointment_tasks`, `deepcura_review`, and every published table by its own name.
//!   `august views [--json]` lists them with their columns.
//! * **Output** ([`output`]): per closed time, consolidated updates (key → row, or delete)
//!   carrying their commit LSN, then the frontier as an LSN, which the sinks turn into durable
//!   LSNs for `cdc`. The output channel is bounded: a slow sink stops the dataflow.
//! * **Metrics** ([`metrics`]): frontier lag in bytes and seconds, changes, updates and rows
//!   per view, and arrangement sizes, for Prometheus.
//! * **Traces** ([`trace`]): a traced commit's `dataflow.apply` span, below cdc's, and its
//!   context handed to the sinks with the output for its LSN.
//! * **Scale** ([`engine`]): N worker threads with keyed exchange, or several processes.
//! * **Reference** ([`reference`]): the same views from scratch, for checking.
#![forbid(missing_docs)]

pub mod base;
pub mod column_type;
pub mod engine;
pub mod graph;
pub mod input;
pub mod join;
pub mod metrics;
pub mod output;
pub mod phi;
pub mod reference;
pub mod tables;
pub mod trace;
pub mod views;

pub use column_type::ColumnType;
pub use engine::{feed, forward, spawn, Dataflow, DataflowConfig, DataflowError, DEFAULT_TRANSACTION_CHUNK_ROWS};
pub use input::DriverStats;
pub use output::{Output, ViewUpdate};
pub use phi::PhiClass;
pub use views::{ViewRow, ViewSpec};
