//! `cdc_throughput`: how fast August's replication consumer turns WAL into typed changes,
//! against `pg_recvlogical` (pgoutput, written to /dev/null) over the same WAL, in one run.
//!
//! Both read the same transactions from their own slots, created before the changes were
//! written. The changes: 1,000,000 by default (`AUGUST_BENCH_CHANGES`), 70% inserts, 20%
//! updates, 10% deletes, in transactions of 10,000, on a table with REPLICA IDENTITY FULL. Each
//! reader runs twice, alternating who goes first; the best run of each counts.
//!
//! `cargo run --release -p august-bench --bin cdc_throughput`

use std::process::Command;
use std::time::{Duration, Instant};

use august_bench::{peak_rss_mib, rate, BenchDb};
use august_cdc::{CdcConfig, Event, Lsn};
use tokio::sync::watch;

const ROUNDS: usize = 2;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let changes: u64 = std::env::var("AUGUST_BENCH_CHANGES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let db = BenchDb::start().await?;
    let client = db.client().await?;
    client
        .batch_execute(
            "CREATE TABLE bench_rows (id bigint PRIMARY KEY, patient_id bigint, status text, note text, at timestamptz);
             ALTER TABLE bench_rows REPLICA IDENTITY FULL;
             ALTER PUBLICATION august_cdc ADD TABLE bench_rows;",
        )
        .await?;
    for round in 0..ROUNDS {
        for reader in ["recvlogical", "august"] {
            client
                .execute("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", &[&format!("{reader}_{round}")])
                .await?;
        }
    }

    let (inserts, updates) = (changes * 7 / 10, changes * 2 / 10);
    let deletes = changes - inserts - updates;
    let batch = 10_000u64;
    eprintln!("writing {changes} changes ({inserts} inserts, {updates} updates, {deletes} deletes)…");
    let mut start = 1i64;
    while (start as u64) <= inserts {
        let end = (start + batch as i64 - 1).min(inserts as i64);
        client
            .execute(
                "INSERT INTO bench_rows SELECT g, g % 5000, 'Scheduled', 'note ' || g, now() FROM generate_series($1::bigint, $2::bigint) g",
                &[&start, &end],
            )
            .await?;
        start = end + 1;
    }
    for (count, sql) in [
        (updates, "UPDATE bench_rows SET status = 'Complete', at = now() WHERE id BETWEEN $1 AND $2"),
        (deletes, "DELETE FROM bench_rows WHERE id BETWEEN $1 AND $2"),
    ] {
        let mut first = 1i64;
        while (first as u64) <= count {
            let last = (first + batch as i64 - 1).min(count as i64);
            client.execute(sql, &[&first, &last]).await?;
            first = last + 1;
        }
    }
    let end: String = client.query_one("SELECT pg_current_wal_lsn()::text", &[]).await?.get(0);
    let end: Lsn = end.parse()?;

    let mut best_recvlogical = Duration::MAX;
    let mut best_august = Duration::MAX;
    for round in 0..ROUNDS {
        let order: [&str; 2] = if round % 2 == 0 { ["recvlogical", "august"] } else { ["august", "recvlogical"] };
        for reader in order {
            let slot = format!("{reader}_{round}");
            let elapsed = if reader == "recvlogical" {
                run_recvlogical(&db, &slot, end)?
            } else {
                run_august(&db, &slot, changes).await?
            };
            eprintln!(
                "round {round}: {reader:<11} {:>8.2} s  {:>10.0} changes/s",
                elapsed.as_secs_f64(),
                rate(changes, elapsed)
            );
            let best = if reader == "recvlogical" { &mut best_recvlogical } else { &mut best_august };
            *best = (*best).min(elapsed);
        }
    }

    let (ours, theirs) = (rate(changes, best_august), rate(changes, best_recvlogical));
    println!("cdc_throughput: {changes} changes through pgoutput (best of {ROUNDS})");
    println!("  pg_recvlogical (to /dev/null):   {theirs:>10.0} changes/s");
    println!("  august cdc (typed, counted):     {ours:>10.0} changes/s");
    println!("  ratio august / pg_recvlogical:   {:>10.3}   (target >= 0.9)", ours / theirs);
    if let Some(rss) = peak_rss_mib() {
        println!("  peak RSS of this process:        {rss:>10.1} MiB");
    }
    Ok(())
}

fn run_recvlogical(db: &BenchDb, slot: &str, end: Lsn) -> Result<Duration, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let status = Command::new(db.server.bin("pg_recvlogical"))
        .args(["-d", &db.url, "--slot", slot, "--start", "--no-loop", "-f", "/dev/null"])
        .args(["--endpos", &end.to_string(), "-o", "proto_version=1", "-o", "publication_names=august_cdc"])
        .status()?;
    if !status.success() {
        return Err(format!("pg_recvlogical failed: {status}").into());
    }
    Ok(started.elapsed())
}

async fn run_august(db: &BenchDb, slot: &str, changes: u64) -> Result<Duration, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let config = CdcConfig { slot: slot.to_string(), snapshot: false, heartbeat: None, ..CdcConfig::default() };
    let (durable, watch) = watch::channel(Lsn::ZERO);
    let mut stream = august_cdc::start(db.config.clone(), config, watch);
    let mut seen = 0u64;
    while seen < changes {
        match stream.next().await {
            Some(Event::Change(_)) => seen += 1,
            Some(Event::Commit { commit_lsn, .. }) => {
                durable.send_replace(commit_lsn.next());
            }
            Some(_) => {}
            None => {
                return Err(format!("the consumer stopped after {seen} changes: {:?}", stream.finish().await).into())
            }
        }
    }
    let elapsed = started.elapsed();
    stream.finish().await?;
    Ok(elapsed)
}
