//! The output: per view, consolidated updates (key → new row, or delete) for each closed LSN,
//! emitted when the frontier passes it, followed by the frontier itself. Sinks report durable
//! LSNs from these frontiers.
//!
//! All view updates are routed to worker 0, which holds them by time until the frontier says
//! no more can come for that time, then consolidates them per key. Each time's commit time
//! (recorded by the input driver on the same worker) travels with its updates, so a sink can
//! measure commit-to-durable latency.
//!
//! When the inputs close (the pipeline stops), the held updates are emitted but no frontier
//! follows: an empty frontier would claim as durable positions the stream never delivered.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use august_cdc::{Lsn, Value};
use chrono::{DateTime, Utc};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Exchange, Probe};
use timely::dataflow::ProbeHandle;

use crate::join::Coll;
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
    /// Every view change that took effect at `lsn` (0 for the initial copy).
    Updates {
        /// The LSN.
        lsn: Lsn,
        /// When the transaction at `lsn` committed (`None` for the initial copy).
        commit_time: Option<DateTime<Utc>>,
        /// The changes, ordered by view and key.
        updates: Vec<ViewUpdate>,
    },
    /// Every update below this LSN has been emitted.
    Frontier(Lsn),
}

/// An update waiting for its time to close: (view index, key), row, count change.
type Pending = ((u16, Value), ViewRow, isize);

/// Where the output goes.
pub type Sender = tokio::sync::mpsc::UnboundedSender<Output>;

/// Commit times by LSN, written by the input driver and taken by the output (worker 0 only).
pub type CommitTimes = Rc<RefCell<BTreeMap<u64, DateTime<Utc>>>>;

/// Holds view updates until their time closes, then consolidates and sends them. Returns a
/// probe on the sink's own input (after the exchange to worker 0), so "caught up" means the
/// sink has seen the frontier too.
pub fn sink<'s>(
    views: Coll<'s, (u16, Value, ViewRow)>,
    out: Option<Sender>,
    commit_times: CommitTimes,
) -> ProbeHandle<u64> {
    let names: Vec<&'static str> = views::all().iter().map(|v| v.name).collect();
    let mut stash: BTreeMap<u64, Vec<Pending>> = BTreeMap::new();
    let mut reported: Option<u64> = None;
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
        while let Some(entry) = stash.first_entry() {
            if *entry.key() >= upper {
                break;
            }
            let (time, updates) = entry.remove_entry();
            let updates = consolidate(updates, &names);
            if !updates.is_empty() {
                let commit_time = commit_times.borrow().get(&time).copied();
                let _ = out.send(Output::Updates { lsn: Lsn(time), commit_time, updates });
            }
        }
        {
            // Times below the frontier are done, with or without updates.
            let mut times = commit_times.borrow_mut();
            *times = times.split_off(&upper);
        }
        if reported != Some(upper) && !closed {
            reported = Some(upper);
            let _ = out.send(Output::Frontier(Lsn(upper)));
        }
    });
    probe
}

/// Net effect per (view, key): the row with a positive count, or a delete when only
/// retractions remain.
fn consolidate(mut updates: Vec<Pending>, names: &[&'static str]) -> Vec<ViewUpdate> {
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
            (None, false) => {}
        }
    }
    result
}
