//! The catalog of every Prometheus metric August records: name, kind, labels, help and
//! (for histograms) buckets, declared once. Call sites record through the `metrics` facade
//! with these names (`metrics::counter!(metrics::CODA_WRITES.name, …)`); the binary describes
//! them all at start-up (so every scrape carries `# HELP` and `# TYPE`) and sets histogram
//! buckets from here; the dashboards, alert rules, status page and their tests check their
//! names against [`ALL`].
//!
//! Conventions (Prometheus naming): base units in the name (`_seconds`, `_bytes`), counters
//! end in `_total`, timestamps are `_timestamp_seconds` (Unix time; age is `time() - x`).
//! Labels are bounded sets — view, target, feed, source, event, outcome, route, service, path
//! template, status class — and never carry PHI, ids of patients or free text.

/// What kind of series a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (`rate()` it).
    Counter,
    /// A value now.
    Gauge,
    /// A distribution, with [`Metric::buckets`].
    Histogram,
}

/// One metric of the catalog.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// The full name, `august_…`.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// The label names every series of it carries.
    pub labels: &'static [&'static str],
    /// The `# HELP` line: what it measures, in its base unit.
    pub help: &'static str,
    /// Upper bounds of a histogram's buckets, in the metric's unit (empty for others).
    pub buckets: &'static [f64],
}

const fn counter(name: &'static str, labels: &'static [&'static str], help: &'static str) -> Metric {
    Metric { name, kind: Kind::Counter, labels, help, buckets: &[] }
}

const fn gauge(name: &'static str, labels: &'static [&'static str], help: &'static str) -> Metric {
    Metric { name, kind: Kind::Gauge, labels, help, buckets: &[] }
}

const fn histogram(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
    buckets: &'static [f64],
) -> Metric {
    Metric { name, kind: Kind::Histogram, labels, help, buckets }
}

/// Buckets for a request answered by August itself or Postgres: 1 ms to 10 s.
pub const REQUEST_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];
/// Buckets for calls to Coda and DrChrono over the internet: 10 ms to 60 s.
pub const EXTERNAL_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Buckets for commit-to-Coda latency: from well under a second (no quota pressure) to the
/// minutes a backlog can take at Coda's 10 writes per 6 s.
pub const LAG_BUCKETS: &[f64] =
    &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0];

// ---- the process ----

/// `august_build_info{version}`: 1, with the running version as a label.
pub const BUILD_INFO: Metric = gauge("august_build_info", &["version"], "August's version, as a label; always 1.");
/// When the process started.
pub const START_TIME: Metric =
    gauge("august_start_time_seconds", &[], "When this August process started, in Unix seconds.");

// ---- webhooks and ingest (ingest/) ----

/// Deliveries by source (`drchrono`, `deepcura`), event and outcome: `accepted` (answered 2xx:
/// stored, or already held) or the error code of the refusal (`unauthorized`, `bad_request`,
/// `invalid_field`, `unavailable`, …; the `code` of the JSON error body).
pub const INGEST_DELIVERIES: Metric = counter(
    "august_ingest_deliveries_total",
    &["source", "event", "outcome"],
    "Webhook deliveries received, by source, event and outcome (accepted, or the refusal's error code).",
);
/// Time to answer a request of the webhook server, from request to response, by route
/// (`drchrono`, `deepcura`, `writeback`, `other` for `/health` and `/sync/*`).
pub const INGEST_HANDLER_SECONDS: Metric = histogram(
    "august_ingest_handler_seconds",
    &["route"],
    "Time to answer a request of the webhook server, in seconds, by route (drchrono, deepcura, writeback, other).",
    REQUEST_BUCKETS,
);
/// Time of the Postgres transaction (begin to commit) that stores a delivery, a pulled page or
/// a write-back, by source (`drchrono`, `deepcura`, `drchrono_pull`, `writeback`).
pub const INGEST_COMMIT_SECONDS: Metric = histogram(
    "august_ingest_commit_seconds",
    &["source"],
    "Time of the Postgres transaction storing a delivery, begin to commit, in seconds.",
    REQUEST_BUCKETS,
);
/// Requests refused with 503 because the server was at its concurrency limit.
pub const INGEST_OVERLOADED: Metric =
    counter("august_ingest_overloaded_total", &[], "Webhook requests refused because the server was at capacity.");
