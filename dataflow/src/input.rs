//! From change events to upserts: the driver that feeds the graph's table inputs.
//!
//! Dataflow time is a sequence this driver allocates, not the LSN: each time it moves the
//! inputs on it records in the [`Clock`] the LSN (and commit time) that time's updates carry
//! and the LSN frontier it stands for, and the output maps times back through it.
//!
//! Snapshot rows enter at time 0 (and the times after, see below); the copy's end moves the LSN
//! frontier to the snapshot LSN.
//! A transaction gets a fresh time at its `Begin` (the frontier moves to its commit LSN: every
//! earlier transaction is whole). Its changes are collapsed per key (the last change wins) and
//! enter at that time when it commits; the next time then stands for the frontier past its
//! commit. A write-back notice is recorded for the current time (the output emits it when
//! that time closes, before its updates); a trace context opens the transaction's
//! `dataflow.apply` span (see [`crate::trace`]). `Progress` moves the frontier on. Changes to tables the dataflow does not know are
//! ignored. A truncate deletes every key the table holds, so the driver keeps each table's set
//! of live keys (keys only, not rows).
//!
//! The initial copy is sent in chunks of `chunk_rows` rows too, at successive times that all
//! carry LSN 0, so the output holds at most a chunk of it at once.
//!
//! **Big transactions.** When a transaction has more than `chunk_rows` keys pending, they are
//! sent at once and the transaction moves to the next time, whose mark carries the same commit
//! LSN and the same (unchanged) LSN frontier; so at most `chunk_rows` rows are held here and
//! the graph and the output work through the transaction chunk by chunk. A key that changes
//! again in a later chunk does so at a later time, so the last change still wins (sending a
//! key twice at one time would not do: upserts at one time are ordered by value, not
//! arrival). Nothing of the transaction is durable before its last chunk is out: the LSN
//! frontier moves past its commit only after the commit. A restart mid-transaction reads the
//! whole transaction again, as it would any transaction not confirmed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use august_cdc::{ChangeKind, Event, Lsn, Relation, Row, Value};
use chrono::{DateTime, Utc};

use crate::graph::TableInput;
use crate::output::{Clock, Mark};
use crate::tables::{table_index, TABLES};

/// What the driver counts, for tests and status lines.
#[derive(Debug, Default)]
pub struct DriverStats {
    /// The most changed rows a transaction held at once (at most the chunk size).
    pub most_pending: AtomicU64,
    /// Chunks sent before their transaction committed (or the initial copy ended).
    pub chunks: AtomicU64,
}

/// The open transaction: its commit LSN and time.
#[derive(Debug, Clone, Copy)]
struct Open {
    lsn: Lsn,
    commit_time: DateTime<Utc>,
}

/// Feeds one worker's table inputs.
pub struct Driver {
    inputs: Vec<TableInput>,
    keys: Vec<HashSet<Vec<Value>>>,
    pending: HashMap<(usize, Vec<Value>), Option<Row>>,
    time: u64,
    /// The LSN frontier the current time stands for.
    frontier: Lsn,
    open: Option<Open>,
    /// Rows of the initial copy sent at the current time.
    copied: usize,
    /// Whether a chunk went in since [`Driver::chunk_sent`] last said so.
    chunk_sent: bool,
    chunk_rows: usize,
    clock: Clock,
    stats: Arc<DriverStats>,
    /// `august_dataflow_changes_total`.
    changes: metrics::Counter,
}

impl Driver {
    /// A driver over the table inputs, in the order of [`TABLES`]; it records what each time
    /// stands for in `clock` (which must hold time 0, see [`crate::output::clock`]) and sends
    /// a transaction in chunks of `chunk_rows` keys.
    pub fn new(inputs: Vec<TableInput>, clock: Clock, chunk_rows: usize, stats: Arc<DriverStats>) -> Self {
        Self {
            keys: vec![HashSet::new(); inputs.len()],
            inputs,
            pending: HashMap::new(),
            time: 0,
            frontier: Lsn::ZERO,
            open: None,
            copied: 0,
            chunk_sent: false,
            chunk_rows: chunk_rows.max(1),
            clock,
            stats,
            changes: crate::metrics::changes(),
        }
    }

