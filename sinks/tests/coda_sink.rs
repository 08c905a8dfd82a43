//! The Coda sink against the emulator over HTTP, with a real Postgres for the ledger, the
//! dead letters and the access log. Quotas are scaled to 10 writes per 2 s so the tests run
//! in seconds; the client's limiter is set to the same quota.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use august_cdc::{Lsn, Value};
use august_dataflow::tables::table;
use august_dataflow::{Output, ViewUpdate};
use august_emulators::coda::{Doc, Emulator, EmulatorConfig, Faults, TableSpec};
use august_schema::access_log::AccessLog;
use august_schema::Secret;
use august_sinks::coda::check_mapping;
use august_sinks::coda::client::{CodaClient, CodaSettings};
use august_sinks::coda::mapping::Mapping;
use august_sinks::coda::writer::{write_to_coda, WriterConfig, WriterStats};
use tokio::sync::{mpsc, watch};

pub const MAPPING: &str = r#"
doc_id = "doc-test"
[[tables]]
allow = ["direct", "clinical", "identifier", "operational"]
view = "providers"
table_id = "grid-providers"
key = "drchrono_id"
on_delete = "delete"
[tables.columns]
drchrono_id = "c-id"
last_name = "c-last"
specialty = "c-specialty"
"#;

pub const WINDOW: Duration = Duration::from_secs(2);

pub fn provider(id: i64, last_name: &str) -> Vec<Value> {
    let spec = table("providers").unwrap();
    let mut row = vec![Value::Null; spec.columns.len()];
    row[spec.col("drchrono_id")] = Value::Int(id);
    row[spec.col("last_name")] = Value::Text(last_name.into());
    row[spec.col("specialty")] = Value::Text("Psychiatry".into());
    row
}

pub fn upsert(id: i64, last_name: &str) -> ViewUpdate {
    ViewUpdate { view: "providers", key: Value::Int(id), row: Some(provider(id, last_name)) }
}

pub struct Harness {
    pub emulator: Emulator,
    pub output: mpsc::Sender<Output>,
    pub durable: watch::Receiver<Lsn>,
    pub stats: Arc<WriterStats>,
    pub task: tokio::task::JoinHandle<Result<(), august_sinks::SinkError>>,
}

/// An emulator serving the doc, tables and columns [`MAPPING`] names.
pub async fn emulator(config: EmulatorConfig) -> Emulator {
    emulator_for(MAPPING, config).await
}

/// An emulator serving the doc, tables and columns a mapping names.
pub async fn emulator_for(mapping: &str, config: EmulatorConfig) -> Emulator {
    let mapping = Mapping::parse(mapping, "test").unwrap();
    let tables = mapping.tables.iter().map(|t| TableSpec::new(&t.table_id, &t.view, t.columns.values()));
    let doc = Doc::new(&mapping.doc_id, tables);
    august_emulators::coda::serve("127.0.0.1:0".parse().unwrap(), doc, EmulatorConfig { window: WINDOW, ..config })
        .await
        .unwrap()
}

pub fn client(db: &august_testkit::TestDb, emulator: &Emulator, timeout: Duration) -> CodaClient {
    let settings = CodaSettings {
        base: emulator.base_url(),
        token: Secret::new("emulator-token".into()),
        writes: (10, WINDOW),
        reads: (100, WINDOW),
        timeout,
    };
    CodaClient::new(settings, AccessLog::start("coda", august_schema::Actor::CodaSink, db.config())).unwrap()
}

pub fn start(db: &august_testkit::TestDb, emulator: Emulator, config: WriterConfig) -> Harness {
    start_with(db, emulator, MAPPING, config)
}

/// A writer of the tables `mapping` names.
pub fn start_with(db: &august_testkit::TestDb, emulator: Emulator, mapping: &str, config: WriterConfig) -> Harness {
    let (output, rx) = mpsc::channel(1 << 16);
    let (durable_tx, durable) = watch::channel(Lsn::ZERO);
    let stats = Arc::new(WriterStats::default());
    let mapping = Mapping::parse(mapping, "test").unwrap();
    let client = client(db, &emulator, Duration::from_secs(2));
    let task = tokio::spawn(write_to_coda(db.config(), client, mapping, config, rx, durable_tx, stats.clone()));
    Harness { emulator, output, durable, stats, task }
}

