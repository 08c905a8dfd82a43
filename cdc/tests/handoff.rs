//! Copy-then-stream hand-off under concurrent writes, reconnects mid-transaction, and a
//! consumer killed and started again: the mirror always ends equal to the table, with nothing
//! missed or applied twice.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::mirror::test_config;
use crate::{table_rows, Consumer};

const LEDGER: &str = "CREATE TABLE ledger (id int PRIMARY KEY, v int NOT NULL, note text);
    ALTER TABLE ledger REPLICA IDENTITY FULL;
    ALTER PUBLICATION august_cdc ADD TABLE ledger;
    INSERT INTO ledger SELECT g, 0, 'seed' FROM generate_series(1, 50000) g;";

/// Inserts, updates and deletes in small transactions until `stop`; returns how many it made.
fn spawn_writer(
    db: &august_testkit::TestDb,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let config = db.config();
    tokio::spawn(async move {
        let client = august_schema::connect(&config).await.unwrap();
        let mut n: i32 = 0;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let id = 50_000 + n;
            client.execute("INSERT INTO ledger VALUES ($1, $1, 'new')", &[&id]).await.unwrap();
            client
                .execute("UPDATE ledger SET v = v + 1, note = 'moved' WHERE id = $1", &[&((n * 7919) % 50_000 + 1)])
                .await
                .unwrap();
            if n % 3 == 0 {
                client.execute("DELETE FROM ledger WHERE id = $1", &[&((n * 104_729) % 50_000 + 1)]).await.unwrap();
            }
            done.fetch_add(1, Ordering::Relaxed);
        }
    })
}

#[tokio::test]
async fn writes_during_the_copy_appear_exactly_once() {
    let db = august_testkit::fresh_db("cdc_handoff").await;
    let client = db.client().await;
    client.batch_execute(LEDGER).await.unwrap();
    let (stop, done) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let writer = spawn_writer(&db, stop.clone(), done.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut consumer = Consumer::start(&db, test_config(&db.name));
    consumer.pump_until(Duration::from_secs(60), |m| m.snapshot_lsn.is_some()).await;
    let before_end = done.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    consumer.catch_up(&client).await;

    assert!(before_end > 0, "writes happened before and during the copy");
    assert!(!consumer.mirror.transactions.is_empty(), "and after it, through the stream");
    assert!(consumer.mirror.faults.is_empty(), "{:?}", consumer.mirror.faults);
    let expected = table_rows(&client).await;
    assert_eq!(consumer.mirror.rows.len(), expected.len());
    assert!(consumer.mirror.rows == expected, "the mirror equals the table row for row");
    consumer.stream.finish().await.unwrap();
}

#[tokio::test]
async fn a_connection_lost_mid_transaction_resumes_without_doubling() {
    let db = august_testkit::fresh_db("cdc_reconnect").await;
    let client = db.client().await;
    client.batch_execute(LEDGER).await.unwrap();
    let mut consumer = Consumer::start(&db, test_config(&db.name));
    consumer.pump_until(Duration::from_secs(60), |m| m.snapshot_lsn.is_some()).await;

    client.batch_execute("UPDATE ledger SET v = v + 1 WHERE id <= 20000").await.unwrap();
    consumer.pump_until(Duration::from_secs(60), |m| m.changes >= 5_000).await;
    let killed: i64 = client
        .query_one(
            "SELECT count(pg_terminate_backend(active_pid)) FROM pg_replication_slots WHERE slot_name = $1",
            &[&db.name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1, "the walsender was terminated mid-transaction");
    client.batch_execute("INSERT INTO ledger VALUES (60001, 1, 'after the reconnect')").await.unwrap();
    consumer.catch_up(&client).await;

    assert!(consumer.stream.stats().reconnects.load(Ordering::Relaxed) >= 1);
    assert!(consumer.mirror.faults.is_empty(), "{:?}", consumer.mirror.faults);
    assert_eq!(consumer.mirror.changes, 20_001, "each change exactly once");
    assert!(consumer.mirror.rows == table_rows(&client).await);
}

#[tokio::test]
async fn a_consumer_killed_mid_transaction_starts_again_with_nothing_lost_or_doubled() {
    let db = august_testkit::fresh_db("cdc_kill").await;
    let client = db.client().await;
    client.batch_execute(LEDGER).await.unwrap();
    let mut first = Consumer::start(&db, test_config(&db.name));
    first.pump_until(Duration::from_secs(60), |m| m.snapshot_lsn.is_some()).await;
    client.batch_execute("UPDATE ledger SET v = v + 10 WHERE id <= 20000").await.unwrap();
    first.pump_until(Duration::from_secs(60), |m| m.changes >= 3_000).await;
    let durable = *first.durable.borrow();
    first.stream.abort();
    client
        .batch_execute("DELETE FROM ledger WHERE id > 49000; INSERT INTO ledger VALUES (70000, 7, 'while down')")
        .await
        .unwrap();

    let confirmed: String = client
        .query_one("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", &[&db.name])
        .await
        .unwrap()
        .get(0);
    assert!(confirmed.parse::<august_cdc::Lsn>().unwrap() <= durable, "the slot never passed what was durable");

    let mut second = Consumer::start(&db, test_config(&db.name));
    second.catch_up(&client).await;
    assert!(second.mirror.faults.is_empty(), "{:?}", second.mirror.faults);
    assert!(second.mirror.rows == table_rows(&client).await);
    second.stream.finish().await.unwrap();
}