/// Calls to external APIs by service and path template (one `access_log` row each).
pub const EXTERNAL_CALL_SECONDS: Metric = histogram(
    "august_external_call_seconds",
    &["service", "path"],
    "Calls to external APIs, in seconds, by service and path template.",
    EXTERNAL_BUCKETS,
);

// ---- Postgres ----

/// Size of August's database (sampled every minute).
pub const POSTGRES_DATABASE_BYTES: Metric =
    gauge("august_postgres_database_bytes", &[], "Size of August's database, in bytes (pg_database_size).");
/// The storage the database may use, from `AUGUST_DB_CAPACITY_BYTES` (absent when unset).
pub const POSTGRES_CAPACITY_BYTES: Metric = gauge(
    "august_postgres_capacity_bytes",
    &[],
    "Storage the database may use, in bytes, as configured by AUGUST_DB_CAPACITY_BYTES.",
);

// ---- cdc (cdc/) ----

/// Highest WAL position received from the server.
pub const CDC_RECEIVED_LSN: Metric =
    gauge("august_cdc_received_lsn", &[], "Highest WAL position received from the server, as a byte position.");
/// Highest LSN August reported to the server as flushed (every sink holds all before it).
pub const CDC_FLUSHED_LSN: Metric = gauge(
    "august_cdc_flushed_lsn",
    &[],
    "Highest WAL position August reported flushed: every sink holds every change before it.",
);
/// The slot's `confirmed_flush_lsn` as the server reports it.
pub const CDC_CONFIRMED_LSN: Metric =
    gauge("august_cdc_confirmed_lsn", &[], "The replication slot's confirmed_flush_lsn, as the server reports it.");
/// Server WAL position minus the slot's confirmed flush LSN.
pub const CDC_SLOT_LAG_BYTES: Metric =
    gauge("august_cdc_slot_lag_bytes", &[], "Server WAL position minus the slot's confirmed flush LSN, in bytes.");
/// WAL the slot keeps on the server's disk.
pub const CDC_RETAINED_WAL_BYTES: Metric =
    gauge("august_cdc_retained_wal_bytes", &[], "WAL the replication slot keeps on the server, in bytes.");
/// Seconds since the last message (data or keepalive) from the server.
pub const CDC_SECONDS_SINCE_LAST_MESSAGE: Metric = gauge(
    "august_cdc_seconds_since_last_message",
    &[],
    "Seconds since the last message (data or keepalive) on the replication stream.",
);
/// Transactions delivered downstream.
pub const CDC_TRANSACTIONS: Metric =
    counter("august_cdc_transactions_total", &[], "Committed transactions read from the replication stream.");
/// Row changes delivered downstream.
pub const CDC_CHANGES: Metric =
    counter("august_cdc_changes_total", &[], "Row changes read from the replication stream.");
/// Reconnections after a lost replication connection.
pub const CDC_RECONNECTS: Metric =
    counter("august_cdc_reconnects_total", &[], "Reconnections of the replication stream after it was lost.");
/// Heartbeats emitted into the WAL.
pub const CDC_HEARTBEATS: Metric =
    counter("august_cdc_heartbeats_total", &[], "Heartbeat messages written into the WAL.");

// ---- dataflow (dataflow/) ----

/// The LSN up to which every view is complete.
pub const DATAFLOW_FRONTIER_LSN: Metric =
    gauge("august_dataflow_frontier_lsn", &[], "WAL position up to which every view is complete.");
