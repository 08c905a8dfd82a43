//! `webhook_ingest`: DrChrono webhooks per second (and p99 latency) from 16 concurrent
//! clients on loopback through the real ingest router, next to pgbench running the equivalent
//! upsert (same table, same no-op guard, 16 clients) on the same Postgres in the same run.
//! Each webhook does more than pgbench's upsert: it checks the signature, parses the body,
//! claims the delivery id, upserts, and writes `sync_log`, all in one transaction. Target:
//! ratio >= 0.5.
//!
//! `cargo run --release -p august-bench --bin webhook_ingest`

#![allow(clippy::unwrap_used)] // a benchmark stops at the first broken assumption

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use august_bench::BenchDb;
use august_ingest::{app, IngestState};
use august_schema::{PoolSettings, Secret};

const CLIENTS: usize = 16;
const SECONDS: u64 = 10;
const SECRET: &str = "bench-drchrono-secret-0123";

#[tokio::main]
async fn main() {
    let db = BenchDb::start().await.unwrap();
    let pool = august_schema::connect_pool(
        &PoolSettings { max_size: CLIENTS as u32, ..PoolSettings::default() },
        db.config.clone(),
    )
    .await
    .unwrap();
    let state = IngestState {
        pool,
        drchrono_secret: Secret::new(SECRET.into()),
        deepcura_secret: Secret::new("unused-deepcura-secret-0".into()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await });

    let sent = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let sent = sent.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    let id = (c as u64 * 1_000_003 + n * 7919) % 100_000;
                    let body = format!(
                        r#"{{"receiver":{{}},"object":{{"id":{id},"first_name":"Bench","last_name":"Client{c}","cell_phone":"555-{:04}","updated_at":"2026-01-01T00:00:{:02}"}}}}"#,
                        n % 10_000,
                        n % 60
                    );
                    let t = Instant::now();
                    let response = http
                        .post(format!("http://{addr}/webhooks/drchrono"))
                        .header("content-type", "application/json")
                        .header("x-drchrono-event", "PATIENT_MODIFY")
                        .header("x-drchrono-signature", SECRET)
                        .header("x-drchrono-delivery", format!("{c}-{n}"))
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert!(response.status().is_success(), "{}", response.status());
                    latencies.push(t.elapsed());
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for client in clients {
        latencies.extend(client.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let rate = sent.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64();
    let p99 = latencies[latencies.len() * 99 / 100];

    let upsert = "INSERT INTO patients (drchrono_id, first_name, cell_phone, drchrono_raw, drchrono_updated_at) \
         VALUES (:id, 'Bench', '555-' || :phone, '{}', now()) ON CONFLICT (drchrono_id) DO UPDATE SET \
         cell_phone = EXCLUDED.cell_phone, drchrono_raw = EXCLUDED.drchrono_raw, drchrono_updated_at = EXCLUDED.drchrono_updated_at \
         WHERE ROW(patients.cell_phone, patients.drchrono_raw) IS DISTINCT FROM ROW(EXCLUDED.cell_phone, EXCLUDED.drchrono_raw);\n";
    let vars = "\\set id random(1, 100000)\n\\set phone random(1000, 9999)\n\\set n random(1, 1000000000)\n";
    // The upsert alone, and the same transaction a webhook runs (actor, claim, upsert, sync_log).
    let upsert_only = pgbench(&db, &format!("{vars}{upsert}"));
    let same_work = pgbench(
        &db,
        &format!(
            "{vars}BEGIN;\nSELECT set_config('app.actor', 'drchrono_webhook', true);\n\
             INSERT INTO processed_messages (source, message_id) VALUES ('pgbench', :client_id || '-' || :n) ON CONFLICT DO NOTHING;\n{upsert}\
             INSERT INTO sync_log (source, event, status, records_received, records_written) VALUES ('pgbench', 'PATIENT_MODIFY', 'succeeded', 1, 1);\nEND;\n"
        ),
    );

    println!("webhook_ingest: {CLIENTS} concurrent clients on loopback, {SECONDS} s each");
    println!(
        "  august ingest (PATIENT_MODIFY webhooks):       {rate:>9.0} /s   p99 {:>6.2} ms",
        p99.as_secs_f64() * 1000.0
    );
    println!("  pgbench, the upsert alone:                     {upsert_only:>9.0} /s");
    println!("  pgbench, the webhook's transaction in SQL:     {same_work:>9.0} /s");
    println!("  ratio august / pgbench (same transaction):     {:>9.3}   (target >= 0.5)", rate / same_work);
    println!("  ratio august / pgbench (upsert alone):         {:>9.3}", rate / upsert_only);
}

/// Runs a pgbench script for SECONDS with CLIENTS clients; returns transactions per second.
fn pgbench(db: &BenchDb, script: &str) -> f64 {
    let path = std::env::temp_dir().join(format!("august-pgbench-{}.sql", std::process::id()));
    std::fs::write(&path, script).unwrap();
    let out = std::process::Command::new(db.server.bin("pgbench"))
        .args(["-n", "-c", &CLIENTS.to_string(), "-j", "2", "-T", &SECONDS.to_string(), "-f"])
        .arg(&path)
        .arg(&db.url)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    report
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("pgbench said: {report}{}", String::from_utf8_lossy(&out.stderr)))
}
