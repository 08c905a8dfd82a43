//! The output: per view, consolidated updates (key → new row, or delete) for each closed
//! dataflow time, emitted when the frontier passes it, followed by the frontier itself as an
//! LSN. Sinks report durable LSNs from these frontiers.
//!
//! Dataflow time is not the LSN: it is a sequence the input driver allocates, and the
//! [`Clock`] (written by the driver, on the same worker) maps each time back to the LSN and
//! commit time its updates carry and to the LSN frontier it stands for. A transaction normally
//! has one time; a big one is sent in chunks at successive times that all carry its commit
//! LSN while the LSN frontier stays below it, so nothing of it is durable before its last
//! chunk is out (see [`crate::input`]).
//!
//! All view updates are routed to worker 0, which holds them by time until the frontier says
//! no more can come for that time, then consolidates them per key. Each time's commit time
//! travels with its updates, so a sink can measure commit-to-durable latency. Sending blocks
//! while the (bounded) output channel is full: a slow sink stops the dataflow, whose full event
//! channel stops the replication reads, so slot lag grows rather than memory.
//!
//! Write-back notices (see `august_cdc::WalNotice`) are recorded by the driver for the time
//! their transaction is at, and emitted as `Output::Notices` when that time closes, before its
//! updates, so a sink learns of a staff edit before the view rows it changed.
//!
//! A traced transaction's context goes out as `Output::Trace` before its first updates (see
//! [`crate::trace`]).
//!
//! When the inputs close (the pipeline stops), the held updates are emitted but no frontier
//! follows: an empty frontier would claim as durable positions the stream never delivered.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use august_cdc::trace::TraceParent;
use august_cdc::{Lsn, Value, WalNotice};
use chrono::{DateTime, Utc};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Exchange, Probe};
use timely::dataflow::ProbeHandle;

use crate::join::Coll;
use crate::metrics::ViewMeter;
use crate::trace;
use crate::views::{self, ViewRow};

/// One change to one view row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewUpdate {
    /// The view.
    pub view: &'static str,
    /// The row's key.
    pub key: Value,
    /// The new row, or `None` when the row is gone.
    pub row: Option<ViewRow>,
}

/// What the dataflow emits, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// View changes that took effect at `lsn` (0 for the initial copy). A big transaction
    /// comes as several of these with the same `lsn`; its frontier follows the last.
    Updates {
        /// The LSN.
        lsn: Lsn,
        /// When the transaction at `lsn` committed (`None` for the initial copy).
        commit_time: Option<DateTime<Utc>>,
        /// The changes, ordered by view and key.
        updates: Vec<ViewUpdate>,
    },
    /// Write-back notices of the transaction at `lsn`, emitted when its time closes, before
    /// that time's `Updates` (also when it has none).
    Notices {
        /// The commit LSN of their transaction.
        lsn: Lsn,
        /// The notices, in WAL order.
        notices: Vec<WalNotice>,
    },
    /// The trace context of the transaction at `lsn` (its `dataflow.apply` span's), emitted
    /// once, right before that LSN's first `Updates`; only for traced transactions.
    Trace {
        /// The commit LSN of the transaction.
        lsn: Lsn,
        /// The parent for a sink's spans of it.
        context: TraceParent,
    },
    /// Every update below this LSN has been emitted.
    Frontier(Lsn),
}

/// An update waiting for its time to close: (view index, key), row, count change.
type Pending = ((u16, Value), ViewRow, isize);

/// Where the output goes: bounded, so a slow consumer slows the dataflow.
pub type Sender = tokio::sync::mpsc::Sender<Output>;

/// What one dataflow time stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// The LSN the updates at this time carry (a transaction's commit LSN).
    pub lsn: Lsn,
    /// When that transaction committed (`None` for the initial copy and for progress).
    pub commit_time: Option<DateTime<Utc>>,
    /// Once the dataflow frontier reaches this time, every change below this LSN is out.
    pub frontier: Lsn,
}

/// What the input driver records per dataflow time, read by the output (worker 0 only).
#[derive(Debug, Default)]
pub struct Timeline {
    /// Marks by dataflow time.
    pub marks: BTreeMap<u64, Mark>,
    /// Write-back notices by the dataflow time their transaction entered at.
    pub notices: BTreeMap<u64, Vec<WalNotice>>,
    /// Traced transactions by commit LSN (see [`crate::trace`]).
    pub traces: crate::trace::Traces,
    /// Commits applied and frontiers closed, for the lag gauges (see [`crate::metrics`]).
    pub lag: std::sync::Arc<crate::metrics::Lag>,
}

/// The timeline, shared by the driver and the output on worker 0.
pub type Clock = Rc<RefCell<Timeline>>;

/// A clock holding time 0: the initial copy, at LSN 0.
pub fn clock() -> Clock {
    let start = Mark { lsn: Lsn::ZERO, commit_time: None, frontier: Lsn::ZERO };
    Rc::new(RefCell::new(Timeline { marks: BTreeMap::from([(0, start)]), ..Timeline::default() }))
}

