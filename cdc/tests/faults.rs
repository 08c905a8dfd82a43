//! Faults: a Postgres restart mid-stream, a slot invalidated while August was away, a slot
//! dropped while streaming.

use std::sync::atomic::Ordering;
use std::time::Duration;

use august_cdc::{CdcConfig, CdcError};
use august_testkit::Cluster;

use crate::mirror::test_config;
use crate::{table_rows, Consumer};

const LEDGER: &str = "CREATE TABLE ledger (id int PRIMARY KEY, v int NOT NULL);
    ALTER TABLE ledger REPLICA IDENTITY FULL;
    ALTER PUBLICATION august_cdc ADD TABLE ledger;";

#[tokio::test]
async fn a_postgres_restart_mid_stream_is_survived() {
    let cluster = Cluster::start_private();
    let db = cluster.fresh_db("cdc_pg_restart").await;
    let client = db.client().await;
    client.batch_execute(LEDGER).await.unwrap();
    let mut consumer = Consumer::start(&db, test_config(&db.name));
    consumer.pump_until(Duration::from_secs(30), |m| m.snapshot_lsn.is_some()).await;
    client.batch_execute("INSERT INTO ledger SELECT g, g FROM generate_series(1, 1000) g").await.unwrap();
    consumer.pump_until(Duration::from_secs(30), |m| m.changes >= 1000).await;

    tokio::task::spawn_blocking(move || cluster.restart()).await.unwrap();
    let client = db.client().await;
    client
        .batch_execute("UPDATE ledger SET v = v * 2 WHERE id % 2 = 0; INSERT INTO ledger VALUES (5000, 1)")
        .await
        .unwrap();
    consumer.catch_up(&client).await;

    assert!(consumer.stream.stats().reconnects.load(Ordering::Relaxed) >= 1);
    assert!(consumer.mirror.faults.is_empty(), "{:?}", consumer.mirror.faults);
    assert!(consumer.mirror.rows == table_rows(&client).await);
    consumer.stream.finish().await.unwrap();
}

#[tokio::test]
async fn a_lost_slot_is_a_clear_error_and_resnapshot_recovers() {
    let cluster = Cluster::start_private();
    let db = cluster.fresh_db("cdc_slot_lost").await;
    let client = db.client().await;
    client.batch_execute(LEDGER).await.unwrap();
    client.batch_execute("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'").await.unwrap();
    client.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    let mut first = Consumer::start(&db, test_config(&db.name));
    first.pump_until(Duration::from_secs(30), |m| m.snapshot_lsn.is_some()).await;
    first.stream.finish().await.unwrap();

    for _ in 0..4 {
        client.batch_execute("INSERT INTO ledger SELECT g, g FROM generate_series(1, 20000) g ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v + 1; SELECT pg_switch_wal();").await.unwrap();
    }
    client.batch_execute("CHECKPOINT; CHECKPOINT;").await.unwrap();
    let status: String = client
        .query_one("SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1", &[&db.name])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "lost");

    let refused = Consumer::start(&db, test_config(&db.name));
    let err = refused.stream.finish().await.unwrap_err();
    assert!(matches!(err, CdcError::SlotLost { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(&db.name) && message.contains("august replicate --resnapshot"), "{message}");

    let mut recovered = Consumer::start(&db, CdcConfig { resnapshot: true, ..test_config(&db.name) });
    recovered.catch_up(&client).await;
    assert!(recovered.mirror.rows == table_rows(&client).await);
    assert_eq!(recovered.mirror.rows.len(), 20_000);
}

#[tokio::test]
async fn a_slot_dropped_while_streaming_is_a_clear_error() {
    let db = august_testkit::fresh_db("cdc_slot_dropped").await;
    let client = db.client().await;
    // A long backoff, so the slot can be dropped (after the terminated walsender lets go of it,
    // which a busy machine can take seconds for) before the consumer comes back.
    let config = CdcConfig { backoff: (Duration::from_secs(10), Duration::from_secs(10)), ..test_config(&db.name) };
    let mut consumer = Consumer::start(&db, config);
    consumer.pump_until(Duration::from_secs(30), |m| m.snapshot_lsn.is_some()).await;
    let mut dropped = Err(String::new());
    for _ in 0..1000 {
        // Terminate whichever session holds the slot: a terminated walsender can take seconds to
        // let go on a busy machine, and should the consumer come back first, its new session
        // goes the same way; it then finds the slot gone.
        client
            .execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL",
                &[&db.name],
            )
            .await
            .unwrap();
        dropped = client
            .execute("SELECT pg_drop_replication_slot($1)", &[&db.name])
            .await
            .map(|_| ())
            .map_err(|e| format!("{e:?}"));
        if dropped.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(dropped.is_ok(), "the slot could be dropped before the consumer came back: {dropped:?}");
    while consumer.stream.next().await.is_some() {}
    let err = consumer.stream.finish().await.unwrap_err();
    assert!(matches!(err, CdcError::SlotMissing { .. }), "{err}");
    assert!(err.to_string().contains("--resnapshot"));
}