/// Received LSN minus the dataflow's frontier.
pub const DATAFLOW_FRONTIER_LAG_BYTES: Metric = gauge(
    "august_dataflow_frontier_lag_bytes",
    &[],
    "WAL received by the replication stream and not yet closed by the dataflow, in bytes.",
);
/// How long the oldest commit received and not yet closed has waited (0 when caught up).
pub const DATAFLOW_FRONTIER_LAG_SECONDS: Metric = gauge(
    "august_dataflow_frontier_lag_seconds",
    &[],
    "Age of the oldest received commit the dataflow has not closed yet, in seconds (0 when caught up).",
);
/// Row changes applied to the dataflow.
pub const DATAFLOW_CHANGES: Metric =
    counter("august_dataflow_changes_total", &[], "Row changes applied to the dataflow's inputs.");
/// Row updates the dataflow output, per view.
pub const DATAFLOW_UPDATES: Metric =
    counter("august_dataflow_updates_total", &["view"], "Row updates the dataflow produced, by view.");
/// Rows in each view as of the frontier.
pub const DATAFLOW_VIEW_ROWS: Metric =
    gauge("august_dataflow_view_rows", &["view"], "Rows in each view as of the dataflow's frontier.");
/// Records held by each arrangement (differential's batches, summed).
pub const DATAFLOW_ARRANGEMENT_RECORDS: Metric = gauge(
    "august_dataflow_arrangement_records",
    &["arrangement"],
    "Records held in each of the dataflow's arrangements.",
);

// ---- the Coda sink (sinks/src/coda/) ----

/// Rows waiting to be written, per view.
pub const CODA_PENDING_ROWS: Metric =
    gauge("august_coda_pending_rows", &["view"], "Rows waiting to be written to Coda, by view.");
/// Age of the oldest row waiting, per view (0 when none waits).
pub const CODA_OLDEST_PENDING_SECONDS: Metric = gauge(
    "august_coda_oldest_pending_seconds",
    &["view"],
    "Age of the oldest row waiting to be written to Coda, in seconds, by view (0 when none waits).",
);
/// Mutation requests sent (each spends one write of the quota), per view and kind.
pub const CODA_WRITES: Metric = counter(
    "august_coda_writes_total",
    &["view", "kind"],
    "Mutation requests sent to Coda, by view and kind (upsert, delete).",
);
/// Rows carried by accepted upserts, per view.
pub const CODA_ROWS_WRITTEN: Metric =
    counter("august_coda_rows_written_total", &["view"], "Rows carried by upserts Coda accepted, by view.");
/// Every request to Coda on behalf of a view, by outcome (`ok`, `rate_limited` (429),
/// `client_error` (other 4xx), `server_error` (5xx), `network`).
pub const CODA_REQUESTS: Metric = counter(
    "august_coda_requests_total",
    &["view", "outcome"],
    "Requests to Coda, by view and outcome (ok, rate_limited, client_error, server_error, network).",
);
/// Rows dead-lettered (refused by Coda for good), per view.
pub const CODA_DEAD_LETTERS: Metric =
    counter("august_coda_dead_letters_total", &["view"], "Rows Coda refused for good (dead-lettered), by view.");
/// Dead letters not yet resolved, per view.
pub const CODA_DEAD_LETTERS_OPEN: Metric =
    gauge("august_coda_dead_letters_open", &["view"], "Dead-lettered rows not yet resolved, by view.");
/// Rows not written because a staff edit had already put them in Coda.
pub const CODA_ECHOES_AVOIDED: Metric = counter(
    "august_coda_echoes_avoided_total",
    &["view"],
    "Rows not written because a staff edit had already put them in Coda, by view.",
);
/// 1 when a view's table is stopped (a refused mapping or a Coda error it cannot pass).
pub const CODA_STALLED: Metric =
    gauge("august_coda_stalled", &["view"], "1 when writes to a view's Coda table are stopped, else 0.");
