//! The writer's Prometheus series (names from [`august_schema::metrics`]). Counters are
//! recorded where things happen: each mutation request as it is sent
//! (`august_coda_writes_total{view,kind}`), each request's outcome
//! (`august_coda_requests_total{view,outcome}`), each confirmed write
//! (`august_coda_last_write_timestamp_seconds{view}`). The gauges that age with time — rows
//! not yet durable and the oldest of them's age per view, open dead letters per view, and
//! the write quota's use — are published once a second by [`Writer::publish`], so they stay
//! true while nothing happens (a stalled table's oldest row keeps ageing).

use std::time::Instant;

use august_schema::metrics as m;

use super::{Pending, Writer};

impl Writer {
    /// Registers every view's counters at zero, so `rate()` and `increase()` see a series
    /// from the start rather than none until the first event.
    pub(super) fn register(&self) {
        for table in &self.mapping.tables {
            let view = table.view.clone();
            for kind in ["upsert", "delete"] {
                metrics::counter!(m::CODA_WRITES.name, "view" => view.clone(), "kind" => kind).increment(0);
            }
            for outcome in ["ok", "rate_limited", "client_error", "server_error", "network"] {
                metrics::counter!(m::CODA_REQUESTS.name, "view" => view.clone(), "outcome" => outcome).increment(0);
            }
            for counter in [m::CODA_ROWS_WRITTEN, m::CODA_DEAD_LETTERS, m::CODA_ECHOES_AVOIDED] {
                metrics::counter!(counter.name, "view" => view.clone()).increment(0);
            }
        }
        self.publish();
    }

    /// Per view: rows not durable yet (waiting, in flight or to be retried) and the age of
    /// the oldest, and the open dead letters; then the write quota.
    pub(super) fn publish(&self) {
        let now = Instant::now();
        for (t, table) in self.mapping.tables.iter().enumerate() {
            let batches = self.in_flight.values().chain(self.retry.iter().map(|(_, b)| b)).filter(|b| b.table == t);
            let rows = self.pending[t].values().chain(batches.flat_map(|b| b.items.iter()));
            let (count, oldest) = rows.fold((0usize, None::<Instant>), |(n, oldest), p: &Pending| {
                (n + 1, Some(oldest.map_or(p.queued, |o| o.min(p.queued))))
            });
            let age = oldest.map_or(0.0, |o| now.duration_since(o).as_secs_f64());
            let open = self.refused.iter().filter(|(view, _, _)| *view == table.view).count();
            metrics::gauge!(m::CODA_PENDING_ROWS.name, "view" => table.view.clone()).set(count as f64);
            metrics::gauge!(m::CODA_OLDEST_PENDING_SECONDS.name, "view" => table.view.clone()).set(age);
            metrics::gauge!(m::CODA_DEAD_LETTERS_OPEN.name, "view" => table.view.clone()).set(open as f64);
        }
        let (used, limit, window) = self.client.write_quota();
        metrics::gauge!(m::CODA_QUOTA_USED.name).set(f64::from(used));
        metrics::gauge!(m::CODA_QUOTA_LIMIT.name).set(f64::from(limit));
        metrics::gauge!(m::CODA_QUOTA_WINDOW_SECONDS.name).set(window.as_secs_f64());
    }

    /// A mutation request of table `t` leaves (`kind`: `upsert` or `delete`).
    pub(super) fn count_write(&self, t: usize, kind: &'static str) {
        let view = self.mapping.tables[t].view.clone();
        metrics::counter!(m::CODA_WRITES.name, "view" => view, "kind" => kind).increment(1);
    }

    /// A request on behalf of table `t` ended so (`ok`, or a [`crate::coda::client::CodaError::outcome`]).
    pub(super) fn count_request(&self, t: usize, outcome: &'static str) {
        let view = self.mapping.tables[t].view.clone();
        metrics::counter!(m::CODA_REQUESTS.name, "view" => view, "outcome" => outcome).increment(1);
    }

    /// Coda confirmed a write to table `t`.
    pub(super) fn count_landed(&self, t: usize) {
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        metrics::gauge!(m::CODA_LAST_WRITE.name, "view" => self.mapping.tables[t].view.clone()).set(now);
    }
}
