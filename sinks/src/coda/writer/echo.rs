//! The echo guard: a staff edit written back to Postgres comes round again through cdc and the
//! dataflow, and must not be written to the Coda row that already shows it; and Coda must
//! never keep a value Postgres refused or overtook.
//!
//! **The rule: a write is skipped only when Coda is seen to hold its exact content.**
//!
//! * An *edit notice* at LSN `L` for (target, key) marks the row, in every mapped table whose
//!   `edits.target` is that target, so that its next update at an LSN of at least `L` (until
//!   the frontier passes `L`) is *verified first*: before a write slot is spent, the Coda row
//!   is read (one keyed query on the read quota, taking the row the notice named, else the one
//!   the ledger knows, else the only one) and its cells' hash compared with the pending one.
//!   Equal: the ledger records the row as held and nothing is written (an echo avoided,
//!   `august_coda_echoes_avoided_total{view}`). Different, not found, or not readable: written
//!   as usual. A verify is the row's one operation in flight.
//! * A *refresh notice* (a write-back Postgres refused) queues, for the row in each such
//!   table, a verify-first upsert of the cells Postgres holds, even when the ledger says Coda
//!   holds them: the Coda row may show the refused value. So the writer keeps, for tables
//!   staff edit, every row's current cells (from every update it takes, skipped or not).
//! * Rows of other views derived from the edited row (`scheduling_ops` shows the intake
//!   status) carry no mark: they are written as usual, once.
//!
//! Postgres is the system of record: whichever change commits last there is what every view
//! and Coda end with, and a Coda row showing anything else is corrected in one write cycle.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use august_cdc::{Lsn, NoticeKind, WalNotice};
use serde_json::Value;
use tokio::sync::mpsc;

use super::stats::ECHOES_METRIC;
use super::{Change, Pending, Writer};
use crate::coda::cells::{self, Cells};
use crate::coda::client::CodaError;
use crate::coda::ledger::{self, Confirmed, Held};
use crate::coda::mapping::Mapping;
use crate::SinkError;

/// A pending upsert to read back from Coda before it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Verify {
    /// The Coda row id a notice named, when it did.
    pub(super) row_id: Option<String>,
}

/// What reading a row back found: its Coda row id and content hash (`None`: no single row).
#[derive(Debug)]
pub(super) struct Verdict {
    table: usize,
    key: String,
    found: Result<Option<(String, String)>, CodaError>,
}

/// Where read-backs answer.
pub(super) type Verdicts = mpsc::UnboundedReceiver<Verdict>;

/// The guard's state.
#[derive(Debug)]
pub(super) struct EchoGuard {
    /// Per mapped table, the write-back target of its staff edits.
    targets: Vec<Option<String>>,
    /// Per mapped table, rows whose next update at or after the LSN is verified first.
    marks: Vec<HashMap<String, (Lsn, Option<String>)>>,
    /// Per mapped table staff edit, each row's key cell and current cells.
    current: Vec<HashMap<String, (Value, Cells)>>,
    /// Rows being read back, by (table, key).
    verifying: HashMap<(usize, String), Pending>,
    answers: mpsc::UnboundedSender<Verdict>,
}

impl EchoGuard {
    /// The guard of `mapping`, and where its read-backs answer.
    pub(super) fn new(mapping: &Mapping) -> (Self, Verdicts) {
        let (answers, verdicts) = mpsc::unbounded_channel();
        let n = mapping.tables.len();
        let guard = Self {
            targets: mapping.tables.iter().map(|t| t.edits.as_ref().map(|e| e.target.clone())).collect(),
            marks: vec![HashMap::new(); n],
            current: vec![HashMap::new(); n],
            verifying: HashMap::new(),
            answers,
        };
        (guard, verdicts)
    }

    /// The rows being read back.
    pub(super) fn verifying(&self) -> impl Iterator<Item = &Pending> {
        self.verifying.values()
    }

    /// Follows an update of table `t` (`None`: the row is gone), for tables staff edit.
    pub(super) fn track(&mut self, t: usize, key: &str, row: Option<(&Value, &Cells)>) {
        if self.targets[t].is_none() {
            return;
        }
        match row {
            Some((key_value, cells)) => {
                drop(self.current[t].insert(key.to_string(), (key_value.clone(), cells.clone())))
            }
            None => drop(self.current[t].remove(key)),
        }
    }

    /// Whether the update of table `t`'s row `key` at `lsn` is to be verified first (taking
    /// the mark).
    pub(super) fn take_mark(&mut self, t: usize, key: &str, lsn: Lsn) -> Option<Verify> {
        match self.marks[t].get(key) {
            Some((at, _)) if *at <= lsn => self.marks[t].remove(key).map(|(_, row_id)| Verify { row_id }),
            _ => None,
        }
    }

    /// The frontier passed `lsn`: marks below it found no update (the edit changed no view row).
    pub(super) fn passed(&mut self, lsn: Lsn) {
        for marks in &mut self.marks {
            marks.retain(|_, (at, _)| *at >= lsn);
        }
    }
}

