//! The write quota is exact for every kind of write: the emulator enforces Coda's real quota
//! (scaled to 10 writes per 2 s), and deletes that look their rows up first, upserts, injected
//! faults and a writer killed and restarted at once draw no 429 from our own pacing.

use std::sync::atomic::Ordering;
use std::time::Duration;

use august_cdc::Value;
use august_dataflow::ViewUpdate;
use august_emulators::coda::{EmulatorConfig, Faults};
use august_sinks::coda::client::upsert_body;
use august_sinks::coda::writer::WriterConfig;

use crate::coda_sink::{client, emulator, fast, start, upsert, Harness};

fn delete(id: i64) -> ViewUpdate {
    ViewUpdate { view: "providers", key: Value::Int(id), row: None }
}

#[tokio::test]
async fn the_emulator_answers_429_past_ten_writes_in_a_window() {
    let emulator = emulator(EmulatorConfig::default()).await;
    let http = reqwest::Client::new();
    let url = format!("{}/docs/doc-test/tables/grid-providers/rows", emulator.base_url());
    let body = upsert_body(&[vec![("c-id".into(), serde_json::json!(1))]], &["c-id".into()]);
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let response = http.post(&url).bearer_auth("emulator-token").json(&body).send().await.unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 202).count(), 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 2, "{statuses:?}");
    assert_eq!(emulator.stats().throttled.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_client_started_right_after_another_s_last_write_draws_no_429() {
    // What a restart right after a kill does: a fresh limiter knows nothing of the writes just
    // made, so its first slot opens one spacing after it starts.
    let db = august_testkit::fresh_db("coda_quota_restart").await;
    let emulator = emulator(EmulatorConfig::default()).await;
    let cells = |id: i64| vec![vec![("c-id".to_string(), serde_json::json!(id))]];
    for run in 0..2 {
        let coda = client(&db, &emulator, Duration::from_secs(2));
        for i in 0..10 {
            coda.write_slot().await;
            coda.upsert_rows("doc-test", "grid-providers", &cells(run * 10 + i), &["c-id".into()]).await.unwrap();
        }
    }
    assert_eq!(emulator.stats().writes.load(Ordering::Relaxed), 20);
    assert_eq!(emulator.stats().throttled.load(Ordering::Relaxed), 0);
}

/// Rounds of 2 deletes (of rows the ledger has no Coda id for, so each is looked up first)
/// and 4 upserts, one LSN per round from `first` + the round. With 2 rows per request and
/// 40 ms per request, a delete's look-ups take about 100 ms: more than the limiter's slack
/// (2% of the window: 40 ms) and less than a slot (204 ms), the delay that made a delete which
/// took its slot before its look-ups arrive too close to the next write.
fn churn(h: &Harness, first: u64, rounds: std::ops::Range<i64>) {
    for round in rounds {
        let deletes = (round * 2..round * 2 + 2).map(delete);
        let upserts = (0..4).map(|i| upsert(1000 + round * 4 + i, "New"));
        h.send(first + round as u64, deletes.chain(upserts).collect());
    }
}

fn paced() -> WriterConfig {
    WriterConfig { max_rows: 2, ..fast() }
}

const LATENCY: Duration = Duration::from_millis(40);

#[tokio::test]
async fn deletes_whose_look_ups_take_less_than_a_slot_draw_no_429() {
    let db = august_testkit::fresh_db("coda_quota_lookups").await;
    let faults = Faults { latency: LATENCY, ..Faults::default() };
    let emulator = emulator(EmulatorConfig { faults, ..EmulatorConfig::default() }).await;
    let mut h = start(&db, emulator.clone(), paced());
    h.send(10, (0..32).map(|i| upsert(i, "Row")).collect());
    h.durable_past(10).await;
    churn(&h, 20, 0..16);
    h.durable_past(35).await;
    assert_eq!(h.coda_rows().len(), 64, "every delete and upsert landed");
    assert_eq!(emulator.stats().rows_deleted.load(Ordering::Relaxed), 32);
    assert_eq!(emulator.stats().throttled.load(Ordering::Relaxed), 0, "our own pacing drew no 429");
}

#[tokio::test]
async fn deletes_upserts_faults_and_a_killed_writer_draw_no_429_from_our_pacing() {
    let db = august_testkit::fresh_db("coda_quota_exact").await;
    let faults = Faults {
        error_rate: 0.2,
        timeout: Duration::from_millis(300), // a slow 503 (the client waits 2 s)
        latency: LATENCY,
        ..Faults::default()
    };
    let emulator = emulator(EmulatorConfig { faults, ..EmulatorConfig::default() }).await;
    let mut first = start(&db, emulator.clone(), paced());
    first.send(10, (0..12).map(|i| upsert(i, "Row")).collect());
    first.durable_past(10).await;
    churn(&first, 20, 0..3);
    // Killed mid-flow, right after a write, and restarted at once with a fresh client (and so
    // a fresh limiter): the new run's first write must not bunch onto the killed run's last.
    let writes = emulator.stats().writes.load(Ordering::Relaxed);
    while emulator.stats().writes.load(Ordering::Relaxed) < writes + 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.task.abort();
    let second = start(&db, emulator.clone(), paced());
    // The restart's copy: what Postgres holds after the first three rounds.
    let copy = (6..12).map(|i| upsert(i, "Row")).chain((1000..1012).map(|i| upsert(i, "New")));
    second.send(10, copy.collect());
    churn(&second, 20, 3..6);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while *second.durable.borrow() <= august_cdc::Lsn(25) {
        assert!(!second.task.is_finished(), "the writer stopped");
        assert!(std::time::Instant::now() < deadline, "durable stuck at {}", *second.durable.borrow());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = second.coda_rows();
    assert_eq!(rows.len(), 6 * 4, "every delete and upsert landed");
    assert!(rows.keys().all(|k| k.parse::<i64>().unwrap() >= 1000), "every deleted row is gone");
    assert!(emulator.stats().faults.load(Ordering::Relaxed) > 0, "faults were injected");
    assert!(emulator.stats().rows_deleted.load(Ordering::Relaxed) >= 12);
    assert_eq!(emulator.stats().throttled.load(Ordering::Relaxed), 0, "our own pacing drew no 429");
}
