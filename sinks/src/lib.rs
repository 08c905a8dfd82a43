//! Where view updates become durable: the rate-limited Coda sink (and the Coda emulator the
//! tests and the demo run against) and the Postgres sink that writes link results back.
//! Each sink reports the highest LSN it holds durably, which is what `cdc` acknowledges.
//!
//! The sinks arrive with their issues.
#![forbid(missing_docs)]