/// The mark of `time`: its own, or the last one before it.
fn mark_at(clock: &Clock, time: u64) -> Mark {
    let clock = &clock.borrow().marks;
    let mark = clock.range(..=time).next_back().or_else(|| clock.iter().next()).map(|(_, m)| *m);
    mark.unwrap_or(Mark { lsn: Lsn(time), commit_time: None, frontier: Lsn::ZERO })
}

/// Holds view updates until their time closes, then consolidates and sends them. Returns a
/// probe on the sink's own input (after the exchange to worker 0), so "caught up" means the
/// sink has seen the frontier too.
pub fn sink<'s>(views: Coll<'s, (u16, Value, ViewRow)>, out: Option<Sender>, clock: Clock) -> ProbeHandle<u64> {
    let names: Vec<&'static str> = views::all().iter().map(|v| v.name).collect();
    let mut stash: BTreeMap<u64, Vec<Pending>> = BTreeMap::new();
    let mut reported: Option<Lsn> = None;
    let mut meter = ViewMeter::new(&names);
    let (probe, gathered) = views.inner.exchange(|_: &((u16, Value, ViewRow), u64, isize)| 0u64).probe();
    gathered.sink(Pipeline, "ViewOutput", move |(input, frontier)| {
        input.for_each(|_cap, data| {
            for ((view, key, row), time, diff) in data.drain(..) {
                stash.entry(time).or_default().push(((view, key), row, diff));
            }
        });
        let Some(out) = &out else { return };
        let closed = frontier.frontier().is_empty();
        let upper = frontier.frontier().first().copied().unwrap_or(u64::MAX);
        loop {
            // The next closed time with updates or notices; its notices go first.
            let noticed = clock.borrow().notices.first_key_value().map(|(t, _)| *t);
            let Some(time) = [stash.first_key_value().map(|(t, _)| *t), noticed].into_iter().flatten().min() else {
                break;
            };
            if time >= upper {
                break;
            }
            let Mark { lsn, commit_time, .. } = mark_at(&clock, time);
            let notices = clock.borrow_mut().notices.remove(&time);
            if let Some(notices) = notices {
                // Blocks while the channel is full; an error means every sink has gone.
                let _ = out.blocking_send(Output::Notices { lsn, notices });
            }
            let updates = consolidate(stash.remove(&time).unwrap_or_default(), &names, &mut meter);
            if let Some(context) = trace::hand_out(&mut clock.borrow_mut(), lsn, updates.len()) {
                let _ = out.blocking_send(Output::Trace { lsn, context });
            }
            if !updates.is_empty() {
                let _ = out.blocking_send(Output::Updates { lsn, commit_time, updates });
            }
        }
        if closed {
            return;
        }
        let mark = mark_at(&clock, upper);
        {
            // Times below the frontier's mark are done, with or without updates.
            let marks = &mut clock.borrow_mut().marks;
            let keep = marks.range(..=upper).next_back().map_or(upper, |(t, _)| *t);
            *marks = marks.split_off(&keep);
        }
        trace::passed(&mut clock.borrow_mut(), mark.frontier);
        clock.borrow().lag.closed(mark.frontier);
        if reported.is_none_or(|r| mark.frontier > r) {
            reported = Some(mark.frontier);
            let _ = out.blocking_send(Output::Frontier(mark.frontier));
        }
    });
    probe
}

/// Net effect per (view, key): the row with a positive count, or a delete when only
/// retractions remain; each counted in `meter` (a row that was not there before adds one, a
/// delete takes one away).
fn consolidate(mut updates: Vec<Pending>, names: &[&'static str], meter: &mut ViewMeter) -> Vec<ViewUpdate> {
    updates.sort();
    let mut result = Vec::new();
    let mut i = 0;
    while i < updates.len() {
        let key = updates[i].0.clone();
        let mut rows: Vec<(ViewRow, isize)> = Vec::new();
        while i < updates.len() && updates[i].0 == key {
            let (_, row, diff) = &updates[i];
            match rows.last_mut() {
                Some((last, total)) if last == row => *total += diff,
                _ => rows.push((row.clone(), *diff)),
            }
            i += 1;
        }
        let present = rows.iter().filter(|(_, d)| *d > 0).map(|(r, _)| r).next_back();
        let retracted = rows.iter().any(|(_, d)| *d < 0);
        let (view, key) = key;
        match (present, retracted) {
            (Some(row), _) => result.push(ViewUpdate { view: names[view as usize], key, row: Some(row.clone()) }),
            (None, true) => result.push(ViewUpdate { view: names[view as usize], key, row: None }),
            (None, false) => continue,
        }
        meter.emitted(view as usize, i64::from(present.is_some()) - i64::from(retracted));
    }
    result
}
