//! Which transactions and changes reach downstream, exactly once.
//!
//! A pure state machine, fed one decoded pgoutput message at a time and answering with the
//! events to deliver. It holds no transaction in memory: changes go out as they arrive, so a
//! 200,000-row transaction costs what the channel to downstream holds, no more.
//!
//! * **Snapshot rule.** A transaction whose commit LSN is below the snapshot LSN is already in
//!   the copy, and is dropped.
//! * **Reconnects.** After a lost connection the server resends from the slot's confirmed
//!   position, which is never past what downstream made durable. Transactions at or below the
//!   last one delivered are dropped; the transaction that was open when the connection broke
//!   is resent whole, in the same order, and its first `delivered` changes are skipped.
//! * **TOAST.** A value sent as "unchanged TOAST" is taken from the old row of the same
//!   message (every published table logs whole old rows), never left NULL or dropped.
//! * **Notices.** A transactional write-back message (edit or refresh prefix) is delivered
//!   as `Event::Notice` where it stands among the changes, and counts as a position like a
//!   change; a transaction with only a notice is delivered whole. Heartbeats deliver nothing.
//! * **Trace context.** The transaction's `august.trace` message is kept with it and
//!   delivered as `Event::Trace` right after its `Begin` (or where it stands, when the
//!   transaction is already under way), once, also across a resend; it is not a position (see
//!   [`crate::trace`]).
//! * **Progress.** A delivered commit closes its LSN; a skipped or empty transaction (a
//!   heartbeat), or a keepalive while no transaction is open, sends `Progress`.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use august_schema::writeback::Notice;

use crate::change::{Change, ChangeKind, Event, NoticeKind, Row, WalNotice};
use crate::pgoutput::{Datum, Message, OldTuple};
use crate::trace::TransactionTrace;
use crate::walsender::PG_EPOCH_OFFSET_MICROS;
use crate::{CdcError, Lsn, Relation, Value};

#[derive(Debug)]
struct OpenTxn {
    commit_lsn: Lsn,
    commit_time: DateTime<Utc>,
    xid: u32,
    skip: bool,
    /// Changes seen in the current sending of this transaction.
    seen: u64,
    /// Changes delivered downstream, across sendings.
    delivered: u64,
    /// `Begin` has been delivered.
    begun: bool,
    /// Its trace context and span, when the writer traced it.
    trace: TransactionTrace,
}

/// The delivery state of one run.
#[derive(Debug)]
pub struct Delivery {
    relations: HashMap<u32, Arc<Relation>>,
    snapshot_lsn: Lsn,
    last_commit: Option<Lsn>,
    txn: Option<OpenTxn>,
    /// The transaction that was open when the connection broke, until it is resent.
    interrupted: Option<OpenTxn>,
    progress: Lsn,
    only: Option<Vec<String>>,
}

/// What one message delivered, for counting.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Row changes delivered.
    pub changes: u64,
    /// Transactions committed downstream.
    pub transactions: u64,
}

impl Delivery {
    /// Starts after a snapshot at `snapshot_lsn` (zero when there was none), knowing the
    /// published `relations` (their key columns come from the catalog). `only` limits
    /// delivery to the named tables.
    pub fn new(snapshot_lsn: Lsn, relations: &[Arc<Relation>], only: Option<Vec<String>>) -> Self {
        Self {
            relations: relations.iter().map(|r| (r.oid, r.clone())).collect(),
            snapshot_lsn,
            last_commit: None,
            txn: None,
            interrupted: None,
            progress: snapshot_lsn,
            only,
        }
    }

    /// The frontier: no event earlier than this will be delivered.
    pub fn progress(&self) -> Lsn {
        self.progress
    }

    /// Whether a transaction is open (its commit not yet seen).
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// Whether `oid` is a relation this run knows.
    pub fn knows(&self, oid: u32) -> bool {
        self.relations.contains_key(&oid)
    }

    /// The connection broke: the server will resend from the slot's confirmed position, so
    /// an open transaction is set aside until it comes round again.
    pub fn on_reconnect(&mut self) {
        if let Some(open) = self.txn.take() {
            self.interrupted = Some(open);
        }
    }

    /// A keepalive: the server has sent everything committed before `wal_end`.
    pub fn on_keepalive(&mut self, wal_end: Lsn, out: &mut Vec<Event>) {
        if self.txn.is_none() && self.interrupted.is_none() && wal_end > self.progress {
            self.progress = wal_end;
            out.push(Event::Progress(wal_end));
        }
    }