pub fn fast() -> WriterConfig {
    WriterConfig {
        poll: Duration::from_millis(20),
        backoff: (Duration::from_millis(50), Duration::from_millis(500)),
        ..WriterConfig::default()
    }
}

impl Harness {
    pub fn send(&self, lsn: u64, updates: Vec<ViewUpdate>) {
        self.send_committed(lsn, None, updates);
    }

    /// Sends updates that committed at `commit_time`, then the frontier past them.
    pub fn send_committed(
        &self,
        lsn: u64,
        commit_time: Option<chrono::DateTime<chrono::Utc>>,
        updates: Vec<ViewUpdate>,
    ) {
        self.output
            .try_send(Output::Updates { lsn: Lsn(lsn), commit_time, updates })
            .expect("room in the test channel");
        self.output.try_send(Output::Frontier(Lsn(lsn + 1))).expect("room in the test channel");
    }

    pub async fn durable_past(&mut self, lsn: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while *self.durable.borrow_and_update() <= Lsn(lsn) {
            assert!(Instant::now() < deadline, "durable stuck at {}", *self.durable.borrow());
            let _ = tokio::time::timeout(Duration::from_millis(200), self.durable.changed()).await;
        }
    }

    pub fn coda_rows(&self) -> BTreeMap<String, String> {
        self.emulator
            .rows("doc-test", "grid-providers")
            .into_iter()
            .map(|r| (r["c-id"].to_string(), r["c-last"].as_str().unwrap_or_default().to_string()))
            .collect()
    }
}

#[tokio::test]
async fn a_backlog_goes_in_full_batches_and_many_updates_to_one_key_in_one_write() {
    let db = august_testkit::fresh_db("coda_batches").await;
    let mut h = start(&db, emulator(EmulatorConfig::default()).await, fast());
    h.send(10, (0..1200).map(|i| upsert(i, "Initial")).collect());
    h.durable_past(10).await;
    assert_eq!(*h.emulator.stats().batch_sizes.lock().unwrap(), [500, 500, 200]);

    // 1,000 updates to one key before a write slot opens: one row written.
    let before = h.stats.rows_written.load(Ordering::Relaxed);
    for n in 0..1000 {
        h.output
            .try_send(Output::Updates {
                lsn: Lsn(100 + n),
                commit_time: None,
                updates: vec![upsert(7, &format!("Name {n}"))],
            })
            .expect("room in the test channel");
    }
    h.output.try_send(Output::Frontier(Lsn(1100))).expect("room in the test channel");
    h.durable_past(1099).await;
    assert_eq!(h.stats.rows_written.load(Ordering::Relaxed) - before, 1);
    assert_eq!(h.coda_rows()["7"], "Name 999");
    assert_eq!(h.emulator.stats().throttled.load(Ordering::Relaxed), 0);
    let logged = db.count("SELECT count(*) FROM access_log WHERE service = 'coda' AND method = 'POST'").await;
    assert!(logged >= 4, "every call is in access_log ({logged})");
}

#[tokio::test]
async fn a_sustained_backlog_never_draws_a_429() {
    let db = august_testkit::fresh_db("coda_quota").await;
    let config = WriterConfig { max_rows: 10, ..fast() };
    let mut h = start(&db, emulator(EmulatorConfig::default()).await, config);
    for round in 0..5u64 {
        h.send(10 + round, (0..60).map(|i| upsert(i as i64 + round as i64 * 1000, "Row")).collect());
    }
    h.durable_past(14).await;
    assert!(h.emulator.stats().writes.load(Ordering::Relaxed) >= 30);
    assert_eq!(h.emulator.stats().throttled.load(Ordering::Relaxed), 0, "the limiter is exact");
    assert_eq!(h.coda_rows().len(), 300);
}