impl Writer {
    /// Notices of the transaction at `lsn`: marks rows for a verify, or queues refreshes.
    pub(super) fn noticed(&mut self, lsn: Lsn, notices: Vec<WalNotice>) {
        for WalNotice { kind, notice } in notices {
            for t in 0..self.mapping.tables.len() {
                if self.echo.targets[t].as_deref() != Some(notice.target.as_str()) {
                    continue;
                }
                let row_id = notice.coda_row_id.clone();
                match kind {
                    NoticeKind::Edit => drop(self.echo.marks[t].insert(notice.key.clone(), (lsn, row_id))),
                    NoticeKind::Refresh => self.refresh(t, &notice.key, lsn, row_id),
                }
            }
        }
    }

    /// Queues a verify-first upsert of what Postgres holds for the row, unless a change to it
    /// waits already (it will be written).
    fn refresh(&mut self, t: usize, key: &str, lsn: Lsn, row_id: Option<String>) {
        if self.pending[t].contains_key(key) {
            return;
        }
        let Some((key_value, cells)) = self.echo.current[t].get(key).cloned() else { return };
        let hash = cells::hash(&cells);
        let change = Change::Upsert { cells, hash };
        let verify = Some(Verify { row_id });
        let traces = Default::default(); // a refresh is August's own rewrite, not a traced change
        let queued = Instant::now();
        let item = Pending {
            key: key.to_string(),
            key_value,
            lsn,
            since: lsn,
            committed: None,
            change,
            verify,
            traces,
            queued,
        };
        self.pending[t].insert(key.to_string(), item);
    }

    /// Starts a read-back for each row waiting to be verified and not in flight.
    pub(super) fn start_verifies(&mut self) {
        for t in 0..self.pending.len() {
            if self.health[t].stopped() {
                continue;
            }
            let due: Vec<String> = self.pending[t]
                .iter()
                .filter(|(k, p)| p.verify.is_some() && !self.flying[t].contains_key(*k))
                .map(|(k, _)| k.clone())
                .collect();
            for key in due {
                let Some(item) = self.pending[t].remove(&key) else { continue };
                self.read_back(t, item);
            }
        }
    }

    fn read_back(&mut self, t: usize, item: Pending) {
        let table = &self.mapping.tables[t];
        let held_id = self.held.get(&(table.view.clone(), item.key.clone())).and_then(|h| h.row_id.clone());
        let wanted = item.verify.as_ref().and_then(|v| v.row_id.clone()).or(held_id);
        let (client, sources, answers) = (self.client.clone(), self.sources[t].clone(), self.echo.answers.clone());
        let (doc, table_id, column) =
            (self.mapping.doc_id.clone(), table.table_id.clone(), table.key_column().to_string());
        let (key, key_value) = (item.key.clone(), item.key_value.clone());
        self.flying[t].insert(item.key.clone(), item.change.hash().map(String::from));
        self.echo.verifying.insert((t, item.key.clone()), item);
        self.stats.verifies.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let found = client.find_row_values(&doc, &table_id, &column, &key_value).await.map(|rows| {
                let row = match rows.iter().find(|(id, _)| Some(id) == wanted.as_ref()) {
                    Some(row) => Some(row),
                    None if rows.len() == 1 => rows.first(),
                    None => None,
                };
                row.map(|(id, values)| (id.clone(), cells::hash(&sources.cells_of_coda_row(values))))
            });
            let _ = answers.send(Verdict { table: t, key, found });
        });
    }

    /// A read-back answered: an echo is recorded as held; anything else is written.
    pub(super) async fn verified(&mut self, verdict: Verdict) -> Result<(), SinkError> {
        let t = verdict.table;
        let Some(mut item) = self.echo.verifying.remove(&(t, verdict.key)) else { return Ok(()) };
        self.flying[t].remove(&item.key);
        item.verify = None;
        let view = self.mapping.tables[t].view.clone();
        let (hash, row_id) = match (verdict.found, item.change.hash()) {
            (Ok(Some((row_id, found))), Some(hash)) if found == hash => (hash.to_string(), row_id),
            (Err(error), _) => {
                tracing::debug!(error = %error, view, "cannot read a Coda row back; writing it");
                self.put_back(t, item);
                return Ok(());
            }
            _ => {
                self.put_back(t, item);
                return Ok(());
            }
        };
        let confirmed =
            Confirmed::Written { view: view.clone(), key: item.key.clone(), hash: hash.clone(), lsn: item.lsn };
        if let Err(error) = self.hold(&confirmed, &view, &item.key, &row_id).await {
            tracing::warn!(error = %error, view, "cannot record an echo in the ledger; writing the row");
            self.put_back(t, item);
            return Ok(());
        }
        self.held.insert((view.clone(), item.key), Held { hash, row_id: Some(row_id) });
        self.stats.echoes_avoided.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(ECHOES_METRIC, "view" => view).increment(1);
        Ok(())
    }

    /// Records in the ledger that Coda holds a row, on a connection restored if it broke.
    async fn hold(
        &mut self,
        confirmed: &Confirmed,
        view: &str,
        key: &str,
        row_id: &str,
    ) -> Result<(), august_schema::DbError> {
        if self.db.is_closed() {
            self.db = august_schema::connect(&self.pg).await?;
        }
        ledger::record(&mut self.db, std::slice::from_ref(confirmed), None).await?;
        ledger::remember_row_id(&self.db, view, key, row_id).await
    }
}
