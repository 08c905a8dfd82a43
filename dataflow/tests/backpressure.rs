//! Backpressure end to end on a real Postgres: a sink that does not take the output stops the
//! dataflow, whose full event channel stops the replication reads, so what is in flight stays
//! bounded while the WAL grows; once the sink reads again, every change arrives, once.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use august_cdc::{CdcConfig, Lsn, Value};
use august_dataflow::{DataflowConfig, Output};
use tokio::sync::{mpsc, watch};

const TRANSACTIONS: i64 = 200;
const ROWS_PER_TRANSACTION: i64 = 20;
/// Channel sizes of this test: the stream's, the dataflow's input, the dataflow's output.
const STREAM: usize = 64;
const EVENTS: usize = 64;
const OUTPUTS: usize = 4;
/// What can be read before the blocked output stops everything: both event channels full,
/// plus one batch the dataflow's worker applies between steps (1,024 events), plus one
/// transaction being delivered.
const IN_FLIGHT: u64 = (STREAM + EVENTS + 1024) as u64 + ROWS_PER_TRANSACTION as u64 + 2;

async fn wal_lsn(client: &tokio_postgres::Client) -> Lsn {
    let text: String = client.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.unwrap().get(0);
    text.parse().unwrap()
}

#[tokio::test]
async fn a_blocked_sink_stops_the_stream_reading_and_everything_arrives_once_it_reads() {
    let db = august_testkit::fresh_db("dataflow_backpressure").await;
    let client = db.client().await;
    let (durable, watch) = watch::channel(Lsn::ZERO);
    let config = CdcConfig {
        slot: db.name.clone(),
        heartbeat: Some(Duration::from_millis(200)),
        capacity: STREAM,
        ..CdcConfig::default()
    };
    let stream = august_cdc::start(db.config(), config, watch);
    let stats = stream.stats().clone();
    let (events, rx) = mpsc::channel(EVENTS);
    let (tx, mut output) = mpsc::channel(OUTPUTS);
    let dataflow = august_dataflow::spawn(&DataflowConfig::default(), rx, tx).unwrap();
    tokio::spawn(august_dataflow::feed(stream, events, std::future::pending()));
    std::thread::spawn(move || dataflow.join());
    // Write only once the stream is reading its slot: rows written before the slot exists
    // would come through the initial copy instead, and the slot would start past them.
    for attempt in 0.. {
        let active: Option<bool> = client
            .query_opt("SELECT active FROM pg_replication_slots WHERE slot_name = $1", &[&db.name])
            .await
            .unwrap()
            .map(|row| row.get(0));
        if active == Some(true) {
            break;
        }
        assert!(attempt < 300, "the stream never started reading its slot");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The sink takes nothing while the database writes 4,000 rows.
    let mut most_read = 0;
    for t in 0..TRANSACTIONS {
        let values: Vec<String> = (0..ROWS_PER_TRANSACTION)
            .map(|i| format!("({}, 'Provider', '{{}}')", t * ROWS_PER_TRANSACTION + i))
            .collect();
        let sql = format!("INSERT INTO providers (drchrono_id, last_name, drchrono_raw) VALUES {}", values.join(","));
        client.batch_execute(&sql).await.unwrap();
        most_read = most_read.max(stats.changes.load(Ordering::Relaxed));
        assert!(most_read <= IN_FLIGHT, "the stream kept reading past the blocked sink: {most_read} changes");
    }
    // Given time, an unblocked stream would read it all; this one stays where it is.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        most_read = most_read.max(stats.changes.load(Ordering::Relaxed));
    }
    eprintln!("changes read while the sink was blocked: {most_read}");
    assert!(most_read <= IN_FLIGHT, "the stream kept reading past the blocked sink: {most_read} changes");
    let written = (TRANSACTIONS * ROWS_PER_TRANSACTION) as u64;
    assert!(most_read < written, "the stream stopped before the end of the WAL");
    let end = wal_lsn(&client).await;
    assert!(stats.received.load(Ordering::Relaxed) < end.0, "the server holds WAL the stream has not read (slot lag)");

    // The sink reads again: everything arrives, each row once.
    let mut seen: BTreeMap<Value, usize> = BTreeMap::new();
    let mut frontier = Lsn::ZERO;
    while frontier <= end {
        let item = tokio::time::timeout(Duration::from_secs(30), output.recv()).await.expect("output in time").unwrap();
        match item {
            Output::Updates { updates, .. } => {
                for update in updates.into_iter().filter(|u| u.view == "providers" && u.row.is_some()) {
                    *seen.entry(update.key).or_default() += 1;
                }
            }
            Output::Notices { .. } | Output::Trace { .. } => {}
            Output::Frontier(lsn) => {
                frontier = lsn;
                durable.send_replace(lsn);
            }
        }
    }
    assert_eq!(seen.len() as u64, written, "every row arrived");
    assert!(seen.values().all(|n| *n == 1), "each row once");
}