    /// Applies one event.
    pub fn apply(&mut self, event: Event) {
        match event {
            Event::SnapshotRow { relation, row } => {
                if let Some((t, key, value)) = upsert_of(&relation, &row) {
                    if value.is_some() {
                        self.keys[t].insert(key.clone());
                        self.inputs[t].send((key, value, self.time));
                        self.copied += 1;
                    }
                }
                if self.copied >= self.chunk_rows {
                    // The copy goes on in chunks too, all at LSN 0 with the frontier still at 0.
                    self.copied = 0;
                    self.chunk_sent = true;
                    self.stats.chunks.fetch_add(1, Ordering::Relaxed);
                    self.tick(Mark { lsn: Lsn::ZERO, commit_time: None, frontier: self.frontier });
                }
            }
            Event::SnapshotEnd { lsn } | Event::Progress(lsn) => {
                if lsn > self.frontier {
                    self.tick(Mark { lsn, commit_time: None, frontier: lsn });
                }
            }
            Event::Begin { commit_lsn, commit_time, .. } => {
                let frontier = self.frontier.max(commit_lsn);
                let open = Open { lsn: commit_lsn.max(self.frontier), commit_time };
                self.open = Some(open);
                self.tick(Mark { lsn: open.lsn, commit_time: Some(commit_time), frontier });
            }
            Event::Change(change) => {
                let Some(t) = table_index(&change.relation.name) else { return };
                self.changes.increment(1);
                let relation = &change.relation;
                match &change.kind {
                    ChangeKind::Insert { new } => self.stage(relation, new),
                    ChangeKind::Update { old, new } => {
                        if let (Some(old), Some((_, new_key, _))) = (old, upsert_of(relation, new)) {
                            let old_key = TABLES[t].key_of(&TABLES[t].project(relation, old));
                            if old_key != new_key {
                                self.pending.insert((t, old_key), None);
                            }
                        }
                        self.stage(relation, new);
                    }
                    ChangeKind::Delete { old } => {
                        let key = TABLES[t].key_of(&TABLES[t].project(relation, old));
                        self.pending.insert((t, key), None);
                    }
                }
                self.held();
            }
            Event::Truncate(relations) => {
                for relation in relations {
                    let Some(t) = table_index(&relation.name) else { continue };
                    let staged: Vec<Vec<Value>> =
                        self.pending.keys().filter(|(pt, _)| *pt == t).map(|(_, k)| k.clone()).collect();
                    for key in self.keys[t].iter().cloned().chain(staged) {
                        self.pending.insert((t, key), None);
                    }
                }
                self.held();
            }
            Event::Notice(notice) => {
                if self.open.is_none() {
                    return; // not from cdc, which sends notices inside transactions only
                }
                self.clock.borrow_mut().notices.entry(self.time).or_default().push(notice);
            }
            Event::Trace(parent) => {
                if let Some(open) = self.open {
                    crate::trace::begin(&mut self.clock.borrow_mut(), open.lsn, parent);
                }
            }
            Event::Commit { commit_lsn, commit_time, .. } => {
                if self.open.is_none() {
                    // A commit without its begin (not from cdc): give it a time of its own.
                    let lsn = commit_lsn.max(self.frontier);
                    self.tick(Mark { lsn, commit_time: Some(commit_time), frontier: self.frontier.max(commit_lsn) });
                }
                self.open = None;
                self.send_pending();
                self.clock.borrow().lag.applied(commit_lsn);
                let past = Lsn(commit_lsn.0 + 1).max(self.frontier);
                self.tick(Mark { lsn: past, commit_time: None, frontier: past });
            }
        }
    }

    /// After a change: counts what is held, and sends a full chunk on at its own time.
    fn held(&mut self) {
        let held = self.pending.len() as u64;
        if held > self.stats.most_pending.load(Ordering::Relaxed) {
            self.stats.most_pending.store(held, Ordering::Relaxed);
        }
        if self.pending.len() < self.chunk_rows {
            return;
        }
        let Some(open) = self.open else { return };
        self.send_pending();
        self.chunk_sent = true;
        self.stats.chunks.fetch_add(1, Ordering::Relaxed);
        let frontier = self.frontier;
        self.tick(Mark { lsn: open.lsn, commit_time: Some(open.commit_time), frontier });
    }

    /// Sends every pending change at the current time.
    fn send_pending(&mut self) {
        for ((t, key), value) in self.pending.drain() {
            match &value {
                Some(_) => self.keys[t].insert(key.clone()),
                None => self.keys[t].remove(&key),
            };
            self.inputs[t].send((key, value, self.time));
        }
    }

    fn stage(&mut self, relation: &Relation, row: &Row) {
        if let Some((t, key, value)) = upsert_of(relation, row) {
            self.pending.insert((t, key), value);
        }
    }

    /// Moves the inputs to a new time, which stands for `mark`.
    fn tick(&mut self, mark: Mark) {
        self.time += 1;
        self.frontier = mark.frontier;
        self.clock.borrow_mut().marks.insert(self.time, mark);
        for input in &mut self.inputs {
            input.advance_to(self.time);
            input.flush();
        }
    }

    /// Whether a chunk went in since the last call: the caller lets the dataflow work through
    /// it before applying more, so no more than about a chunk waits inside the dataflow.
    pub fn chunk_sent(&mut self) -> bool {
        std::mem::take(&mut self.chunk_sent)
    }

    /// The time the inputs are at.
    pub fn time(&self) -> u64 {
        self.time
    }
}

/// The table, natural key and new value (`None` for a soft-deleted row) of a row.
pub(crate) fn upsert_of(relation: &Relation, row: &Row) -> Option<(usize, Vec<Value>, Option<Row>)> {
    let t = table_index(&relation.name)?;
    let spec = &TABLES[t];
    let projected = spec.project(relation, row);
    let key = spec.key_of(&projected);
    let value = (!spec.is_soft_deleted(&projected)).then_some(projected);
    Some((t, key, value))
}
