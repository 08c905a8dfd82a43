//! What must hold after every scenario, measured once the writes have stopped and the faults
//! are lifted (or not, for faults August must ride out to the end):
//!
//! 1. **The slot never passes durable.** Take the WAL position after the last write, wait
//!    until the slot's `confirmed_flush_lsn` reaches it, and compare Coda with the views *at
//!    that moment*, without waiting: confirming means every change up to there is in Coda, so
//!    any difference then is a confirmation ahead of the sink. August's link write-back writes
//!    `deepcura_notes` too, after that position: when `change_log` grew meanwhile, the views
//!    moved on and the measure is taken again from a new position.
//! 2. **Nothing lost, nothing phantom.** Coda (the emulator's rows) equals the views computed
//!    from scratch over Postgres, row for row: a view row missing or stale in Coda is lost, a
//!    Coda row no view has (or a key held twice) is a phantom.
//! 3. **The ledger is complete**: `coda_sync_state` holds exactly each view row's key and
//!    content hash, and no write is left pending in `coda_pending_writes`.
//! 4. **`change_log` misses nothing**: it holds one row per change the workload committed.
//!
//! Duplicate writes are counted, not forbidden: rows an upsert carried whose content the
//! emulator already held.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use august_dataflow::reference;
use august_sinks::coda::cells::hash;
use august_sinks::coda::compare::{compare_table, expected_rows, Problem, RowDifference};
use serde_json::Value;

use crate::rig::Rig;
use crate::support::describe;
use crate::workload::{Progress, ACTOR};

/// One scenario's figures: a line of the report.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// The scenario (and seed).
    pub scenario: String,
    /// Faults injected, and what they hit.
    pub faults: String,
    /// SIGKILLs: when each struck (ms after the previous start / phase / changes committed).
    pub kill_points: Vec<String>,
    /// Runs that found writes a killed run left unconfirmed, and settled them.
    pub settled_runs: usize,
    /// Exits August chose (a lost link it does not retry), each started again.
    pub restarts: u32,
    /// Row changes the workload committed.
    pub changes: u64,
    /// Rows compared.
    pub rows: usize,
    /// View rows missing or stale in Coda at the end.
    pub lost: usize,
    /// Coda rows no view has, or keys held twice, at the end.
    pub phantom: usize,
    /// Rows Coda was sent again with the content it held.
    pub duplicates: u64,
    /// Rows that differed when the slot had confirmed past the last write.
    pub confirmed_ahead: usize,
    /// Ledger rows missing, stale or extra, and writes left pending.
    pub ledger_gaps: usize,
    /// Committed changes without their `change_log` row.
    pub change_log_missing: i64,
}

impl Figures {
    /// Asserts every invariant of the module documentation.
    pub fn assert_sound(&self, log: &str) {
        let ok = self.lost == 0
            && self.phantom == 0
            && self.confirmed_ahead == 0
            && self.ledger_gaps == 0
            && self.change_log_missing == 0;
        assert!(ok, "{}\n{}\nAugust's log:\n{log}", HEADER, self.line());
    }

    /// The report line.
    pub fn line(&self) -> String {
        let kills = match self.kill_points.len() {
            0 => "-".to_string(),
            n => format!("{n}, {} left writes in flight ({})", self.settled_runs, self.kill_points.join(", ")),
        };
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            self.scenario,
            self.faults,
            kills,
            self.restarts,
            self.changes,
            self.rows,
            self.lost,
            self.phantom,
            self.duplicates,
            self.confirmed_ahead,
            self.ledger_gaps,
            self.change_log_missing
        )
    }

    /// Prints the report header and line (shown with `--nocapture`), and why August exited
    /// when it did on its own.
    pub fn print(&self, rig: &Rig) {
        println!("{HEADER}\n{}", self.line());
        for exit in &rig.exits {
            println!("  {}: August exited: {exit}", self.scenario);
        }
    }
}

/// The report's header.
pub const HEADER: &str = "| scenario | faults | kill points | restarts | changes | rows | lost | phantom | duplicate writes | confirmed ahead | ledger gaps | change_log missing |\n|---|---|---|---|---|---|---|---|---|---|---|---|";

