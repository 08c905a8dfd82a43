//! The slot moves only with what downstream made durable, keeps moving when nothing published
//! changes, and a huge transaction streams through a bounded channel.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use august_cdc::{CdcConfig, Lsn};

use crate::mirror::test_config;
use crate::{current_lsn, Consumer};

async fn confirmed_flush(client: &tokio_postgres::Client, slot: &str) -> Lsn {
    let text: String = client
        .query_one("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
        .await
        .unwrap()
        .get(0);
    text.parse().unwrap()
}

#[tokio::test]
async fn the_slot_is_never_confirmed_past_the_durable_lsn() {
    let db = august_testkit::fresh_db("cdc_durable_gate").await;
    let client = db.client().await;
    let mut consumer = Consumer::start(&db, test_config(&db.name));
    consumer.auto_durable = false;
    consumer.pump_until(Duration::from_secs(30), |m| m.snapshot_lsn.is_some()).await;
    let created_at = confirmed_flush(&client, &db.name).await;

    for i in 0..3 {
        client
            .execute(
                "INSERT INTO staff_roles (email, role) VALUES ($1, 'operations')",
                &[&format!("s{i}@clinic.example")],
            )
            .await
            .unwrap();
        client
            .execute("INSERT INTO providers (drchrono_id, drchrono_raw) VALUES ($1, '{}')", &[&i64::from(i)])
            .await
            .unwrap();
    }
    consumer.pump_until(Duration::from_secs(30), |m| m.transactions.len() >= 3).await;
    let durable = consumer.mirror.transactions[0].next();
    consumer.durable.send_replace(durable);

    // Keep writing and receiving while the reported durable LSN stays put.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut reached = false;
    while Instant::now() < deadline {
        client
            .execute(
                "INSERT INTO providers (drchrono_id, drchrono_raw) VALUES ((random() * 1e9)::bigint + 100, '{}')",
                &[],
            )
            .await
            .unwrap();
        let _ = tokio::time::timeout(Duration::from_millis(50), consumer.stream.next()).await;
        let confirmed = confirmed_flush(&client, &db.name).await;
        assert!(confirmed <= durable.max(created_at), "confirmed {confirmed} passed durable {durable}");
        reached |= confirmed == durable;
    }
    assert!(reached, "the durable LSN was confirmed");

    consumer.auto_durable = true;
    consumer.catch_up(&client).await;
    let frontier = consumer.mirror.frontier;
    let deadline = Instant::now() + Duration::from_secs(10);
    while confirmed_flush(&client, &db.name).await
        < frontier.min(Lsn(consumer.stream.stats().received.load(Ordering::Relaxed)))
    {
        assert!(Instant::now() < deadline, "the slot follows the durable LSN");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn writes_only_to_an_unpublished_table_advance_the_slot() {
    let db = august_testkit::fresh_db("cdc_idle_advance").await;
    let client = db.client().await;
    client.batch_execute("CREATE TABLE scratch (id serial PRIMARY KEY, payload text)").await.unwrap();
    let mut consumer = Consumer::start(&db, test_config(&db.name));
    consumer.pump_until(Duration::from_secs(30), |m| m.snapshot_lsn.is_some()).await;
    let start = current_lsn(&client).await;

    let config = db.config();
    let writer = tokio::spawn(async move {
        let client = august_schema::connect(&config).await.unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            client
                .execute("INSERT INTO scratch (payload) SELECT repeat('x', 200) FROM generate_series(1, 50)", &[])
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let late = {
        tokio::time::sleep(Duration::from_secs(25)).await;
        current_lsn(&client).await
    };
    consumer.pump_until(Duration::from_secs(30), |m| m.frontier > late).await;
    writer.await.unwrap();
    // Downstream keeps reporting its frontier as durable; the slot must follow past `late`.
    let deadline = Instant::now() + Duration::from_secs(10);
    while confirmed_flush(&client, &db.name).await <= late {
        assert!(Instant::now() < deadline, "confirmed_flush_lsn stayed behind {late}");
        if let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(100), consumer.stream.next()).await {
            consumer.mirror.apply(&event);
            consumer.durable.send_replace(consumer.mirror.frontier);
        }
    }
    assert!(confirmed_flush(&client, &db.name).await > start);
    assert_eq!(consumer.mirror.changes, 0, "nothing published changed");
}

#[tokio::test]
async fn a_200k_row_transaction_streams_through_a_bounded_channel() {
    let db = august_testkit::fresh_db("cdc_bounded").await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE bulk (id int PRIMARY KEY, payload text); ALTER TABLE bulk REPLICA IDENTITY FULL; ALTER PUBLICATION august_cdc ADD TABLE bulk;")
        .await
        .unwrap();
    let capacity = 1_000;
    let mut consumer = Consumer::start(&db, CdcConfig { capacity, ..test_config(&db.name) });
    consumer.pump_until(Duration::from_secs(30), |m| m.snapshot_lsn.is_some()).await;

    client
        .batch_execute("INSERT INTO bulk SELECT g, repeat('p', 100) FROM generate_series(1, 200000) g")
        .await
        .unwrap();
    // Downstream reads nothing for a while: the consumer must stop at the channel's capacity.
    let stats = consumer.stream.stats().clone();
    // Wait (generously: CI machines are busy) for the stream to start, then for it to stall.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = 0;
    let mut steady_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = stats.changes.load(Ordering::Relaxed);
        if now != last || now == 0 {
            last = now;
            steady_since = Instant::now();
        } else if steady_since.elapsed() >= Duration::from_millis(300) {
            break;
        }
        assert!(Instant::now() < deadline, "the stream never started or never stalled ({now} changes)");
    }
    let held = stats.changes.load(Ordering::Relaxed);
    assert!(
        held > 0 && held <= capacity as u64 + 2,
        "delivered {held} changes into a channel of {capacity} while nobody read"
    );

    consumer.catch_up(&client).await;
    assert_eq!(consumer.mirror.changes, 200_000);
    assert_eq!(consumer.mirror.transactions.len(), 1);
    assert_eq!(stats.reconnects.load(Ordering::Relaxed), 0, "the session stayed up while downstream was full");
}