#[tokio::test]
async fn injected_errors_and_timeouts_lose_nothing() {
    let db = august_testkit::fresh_db("coda_faults").await;
    let faults = Faults { error_rate: 0.3, timeout: Duration::from_secs(3), ..Faults::default() };
    let emulator = emulator(EmulatorConfig { faults, ..EmulatorConfig::default() }).await;
    let mut h = start(&db, emulator, WriterConfig { max_rows: 20, ..fast() });
    h.send(10, (0..200).map(|i| upsert(i, "Before")).collect());
    h.send(20, (0..200).step_by(2).map(|i| upsert(i, "After")).collect());
    h.durable_past(20).await;
    let rows = h.coda_rows();
    assert_eq!(rows.len(), 200);
    assert!((0..200).all(|i| rows[&i.to_string()] == if i % 2 == 0 { "After" } else { "Before" }));
    assert!(h.emulator.stats().faults.load(Ordering::Relaxed) > 0 && h.stats.retries.load(Ordering::Relaxed) > 0);
}

#[tokio::test]
async fn a_refused_row_is_dead_lettered_alone() {
    let db = august_testkit::fresh_db("coda_dead_letter").await;
    let emulator = emulator(EmulatorConfig::default()).await;
    emulator.reject_value(serde_json::json!("Refused"));
    let mut h = start(&db, emulator, fast());
    let mut updates: Vec<ViewUpdate> = (0..20).map(|i| upsert(i, "Fine")).collect();
    updates[13] = upsert(13, "Refused");
    h.send(10, updates);
    h.durable_past(10).await;
    let rows = h.coda_rows();
    assert_eq!(rows.len(), 19);
    assert!(!rows.contains_key("13"));
    let dead = db.client().await.query("SELECT row_key, status_code, view FROM sink_dead_letters", &[]).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].get::<_, String>(0), dead[0].get::<_, i32>(1), dead[0].get::<_, String>(2)),
        ("13".to_string(), 400, "providers".to_string())
    );
}

#[tokio::test]
async fn deletes_reach_coda() {
    let db = august_testkit::fresh_db("coda_deletes").await;
    let mut h = start(&db, emulator(EmulatorConfig::default()).await, fast());
    h.send(10, (0..30).map(|i| upsert(i, "Row")).collect());
    h.durable_past(10).await;
    h.send(20, (0..10).map(|i| ViewUpdate { view: "providers", key: Value::Int(i), row: None }).collect());
    h.durable_past(20).await;
    let rows = h.coda_rows();
    assert_eq!(rows.len(), 20);
    assert!(!rows.contains_key("3") && rows.contains_key("10"));
    assert_eq!(h.emulator.stats().rows_deleted.load(Ordering::Relaxed), 10, "one batched delete");
    let ledger = db.count("SELECT count(*) FROM coda_sync_state").await;
    assert_eq!(ledger, 20);

    // The accounting of disclosures: each row's cells once (with the classes its mapped
    // columns carry and Coda's request id), then each deleted row's delete (no classes).
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT operation, doc_id, coda_table, array_to_string(classes, ' '), count(*), count(request_id), count(lsn)
               FROM coda_disclosures GROUP BY 1, 2, 3, 4 ORDER BY 1 DESC",
            &[],
        )
        .await
        .unwrap();
    let seen: Vec<(String, String, String, String, i64, i64, i64)> =
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6))).collect();
    let mapping = Mapping::parse(MAPPING, "test").unwrap();
    let carried: Vec<&str> = mapping.tables[0].carried().iter().map(|(c, _)| c.name()).collect();
    let (doc, table) = ("doc-test".to_string(), "grid-providers".to_string());
    assert_eq!(
        seen,
        [
            ("upsert".into(), doc.clone(), table.clone(), carried.join(" "), 30, 30, 30),
            ("delete".into(), doc, table, String::new(), 10, 10, 0),
        ]
    );
    assert!(carried.contains(&"identifier"), "{carried:?}");
    let refused = client.execute("DELETE FROM coda_disclosures", &[]).await.unwrap_err();
    let refused = refused.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
    assert_eq!(refused, "coda_disclosures is append-only");
}