/// When the last write to a view's table was confirmed.
pub const CODA_LAST_WRITE: Metric = gauge(
    "august_coda_last_write_timestamp_seconds",
    &["view"],
    "When Coda last confirmed a write to a view's table, in Unix seconds.",
);
/// Commit in Postgres to durable in Coda, per view.
pub const E2E_LATENCY_SECONDS: Metric = histogram(
    "august_e2e_latency_seconds",
    &["view"],
    "Commit in Postgres to confirmed in Coda, in seconds, by view.",
    LAG_BUCKETS,
);
/// Writes spent in the current quota window.
pub const CODA_QUOTA_USED: Metric =
    gauge("august_coda_quota_writes_used", &[], "Coda writes spent in the current quota window.");
/// Writes the quota allows per window.
pub const CODA_QUOTA_LIMIT: Metric =
    gauge("august_coda_quota_writes_limit", &[], "Coda writes the quota allows per window.");
/// The quota's window.
pub const CODA_QUOTA_WINDOW_SECONDS: Metric =
    gauge("august_coda_quota_window_seconds", &[], "Length of Coda's write-quota window, in seconds.");

// ---- DrChrono pull (ingest/src/drchrono/) ----

/// API calls by path template and status class (`2xx`, `3xx`, `401`, `403`, `429`, `4xx`,
/// `5xx`, `network`).
pub const DRCHRONO_CALLS: Metric = counter(
    "august_drchrono_calls_total",
    &["path", "status"],
    "DrChrono API calls, by path template and status (2xx, 3xx, 401, 403, 429, 4xx, 5xx, network).",
);
/// Calls left in DrChrono's hourly budget, as last reported.
pub const DRCHRONO_CALLS_LEFT: Metric =
    gauge("august_drchrono_calls_left", &[], "DrChrono API calls left this hour, as last reported.");
/// Objects pulled per feed and outcome.
pub const DRCHRONO_OBJECTS: Metric =
    counter("august_drchrono_objects_total", &["feed", "outcome"], "DrChrono objects pulled, by feed and outcome.");
/// Feed pulls of sync runs, per feed and outcome (`ok`, `partial`, `failed`, `auth_error`).
pub const DRCHRONO_SYNC_RUNS: Metric = counter(
    "august_drchrono_sync_runs_total",
    &["feed", "outcome"],
    "DrChrono feed pulls of sync runs, by feed and outcome (ok, partial, failed, auth_error).",
);
/// When a feed last synced successfully.
pub const DRCHRONO_LAST_SUCCESS: Metric = gauge(
    "august_drchrono_last_success_timestamp_seconds",
    &["feed"],
    "When a DrChrono feed last synced successfully, in Unix seconds.",
);
/// When the last reconciliation pass (every feed, on schedule) ended without failing (a pass
/// that stopped at its share of the hourly budget counts: the next resumes it).
pub const DRCHRONO_LAST_RECONCILE: Metric = gauge(
    "august_drchrono_last_reconcile_timestamp_seconds",
    &[],
    "When the last DrChrono reconciliation pass (every feed) ended without failing, in Unix seconds.",
);

// ---- Coda write-back (ingest/src/writeback/) ----

/// Write-back requests by target and outcome.
pub const WRITEBACK_REQUESTS: Metric = counter(
    "august_writeback_requests_total",
    &["target", "outcome"],
    "Coda write-back requests, by target and outcome.",
);
/// Time to answer a write-back request.
pub const WRITEBACK_SECONDS: Metric = histogram(
    "august_writeback_seconds",
    &["target"],
    "Time to answer a Coda write-back request, in seconds, by target.",
    REQUEST_BUCKETS,
);