/// Runs the checks on a rig whose workload has finished; `duplicates_before` is the
/// emulator's count of unchanged rows when the scenario began.
pub async fn check(rig: &mut Rig, progress: &Progress, scenario: String, duplicates_before: u64) -> Figures {
    let db = rig.db.client().await;
    // August writes published tables too (the link write-back): when it did so after the
    // position taken, the views moved past it, and the measure is taken again.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (at_confirmation, ledger_gaps, last) = loop {
        let (last, changes) = position(&db).await;
        wait_for_slot(rig, &db, &last, &scenario).await;
        let found = differences(rig).await;
        let gaps = ledger_gaps(rig).await;
        if position(&db).await.1 == changes {
            break (found, gaps, last);
        }
        assert!(Instant::now() < deadline, "{scenario}: published tables never stopped changing\n{}", rig.log());
    };
    let confirmed_ahead = at_confirmation.len();
    if confirmed_ahead > 0 {
        let slot: String = db
            .query_one(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&rig.db.name],
            )
            .await
            .map(|row| row.get(0))
            .unwrap_or_default();
        eprintln!("{scenario}: the slot at {slot} (last write {last}), yet {}", describe(&at_confirmation));
    }
    // Had the slot run ahead, tell lag from loss: give the sink time to catch up.
    let mut last_differences = at_confirmation;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !last_differences.is_empty() && Instant::now() < deadline {
        rig.supervise().await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        last_differences = differences(rig).await;
    }
    let lost =
        last_differences.iter().filter(|d| matches!(d.problem, Problem::MissingInCoda | Problem::Differs(_))).count();
    let logged: i64 = db
        .query_one("SELECT count(*) FROM change_log WHERE actor = $1", &[&ACTOR])
        .await
        .expect("count change_log")
        .get(0);
    if progress.changes() as i64 != logged {
        eprintln!(
            "{scenario}: change_log and the committed transactions differ: {}",
            audit_differences(&db, progress).await
        );
    }
    if !last_differences.is_empty() {
        eprintln!("{scenario}: {}", describe(&last_differences));
    }
    Figures {
        scenario,
        restarts: rig.restarts,
        changes: progress.changes(),
        rows: expected_count(rig).await,
        lost,
        phantom: last_differences.len() - lost,
        duplicates: rig.coda.unchanged_rows() - duplicates_before,
        confirmed_ahead,
        ledger_gaps,
        change_log_missing: progress.changes() as i64 - logged,
        ..Figures::default()
    }
}

/// The committed transactions whose `change_log` rows are not as many as the rows they
/// changed: (transaction id, rows changed, rows logged, whether its commit was in doubt).
async fn audit_differences(db: &tokio_postgres::Client, progress: &Progress) -> String {
    let logged: BTreeMap<i64, i64> = db
        .query("SELECT txid, count(*) FROM change_log WHERE actor = $1 GROUP BY txid", &[&ACTOR])
        .await
        .expect("change_log by transaction")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let committed = progress.committed_transactions.lock().unwrap().clone();
    let known: BTreeSet<i64> = committed.iter().map(|(xid, _, _)| *xid).collect();
    let mut found: Vec<String> = committed
        .iter()
        .filter(|(xid, rows, _)| logged.get(xid).copied().unwrap_or(0) != *rows as i64)
        .map(|(xid, rows, doubt)| {
            format!("{xid}: {rows} changed, {} logged, in doubt {doubt}", logged.get(xid).copied().unwrap_or(0))
        })
        .collect();
    found.extend(
        logged
            .iter()
            .filter(|(xid, _)| !known.contains(xid))
            .map(|(xid, n)| format!("{xid}: not committed, {n} logged")),
    );
    found.join("; ")
}

/// The WAL position now, and how many changes `change_log` holds (every write to a published
/// table leaves one).
async fn position(db: &tokio_postgres::Client) -> (String, i64) {
    let row = db
        .query_one("SELECT pg_current_wal_lsn()::text, (SELECT count(*) FROM change_log)", &[])
        .await
        .expect("the WAL position");
    (row.get(0), row.get(1))
}

/// Waits, supervising August, until the slot is confirmed at `lsn` or past it.
async fn wait_for_slot(rig: &mut Rig, db: &tokio_postgres::Client, lsn: &str, scenario: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        rig.supervise().await;
        let reached: Option<bool> = db
            .query_one(
                "SELECT confirmed_flush_lsn >= $2::text::pg_lsn FROM pg_replication_slots WHERE slot_name = $1",
                &[&rig.db.name, &lsn],
            )
            .await
            .ok()
            .and_then(|row| row.get(0));
        if reached == Some(true) {
            return;
        }
        assert!(Instant::now() < deadline, "{scenario}: the slot never reached {lsn} (a hang?)\n{}", rig.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every row where the emulator and the views computed from scratch disagree.
async fn differences(rig: &Rig) -> Vec<RowDifference> {
    let views = views(rig).await;
    let mut all = Vec::new();
    for table in &rig.mapping.tables {
        let listed: Vec<(String, BTreeMap<String, Value>)> = rig
            .coda
            .rows(&rig.mapping.doc_id, &table.table_id)
            .into_iter()
            .map(|values| (String::new(), values))
            .collect();
        all.extend(compare_table(table, &expected_rows(table, &views), &listed).1);
    }
    all
}

async fn views(rig: &Rig) -> reference::Views {
    let tables = reference::read_live_tables(&rig.db.config()).await.expect("read the tables");
    reference::compute(&tables)
}

/// How many rows the views hold across the mapped tables.
async fn expected_count(rig: &Rig) -> usize {
    let views = views(rig).await;
    rig.mapping.tables.iter().map(|t| expected_rows(t, &views).len()).sum()
}

/// Ledger rows that do not match the views (missing, another hash, or extra), plus writes
/// still pending.
async fn ledger_gaps(rig: &Rig) -> usize {
    let views = views(rig).await;
    let db = rig.db.client().await;
    let mut gaps = 0;
    for table in &rig.mapping.tables {
        let expected: BTreeSet<(String, String)> =
            expected_rows(table, &views).into_iter().map(|(key, cells)| (key, hash(&cells))).collect();
        let held: BTreeSet<(String, String)> = db
            .query("SELECT row_key, content_hash FROM coda_sync_state WHERE view = $1", &[&table.view])
            .await
            .expect("read the ledger")
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        gaps += expected.symmetric_difference(&held).count();
    }
    let pending: i64 = db.query_one("SELECT count(*) FROM coda_pending_writes", &[]).await.expect("pending").get(0);
    gaps + pending as usize
}
