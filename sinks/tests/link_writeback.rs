//! A link is written back once, by `august_linker`, and its own change causes no second write.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use august_cdc::{CdcConfig, Lsn};
use august_dataflow::DataflowConfig;
use august_sinks::link_writeback::{write_links, LinkStats};
use tokio::sync::{mpsc, watch};

async fn current_lsn(client: &tokio_postgres::Client) -> Lsn {
    let text: String = client.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.unwrap().get(0);
    text.parse().unwrap()
}

#[tokio::test]
async fn a_single_link_causes_exactly_one_write() {
    let db = august_testkit::fresh_db("sink_links").await;
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO appointments (drchrono_id, patient_id, scheduled_time, drchrono_raw) VALUES ('A-5', 5, '2026-04-01 09:00', '{}');
             INSERT INTO clinical_notes (drchrono_id, patient_id, drchrono_raw) VALUES ('A-5', 5, '{}');",
        )
        .await
        .unwrap();

    let (link_durable, durable) = watch::channel(Lsn::ZERO);
    let config =
        CdcConfig { slot: db.name.clone(), heartbeat: Some(Duration::from_millis(200)), ..CdcConfig::default() };
    let stream = august_cdc::start(db.config(), config, durable.clone());
    let (events, events_rx) = mpsc::channel(1024);
    let (output_tx, output) = mpsc::channel(1024);
    let dataflow = august_dataflow::spawn(&DataflowConfig::default(), events_rx, output_tx).unwrap();
    tokio::spawn(august_dataflow::feed(stream, events, std::future::pending()));
    std::thread::spawn(move || dataflow.join());
    let stats = Arc::new(LinkStats::default());
    tokio::spawn(write_links(db.config(), output, link_durable, stats.clone()));

    client
        .batch_execute(
            "INSERT INTO deepcura_notes (id, drchrono_patient_id, drchrono_appt_id, session_date, raw_payload)
             VALUES ('00000000-0000-0000-0000-000000000005', 5, 'A-5', '2026-04-01', '{}')",
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let linked: Option<String> =
            client.query_one("SELECT clinical_note_id FROM deepcura_notes", &[]).await.unwrap().get(0);
        if linked.as_deref() == Some("A-5") {
            break;
        }
        assert!(Instant::now() < deadline, "the link was never written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the write-back's own change travel the whole loop, and then some.
    let after = current_lsn(&client).await;
    while *durable.borrow() <= after {
        assert!(Instant::now() < deadline, "the durable LSN never passed the write-back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(stats.writes.load(Ordering::Relaxed), 1, "one link, one write");
    let audit: Vec<(String, Vec<String>)> = client
        .query(
            "SELECT actor, changed_fields FROM change_log WHERE table_name = 'deepcura_notes' AND operation = 'UPDATE'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].0, "august_linker");
    assert_eq!(audit[0].1, ["clinical_note_id", "link_method", "linked_at"]);
    let row = client
        .query_one("SELECT link_method, needs_review, linked_at IS NOT NULL FROM deepcura_notes", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, bool>(1), row.get::<_, bool>(2)),
        ("appointment_id".to_string(), false, true)
    );
}
