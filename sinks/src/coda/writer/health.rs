//! Each mapped table's health, so one table's trouble never stops the others.
//!
//! * **Stalled**: `stall_attempts` writes in a row to the table failed (5xx, time-outs, 429s,
//!   mutations settled as not landed). `august_coda_stalled{view}` goes to 1 with one error
//!   log; the table's batches then yield their write slots to healthy tables, and it recovers
//!   (the gauge back to 0) with its next write that lands.
//! * **Stopped**: Coda refused a whole request because the table itself is at fault (a mapped
//!   column or the table is gone, checked against Coda when a write is refused). The table is
//!   no longer written, with one error naming the mapping entry; its rows wait (and hold the
//!   durable LSN back, so nothing is lost) until the mapping is fixed and August restarted.
//!   Nothing is dead-lettered for it.

use super::{Batch, Pending, Writer};
use crate::coda::client::CodaError;
use crate::coda::mapping::MappingError;

/// The stalled-table gauge, per view.
pub const STALLED_METRIC: &str = august_schema::metrics::CODA_STALLED.name;

/// One table's health.
#[derive(Debug, Clone, Default)]
pub(super) struct Health {
    /// Writes in a row that failed.
    failures: u32,
    stalled: bool,
    stopped: bool,
}

impl Health {
    pub(super) fn stalled(&self) -> bool {
        self.stalled
    }

    pub(super) fn stopped(&self) -> bool {
        self.stopped
    }
}

impl Writer {
    /// A write to table `t` failed and will be tried again.
    pub(super) fn write_failed(&mut self, t: usize) {
        let health = &mut self.health[t];
        health.failures += 1;
        if !health.stalled && health.failures >= self.config.stall_attempts {
            health.stalled = true;
            let view = &self.mapping.tables[t].view;
            metrics::gauge!(STALLED_METRIC, "view" => view.clone()).set(1.0);
            tracing::error!(
                view = %view,
                failures = health.failures,
                "writes to this view's Coda table keep failing; other tables go on"
            );
        }
    }

    /// A write to table `t` landed.
    pub(super) fn write_landed(&mut self, t: usize) {
        let health = &mut self.health[t];
        health.failures = 0;
        if health.stalled && !health.stopped {
            health.stalled = false;
            let view = &self.mapping.tables[t].view;
            metrics::gauge!(STALLED_METRIC, "view" => view.clone()).set(0.0);
            tracing::info!(view = %view, "writes to this view's Coda table land again");
        }
    }

    /// Whether Coda refused a write because table `t` itself is at fault: `Some` names the
    /// mapping entry.
    pub(super) async fn table_at_fault(&self, t: usize) -> Result<Option<MappingError>, CodaError> {
        crate::coda::check_table(&self.client, &self.mapping, t).await
    }

    /// Stops writing the table of `batch`, which Coda refused for `problem`: its rows (this
    /// batch's and those waiting to be retried) go back to wait, unsent.
    pub(super) fn stop_table(&mut self, batch: Batch, problem: &MappingError) {
        let t = batch.table;
        let view = self.mapping.tables[t].view.clone();
        self.health[t].stopped = true;
        self.health[t].stalled = true;
        metrics::gauge!(STALLED_METRIC, "view" => view.clone()).set(1.0);
        tracing::error!(view = %view, error = %problem, "Coda refused the table itself: it is no longer written (fix the mapping and restart); other tables go on");
        if let Ok(mut stopped) = self.stats.stopped.lock() {
            stopped.push(problem.to_string());
        }
        self.requeue(batch);
        let (theirs, others): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.retry).into_iter().partition(|(_, b)| b.table == t);
        self.retry = others.into();
        for (_, batch) in theirs {
            self.requeue(batch);
        }
    }

    /// Puts the rows of a batch of a stopped table back with those waiting (a newer change to
    /// the same row keeps its content but waits for the older one's LSN).
    pub(super) fn requeue(&mut self, batch: Batch) {
        let t = batch.table;
        for item in batch.items {
            self.put_back(t, item);
        }
    }

    /// Puts one row of table `t` that is no longer in flight back with those waiting: a
    /// newer change to it keeps its content but waits for the older one's LSN.
    pub(super) fn put_back(&mut self, t: usize, item: Pending) {
        self.flying[t].remove(&item.key);
        let merged = match self.pending[t].remove(&item.key) {
            Some(newer) => Pending {
                since: item.since.min(newer.since),
                committed: item.committed.or(newer.committed),
                traces: item.traces.merge(newer.traces),
                queued: item.queued.min(newer.queued),
                ..newer
            },
            None => item,
        };
        self.pending[t].insert(merged.key.clone(), merged);
    }
}
