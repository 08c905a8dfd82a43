//! The sink's Prometheus series as a scrape would see them: each request's outcome (429s and
//! 5xx per view), the writes and rows, the age of what waits while Coda fails, and the quota.

use std::time::{Duration, Instant};

use august_emulators::coda::EmulatorConfig;
use august_schema::metrics as m;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::coda_sink::{emulator, fast, start, upsert};

/// The value of `name{labels}` (labels as they print, e.g. `view="providers"`) in a scrape.
fn sample(handle: &PrometheusHandle, name: &str, labels: &str) -> Option<f64> {
    let head = if labels.is_empty() { format!("{name} ") } else { format!("{name}{{{labels}}} ") };
    handle.render().lines().find_map(|l| l.strip_prefix(&head).and_then(|v| v.trim().parse().ok()))
}

/// Scrapes until `done` holds (up to 30 s).
async fn until(handle: &PrometheusHandle, what: &str, mut done: impl FnMut(&PrometheusHandle) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(handle) {
        assert!(Instant::now() < deadline, "timed out waiting until {what}:\n{}", handle.render());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const VIEW: &str = r#"view="providers""#;

#[tokio::test]
async fn requests_writes_waiting_rows_and_the_quota_are_recorded_per_view() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let scrape = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder); // this test's thread only
    let db = august_testkit::fresh_db("coda_metrics").await;
    let emulator = emulator(EmulatorConfig::default()).await;
    let mut h = start(&db, emulator.clone(), fast());

    // Two 429s, then the write lands: three upserts sent, one accepted carrying one row.
    emulator.storm_429(2);
    h.send(10, vec![upsert(1, "Rate limited twice")]);
    h.durable_past(10).await;
    assert_eq!(sample(&scrape, m::CODA_REQUESTS.name, &format!(r#"{VIEW},outcome="rate_limited""#)), Some(2.0));
    assert_eq!(sample(&scrape, m::CODA_REQUESTS.name, &format!(r#"{VIEW},outcome="ok""#)), Some(1.0));
    assert_eq!(sample(&scrape, m::CODA_WRITES.name, &format!(r#"{VIEW},kind="upsert""#)), Some(3.0));
    assert_eq!(sample(&scrape, m::CODA_ROWS_WRITTEN.name, VIEW), Some(1.0));
    assert!(sample(&scrape, m::CODA_LAST_WRITE.name, VIEW).is_some_and(|t| t > 1.7e9), "{}", scrape.render());
    until(&scrape, "the quota is published", |s: &PrometheusHandle| {
        sample(s, m::CODA_QUOTA_LIMIT.name, "").is_some_and(|l| l > 0.0)
    })
    .await;
    assert_eq!(sample(&scrape, m::CODA_QUOTA_LIMIT.name, ""), Some(10.0));
    assert_eq!(sample(&scrape, m::CODA_QUOTA_WINDOW_SECONDS.name, ""), Some(2.0));
    let used = sample(&scrape, m::CODA_QUOTA_USED.name, "").unwrap_or(-1.0);
    assert!((0.0..=10.0).contains(&used), "used {used}");

    // Coda answers 503 for a while: the row waits, ages, and the 5xx are counted per view.
    emulator.fail_writes_to(Some("grid-providers"));
    h.send(20, vec![upsert(2, "Waits out an outage")]);
    // (The 429s' Retry-After holds every write back for a while first.)
    let server_errors = format!(r#"{VIEW},outcome="server_error""#);
    until(&scrape, "a 503 is counted and the waiting row is over a second old", |s: &PrometheusHandle| {
        sample(s, m::CODA_REQUESTS.name, &server_errors) >= Some(1.0)
            && sample(s, m::CODA_PENDING_ROWS.name, VIEW) == Some(1.0)
            && sample(s, m::CODA_OLDEST_PENDING_SECONDS.name, VIEW).is_some_and(|age| age > 1.0)
    })
    .await;
    emulator.fail_writes_to(None);
    h.durable_past(20).await;
    until(&scrape, "nothing waits", |s: &PrometheusHandle| {
        sample(s, m::CODA_PENDING_ROWS.name, VIEW) == Some(0.0)
            && sample(s, m::CODA_OLDEST_PENDING_SECONDS.name, VIEW) == Some(0.0)
    })
    .await;
    assert_eq!(sample(&scrape, m::CODA_ROWS_WRITTEN.name, VIEW), Some(2.0));
    assert_eq!(sample(&scrape, m::CODA_DEAD_LETTERS.name, VIEW), Some(0.0), "an outage dead-letters nothing");
}
