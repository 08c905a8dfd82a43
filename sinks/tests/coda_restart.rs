//! The Coda sink across restarts: writes a killed run left unconfirmed are settled against
//! Coda (not sent again when they landed, sent when they did not), rows deleted while August
//! was down leave Coda too, and each durable row reports its commit-to-durable latency.

use std::sync::atomic::Ordering;
use std::time::Duration;

use august_cdc::Value;
use august_dataflow::ViewUpdate;
use august_emulators::coda::{Emulator, EmulatorConfig};
use august_sinks::coda::cells::{hash, CellSources};
use august_sinks::coda::mapping::Mapping;

use crate::coda_sink::{client, emulator, fast, provider, start, upsert, MAPPING};

/// Runs a writer over `updates` (as the initial copy) until durable, then stops it.
async fn run_once(db: &august_testkit::TestDb, emulator: &Emulator, updates: Vec<ViewUpdate>) {
    let mut h = start(db, emulator.clone(), fast());
    h.send(10, updates);
    h.durable_past(10).await;
    drop(h.output);
    h.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn writes_a_killed_run_left_unconfirmed_are_settled_not_sent_again() {
    let db = august_testkit::fresh_db("coda_settle").await;
    let emulator = emulator(EmulatorConfig::default()).await;
    run_once(&db, &emulator, (0..5).map(|i| upsert(i, "A")).collect()).await;

    // What a run killed mid-write leaves: rows 0 and 1 sent as "B" and applied by Coda, row 2
    // sent as "C" but never applied; the ledger still says "A" for all three.
    let mapping = Mapping::parse(MAPPING, "test").unwrap();
    let sources = CellSources::of(&mapping.tables[0]);
    let cells = |id: i64, name: &str| sources.cells(&provider(id, name));
    let coda = client(&db, &emulator, Duration::from_secs(2));
    coda.write_slot().await;
    coda.upsert_rows("doc-test", "grid-providers", &[cells(0, "B"), cells(1, "B")], &["c-id".into()]).await.unwrap();
    let intents = [("0", hash(&cells(0, "B"))), ("1", hash(&cells(1, "B"))), ("2", hash(&cells(2, "C")))];
    let client = db.client().await;
    for (key, content) in &intents {
        client
            .execute(
                "INSERT INTO coda_pending_writes (view, row_key, content_hash) VALUES ('providers', $1, $2)",
                &[key, content],
            )
            .await
            .unwrap();
    }
    let writes_before = emulator.stats().writes.load(Ordering::Relaxed);

    // The restart's copy: what Postgres holds now.
    let mut h = start(&db, emulator.clone(), fast());
    h.send(10, vec![upsert(0, "B"), upsert(1, "B"), upsert(2, "C"), upsert(3, "A"), upsert(4, "A")]);
    h.durable_past(10).await;
    assert_eq!(h.stats.settled.load(Ordering::Relaxed), 3);
    assert_eq!(emulator.stats().writes.load(Ordering::Relaxed) - writes_before, 1, "one write: row 2 alone");
    assert_eq!(h.stats.rows_written.load(Ordering::Relaxed), 1);
    assert_eq!(emulator.unchanged_rows(), 0, "Coda never received content it already held");
    let rows = h.coda_rows();
    assert_eq!((rows["0"].as_str(), rows["1"].as_str(), rows["2"].as_str(), rows["3"].as_str()), ("B", "B", "C", "A"));
    assert_eq!(db.count("SELECT count(*) FROM coda_pending_writes").await, 0, "every intent settled");
    let disclosed =
        |key: &str| format!("SELECT count(*) FROM coda_disclosures WHERE row_key = '{key}' AND operation = 'upsert'");
    assert_eq!(db.count(&disclosed("0")).await, 2, "the first run's write, and the killed run's found in Coda");
    assert_eq!(db.count(&disclosed("2")).await, 2, "the killed run's write did not land: only its resend counts");
    assert_eq!(db.count(&disclosed("3")).await, 1);
}

#[tokio::test]
async fn a_row_deleted_while_august_was_down_leaves_coda_after_the_copy() {
    let db = august_testkit::fresh_db("coda_copy_deletes").await;
    let emulator = emulator(EmulatorConfig::default()).await;
    run_once(&db, &emulator, (0..5).map(|i| upsert(i, "Row")).collect()).await;
    // Rows 3 and 4 were deleted in Postgres while nothing ran: the next copy lacks them.
    run_once(&db, &emulator, (0..3).map(|i| upsert(i, "Row")).collect()).await;
    let rows = emulator.rows("doc-test", "grid-providers");
    let ids: Vec<String> = rows.iter().map(|r| r["c-id"].to_string()).collect();
    assert_eq!(ids, ["0", "1", "2"]);
    assert_eq!(db.count("SELECT count(*) FROM coda_sync_state").await, 3);
    assert_eq!(emulator.unchanged_rows(), 0);
}

#[tokio::test]
async fn each_durable_row_records_its_commit_to_durable_latency() {
    let db = august_testkit::fresh_db("coda_latency").await;
    let emulator = emulator(EmulatorConfig::default()).await;
    let mut h = start(&db, emulator, fast());
    h.send(10, vec![upsert(1, "Copy")]); // the copy has no commit time: no latency
    h.durable_past(10).await;
    assert_eq!(h.stats.recent_latency(0.5), None);
    let committed = chrono::Utc::now() - chrono::Duration::seconds(2);
    let update = ViewUpdate { view: "providers", key: Value::Int(2), row: Some(provider(2, "Live")) };
    h.send_committed(20, Some(committed), vec![update]);
    h.durable_past(20).await;
    let latency = h.stats.recent_latency(0.5).expect("one latency recorded");
    assert!((2_000..10_000).contains(&latency), "{latency} ms from commit to durable");
    assert_eq!(h.stats.rows_durable.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_refused_row_is_dead_lettered_once_not_resent_after_a_restart_and_replay_sends_it_again() {
    let db = august_testkit::fresh_db("coda_dead_letter_once").await;
    let emulator = emulator(EmulatorConfig::default()).await;
    emulator.reject_value(serde_json::json!("Refused"));
    let rows = || (0..6).map(|i| upsert(i, if i == 3 { "Refused" } else { "Fine" })).collect::<Vec<_>>();
    run_once(&db, &emulator, rows()).await;
    let open = "SELECT count(*) FROM sink_dead_letters WHERE resolved_at IS NULL";
    assert_eq!(db.count(open).await, 1);

    // A restart copies the same rows: the refused content is not sent again, nor recorded twice.
    let upserted = emulator.stats().rows_upserted.load(Ordering::Relaxed);
    run_once(&db, &emulator, rows()).await;
    assert_eq!(emulator.stats().rows_upserted.load(Ordering::Relaxed), upserted, "no write at all");
    assert_eq!(db.count("SELECT count(*) FROM sink_dead_letters").await, 1);

    // Replayed (once Coda would take it), the next start sends it; closed letters are purged.
    emulator.reject_value(serde_json::json!("never sent"));
    let mut client = db.client().await;
    assert_eq!(august_sinks::coda::dead_letters::replay(&mut client, Some("providers"), &[]).await.unwrap(), 1);
    run_once(&db, &emulator, rows()).await;
    let landed =
        emulator.rows("doc-test", "grid-providers").into_iter().any(|r| r["c-id"] == 3 && r["c-last"] == "Refused");
    assert!(landed, "the replayed row landed");
    assert_eq!(db.count("SELECT count(*) FROM sink_dead_letters").await, 0, "the closed letter was purged");
}

#[tokio::test]
async fn a_confirmation_recorded_twice_discloses_once() {
    use august_sinks::coda::ledger::{self, Confirmed};
    let db = august_testkit::fresh_db("coda_disclose_once").await;
    let mut client = db.client().await;
    let mapping = Mapping::parse(MAPPING, "test").unwrap();
    ledger::intend(&client, "providers", &[("7", Some("h7"))]).await.unwrap();
    let confirmed =
        [Confirmed::Written { view: "providers".into(), key: "7".into(), hash: "h7".into(), lsn: august_cdc::Lsn(42) }];
    // As when a commit's answer is lost and the confirmer records the same write again.
    for _ in 0..2 {
        ledger::record(&mut client, &confirmed, Some((&mapping, "req-7"))).await.unwrap();
    }
    assert_eq!(db.count("SELECT count(*) FROM coda_disclosures WHERE row_key = '7' AND request_id = 'req-7'").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM coda_sync_state WHERE row_key = '7' AND content_hash = 'h7'").await, 1);
}
