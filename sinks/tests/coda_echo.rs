//! The echo guard through the real pipeline (Postgres → cdc → dataflow → Coda sink → the
//! emulator): a staff edit Coda already shows costs no write to its table and one to the views
//! derived from it; an edit Coda does not show is written; a refused edit is corrected from
//! Postgres; and a seeded race of staff edits and August-side changes ends with Coda equal to
//! the views.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use august_cdc::{CdcConfig, Lsn};
use august_dataflow::{reference, DataflowConfig};
use august_emulators::coda::{Emulator, EmulatorConfig};
use august_schema::access_log::AccessLog;
use august_schema::writeback::{emit, Notice, EDIT_PREFIX, REFRESH_PREFIX};
use august_schema::{set_actor, Actor, Secret};
use august_sinks::coda::cells;
use august_sinks::coda::client::{CodaClient, CodaSettings};
use august_sinks::coda::compare::{compare_with, expected_rows};
use august_sinks::coda::mapping::Mapping;
use august_sinks::coda::writer::{write_to_coda, WriterStats};
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::coda_sink::{emulator_for, fast, WINDOW};

/// Staff edit the intake checklist in Coda; scheduling shows its status.
const MAPPING: &str = r#"
doc_id = "doc-echo"
[[tables]]
allow = ["direct", "clinical", "identifier", "operational"]
view = "patient_intake"
table_id = "grid-intake"
key = "appointment_id"
on_delete = "delete"
[tables.columns]
appointment_id = "c-appt"
scheduled_time = "c-time"
intake_status = "c-status"
insurance_verified = "c-insurance"
[tables.edits]
target = "intake"
url = "http://127.0.0.1:1/api/intake/{key}"
[tables.edits.fields]
intake_status = "status"
insurance_verified = "insurance_verified"

[[tables]]
allow = ["direct", "clinical", "identifier", "operational"]
view = "scheduling_ops"
table_id = "grid-sched"
key = "appointment_id"
on_delete = "delete"
[tables.columns]
appointment_id = "c-appt"
scheduled_time = "c-time"
intake_status = "c-intake-status"
"#;

const INTAKE: &str = "patient_intake";
const SCHED: &str = "scheduling_ops";

/// The pipeline on a test database with `appointments` appointments and their checklists.
struct Loop {
    db: august_testkit::TestDb,
    pg: tokio_postgres::Client,
    emulator: Emulator,
    /// The test's own Coda client: the staff's edits (not counted as August's writes).
    staff: CodaClient,
    mapping: Mapping,
    stats: Arc<WriterStats>,
    durable: watch::Receiver<Lsn>,
}

fn coda_client(db: &august_testkit::TestDb, emulator: &Emulator, writes: u32) -> CodaClient {
    let settings = CodaSettings {
        base: emulator.base_url(),
        token: Secret::new("emulator-token".into()),
        writes: (writes, WINDOW),
        reads: (100, WINDOW),
        timeout: Duration::from_secs(2),
    };
    CodaClient::new(settings, AccessLog::start("coda", Actor::CodaSink, db.config())).unwrap()
}

impl Loop {
    async fn start(hint: &str, appointments: usize) -> Self {
        let db = august_testkit::fresh_db(hint).await;
        let pg = db.client().await;
        pg.batch_execute("INSERT INTO patients (drchrono_id, first_name, last_name, drchrono_raw) VALUES (7, 'Ada', 'Lovelace', '{}')")
            .await
            .unwrap();
        for i in 1..=appointments {
            pg.batch_execute(&format!(
                "INSERT INTO appointments (drchrono_id, patient_id, scheduled_time, drchrono_raw) VALUES ('A-{i}', 7, '2026-03-02 10:00', '{{}}');
                 INSERT INTO intake_checklists (appointment_id, patient_id) VALUES ('A-{i}', 7);"
            ))
            .await
            .unwrap();
        }
        // A generous emulator quota: the staff's edits must not starve August's writes.
        let config = EmulatorConfig { writes_per_window: 1000, reads_per_window: 1000, ..EmulatorConfig::default() };
        let emulator = emulator_for(MAPPING, config).await;
        let mapping = Mapping::parse(MAPPING, "test").unwrap();
        let (durable_tx, durable) = watch::channel(Lsn::ZERO);
        let cdc =
            CdcConfig { slot: db.name.clone(), heartbeat: Some(Duration::from_millis(200)), ..CdcConfig::default() };
        let stream = august_cdc::start(db.config(), cdc, durable.clone());
        let (events, events_rx) = mpsc::channel(1024);
        let (output_tx, output) = mpsc::channel(1024);
        let dataflow = august_dataflow::spawn(&DataflowConfig::default(), events_rx, output_tx).unwrap();
        tokio::spawn(august_dataflow::feed(stream, events, std::future::pending()));
        std::thread::spawn(move || dataflow.join());
        let stats = Arc::new(WriterStats::default());
        let august = coda_client(&db, &emulator, 10);
        tokio::spawn(write_to_coda(db.config(), august, mapping.clone(), fast(), output, durable_tx, stats.clone()));
        let staff = coda_client(&db, &emulator, 1000);
        let mut this = Self { db, pg, emulator, staff, mapping, stats, durable };
        this.caught_up().await;
        this
    }