    /// A new description of a table. For `REPLICA IDENTITY FULL` pgoutput flags every column
    /// as part of the identity, so key columns are kept from what we knew (by name), or taken
    /// from `catalog_keys` for a table we did not know.
    pub fn on_relation(&mut self, mut relation: Relation, catalog_keys: Option<&[String]>) {
        let known = self.relations.get(&relation.oid).cloned();
        for column in &mut relation.columns {
            column.is_key = match (&known, catalog_keys) {
                (_, Some(keys)) => keys.contains(&column.name),
                (Some(known), None) => known.columns.iter().any(|c| c.is_key && c.name == column.name),
                (None, None) => column.is_key,
            };
        }
        self.relations.insert(relation.oid, Arc::new(relation));
    }

    /// One pgoutput message; the events to deliver are appended to `out`.
    pub fn on_message(&mut self, message: Message<'_>, out: &mut Vec<Event>) -> Result<Delivered, CdcError> {
        let mut delivered = Delivered::default();
        match message {
            Message::Begin { final_lsn, commit_time, xid } => {
                if self.txn.is_some() {
                    return Err(CdcError::Protocol("a transaction began inside another".into()));
                }
                match self.interrupted.take() {
                    Some(mut resent) if resent.commit_lsn == final_lsn => {
                        resent.seen = 0;
                        self.txn = Some(resent);
                        return Ok(delivered);
                    }
                    Some(pending) if final_lsn > pending.commit_lsn => {
                        return Err(CdcError::Protocol("the interrupted transaction was not resent".into()));
                    }
                    pending => self.interrupted = pending,
                }
                let skip = final_lsn < self.snapshot_lsn || self.last_commit.is_some_and(|last| final_lsn <= last);
                self.txn = Some(OpenTxn {
                    commit_lsn: final_lsn,
                    commit_time: pg_time(commit_time),
                    xid,
                    skip,
                    seen: 0,
                    delivered: 0,
                    begun: false,
                    trace: TransactionTrace::default(),
                });
            }
            Message::Relation(relation) => self.on_relation(relation, None),
            Message::Insert { .. } | Message::Update { .. } | Message::Delete { .. } | Message::Truncate { .. } => {
                if !self.next_position("a change outside a transaction")? {
                    return Ok(delivered);
                }
                let Some(event) = self.change_event(message)? else { return Ok(delivered) };
                if matches!(event, Event::Change(_)) {
                    delivered.changes += 1;
                    if let Some(txn) = self.txn.as_mut() {
                        txn.trace.changed();
                    }
                }
                self.push_in_transaction(event, out);
            }
            Message::LogicalMessage { transactional: true, prefix: crate::trace::PREFIX, content } => {
                let txn =
                    self.txn.as_mut().ok_or_else(|| CdcError::Protocol("a trace outside a transaction".into()))?;
                if !txn.skip {
                    txn.trace.read(content);
                    if txn.begun {
                        out.extend(txn.trace.deliver(txn.commit_lsn).map(Event::Trace));
                    }
                }
            }
            Message::LogicalMessage { transactional: true, prefix, content } => {
                let Some(kind) = NoticeKind::of_prefix(prefix) else { return Ok(delivered) }; // a heartbeat
                if !self.next_position("a transactional message outside a transaction")? {
                    return Ok(delivered);
                }
                match serde_json::from_slice::<Notice>(content) {
                    Ok(notice) => self.push_in_transaction(Event::Notice(WalNotice { kind, notice }), out),
                    // Still counted as a position, so a resent transaction skips alike.
                    Err(_) => tracing::warn!(prefix, "a write-back notice that is not a notice; ignored"),
                }
            }
            Message::Commit { commit_lsn, end_lsn, commit_time } => {
                let mut txn =
                    self.txn.take().ok_or_else(|| CdcError::Protocol("a commit outside a transaction".into()))?;
                txn.trace.committed();
                if txn.commit_lsn != commit_lsn {
                    return Err(CdcError::Protocol("commit LSN differs from the one announced at begin".into()));
                }
                self.last_commit = Some(commit_lsn);
                if commit_lsn.next() > self.progress {
                    self.progress = commit_lsn.next();
                    if txn.begun {
                        delivered.transactions = 1;
                        out.push(Event::Commit { commit_lsn, end_lsn, commit_time: pg_time(commit_time) });
                    } else {
                        out.push(Event::Progress(self.progress));
                    }
                }
            }
            Message::LogicalMessage { .. } | Message::Other(_) => {}
        }
        Ok(delivered)
    }

