//! Names of the consumer's Prometheus metrics (recorded through the `metrics` facade; the
//! binary installs the exporter). Labels never carry data, only slot names.

/// Server WAL position minus the slot's confirmed flush LSN, in bytes (gauge).
pub const SLOT_LAG_BYTES: &str = "august_cdc_slot_lag_bytes";
/// WAL the slot keeps on the server's disk, in bytes (gauge).
pub const RETAINED_WAL_BYTES: &str = "august_cdc_retained_wal_bytes";
/// Highest WAL position received from the server (gauge).
pub const RECEIVED_LSN: &str = "august_cdc_received_lsn";
/// Highest LSN confirmed to the server as durable (gauge).
pub const CONFIRMED_LSN: &str = "august_cdc_confirmed_lsn";
/// Transactions delivered downstream (counter; `rate()` gives transactions per second).
pub const TRANSACTIONS: &str = "august_cdc_transactions_total";
/// Row changes delivered downstream (counter; `rate()` gives changes per second).
pub const CHANGES: &str = "august_cdc_changes_total";
/// Seconds since the last message (data or keepalive) from the server (gauge).
pub const SECONDS_SINCE_LAST_MESSAGE: &str = "august_cdc_seconds_since_last_message";
/// Reconnections after a lost replication connection (counter).
pub const RECONNECTS: &str = "august_cdc_reconnects_total";
/// Heartbeats emitted into the WAL (counter).
pub const HEARTBEATS: &str = "august_cdc_heartbeats_total";