/// Every metric August records.
pub const ALL: &[Metric] = &[
    BUILD_INFO,
    START_TIME,
    INGEST_DELIVERIES,
    INGEST_HANDLER_SECONDS,
    INGEST_COMMIT_SECONDS,
    INGEST_OVERLOADED,
    EXTERNAL_CALL_SECONDS,
    POSTGRES_DATABASE_BYTES,
    POSTGRES_CAPACITY_BYTES,
    CDC_RECEIVED_LSN,
    CDC_FLUSHED_LSN,
    CDC_CONFIRMED_LSN,
    CDC_SLOT_LAG_BYTES,
    CDC_RETAINED_WAL_BYTES,
    CDC_SECONDS_SINCE_LAST_MESSAGE,
    CDC_TRANSACTIONS,
    CDC_CHANGES,
    CDC_RECONNECTS,
    CDC_HEARTBEATS,
    DATAFLOW_FRONTIER_LSN,
    DATAFLOW_FRONTIER_LAG_BYTES,
    DATAFLOW_FRONTIER_LAG_SECONDS,
    DATAFLOW_CHANGES,
    DATAFLOW_UPDATES,
    DATAFLOW_VIEW_ROWS,
    DATAFLOW_ARRANGEMENT_RECORDS,
    CODA_PENDING_ROWS,
    CODA_OLDEST_PENDING_SECONDS,
    CODA_WRITES,
    CODA_ROWS_WRITTEN,
    CODA_REQUESTS,
    CODA_DEAD_LETTERS,
    CODA_DEAD_LETTERS_OPEN,
    CODA_ECHOES_AVOIDED,
    CODA_STALLED,
    CODA_LAST_WRITE,
    E2E_LATENCY_SECONDS,
    CODA_QUOTA_USED,
    CODA_QUOTA_LIMIT,
    CODA_QUOTA_WINDOW_SECONDS,
    DRCHRONO_CALLS,
    DRCHRONO_CALLS_LEFT,
    DRCHRONO_OBJECTS,
    DRCHRONO_SYNC_RUNS,
    DRCHRONO_LAST_SUCCESS,
    DRCHRONO_LAST_RECONCILE,
    WRITEBACK_REQUESTS,
    WRITEBACK_SECONDS,
];

/// The catalog entry named `name`, if any. A series' name may carry a histogram's
/// `_bucket`, `_sum` or `_count` suffix.
pub fn find(name: &str) -> Option<&'static Metric> {
    let base = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| {
            name.strip_suffix(suffix).filter(|b| ALL.iter().any(|m| m.name == *b && m.kind == Kind::Histogram))
        })
        .unwrap_or(name);
    ALL.iter().find(|m| m.name == base)
}

/// Registers every metric's help text and unit with the installed recorder, so a scrape
/// carries `# HELP` for each from the first record on.
pub fn describe() {
    for m in ALL {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, metrics::Unit::Seconds, m.help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for m in ALL {
            assert!(seen.insert(m.name), "{} is listed twice", m.name);
            assert!(m.name.starts_with("august_"), "{} lacks the august_ prefix", m.name);
            assert_eq!(m.kind == Kind::Counter, m.name.ends_with("_total"), "{}: only counters end in _total", m.name);
            assert_eq!(
                m.kind == Kind::Histogram,
                !m.buckets.is_empty(),
                "{}: histograms and only they have buckets",
                m.name
            );
            if m.kind == Kind::Histogram {
                assert!(m.name.ends_with("_seconds"), "{}: our histograms measure seconds", m.name);
                assert!(m.buckets.windows(2).all(|w| w[0] < w[1]), "{}: buckets increase", m.name);
            }
            assert!(!m.help.is_empty() && m.help.ends_with('.'), "{}: help is a sentence", m.name);
        }
    }

    #[test]
    fn a_histogram_series_finds_its_metric() {
        assert_eq!(find("august_e2e_latency_seconds_bucket").map(|m| m.name), Some("august_e2e_latency_seconds"));
        assert_eq!(find("august_cdc_changes_total").map(|m| m.name), Some("august_cdc_changes_total"));
        assert!(find("august_cdc_changes_total_count").is_none());
        assert!(find("august_nothing").is_none());
    }
}