#[tokio::test]
async fn a_restart_with_ten_thousand_unchanged_rows_costs_zero_writes() {
    let db = august_testkit::fresh_db("coda_restart").await;
    let emulator = emulator(EmulatorConfig::default()).await;
    let mut first = start(&db, emulator.clone(), fast());
    first.send(10, (0..10_000).map(|i| upsert(i, "Same")).collect());
    first.durable_past(10).await;
    drop(first.output);
    first.task.await.unwrap().unwrap();
    let writes_before = emulator.stats().writes.load(Ordering::Relaxed);

    let mut second = start(&db, emulator.clone(), fast());
    second.send(10, (0..10_000).map(|i| upsert(i, "Same")).collect());
    second.durable_past(10).await;
    assert_eq!(emulator.stats().writes.load(Ordering::Relaxed), writes_before, "no write for rows Coda holds");
    assert_eq!(second.stats.skipped.load(Ordering::Relaxed), 10_000);
}

#[tokio::test]
async fn the_durable_lsn_waits_for_the_mutation_to_complete() {
    let db = august_testkit::fresh_db("coda_durable").await;
    let faults = Faults { mutation_delay: Duration::from_millis(800), ..Faults::default() };
    let mut h = start(&db, emulator(EmulatorConfig { faults, ..EmulatorConfig::default() }).await, fast());
    h.send(10, vec![upsert(1, "Slow")]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(*h.durable.borrow() <= Lsn(10), "not durable before Coda applied it");
    h.durable_past(10).await;
    assert_eq!(h.coda_rows()["1"], "Slow");
}

#[tokio::test]
async fn a_mapped_column_coda_lacks_stops_start_up_naming_it() {
    let db = august_testkit::fresh_db("coda_check").await;
    let emulator = emulator(EmulatorConfig::default()).await;
    let client = client(&db, &emulator, Duration::from_secs(2));
    let good = Mapping::parse(MAPPING, "test").unwrap();
    check_mapping(&client, &good).await.unwrap();
    let missing = Mapping::parse(&MAPPING.replace("c-specialty", "c-nope"), "test").unwrap();
    let err = check_mapping(&client, &missing).await.unwrap_err().to_string();
    assert!(err.contains("c-nope") && err.contains("grid-providers") && err.contains("specialty"), "{err}");
    let no_table =
        Mapping::parse(&MAPPING.replace("table_id = \"grid-providers\"", "table_id = \"grid-gone\""), "test").unwrap();
    let err = check_mapping(&client, &no_table).await.unwrap_err().to_string();
    assert!(err.contains("grid-gone"), "{err}");
    assert_eq!(emulator.stats().writes.load(Ordering::Relaxed), 0, "no row sent");
}

#[tokio::test]
async fn deletes_that_look_rows_up_first_still_never_draw_a_429() {
    // Every delete looks its rows up (upserts leave no Coda row id), one read each; with 100 ms
    // per request, a batch of 8 deletes reads for most of a second. Those reads must not eat
    // into the write the quota allowed: the write slot is taken when the request leaves.
    let db = august_testkit::fresh_db("coda_quota_deletes").await;
    let faults = Faults { latency: Duration::from_millis(100), ..Faults::default() };
    let emulator = emulator(EmulatorConfig { faults, ..EmulatorConfig::default() }).await;
    let mut h = start(&db, emulator, WriterConfig { max_rows: 8, ..fast() });
    h.send(10, (0..64).map(|i| upsert(i, "Row")).collect());
    h.durable_past(10).await;
    for round in 0..8i64 {
        let deletes =
            (round * 8..round * 8 + 8).map(|i| ViewUpdate { view: "providers", key: Value::Int(i), row: None });
        let upserts = (0..16).map(|i| upsert(1000 + round * 16 + i, "New"));
        h.send(20 + round as u64, deletes.chain(upserts).collect());
    }
    h.durable_past(27).await;
    assert_eq!(h.coda_rows().len(), 8 * 16, "every delete and upsert landed");
    assert_eq!(h.emulator.stats().throttled.load(Ordering::Relaxed), 0, "our own pacing drew no 429");
}
