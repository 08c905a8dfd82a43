//! From change events to upserts: the driver that feeds the graph's table inputs.
//!
//! Snapshot rows enter at time 0; the copy's end moves every input to the snapshot LSN. A
//! transaction's changes are collapsed per key (the last change wins) and enter at its commit
//! LSN when it commits, which closes that LSN. `Progress` moves the inputs on. Changes to
//! tables the dataflow does not know are ignored. A truncate deletes every key the table holds,
//! so the driver keeps each table's set of live keys (keys only, not rows).

use std::collections::{HashMap, HashSet};

use august_cdc::{ChangeKind, Event, Relation, Row, Value};

use crate::graph::TableInput;
use crate::output::CommitTimes;
use crate::tables::{table_index, TABLES};

/// Feeds one worker's table inputs.
pub struct Driver {
    inputs: Vec<TableInput>,
    keys: Vec<HashSet<Vec<Value>>>,
    pending: HashMap<(usize, Vec<Value>), Option<Row>>,
    time: u64,
    commit_times: CommitTimes,
}

impl Driver {
    /// A driver over the table inputs, in the order of [`TABLES`]; it records each commit's
    /// time in `commit_times` for the output.
    pub fn new(inputs: Vec<TableInput>, commit_times: CommitTimes) -> Self {
        Self { keys: vec![HashSet::new(); inputs.len()], inputs, pending: HashMap::new(), time: 0, commit_times }
    }

    /// Applies one event.
    pub fn apply(&mut self, event: Event) {
        match event {
            Event::SnapshotRow { relation, row } => {
                if let Some((t, key, value)) = upsert_of(&relation, &row) {
                    if value.is_some() {
                        self.keys[t].insert(key.clone());
                        self.inputs[t].send((key, value, self.time));
                    }
                }
            }
            Event::SnapshotEnd { lsn } | Event::Progress(lsn) | Event::Begin { commit_lsn: lsn, .. } => {
                self.advance(lsn.0)
            }
            Event::Change(change) => {
                let Some(t) = table_index(&change.relation.name) else { return };
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
            }
            Event::Commit { commit_lsn, commit_time, .. } => {
                let time = commit_lsn.0.max(self.time);
                self.commit_times.borrow_mut().entry(time).or_insert(commit_time);
                for ((t, key), value) in self.pending.drain() {
                    match &value {
                        Some(_) => self.keys[t].insert(key.clone()),
                        None => self.keys[t].remove(&key),
                    };
                    self.inputs[t].send((key, value, time));
                }
                self.advance(commit_lsn.0 + 1);
            }
        }
    }

    fn stage(&mut self, relation: &Relation, row: &Row) {
        if let Some((t, key, value)) = upsert_of(relation, row) {
            self.pending.insert((t, key), value);
        }
    }

    fn advance(&mut self, time: u64) {
        if time > self.time {
            self.time = time;
            for input in &mut self.inputs {
                input.advance_to(time);
                input.flush();
            }
        }
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
