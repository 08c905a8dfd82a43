//! Names of the consumer's Prometheus metrics, from the catalog ([`august_schema::metrics`],
//! where each is described), recorded through the `metrics` facade; the binary installs the
//! exporter. None carries a label: one consumer per process.

use august_schema::metrics as catalog;

/// Server WAL position minus the slot's confirmed flush LSN, in bytes (gauge).
pub const SLOT_LAG_BYTES: &str = catalog::CDC_SLOT_LAG_BYTES.name;
/// WAL the slot keeps on the server's disk, in bytes (gauge).
pub const RETAINED_WAL_BYTES: &str = catalog::CDC_RETAINED_WAL_BYTES.name;
/// Highest WAL position received from the server (gauge).
pub const RECEIVED_LSN: &str = catalog::CDC_RECEIVED_LSN.name;
/// Highest LSN reported to the server as flushed: every sink holds what is before it (gauge).
pub const FLUSHED_LSN: &str = catalog::CDC_FLUSHED_LSN.name;
/// The slot's `confirmed_flush_lsn`, as the server reports it (gauge).
pub const CONFIRMED_LSN: &str = catalog::CDC_CONFIRMED_LSN.name;
/// Transactions delivered downstream (counter; `rate()` gives transactions per second).
pub const TRANSACTIONS: &str = catalog::CDC_TRANSACTIONS.name;
/// Row changes delivered downstream (counter; `rate()` gives changes per second).
pub const CHANGES: &str = catalog::CDC_CHANGES.name;
/// Seconds since the last message (data or keepalive) from the server (gauge).
pub const SECONDS_SINCE_LAST_MESSAGE: &str = catalog::CDC_SECONDS_SINCE_LAST_MESSAGE.name;
/// Reconnections after a lost replication connection (counter).
pub const RECONNECTS: &str = catalog::CDC_RECONNECTS.name;
/// Heartbeats emitted into the WAL (counter).
pub const HEARTBEATS: &str = catalog::CDC_HEARTBEATS.name;
