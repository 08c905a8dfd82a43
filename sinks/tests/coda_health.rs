//! One table's trouble never stops the others: a mutation that never completes is settled by
//! reading Coda after the deadline, a table whose writes keep failing is reported stalled while
//! another is written, and a table the mapping gets wrong stops alone, dead-lettering nothing.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use august_cdc::Value;
use august_dataflow::tables::table;
use august_dataflow::ViewUpdate;
use august_emulators::coda::EmulatorConfig;
use august_sinks::coda::writer::{WriterConfig, STALLED_METRIC};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

use crate::coda_sink::{emulator, emulator_for, fast, start, start_with, upsert, MAPPING};

/// [`MAPPING`] and a second table, of consent records.
fn two_tables() -> String {
    format!(
        "{MAPPING}
[[tables]]
allow = [\"direct\", \"clinical\", \"identifier\", \"operational\"]
view = \"consent_records\"
table_id = \"grid-consents\"
key = \"id\"
on_delete = \"delete\"
[tables.columns]
id = \"c-cid\"
consent_type = \"c-type\"
"
    )
}

fn consent(id: i64, kind: &str) -> ViewUpdate {
    let spec = table("consent_records").unwrap();
    let mut row = vec![Value::Null; spec.columns.len()];
    row[spec.col("id")] = Value::Int(id);
    row[spec.col("consent_type")] = Value::Text(kind.into());
    ViewUpdate { view: "consent_records", key: Value::Int(id), row: Some(row) }
}

/// Waits (up to 60 s) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The stalled gauge of `view`, as recorded by this test's own recorder.
fn stalled(snapshotter: &Snapshotter, view: &str) -> Option<f64> {
    snapshotter.snapshot().into_vec().into_iter().find_map(|(key, _, _, value)| {
        let key = key.key();
        let labelled = key.labels().any(|l| l.key() == "view" && l.value() == view);
        match value {
            DebugValue::Gauge(v) if key.name() == STALLED_METRIC && labelled => Some(v.into_inner()),
            _ => None,
        }
    })
}

#[tokio::test]
async fn a_mutation_that_never_completes_is_settled_by_reading_coda_after_the_deadline() {
    let db = august_testkit::fresh_db("coda_deadline").await;
    let emulator = emulator(EmulatorConfig::default()).await;
    let config = WriterConfig { confirm_deadline: Duration::from_secs(1), ..fast() };
    let mut h = start(&db, emulator.clone(), config);

    // Applied, but its status never says so: settled as landed, not sent again.
    emulator.stick_mutations(1, true);
    h.send(10, vec![upsert(1, "Applied")]);
    h.durable_past(10).await;
    assert_eq!(h.coda_rows()["1"], "Applied");
    assert_eq!(emulator.stats().writes.load(Ordering::Relaxed), 1, "the landed write is not sent again");
    assert_eq!(db.count("SELECT count(*) FROM coda_sync_state WHERE row_key = '1'").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM coda_pending_writes").await, 0);

    // Never applied and never completed: settled as missing, sent again, and it lands.
    emulator.stick_mutations(1, false);
    h.send(20, vec![upsert(2, "Lost once")]);
    h.durable_past(20).await;
    assert_eq!(h.coda_rows()["2"], "Lost once");
    assert_eq!(emulator.stats().writes.load(Ordering::Relaxed), 3, "the lost write went again, once");
    assert_eq!(db.count("SELECT count(*) FROM coda_pending_writes").await, 0);
    assert_eq!(h.stats.rows_durable.load(Ordering::Relaxed), 2);
    let disclosed =
        "SELECT count(*) FROM coda_disclosures WHERE request_id IS NOT NULL GROUP BY row_key ORDER BY row_key";
    let per_row: Vec<i64> = db.client().await.query(disclosed, &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(per_row, [1, 1], "the settled write is a disclosure; the lost one is not, its resend is");
}

#[tokio::test]
async fn a_table_whose_writes_keep_failing_is_reported_stalled_while_another_is_written() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder); // this test's thread only
    let db = august_testkit::fresh_db("coda_stalled").await;
    let mapping = two_tables();
    let emulator = emulator_for(&mapping, EmulatorConfig::default()).await;
    emulator.fail_writes_to(Some("grid-consents"));
    let config = WriterConfig { stall_attempts: 3, ..fast() };
    let mut h = start_with(&db, emulator.clone(), &mapping, config);
    h.send(10, (0..5).map(|i| consent(i, "Telehealth")).chain((0..5).map(|i| upsert(i, "First"))).collect());
    until("the consents table is reported stalled", || stalled(&snapshotter, "consent_records") == Some(1.0)).await;

    // The other table goes on: rows sent after the stall land.
    h.send(20, (100..110).map(|i| upsert(i, "Later")).collect());
    until("later provider rows land", || h.coda_rows().len() == 15).await;
    assert_ne!(stalled(&snapshotter, "providers"), Some(1.0));
    assert!(emulator.rows("doc-test", "grid-consents").is_empty());
    assert!(*h.durable.borrow() <= august_cdc::Lsn(10), "the stalled rows hold the durable LSN back");

    // Once its writes land again the table recovers, and everything is durable.
    emulator.fail_writes_to(None);
    h.durable_past(20).await;
    assert_eq!(emulator.rows("doc-test", "grid-consents").len(), 5);
    assert_eq!(stalled(&snapshotter, "consent_records"), Some(0.0));
}

/// Runs a writer whose mapping of the consents table is `bad` (Coda serving the good one):
/// that table must stop with one error naming each of `names`, the other go on, and nothing be
/// dead-lettered.
async fn only_the_table_at_fault_stops(db_name: &str, bad: impl Fn(&str) -> String, names: &[&str]) {
    let db = august_testkit::fresh_db(db_name).await;
    let good = two_tables();
    let emulator = emulator_for(&good, EmulatorConfig::default()).await;
    let h = start_with(&db, emulator.clone(), &bad(&good), fast());
    h.send(10, (0..5).map(|i| consent(i, "Telehealth")).chain((0..5).map(|i| upsert(i, "First"))).collect());
    until("the consents table is stopped", || !h.stats.stopped.lock().unwrap().is_empty()).await;
    let stopped = h.stats.stopped.lock().unwrap().clone();
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    for part in names {
        assert!(stopped[0].contains(part), "{} names {part}", stopped[0]);
    }

    // The other table goes on, the stopped one is not tried again, nothing is dead-lettered.
    let upserted = emulator.stats().rows_upserted.load(Ordering::Relaxed);
    h.send(20, (100..110).map(|i| upsert(i, "Later")).collect());
    until("provider rows land", || h.coda_rows().len() == 15).await;
    assert_eq!(emulator.stats().rows_upserted.load(Ordering::Relaxed) - upserted, 10, "only the providers");
    assert_eq!(db.count("SELECT count(*) FROM sink_dead_letters").await, 0);
    assert_eq!(h.stats.dead_letters.load(Ordering::Relaxed), 0);
    assert!(emulator.rows("doc-test", "grid-consents").is_empty());
    assert!(*h.durable.borrow() <= august_cdc::Lsn(10), "the stopped table's rows are not lost");
}

#[tokio::test]
async fn a_mapped_column_coda_lacks_stops_only_that_table_naming_the_entry_and_dead_letters_nothing() {
    let bad = |good: &str| good.replace("consent_type = \"c-type\"", "consent_type = \"c-nope\"");
    let names = ["tables[1]", "consent_records", "consent_type", "c-nope", "grid-consents"];
    only_the_table_at_fault_stops("coda_bad_column", bad, &names).await;
}

#[tokio::test]
async fn a_mapped_table_coda_lacks_stops_only_that_table_naming_the_entry_and_dead_letters_nothing() {
    let bad = |good: &str| good.replace("table_id = \"grid-consents\"", "table_id = \"grid-gone\"");
    only_the_table_at_fault_stops("coda_bad_table", bad, &["tables[1]", "consent_records", "grid-gone"]).await;
}
