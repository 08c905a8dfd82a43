//! The clinic's writes during a scenario: a seeded stream of small transactions over patients,
//! insurance, appointments, intake checklists, clinical notes and Deep Cura notes (inserts,
//! updates, soft and hard deletes, so every view moves), straight to Postgres, that rides out
//! the faults. A transaction whose commit got no answer (the server restarted under it) is
//! looked up by its transaction id once the server is back, so the count of changes committed
//! is exact: it is what `change_log` must hold.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::rig::Rig;

/// The actor the workload writes as: its rows in `change_log` carry it.
pub const ACTOR: &str = "fault_workload";

/// What the workload did, shared while it runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Row changes in committed transactions.
    pub committed: AtomicU64,
    /// Transactions committed.
    pub transactions: AtomicU64,
    /// Transactions whose commit got no answer, settled by transaction id.
    pub in_doubt: AtomicU64,
    /// Failed attempts (connection lost, server restarting), each retried.
    pub errors: AtomicU64,
    /// Each committed transaction: its id, the rows it changed, and whether it was in doubt.
    pub committed_transactions: std::sync::Mutex<Vec<(i64, u64, bool)>>,
}

impl Progress {
    /// Row changes committed so far.
    pub fn changes(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }
}

/// Writes `changes` row changes (counted as committed) to the database at `url`, each
/// transaction followed by a pause of `pace`; returns when done.
pub async fn run(url: String, seed: u64, changes: u64, pace: Duration, progress: Arc<Progress>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut client = connect(&url).await;
    while progress.changes() < changes {
        let statements: Vec<(&'static str, i64, String)> =
            (0..rng.random_range(1..=4)).map(|_| statement(&mut rng)).collect();
        match transaction(&mut client, &statements).await {
            Ok((xid, rows)) => {
                progress.committed.fetch_add(rows, Ordering::Relaxed);
                progress.transactions.fetch_add(1, Ordering::Relaxed);
                progress.committed_transactions.lock().unwrap().push((xid, rows, false));
            }
            Err((xid, rows)) => {
                progress.errors.fetch_add(1, Ordering::Relaxed);
                client = connect(&url).await;
                if let Some(xid) = xid {
                    if committed(&client, xid).await {
                        progress.in_doubt.fetch_add(1, Ordering::Relaxed);
                        progress.committed.fetch_add(rows, Ordering::Relaxed);
                        progress.transactions.fetch_add(1, Ordering::Relaxed);
                        progress.committed_transactions.lock().unwrap().push((xid, rows, true));
                    }
                }
            }
        }
        tokio::time::sleep(pace).await;
    }
}

/// One transaction; its id and the rows it changed, or on failure its transaction id (when it got one)
/// and the rows it would have changed.
async fn transaction(
    client: &mut tokio_postgres::Client,
    statements: &[(&'static str, i64, String)],
) -> Result<(i64, u64), (Option<i64>, u64)> {
    let tx = client.transaction().await.map_err(|_| (None, 0))?;
    tx.execute("SELECT set_config('app.actor', $1, true)", &[&ACTOR]).await.map_err(|_| (None, 0))?;
    let xid: i64 = tx.query_one("SELECT txid_current()", &[]).await.map_err(|_| (None, 0))?.get(0);
    let mut rows = 0;
    for (sql, patient, text) in statements {
        rows += tx.query(*sql, &[patient, text]).await.map_err(|_| (Some(xid), 0))?.len() as u64;
    }
    tx.commit().await.map_err(|_| (Some(xid), rows))?;
    Ok((xid, rows))
}

/// Whether transaction `xid`, which changed rows, committed (asked after the connection that
/// ran it was lost, before this workload runs another). Not `txid_status`: when a crash took
/// the transaction's WAL before it reached disk, recovery hands its id out again, and the
/// status is then another transaction's (a sink's, say). Its own audit rows, written in the
/// same transaction under the workload's actor, exist exactly when it committed.
async fn committed(client: &tokio_postgres::Client, xid: i64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    let sql = "SELECT EXISTS (SELECT 1 FROM change_log WHERE txid = $1 AND actor = $2)";
    loop {
        match client.query_one(sql, &[&xid, &ACTOR]).await {
            Ok(row) => return row.get::<_, bool>(0),
            Err(e) => assert!(Instant::now() < deadline, "cannot learn the fate of transaction {xid}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A connection, retried while the server is away (up to a minute).
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let config: tokio_postgres::Config = url.parse().expect("a test URL");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match august_schema::connect(&config).await {
            Ok(client) => return client,
            Err(e) => assert!(Instant::now() < deadline, "Postgres did not come back: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One random statement and its two parameters (a patient id and a text). Each returns one
/// row per row it changed.
fn statement(rng: &mut StdRng) -> (&'static str, i64, String) {
    let patient = rng.random_range(1..=120i64);
    let appointment = format!("F-{}", rng.random_range(1..=240));
    let (sql, text): (&str, String) = match rng.random_range(0..10) {
        0..=1 => (
            "INSERT INTO patients (drchrono_id, first_name, last_name, cell_phone, drchrono_raw) VALUES ($1, 'Pat', 'Ient', $2, '{}')
             ON CONFLICT (drchrono_id) DO UPDATE SET cell_phone = EXCLUDED.cell_phone, deleted_at = NULL RETURNING 1",
            format!("555-{:04}", rng.random_range(0..10_000)),
        ),
        2 => (
            "UPDATE patients SET deleted_at = clock_timestamp() WHERE drchrono_id = $1 AND $2 <> '' RETURNING 1",
            "x".into(),
        ),
        3 => (
            "INSERT INTO insurance_records (patient_id, type, insurance_company, drchrono_raw) VALUES ($1, 'primary', $2, '{}')
             ON CONFLICT (patient_id, type) DO UPDATE SET insurance_company = EXCLUDED.insurance_company RETURNING 1",
            ["Aetna", "Cigna", "Medicare"][rng.random_range(0..3)].into(),
        ),
        4..=5 => (
            "INSERT INTO appointments (drchrono_id, patient_id, provider_id, scheduled_time, status, drchrono_raw)
             VALUES ($2, $1, 9, '2026-12-01 09:00', 'Scheduled', '{}')
             ON CONFLICT (drchrono_id) DO UPDATE SET status = (ARRAY['Confirmed','Arrived','Complete'])[1 + (random() * 2)::int]
             RETURNING 1",
            appointment,
        ),
        6 => ("DELETE FROM appointments WHERE drchrono_id = $2 AND $1::bigint > 0 RETURNING 1", appointment),
        7 => (
            "INSERT INTO intake_checklists (appointment_id, patient_id) VALUES ($2, $1)
             ON CONFLICT (appointment_id) DO UPDATE SET consent_signed = NOT intake_checklists.consent_signed RETURNING 1",
            appointment,
        ),
        8 => (
            "INSERT INTO clinical_notes (drchrono_id, patient_id, locked, drchrono_raw) VALUES ($2, $1, true, '{}')
             ON CONFLICT (drchrono_id) DO UPDATE SET locked = NOT clinical_notes.locked RETURNING 1",
            appointment,
        ),
        _ => (
            "INSERT INTO deepcura_notes (id, drchrono_patient_id, drchrono_appt_id, session_date, soap_subjective, raw_payload)
             VALUES (gen_random_uuid(), $1, $2, '2026-12-01', 'better', '{}') RETURNING 1",
            appointment,
        ),
    };
    (sql, patient, text)
}

/// A workload running beside a scenario.
pub struct Stream {
    /// What it has done.
    pub progress: Arc<Progress>,
    task: tokio::task::JoinHandle<()>,
}

impl Stream {
    /// Writes until `progress` counts `total` committed changes (a later stream may carry a
    /// scenario's count on), to the database at `url` (not through any proxy).
    pub fn start(url: &str, seed: u64, total: u64, progress: Arc<Progress>) -> Stream {
        Self::paced(url, seed, total, progress, Duration::from_millis(3))
    }

    /// [`Stream::start`] with `pace` between transactions.
    pub fn paced(url: &str, seed: u64, total: u64, progress: Arc<Progress>, pace: Duration) -> Stream {
        let task = tokio::spawn(run(url.to_string(), seed, total, pace, progress.clone()));
        Stream { progress, task }
    }

    /// Waits, supervising August, until `changes` changes are committed (or the stream ended).
    pub async fn until(&self, rig: &mut Rig, changes: u64) {
        while self.progress.changes() < changes && !self.task.is_finished() {
            rig.supervise().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits, supervising August, for `wait` of wall-clock time (a fault held that long).
    pub async fn hold(&self, rig: &mut Rig, wait: Duration) {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            rig.supervise().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits, supervising August, for the stream to end.
    pub async fn finish(self, rig: &mut Rig) -> Arc<Progress> {
        while !self.task.is_finished() {
            rig.supervise().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.task.await.expect("the workload");
        self.progress
    }
}