    /// Counts one position (a change or a notice) of the open transaction: whether it is to be
    /// delivered (not in a skipped transaction, not delivered before the connection was lost).
    fn next_position(&mut self, outside: &str) -> Result<bool, CdcError> {
        let txn = self.txn.as_mut().ok_or_else(|| CdcError::Protocol(outside.into()))?;
        if txn.skip {
            return Ok(false);
        }
        txn.seen += 1;
        if txn.seen <= txn.delivered {
            return Ok(false); // delivered before the connection was lost
        }
        txn.delivered += 1;
        Ok(true)
    }

    /// Delivers an event of the open transaction, after its `Begin` (sent with the first).
    fn push_in_transaction(&mut self, event: Event, out: &mut Vec<Event>) {
        let Some(txn) = self.txn.as_mut() else { return };
        if !txn.begun {
            txn.begun = true;
            out.push(Event::Begin { commit_lsn: txn.commit_lsn, commit_time: txn.commit_time, xid: txn.xid });
            out.extend(txn.trace.deliver(txn.commit_lsn).map(Event::Trace));
        }
        out.push(event);
    }

    fn wanted(&self, relation: &Relation) -> bool {
        self.only.as_ref().is_none_or(|names| names.contains(&relation.name))
    }

    fn relation(&self, oid: u32) -> Result<Arc<Relation>, CdcError> {
        self.relations
            .get(&oid)
            .cloned()
            .ok_or_else(|| CdcError::Protocol(format!("a change for relation {oid} before its description")))
    }

    fn change_event(&self, message: Message<'_>) -> Result<Option<Event>, CdcError> {
        let (relation, kind) = match message {
            Message::Insert { relation, new } => {
                let relation = self.relation(relation)?;
                let new = complete_row(&relation, &new, None)?;
                (relation, ChangeKind::Insert { new })
            }
            Message::Update { relation, old, new } => {
                let relation = self.relation(relation)?;
                let old = old.map(|(kind, datums)| decode_old(&relation, kind, &datums)).transpose()?;
                let full_old = old.as_ref().filter(|(kind, _)| *kind == OldTuple::Full).map(|(_, row)| row);
                let new = complete_row(&relation, &new, full_old)?;
                (relation, ChangeKind::Update { old: old.map(|(_, row)| row), new })
            }
            Message::Delete { relation, old: (kind, datums) } => {
                let relation = self.relation(relation)?;
                let (_, old) = decode_old(&relation, kind, &datums)?;
                (relation, ChangeKind::Delete { old })
            }
            Message::Truncate { relations } => {
                let tables: Vec<_> = relations.into_iter().map(|oid| self.relation(oid)).collect::<Result<_, _>>()?;
                let tables: Vec<_> = tables.into_iter().filter(|r| self.wanted(r)).collect();
                return Ok((!tables.is_empty()).then_some(Event::Truncate(tables)));
            }
            _ => return Ok(None),
        };
        let wanted = self.wanted(&relation);
        Ok(wanted.then_some(Event::Change(Change { relation, kind })))
    }
}

fn pg_time(micros_since_2000: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros_since_2000.saturating_add(PG_EPOCH_OFFSET_MICROS)).unwrap_or_default()
}

fn decode_old(relation: &Relation, kind: OldTuple, datums: &[Datum<'_>]) -> Result<(OldTuple, Row), CdcError> {
    Ok((kind, complete_row(relation, datums, None)?))
}

/// Decodes a tuple; an unchanged TOASTed value is taken from `old` (the whole old row).
fn complete_row(relation: &Relation, datums: &[Datum<'_>], old: Option<&Row>) -> Result<Row, CdcError> {
    if datums.len() != relation.columns.len() {
        return Err(CdcError::Protocol(format!(
            "table {} sent {} values for {} columns",
            relation.name,
            datums.len(),
            relation.columns.len()
        )));
    }
    let values = datums
        .iter()
        .zip(&relation.columns)
        .enumerate()
        .map(|(i, (datum, column))| match datum {
            Datum::Null => Ok(Value::Null),
            Datum::Text(text) => Ok(Value::decode(column.type_oid, text)),
            Datum::UnchangedToast => old.and_then(|row| row.0.get(i)).cloned().ok_or_else(|| {
                CdcError::Protocol(format!(
                    "table {} column {} was sent as unchanged TOAST without an old row to take it from",
                    relation.name, column.name
                ))
            }),
        })
        .collect::<Result<_, _>>()?;
    Ok(Row(values))
}

#[cfg(test)]
#[path = "delivery_tests.rs"]
mod tests;
