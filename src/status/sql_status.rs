//! The figures of the SQL endpoint's system tables (`august_status`, `august_slot`,
//! `august_views`, `august_coda_quota`), read from the same scrape of the process's metrics as
//! the status page, so both always say the same.

use std::sync::Arc;

use august_cdc::Lsn;
use august_schema::metrics as m;
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::PrometheusHandle;

use super::scrape::{self, Sample};
use super::snapshot::Snapshot;
use super::unix_now;

fn time(seconds: Option<f64>) -> Option<DateTime<Utc>> {
    seconds.and_then(|s| DateTime::from_timestamp_micros((s * 1e6) as i64))
}

fn gauge(samples: &[Sample], metric: &m::Metric) -> Option<f64> {
    samples.iter().filter(|s| s.name == metric.name).map(|s| s.value).reduce(|a, b| a + b)
}

/// The system tables' source: `handle`'s metrics, read at each query; `slot` is the slot's name.
pub fn source(handle: PrometheusHandle, slot: Option<String>) -> august_sql::PipelineStatus {
    let started_at = Utc::now();
    Arc::new(move || {
        let samples = scrape::parse(&handle.render());
        let now = Snapshot::read(&samples, unix_now());
        let lsn = |metric| gauge(&samples, metric).map(|v| Lsn(v as u64));
        august_sql::Status {
            state: "running".into(),
            started_at: Some(started_at),
            last_error: super::recent_errors::process()
                .events()
                .last()
                .map(|e| format!("{} {}: {}", e.level, e.target, e.message)),
            slot: slot.clone(),
            received_lsn: lsn(&m::CDC_RECEIVED_LSN),
            confirmed_lsn: lsn(&m::CDC_CONFIRMED_LSN),
            flushed_lsn: lsn(&m::CDC_FLUSHED_LSN),
            lag_bytes: now.cdc.slot_lag_bytes,
            retained_wal_bytes: now.cdc.retained_wal_bytes,
            seconds_since_last_message: now.cdc.seconds_since_last_message,
            coda: now
                .tables
                .iter()
                .map(|t| {
                    let table = august_sql::system::CodaTable {
                        pending_rows: t.pending_rows,
                        oldest_pending_seconds: t.oldest_pending_seconds,
                        last_write: time(t.last_write_timestamp_seconds),
                    };
                    (t.view.clone(), table)
                })
                .collect(),
            quota_used: now.coda.quota_writes_used,
            quota_limit: now.coda.quota_writes_limit,
            quota_window_seconds: now.coda.quota_window_seconds,
        }
    })
}
