//! `coda_backfill`: 100,000 rows (`AUGUST_BENCH_ROWS`) into the Coda emulator at Coda's real
//! quota (10 writes per 6 s), through the real sink: rows per minute achieved against the
//! ceiling, rows per request × writes allowed per minute (500 × 100 = 50,000). Target ≥ 0.95.
//! The emulator also counts 429s: there should be none.
//!
//! `cargo run --release -p august-bench --bin coda_backfill`

#![allow(clippy::unwrap_used)] // a benchmark stops at the first broken assumption

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use august_bench::{emulated_doc, BenchDb};
use august_cdc::{Lsn, Value};
use august_dataflow::tables::table;
use august_dataflow::{Output, ViewUpdate};
use august_emulators::coda::{self as coda_emulator, EmulatorConfig};
use august_schema::access_log::AccessLog;
use august_schema::Secret;
use august_sinks::coda::client::{CodaClient, CodaSettings};
use august_sinks::coda::mapping::Mapping;
use august_sinks::coda::writer::{write_to_coda, WriterConfig, WriterStats};
use tokio::sync::{mpsc, watch};

const MAPPING: &str = r#"
doc_id = "doc-bench"
[[tables]]
allow = ["direct", "clinical", "identifier", "operational"]
view = "providers"
table_id = "grid-providers"
key = "drchrono_id"
on_delete = "delete"
[tables.columns]
drchrono_id = "c-id"
first_name = "c-first"
last_name = "c-last"
specialty = "c-specialty"
npi_number = "c-npi"
"#;

#[tokio::main]
async fn main() {
    let rows: i64 = std::env::var("AUGUST_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let db = BenchDb::start().await.unwrap();
    let mapping = Mapping::parse(MAPPING, "bench").unwrap();
    let doc = emulated_doc(&mapping);
    let emulator = coda_emulator::serve("127.0.0.1:0".parse().unwrap(), doc, EmulatorConfig::default()).await.unwrap();
    let settings = CodaSettings {
        base: emulator.base_url(),
        token: Secret::new("emulator-token".into()),
        ..CodaSettings::default()
    };
    let client =
        CodaClient::new(settings, AccessLog::start("coda", august_schema::Actor::CodaSink, db.config.clone())).unwrap();
    let config = WriterConfig::default();
    let ceiling_per_minute = config.max_rows as f64 * 100.0; // 10 writes per 6 s = 100 per minute

    let (output, rx) = mpsc::channel(16);
    let (durable_tx, mut durable) = watch::channel(Lsn::ZERO);
    let stats = Arc::new(WriterStats::default());
    tokio::spawn(write_to_coda(db.config.clone(), client, mapping, config, rx, durable_tx, stats.clone()));

    let spec = table("providers").unwrap();
    let updates: Vec<ViewUpdate> = (0..rows)
        .map(|i| {
            let mut row = vec![Value::Null; spec.columns.len()];
            row[spec.col("drchrono_id")] = Value::Int(i);
            row[spec.col("first_name")] = Value::Text(format!("First{i}"));
            row[spec.col("last_name")] = Value::Text(format!("Last{i}"));
            row[spec.col("specialty")] = Value::Text("Psychiatry".into());
            row[spec.col("npi_number")] = Value::Text(format!("{:010}", 1_000_000_000 + i));
            ViewUpdate { view: "providers", key: Value::Int(i), row: Some(row) }
        })
        .collect();
    eprintln!("backfilling {rows} rows at 10 writes per 6 s…");
    let started = Instant::now();
    output.send(Output::Updates { lsn: Lsn(10), commit_time: None, updates }).await.unwrap();
    output.send(Output::Frontier(Lsn(11))).await.unwrap();
    while *durable.borrow_and_update() <= Lsn(10) {
        let _ = tokio::time::timeout(Duration::from_secs(1), durable.changed()).await;
    }
    let elapsed = started.elapsed();
    let achieved = rows as f64 / elapsed.as_secs_f64() * 60.0;
    let in_coda = emulator.rows("doc-bench", "grid-providers").len();
    println!("coda_backfill: {rows} rows into the emulator at Coda's quota");
    println!(
        "  elapsed:                {:>10.1} s ({} writes, {} rows in Coda)",
        elapsed.as_secs_f64(),
        stats.writes.load(Ordering::Relaxed),
        in_coda
    );
    println!("  achieved:               {achieved:>10.0} rows/min");
    println!("  ceiling (500 x 100/min):{ceiling_per_minute:>10.0} rows/min");
    println!("  ratio:                  {:>10.3}   (target >= 0.95)", achieved / ceiling_per_minute);
    println!("  429s from the emulator: {:>10}", emulator.stats().throttled.load(Ordering::Relaxed));
}
