//! The consumer's metrics are recorded under their documented names.

use std::sync::OnceLock;
use std::time::Duration;

use august_cdc::metrics as m;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

use crate::mirror::test_config;
use crate::Consumer;

fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("the only recorder in this test binary");
        snapshotter
    })
}

/// Every metric at this moment (a snapshot resets counters, so take one and read it all).
fn values() -> Vec<(String, DebugValue)> {
    snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key.key().name().to_string(), value))
        .collect()
}

#[tokio::test]
async fn lag_throughput_and_silence_are_reported() {
    snapshotter();
    let db = august_testkit::fresh_db("cdc_metrics").await;
    let client = db.client().await;
    let mut consumer = Consumer::start(&db, test_config(&db.name));
    consumer.pump_until(Duration::from_secs(30), |m| m.snapshot_lsn.is_some()).await;
    client
        .batch_execute(
            "INSERT INTO providers (drchrono_id, drchrono_raw) SELECT g, '{}' FROM generate_series(1, 100) g",
        )
        .await
        .unwrap();
    consumer.catch_up(&client).await;
    tokio::time::sleep(Duration::from_millis(1200)).await; // one monitor round

    let all = values();
    let value = |name: &str| all.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    assert!(matches!(value(m::CHANGES), Some(DebugValue::Counter(n)) if *n >= 100), "{:?}", value(m::CHANGES));
    assert!(matches!(value(m::TRANSACTIONS), Some(DebugValue::Counter(n)) if *n >= 1), "{:?}", value(m::TRANSACTIONS));
    assert!(matches!(value(m::RECEIVED_LSN), Some(DebugValue::Gauge(v)) if v.into_inner() > 0.0));
    for gauge in
        [m::SLOT_LAG_BYTES, m::RETAINED_WAL_BYTES, m::SECONDS_SINCE_LAST_MESSAGE, m::CONFIRMED_LSN, m::FLUSHED_LSN]
    {
        assert!(matches!(value(gauge), Some(DebugValue::Gauge(_))), "{gauge} is recorded");
    }
    consumer.stream.finish().await.unwrap();
}