    /// Waits until everything committed so far is durable in Coda.
    async fn caught_up(&mut self) {
        let text: String = self.pg.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.unwrap().get(0);
        let target: Lsn = text.parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while *self.durable.borrow_and_update() <= target {
            assert!(Instant::now() < deadline, "durable stuck at {}", *self.durable.borrow());
            let _ = tokio::time::timeout(Duration::from_millis(200), self.durable.changed()).await;
        }
    }

    /// The staff change a cell of the intake row in Coda; returns once Coda shows it.
    async fn staff_set(&self, appointment: &str, column: &str, value: serde_json::Value) {
        let deadline = self.staff_edit(appointment, column, value.clone()).await;
        while self.coda_cell(appointment, column) != Some(value.clone()) {
            assert!(Instant::now() < deadline, "the staff's edit never showed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The staff change a cell while August writes the same row: returns once Coda has applied
    /// the edit, which a write of August's in flight may overwrite at once (as it may in Coda).
    async fn staff_race(&self, appointment: &str, column: &str, value: serde_json::Value) {
        self.staff_edit(appointment, column, value).await;
    }

    /// Sends the staff's edit and waits until Coda has applied it; returns the deadline left.
    async fn staff_edit(&self, appointment: &str, column: &str, value: serde_json::Value) -> Instant {
        let cells = vec![("c-appt".to_string(), json!(appointment)), (column.to_string(), value)];
        let deadline = Instant::now() + Duration::from_secs(30);
        let request = loop {
            match self
                .staff
                .upsert_rows("doc-echo", "grid-intake", std::slice::from_ref(&cells), &["c-appt".into()])
                .await
            {
                Ok(request) => break request,
                Err(e) => assert!(Instant::now() < deadline, "the staff's edit failed: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        while !self.staff.mutation_completed(&request).await.unwrap_or(false) {
            assert!(Instant::now() < deadline, "the staff's edit was never applied");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        deadline
    }

    fn coda_cell(&self, appointment: &str, column: &str) -> Option<serde_json::Value> {
        let rows = self.emulator.rows("doc-echo", "grid-intake");
        rows.into_iter().find(|r| r.get("c-appt") == Some(&json!(appointment))).and_then(|r| r.get(column).cloned())
    }

    /// What the write-back endpoint commits for an accepted edit: the UPDATE and its notice.
    async fn write_back(&mut self, appointment: &str, set: &str, fields: &[&str]) {
        self.write_back_from(appointment, None, set, fields).await;
    }

    /// [`Loop::write_back`] for a request that named the Coda row it came from.
    async fn write_back_from(&mut self, appointment: &str, row_id: Option<String>, set: &str, fields: &[&str]) {
        let tx = self.pg.transaction().await.unwrap();
        set_actor(&tx, Actor::CodaWriteback).await.unwrap();
        let sql = format!("UPDATE intake_checklists SET {set}, updated_at = now() WHERE appointment_id = $1");
        assert_eq!(tx.execute(&sql, &[&appointment]).await.unwrap(), 1);
        let notice = Notice { coda_row_id: row_id, ..notice(appointment, fields) };
        emit(&tx, EDIT_PREFIX, &notice).await.unwrap();
        tx.commit().await.unwrap();
    }

    /// What the endpoint commits for a refused edit: the refresh notice alone.
    async fn refused(&mut self, appointment: &str) {
        let tx = self.pg.transaction().await.unwrap();
        set_actor(&tx, Actor::CodaWriteback).await.unwrap();
        emit(&tx, REFRESH_PREFIX, &notice(appointment, &[])).await.unwrap();
        tx.commit().await.unwrap();
    }

    async fn assert_coda_equals_the_views(&self) {
        let client = coda_client(&self.db, &self.emulator, 10);
        let comparison = compare_with(&client, &self.mapping, &self.db.config()).await.unwrap();
        assert!(comparison.differences.is_empty(), "Coda differs: {:?}", comparison.differences);
        assert!(comparison.rows > 0);
    }

    fn writes(&self) -> (u64, u64) {
        (self.stats.writes_to(INTAKE), self.stats.writes_to(SCHED))
    }
}

fn notice(appointment: &str, fields: &[&str]) -> Notice {
    Notice {
        target: "intake".into(),
        key: appointment.into(),
        coda_row_id: None,
        fields: fields.iter().map(|f| f.to_string()).collect(),
    }
}

#[tokio::test]
async fn a_staff_edit_coda_shows_costs_no_write_to_its_table_and_one_to_the_views_it_shows_in() {
    let mut live = Loop::start("sink_echo", 2).await;
    assert_eq!(live.coda_cell("A-1", "c-status"), Some(json!("not_started")), "the initial copy landed");
    let before = live.writes();

    live.staff_set("A-1", "c-status", json!("in_progress")).await;
    let row_id = live.staff.find_rows("doc-echo", "grid-intake", "c-appt", &json!("A-1")).await.unwrap().pop();
    live.write_back_from("A-1", row_id, "status = 'in_progress'", &["status"]).await;
    live.caught_up().await;

    let after = live.writes();
    assert_eq!(after.0 - before.0, 0, "no August write to the edited table");
    assert_eq!(after.1 - before.1, 1, "one write carries the derived scheduling row");
    assert_eq!(live.stats.echoes_avoided.load(Ordering::Relaxed), 1);
    let sched = live.emulator.rows("doc-echo", "grid-sched");
    let row = sched.iter().find(|r| r["c-appt"] == json!("A-1")).unwrap();
    assert_eq!(row["c-intake-status"], json!("in_progress"));

    // The ledger holds the new content.
    let views = reference::compute(&reference::read_live_tables(&live.db.config()).await.unwrap());
    let expected = expected_rows(&live.mapping.tables[0], &views);
    let hash: String = live
        .pg
        .query_one("SELECT content_hash FROM coda_sync_state WHERE view = $1 AND row_key = 'A-1'", &[&INTAKE])
        .await
        .unwrap()
        .get(0);
    assert_eq!(hash, cells::hash(&expected["A-1"]));
    live.assert_coda_equals_the_views().await;
}

#[tokio::test]
async fn an_edit_notice_for_a_row_coda_does_not_show_is_still_written() {
    let mut live = Loop::start("sink_echo_unseen", 1).await;
    let before = live.writes();
    // The edit reached Postgres, but Coda does not show it (say, another staff member's
    // edit overtook it there).
    live.write_back("A-1", "status = 'in_progress'", &["status"]).await;
    live.caught_up().await;
    let after = live.writes();
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 1), "both tables written");
    assert_eq!(live.stats.echoes_avoided.load(Ordering::Relaxed), 0, "no false skip");
    assert!(live.stats.verifies.load(Ordering::Relaxed) >= 1, "the row was read back first");
    assert_eq!(live.coda_cell("A-1", "c-status"), Some(json!("in_progress")));
    live.assert_coda_equals_the_views().await;
}

#[tokio::test]
async fn a_refused_edit_coda_shows_is_corrected_from_postgres() {
    let mut live = Loop::start("sink_echo_refresh", 1).await;
    let before = live.writes();
    live.staff_set("A-1", "c-status", json!("finished-ish")).await; // Postgres refuses it
    live.refused("A-1").await;
    live.caught_up().await;
    assert_eq!(live.coda_cell("A-1", "c-status"), Some(json!("not_started")), "corrected from Postgres");
    let after = live.writes();
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 0), "one write, to the edited table only");
    live.assert_coda_equals_the_views().await;
}

/// Seeded by `AUGUST_RACE_SEED`.
fn race_seed() -> u64 {
    std::env::var("AUGUST_RACE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(13)
}

#[tokio::test]
async fn staff_edits_racing_august_side_changes_end_with_coda_equal_to_the_views() {
    let seed = race_seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut live = Loop::start("sink_echo_race", 3).await;
    const STATUSES: [&str; 3] = ["not_started", "in_progress", "blocked"];
    for round in 0..100 {
        let appointment = format!("A-{}", rng.random_range(1..=3));
        match rng.random_range(0..5) {
            0 | 1 => {
                // A staff edit of the status, accepted.
                let status = STATUSES[rng.random_range(0..STATUSES.len())];
                live.staff_race(&appointment, "c-status", json!(status)).await;
                live.write_back(&appointment, &format!("status = '{status}'"), &["status"]).await;
            }
            2 => {
                // A staff edit Postgres refuses: Coda shows it until corrected.
                live.staff_race(&appointment, "c-status", json!(format!("refused-{round}"))).await;
                live.refused(&appointment).await;
            }
            3 => {
                // DrChrono moves the appointment: both views change.
                let minute = rng.random_range(0..60);
                live.pg
                    .execute(
                        &format!(
                            "UPDATE appointments SET scheduled_time = '2026-03-02 10:{minute:02}' WHERE drchrono_id = $1"
                        ),
                        &[&appointment],
                    )
                    .await
                    .unwrap();
            }
            _ => {
                // Another August-side change to the same checklist row.
                let tx = live.pg.transaction().await.unwrap();
                set_actor(&tx, Actor::Demo).await.unwrap();
                tx.execute(
                    "UPDATE intake_checklists SET insurance_verified = NOT insurance_verified WHERE appointment_id = $1",
                    &[&appointment],
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
        }
        if rng.random_range(0..10) == 0 {
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..200))).await;
        }
    }
    // Last, a staff edit of each row, accepted or refused: nothing August-side comes after to
    // mend what the guard gets wrong.
    live.caught_up().await;
    for i in 1..=3 {
        let appointment = format!("A-{i}");
        if rng.random_bool(0.5) {
            live.staff_set(&appointment, "c-status", json!("in_progress")).await;
            live.write_back(&appointment, "status = 'in_progress'", &["status"]).await;
        } else {
            live.staff_set(&appointment, "c-status", json!("refused-last")).await;
            live.refused(&appointment).await;
        }
    }
    live.caught_up().await;
    live.assert_coda_equals_the_views().await;
    eprintln!(
        "race seed {seed}: {} writes, {} echoes avoided, {} verifies",
        live.stats.writes.load(Ordering::Relaxed),
        live.stats.echoes_avoided.load(Ordering::Relaxed),
        live.stats.verifies.load(Ordering::Relaxed)
    );
}

/// A `patient_intake` row with this status.
fn intake(appointment: &str, status: &str) -> august_dataflow::ViewUpdate {
    let spec = august_dataflow::views::find(INTAKE).unwrap();
    let mut row = vec![august_cdc::Value::Null; spec.columns.len()];
    let col = |name: &str| spec.columns.iter().position(|c| *c == name).unwrap();
    row[col("appointment_id")] = august_cdc::Value::Text(appointment.into());
    row[col("intake_status")] = august_cdc::Value::Text(status.into());
    august_dataflow::ViewUpdate { view: INTAKE, key: august_cdc::Value::Text(appointment.into()), row: Some(row) }
}

#[tokio::test]
async fn an_edit_notice_marks_only_the_rows_update_in_its_own_transaction() {
    use august_cdc::{NoticeKind, WalNotice};
    use august_dataflow::Output;
    let db = august_testkit::fresh_db("sink_echo_marks").await;
    let emulator = emulator_for(MAPPING, EmulatorConfig::default()).await;
    let mut h = crate::coda_sink::start_with(&db, emulator, MAPPING, fast());
    h.send(10, vec![intake("A-1", "not_started"), intake("A-2", "not_started")]);
    h.durable_past(10).await;
    let edit = |key: &str| WalNotice { kind: NoticeKind::Edit, notice: notice(key, &["status"]) };
    // A-1's edit changed no view row: the mark lapses when the frontier passes it.
    h.output.try_send(Output::Notices { lsn: Lsn(20), notices: vec![edit("A-1")] }).unwrap();
    h.send(20, vec![intake("A-2", "blocked")]);
    h.send(30, vec![intake("A-1", "in_progress")]);
    h.durable_past(30).await;
    assert_eq!(h.stats.verifies.load(Ordering::Relaxed), 0, "no read-back for a lapsed mark");
    // Marked in its own transaction: read back first, then written, since Coda lacks it.
    h.output.try_send(Output::Notices { lsn: Lsn(40), notices: vec![edit("A-2")] }).unwrap();
    h.send(40, vec![intake("A-2", "in_progress")]);
    h.durable_past(40).await;
    assert_eq!(h.stats.verifies.load(Ordering::Relaxed), 1);
    assert_eq!(h.stats.echoes_avoided.load(Ordering::Relaxed), 0);
    let rows = h.emulator.rows("doc-echo", "grid-intake");
    let status = |key: &str| rows.iter().find(|r| r["c-appt"] == json!(key)).map(|r| r["c-status"].clone());
    assert_eq!((status("A-1"), status("A-2")), (Some(json!("in_progress")), Some(json!("in_progress"))));
}
