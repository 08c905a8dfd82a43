//! What the status page shows at one moment, read from one scrape of the process's own
//! metrics by the names of the catalog (`august_schema::metrics`). A metric that has not been
//! recorded (yet, or in this build) is `None`, shown as "—"; a total is the sum of every
//! series of its name, so it reads the same whether a gauge is kept per view or for all.

use std::collections::BTreeMap;

use august_schema::metrics::{self as m, Metric};
use serde::Serialize;

use super::scrape::Sample;

/// The whole page's numbers at `at`.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    /// When it was read, in Unix seconds.
    pub at: f64,
    /// Each Coda table (by the view it mirrors), in name order.
    pub tables: Vec<Table>,
    /// The Coda sink as a whole and its write quota.
    pub coda: Coda,
    /// The replication stream and its slot.
    pub cdc: Cdc,
    /// The dataflow's progress.
    pub dataflow: Dataflow,
    /// The DrChrono pull's budget and feeds.
    pub drchrono: DrChrono,
}

/// One Coda table's lag and health.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Table {
    /// The view the table mirrors.
    pub view: String,
    /// Rows waiting to be written.
    pub pending_rows: Option<f64>,
    /// Age of the oldest waiting row, in seconds.
    pub oldest_pending_seconds: Option<f64>,
    /// 1 when writes to it are stopped.
    pub stalled: Option<f64>,
    /// When Coda last confirmed a write to it, in Unix seconds.
    pub last_write_timestamp_seconds: Option<f64>,
    /// Rows written since the process started.
    pub rows_written_total: Option<f64>,
    /// Requests answered 429 since the process started.
    pub rate_limited_total: Option<f64>,
    /// Requests answered 5xx since the process started.
    pub server_errors_total: Option<f64>,
    /// Dead letters not yet resolved.
    pub dead_letters_open: Option<f64>,
}

/// The Coda sink as a whole.
#[derive(Clone, Debug, Serialize)]
pub struct Coda {
    /// Rows waiting, every table.
    pub pending_rows: Option<f64>,
    /// Dead letters not yet resolved, every table.
    pub dead_letters_open: Option<f64>,
    /// Writes spent in the current quota window.
    pub quota_writes_used: Option<f64>,
    /// Writes the quota allows per window.
    pub quota_writes_limit: Option<f64>,
    /// The quota's window, in seconds.
    pub quota_window_seconds: Option<f64>,
}

/// The replication stream.
#[derive(Clone, Debug, Serialize)]
pub struct Cdc {
    /// Server WAL position minus the slot's confirmed flush LSN.
    pub slot_lag_bytes: Option<f64>,
    /// WAL the slot keeps on the server.
    pub retained_wal_bytes: Option<f64>,
    /// Seconds since the last message on the stream.
    pub seconds_since_last_message: Option<f64>,
    /// Reconnections since the process started.
    pub reconnects_total: Option<f64>,
}

/// The dataflow.
#[derive(Clone, Debug, Serialize)]
pub struct Dataflow {
    /// WAL received and not yet closed, in bytes.
    pub frontier_lag_bytes: Option<f64>,
    /// Age of the oldest commit not yet closed, in seconds.
    pub frontier_lag_seconds: Option<f64>,
}

/// DrChrono's hourly budget and the pull's feeds.
#[derive(Clone, Debug, Serialize)]
pub struct DrChrono {
    /// API calls left this hour, as DrChrono last reported.
    pub calls_left: Option<f64>,
    /// When the last reconciliation finished, in Unix seconds.
    pub last_reconcile_timestamp_seconds: Option<f64>,
    /// Each feed's last success, in feed order of name.
    pub feeds: Vec<Feed>,
}

/// One DrChrono feed.
#[derive(Clone, Debug, Serialize)]
pub struct Feed {
    /// Its name (`patients`, `appointments`, …).
    pub feed: String,
    /// When it last synced successfully, in Unix seconds.
    pub last_success_timestamp_seconds: f64,
}

/// A metric kept per Coda table: its series (all, or only those with one label's value) and
/// the [`Table`] field they add up in.
type TableField = (Metric, Option<(&'static str, &'static str)>, fn(&mut Table) -> &mut Option<f64>);

/// The metrics kept per Coda table.
const PER_TABLE: &[TableField] = &[
    (m::CODA_PENDING_ROWS, None, |t| &mut t.pending_rows),
    (m::CODA_OLDEST_PENDING_SECONDS, None, |t| &mut t.oldest_pending_seconds),
    (m::CODA_STALLED, None, |t| &mut t.stalled),
    (m::CODA_LAST_WRITE, None, |t| &mut t.last_write_timestamp_seconds),
    (m::CODA_ROWS_WRITTEN, None, |t| &mut t.rows_written_total),
    (m::CODA_REQUESTS, Some(("outcome", "rate_limited")), |t| &mut t.rate_limited_total),
    (m::CODA_REQUESTS, Some(("outcome", "server_error")), |t| &mut t.server_errors_total),
    (m::CODA_DEAD_LETTERS_OPEN, None, |t| &mut t.dead_letters_open),
];

