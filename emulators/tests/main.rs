//! The emulators against the public API specs they follow.
#![allow(clippy::unwrap_used, missing_docs)]

mod coda_automation;
mod coda_schema;
mod drchrono_api;
mod drchrono_schema;
