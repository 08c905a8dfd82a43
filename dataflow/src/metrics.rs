//! The dataflow's Prometheus series (names and help in [`august_schema::metrics`]).
//!
//! * **Frontier lag** ([`Lag`]): the driver notes each commit it applies, the output each
//!   frontier it closes; a publisher thread sets `august_dataflow_frontier_lsn`,
//!   `…_frontier_lag_bytes` (the last commit applied minus the frontier) and
//!   `…_frontier_lag_seconds` (the age of the oldest commit applied and not closed) once a
//!   second, so a stuck dataflow shows its lag growing while nothing moves.
//! * **Changes and view rows** ([`changes`], [`ViewMeter`]): row changes applied, updates emitted per view,
//!   and each view's row count as of the frontier (kept from the consolidated output: an
//!   insert adds one, a delete takes one away).
//! * **Arrangements** ([`count_arrangements`]): differential's own batch events (a batch made,
//!   a merge done, a batch dropped) summed per arrangement into
//!   `august_dataflow_arrangement_records{arrangement}`. The table inputs are labelled by
//!   table, the shared look-ups by `table.column`; every other arrangement (a join's left side,
//!   a `reduce`'s state) is summed under `other`, so the label set stays bounded.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use august_cdc::Lsn;
use august_schema::metrics as m;
use differential_dataflow::logging::{DifferentialEvent, DifferentialEventBuilder};
use metrics::{Counter, Gauge};

/// The counter of row changes applied to the inputs (the driver holds it).
pub fn changes() -> Counter {
    metrics::counter!(m::DATAFLOW_CHANGES.name)
}

/// Commits applied and not yet closed, and the frontier.
#[derive(Debug, Default)]
pub struct Lag {
    state: Mutex<LagState>,
}

#[derive(Debug, Default)]
struct LagState {
    /// Commit LSNs applied, oldest first, with when they were.
    open: VecDeque<(Lsn, Instant)>,
    last_applied: Lsn,
    frontier: Lsn,
}

impl Lag {
    fn with<T>(&self, f: impl FnOnce(&mut LagState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The driver applied the commit at `lsn`.
    pub fn applied(&self, lsn: Lsn) {
        self.with(|s| {
            s.last_applied = s.last_applied.max(lsn);
            s.open.push_back((lsn, Instant::now()));
        });
    }

    /// The output closed every time below `frontier`.
    pub fn closed(&self, frontier: Lsn) {
        self.with(|s| {
            s.frontier = s.frontier.max(frontier);
            while s.open.front().is_some_and(|(lsn, _)| *lsn < s.frontier) {
                s.open.pop_front();
            }
        });
    }

    /// (frontier, lag in bytes, lag in seconds) now.
    pub fn now(&self) -> (Lsn, u64, f64) {
        self.with(|s| {
            let bytes = s.last_applied.0.saturating_sub(s.frontier.0);
            (s.frontier, bytes, s.open.front().map_or(0.0, |(_, at)| at.elapsed().as_secs_f64()))
        })
    }

    fn publish(&self) {
        let (frontier, bytes, seconds) = self.now();
        metrics::gauge!(m::DATAFLOW_FRONTIER_LSN.name).set(frontier.0 as f64);
        metrics::gauge!(m::DATAFLOW_FRONTIER_LAG_BYTES.name).set(bytes as f64);
        metrics::gauge!(m::DATAFLOW_FRONTIER_LAG_SECONDS.name).set(seconds);
    }
}

/// Publishes `lag` every `every` until the last strong reference to it is gone.
pub fn publish_lag(lag: &Arc<Lag>, every: Duration) {
    let weak: Weak<Lag> = Arc::downgrade(lag);
    let spawned = std::thread::Builder::new().name("dataflow-lag".into()).spawn(move || {
        while let Some(lag) = weak.upgrade() {
            lag.publish();
            drop(lag);
            std::thread::sleep(every);
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the dataflow lag publisher; its gauges stay unset");
    }
}

/// Counters and gauges of the output, per view (handles looked up once).
pub struct ViewMeter {
    updates: Vec<Counter>,
    rows: Vec<(Gauge, i64)>,
}

impl ViewMeter {
    /// The meter of views named `views`, in view-index order.
    pub fn new(views: &[&'static str]) -> Self {
        Self {
            updates: views.iter().map(|v| metrics::counter!(m::DATAFLOW_UPDATES.name, "view" => *v)).collect(),
            rows: views.iter().map(|v| (metrics::gauge!(m::DATAFLOW_VIEW_ROWS.name, "view" => *v), 0)).collect(),
        }
    }

    /// The output emitted an update of view `view` that changed its row count by `rows`.
    pub fn emitted(&mut self, view: usize, rows: i64) {
        self.updates[view].increment(1);
        let (gauge, count) = &mut self.rows[view];
        *count += rows;
        gauge.set(*count as f64);
    }
}

thread_local! {
    /// This worker's arrangements by operator id: label and records.
    static ARRANGEMENTS: RefCell<HashMap<usize, Rc<Gauge>>> = RefCell::new(HashMap::new());
}

/// Labels the arrangement whose operator (its trace's `operator().global_id`) is `operator`
/// on this worker; call while building the graph.
pub fn name_arrangement(operator: usize, label: String) {
    let gauge = Rc::new(metrics::gauge!(m::DATAFLOW_ARRANGEMENT_RECORDS.name, "arrangement" => label));
    ARRANGEMENTS.with(|a| a.borrow_mut().insert(operator, gauge));
}

/// Counts this worker's arrangement records from differential's batch events; call before
/// building the graph (spines take the logger as they are made).
pub fn count_arrangements(worker: &mut timely::worker::Worker) {
    let other: Rc<Gauge> = Rc::new(metrics::gauge!(m::DATAFLOW_ARRANGEMENT_RECORDS.name, "arrangement" => "other"));
    let Some(mut register) = worker.log_register() else { return };
    register.insert::<DifferentialEventBuilder, _>("differential/arrange", move |_time, data| {
        let Some(events) = data else { return };
        ARRANGEMENTS.with(|a| {
            let named = a.borrow();
            for (_, event) in events.iter() {
                let (operator, diff) = match event {
                    DifferentialEvent::Batch(b) => (b.operator, b.length as i64),
                    DifferentialEvent::Merge(mg) => match mg.complete {
                        Some(done) => (mg.operator, done as i64 - mg.length1 as i64 - mg.length2 as i64),
                        None => continue,
                    },
                    DifferentialEvent::Drop(d) => (d.operator, -(d.length as i64)),
                    _ => continue,
                };
                // Gauges, not sets: every worker adds its share of the same series.
                let gauge = named.get(&operator).unwrap_or(&other);
                if diff >= 0 {
                    gauge.increment(diff as f64);
                } else {
                    gauge.decrement(-diff as f64);
                }
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_what_was_applied_and_not_closed() {
        let lag = Lag::default();
        assert_eq!(lag.now(), (Lsn::ZERO, 0, 0.0));
        lag.applied(Lsn(100));
        lag.applied(Lsn(250));
        std::thread::sleep(Duration::from_millis(20));
        let (frontier, bytes, seconds) = lag.now();
        assert_eq!((frontier, bytes), (Lsn::ZERO, 250));
        assert!(seconds >= 0.02, "{seconds}");
        lag.closed(Lsn(101));
        assert_eq!(lag.now().1, 149, "the commit at 250 is still open");
        lag.closed(Lsn(251));
        assert_eq!(lag.now(), (Lsn(251), 0, 0.0), "caught up");
    }
}