impl Snapshot {
    /// Reads the page's numbers from `samples`, taken at `at`.
    pub fn read(samples: &[Sample], at: f64) -> Self {
        let scrape = Scrape(samples);
        let mut tables: BTreeMap<String, Table> = BTreeMap::new();
        for (metric, only, field) in PER_TABLE {
            for sample in scrape.series(metric) {
                let (Some(view), true) = (sample.label("view"), only.is_none_or(|(k, v)| sample.label(k) == Some(v)))
                else {
                    continue;
                };
                let table =
                    tables.entry(view.to_string()).or_insert_with(|| Table { view: view.into(), ..Table::default() });
                let slot = field(table);
                *slot = Some(slot.unwrap_or(0.0) + sample.value);
            }
        }
        let mut feeds: Vec<Feed> = scrape
            .series(&m::DRCHRONO_LAST_SUCCESS)
            .filter_map(|s| Some(Feed { feed: s.label("feed")?.to_string(), last_success_timestamp_seconds: s.value }))
            .collect();
        feeds.sort_by(|a, b| a.feed.cmp(&b.feed));
        Snapshot {
            at,
            tables: tables.into_values().collect(),
            coda: Coda {
                pending_rows: scrape.total(&m::CODA_PENDING_ROWS),
                dead_letters_open: scrape.total(&m::CODA_DEAD_LETTERS_OPEN),
                quota_writes_used: scrape.total(&m::CODA_QUOTA_USED),
                quota_writes_limit: scrape.total(&m::CODA_QUOTA_LIMIT),
                quota_window_seconds: scrape.total(&m::CODA_QUOTA_WINDOW_SECONDS),
            },
            cdc: Cdc {
                slot_lag_bytes: scrape.total(&m::CDC_SLOT_LAG_BYTES),
                retained_wal_bytes: scrape.total(&m::CDC_RETAINED_WAL_BYTES),
                seconds_since_last_message: scrape.total(&m::CDC_SECONDS_SINCE_LAST_MESSAGE),
                reconnects_total: scrape.total(&m::CDC_RECONNECTS),
            },
            dataflow: Dataflow {
                frontier_lag_bytes: scrape.total(&m::DATAFLOW_FRONTIER_LAG_BYTES),
                frontier_lag_seconds: scrape.total(&m::DATAFLOW_FRONTIER_LAG_SECONDS),
            },
            drchrono: DrChrono {
                calls_left: scrape.total(&m::DRCHRONO_CALLS_LEFT),
                last_reconcile_timestamp_seconds: scrape.total(&m::DRCHRONO_LAST_RECONCILE),
                feeds,
            },
        }
    }
}

/// A scrape, looked up by catalog entry.
struct Scrape<'a>(&'a [Sample]);

impl<'a> Scrape<'a> {
    fn series(&self, metric: &'a Metric) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.iter().filter(move |s| s.name == metric.name)
    }

    /// The sum of every series of `metric`; `None` when it has none.
    fn total(&self, metric: &'a Metric) -> Option<f64> {
        self.series(metric).map(|s| s.value).reduce(|a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::super::scrape::parse;
    use super::*;

    const SCRAPE: &str = "\
august_coda_pending_rows{view=\"scheduling_ops\"} 4
august_coda_pending_rows{view=\"patient_intake\"} 1
august_coda_oldest_pending_seconds{view=\"scheduling_ops\"} 12.5
august_coda_stalled{view=\"clinical_notes\"} 0
august_coda_requests_total{view=\"scheduling_ops\",outcome=\"rate_limited\"} 3
august_coda_requests_total{view=\"scheduling_ops\",outcome=\"ok\"} 40
august_cdc_slot_lag_bytes 2048
august_coda_quota_writes_limit 10
august_drchrono_last_success_timestamp_seconds{feed=\"patients\"} 1700000000
";

    #[test]
    fn tables_come_from_view_labels_and_totals_sum_them() {
        let snapshot = Snapshot::read(&parse(SCRAPE), 1.0);
        let views: Vec<&str> = snapshot.tables.iter().map(|t| t.view.as_str()).collect();
        assert_eq!(views, ["clinical_notes", "patient_intake", "scheduling_ops"]);
        let ops = &snapshot.tables[2];
        assert_eq!((ops.pending_rows, ops.oldest_pending_seconds), (Some(4.0), Some(12.5)));
        assert_eq!(ops.rate_limited_total, Some(3.0), "only the 429s");
        assert_eq!(snapshot.tables[0].pending_rows, None, "absent, not 0");
        assert_eq!(snapshot.coda.pending_rows, Some(5.0));
        assert_eq!(snapshot.coda.quota_writes_limit, Some(10.0));
        assert_eq!(snapshot.coda.quota_writes_used, None);
        assert_eq!(snapshot.cdc.slot_lag_bytes, Some(2048.0));
        assert_eq!(snapshot.drchrono.feeds[0].feed, "patients");
    }

    #[test]
    fn a_gauge_kept_for_all_tables_is_the_total() {
        let snapshot = Snapshot::read(&parse("august_coda_pending_rows 7\n"), 1.0);
        assert!(snapshot.tables.is_empty());
        assert_eq!(snapshot.coda.pending_rows, Some(7.0));
    }
}
