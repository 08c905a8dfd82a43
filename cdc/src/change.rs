//! What the stream delivers: typed rows, changes, and the events that frame them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use august_schema::trace::TraceParent;
use august_schema::writeback::{Notice, EDIT_PREFIX, REFRESH_PREFIX};

use crate::{Lsn, Relation, Value};

/// A row's values, in the order of its relation's columns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// The value of the column called `name`, if the relation has one.
    pub fn get<'a>(&'a self, relation: &Relation, name: &str) -> Option<&'a Value> {
        relation.column_index(name).and_then(|i| self.0.get(i))
    }

    /// The values of the relation's key columns.
    pub fn key(&self, relation: &Relation) -> Vec<Value> {
        relation.key_indexes().filter_map(|i| self.0.get(i).cloned()).collect()
    }
}

/// A row-level change to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The table, as described when the change was made.
    pub relation: Arc<Relation>,
    /// What happened.
    pub kind: ChangeKind,
}

/// Insert, update or delete. Old rows are whole for `REPLICA IDENTITY FULL` tables (all of
/// August's); with another identity an old row carries the key and NULL elsewhere, and an
/// update carries one only when its key changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new row.
    Insert {
        /// The row.
        new: Row,
    },
    /// A changed row. Unchanged TOASTed values are already filled in.
    Update {
        /// The row before, when the table logs it.
        old: Option<Row>,
        /// The row after.
        new: Row,
    },
    /// A removed row.
    Delete {
        /// The row before.
        old: Row,
    },
}

impl Change {
    /// `insert`, `update` or `delete`.
    pub fn op(&self) -> &'static str {
        match self.kind {
            ChangeKind::Insert { .. } => "insert",
            ChangeKind::Update { .. } => "update",
            ChangeKind::Delete { .. } => "delete",
        }
    }

    /// The key of the row before the change, when it differs from the key after it (a
    /// key-changing update).
    pub fn old_key(&self) -> Option<Vec<Value>> {
        match &self.kind {
            ChangeKind::Update { old: Some(old), new } => {
                let old_key = old.key(&self.relation);
                (old_key != new.key(&self.relation)).then_some(old_key)
            }
            _ => None,
        }
    }

    /// The key of the row the change leaves behind (for a delete, the row removed).
    pub fn key(&self) -> Vec<Value> {
        match &self.kind {
            ChangeKind::Insert { new } | ChangeKind::Update { new, .. } => new.key(&self.relation),
            ChangeKind::Delete { old } => old.key(&self.relation),
        }
    }
}

/// One item of the change stream, in order.
///
/// A run starts with the snapshot (`SnapshotRow`s, then `SnapshotEnd`), then committed
/// transactions in commit order (`Begin`, `Change`/`Truncate`/`Notice`/`Trace`…, `Commit`), interleaved with
/// `Progress`. Time is the LSN: snapshot rows are at the snapshot LSN, a transaction's changes
/// at its commit LSN. After `Commit { commit_lsn }` or `Progress(lsn)` no event for an earlier
/// time follows, which is what closes a timestamp downstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A row of the initial copy, as of the snapshot LSN.
    SnapshotRow {
        /// Its table.
        relation: Arc<Relation>,
        /// The row.
        row: Row,
    },
    /// The copy is complete and consistent as of `lsn`; every transaction that follows
    /// committed at or after it.
    SnapshotEnd {
        /// The snapshot LSN.
        lsn: Lsn,
    },
    /// A transaction with changes starts.
    Begin {
        /// LSN of its commit record: its timestamp.
        commit_lsn: Lsn,
        /// When it committed.
        commit_time: DateTime<Utc>,
        /// Its transaction id.
        xid: u32,
    },
    /// A row change inside the current transaction.
    Change(Change),
    /// Tables emptied inside the current transaction.
    Truncate(Vec<Arc<Relation>>),
    /// The current transaction committed.
    Commit {
        /// LSN of its commit record.
        commit_lsn: Lsn,
        /// LSN just past it.
        end_lsn: Lsn,
        /// When it committed.
        commit_time: DateTime<Utc>,
    },
    /// A write-back notice inside the current transaction (see [`WalNotice`]).
    Notice(WalNotice),
    /// The current transaction's trace context: the `cdc.transaction` span's, or the writer's
    /// when nothing traces here (see [`crate::trace`]). At most one per transaction.
    Trace(TraceParent),
    /// Nothing earlier than `lsn` will follow (keepalives, heartbeats, skipped transactions).
    Progress(Lsn),
}

/// Which write-back notice a transactional logical message carries (see
/// `august_schema::writeback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    /// [`EDIT_PREFIX`]: a staff edit written back; Coda may already hold its row.
    Edit,
    /// [`REFRESH_PREFIX`]: a refused write-back; the Coda row may show a value Postgres refused.
    Refresh,
}

impl NoticeKind {
    /// The kind of a message with this prefix, when it is a write-back notice.
    pub fn of_prefix(prefix: &str) -> Option<Self> {
        match prefix {
            EDIT_PREFIX => Some(Self::Edit),
            REFRESH_PREFIX => Some(Self::Refresh),
            _ => None,
        }
    }
}

/// A write-back notice as the stream delivers it: inside its transaction, so at its commit LSN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalNotice {
    /// Edit or refresh.
    pub kind: NoticeKind,
    /// What it says (ids and column names only).
    pub notice: Notice,
}
