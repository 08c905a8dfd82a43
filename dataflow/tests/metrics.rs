//! The dataflow's Prometheus series, from a real recorder (a test binary of its own: the series
//! are process-wide, and no other dataflow may run beside this one): changes, updates and rows
//! per view, the records each named arrangement holds, and a frontier lag that is zero once
//! caught up, with two workers summing their shares.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "model.rs"]
#[allow(dead_code)]
mod model;

use std::time::{Duration, Instant};

use august_cdc::Value;
use august_dataflow::DataflowConfig;
use august_schema::metrics as m;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::model::{row, Db, Pipeline};

fn sample(handle: &PrometheusHandle, name: &str, labels: &str) -> Option<f64> {
    let head = if labels.is_empty() { format!("{name} ") } else { format!("{name}{{{labels}}} ") };
    handle.render().lines().find_map(|l| l.strip_prefix(&head).and_then(|v| v.trim().parse().ok()))
}

/// Waits (up to 30 s) until `name{labels}` reads `want`.
async fn reads(handle: &PrometheusHandle, name: &str, labels: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while sample(handle, name, labels) != Some(want) {
        assert!(Instant::now() < deadline, "{name}{{{labels}}} never read {want}:\n{}", handle.render());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn provider(id: i64, name: &str) -> (&'static str, august_cdc::Row) {
    ("providers", row("providers", &[("drchrono_id", Value::Int(id)), ("last_name", Value::Text(name.into()))]))
}

#[tokio::test]
async fn changes_view_rows_arrangements_and_lag_are_recorded() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let scrape = recorder.handle();
    metrics::set_global_recorder(recorder).unwrap(); // the dataflow's own threads record too
    let mut db = Db::default();
    let mut pipeline = Pipeline::start_with(DataflowConfig { workers: 2, ..DataflowConfig::default() });
    pipeline.apply(db.snapshot(), db.lsn()).await;

    let inserts = db.transaction((0..500).map(|i| provider(i, "First")).collect(), vec![]);
    pipeline.apply(inserts, db.lsn()).await;
    assert_eq!(sample(&scrape, m::DATAFLOW_CHANGES.name, ""), Some(500.0));
    assert_eq!(sample(&scrape, m::DATAFLOW_UPDATES.name, r#"view="providers""#), Some(500.0));
    assert_eq!(sample(&scrape, m::DATAFLOW_VIEW_ROWS.name, r#"view="providers""#), Some(500.0));
    // One record per row, split over the two workers' shares of each arrangement.
    reads(&scrape, m::DATAFLOW_ARRANGEMENT_RECORDS.name, r#"arrangement="providers""#, 500.0).await;
    let lookup = r#"arrangement="providers.drchrono_id""#;
    reads(&scrape, m::DATAFLOW_ARRANGEMENT_RECORDS.name, lookup, 500.0).await;

    let deletes = (0..10).map(|i| ("providers", vec![Value::Int(i)])).collect();
    let changes = db.transaction((100..105).map(|i| provider(i, "Renamed")).collect(), deletes);
    pipeline.apply(changes, db.lsn()).await;
    assert_eq!(sample(&scrape, m::DATAFLOW_CHANGES.name, ""), Some(515.0));
    assert_eq!(sample(&scrape, m::DATAFLOW_UPDATES.name, r#"view="providers""#), Some(515.0));
    assert_eq!(sample(&scrape, m::DATAFLOW_VIEW_ROWS.name, r#"view="providers""#), Some(490.0));
    assert!(sample(&scrape, m::DATAFLOW_VIEW_ROWS.name, r#"view="scheduling_ops""#).is_some());

    // Caught up: the publisher (once a second) shows the frontier past the last commit, no lag.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sample(&scrape, m::DATAFLOW_FRONTIER_LSN.name, "").unwrap_or(0.0) <= db.lsn().0 as f64 {
        assert!(Instant::now() < deadline, "the frontier gauge never passed {}:\n{}", db.lsn(), scrape.render());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sample(&scrape, m::DATAFLOW_FRONTIER_LAG_BYTES.name, ""), Some(0.0));
    assert_eq!(sample(&scrape, m::DATAFLOW_FRONTIER_LAG_SECONDS.name, ""), Some(0.0));
    assert!(!scrape.render().contains("Renamed"), "no row value in any series");
    pipeline.stop();
}
