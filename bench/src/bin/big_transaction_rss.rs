//! `big_transaction_rss`: peak memory of `august replicate` while it streams one UPDATE of N
//! rows (default 2,000,000; `big_transaction_rss 200000` for a shorter run) in a single
//! transaction, against the baseline measured in the same run: the same UPDATE done as many
//! small transactions (1,000 rows each).
//!
//! Both runs use the real release binary as a child process (cdc → dataflow → the link
//! write-back; no Coda mapping, so no Coda quota sets the pace) on the same Postgres and the
//! same rows (`providers`, a passthrough view). Each run starts `august replicate`, waits until
//! the slot has confirmed the initial copy, resets the child's peak RSS (`/proc/<pid>/clear_refs`),
//! runs the UPDATE, waits until the slot has confirmed past it, and reads the child's `VmHWM`.
//! Prints the RSS at the start of the UPDATE, the peak during it, and the ratio of the peaks
//! (one transaction / small transactions). With `AUGUST_BENCH_UNCHUNKED=1` it also runs the
//! single transaction with chunking off (`AUGUST_TRANSACTION_CHUNK_ROWS` above N), to show
//! what chunking saves.
//!
//! `cargo run --release -p august-bench --bin big_transaction_rss [-- ROWS]` (builds `august`
//! first, unless `AUGUST_BIN` names the binary to run).

#![allow(clippy::unwrap_used)] // a benchmark stops at the first broken assumption

use std::time::{Duration, Instant};

use august_bench::BenchDb;

const SMALL_TRANSACTION_ROWS: u64 = 1_000;

/// How the UPDATE is committed.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// One transaction per `SMALL_TRANSACTION_ROWS` rows.
    Small,
    /// All rows in one transaction, with the given chunk setting.
    One { chunk_rows: u64 },
}

/// What one run measured, in MiB.
struct Run {
    start: f64,
    peak: f64,
    elapsed: Duration,
}

#[tokio::main]
async fn main() {
    let rows: u64 = std::env::args().nth(1).and_then(|v| v.parse().ok()).unwrap_or(2_000_000);
    let unchunked = std::env::var("AUGUST_BENCH_UNCHUNKED").is_ok_and(|v| v == "1");
    let august = august_bench::build_august();
    let db = BenchDb::start().await.unwrap();
    load(&db, rows).await;
    eprintln!("big_transaction_rss: {rows} providers loaded");

    let default_chunk = august_dataflow::DEFAULT_TRANSACTION_CHUNK_ROWS as u64;
    let small = run(&august, &db, rows, Shape::Small, 1).await;
    let one = run(&august, &db, rows, Shape::One { chunk_rows: default_chunk }, 2).await;
    let whole =
        if unchunked { Some(run(&august, &db, rows, Shape::One { chunk_rows: rows + 1 }, 3).await) } else { None };

    println!("big_transaction_rss: UPDATE of {rows} rows through `august replicate` (peak RSS of the child)");
    let line = |name: &str, r: &Run| {
        println!(
            "  {name:<44} start {:>7.1} MiB   peak {:>7.1} MiB   growth {:>7.1} MiB   ({:.1} s)",
            r.start,
            r.peak,
            r.peak - r.start,
            r.elapsed.as_secs_f64()
        )
    };
    line(
        &format!("baseline: {} transactions of {SMALL_TRANSACTION_ROWS} rows", rows.div_ceil(SMALL_TRANSACTION_ROWS)),
        &small,
    );
    line(&format!("one transaction (chunks of {default_chunk})"), &one);
    if let Some(whole) = &whole {
        line("one transaction, chunking off", whole);
    }
    println!(
        "  ratio peak one/small: {:.2}   growth one/small: {:.2}",
        one.peak / small.peak,
        growth(&one) / growth(&small)
    );
    if let Some(whole) = &whole {
        println!("  ratio peak unchunked/small: {:.2}", whole.peak / small.peak);
    }
}

fn growth(run: &Run) -> f64 {
    (run.peak - run.start).max(1.0)
}

/// `rows` providers. Triggers are off for the load and the updates (replica role): the audit
/// trail's cost is not what this measures, and logical decoding sees the changes all the same.
async fn load(db: &BenchDb, rows: u64) {
    let client = db.client().await.unwrap();
    client
        .batch_execute(&format!(
            "SET session_replication_role = replica;
             INSERT INTO providers (drchrono_id, first_name, last_name, specialty, drchrono_raw)
               SELECT g, 'Doc', 'Tor' || g, 'Psychiatry', '{{}}' FROM generate_series(1, {rows}) g;"
        ))
        .await
        .unwrap();
}

/// Runs `august replicate` through one UPDATE of every row, committed as `shape` says.
async fn run(august: &std::path::Path, db: &BenchDb, rows: u64, shape: Shape, round: u64) -> Run {
    let client = db.client().await.unwrap();
    let mut child = std::process::Command::new(august)
        .arg("replicate")
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("AUGUST_HEARTBEAT_SECS", "1")
        .env("AUGUST_LOG", "warn")
        .env(
            "AUGUST_TRANSACTION_CHUNK_ROWS",
            match shape {
                Shape::Small => august_dataflow::DEFAULT_TRANSACTION_CHUNK_ROWS as u64,
                Shape::One { chunk_rows } => chunk_rows,
            }
            .to_string(),
        )
        .spawn()
        .unwrap();
    let pid = child.id();
    // Once this run holds the slot, a write after that is confirmed only past its copy.
    wait_slot(&client, true).await;
    client
        .batch_execute(&format!("{REPLICA} UPDATE providers SET first_name = 'Doc' WHERE drchrono_id = 1"))
        .await
        .unwrap();
    wait_confirmed(&client, wal_lsn(&client).await).await; // the initial copy is in
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap(); // reset the peak
    let start = status_mib(pid, "VmRSS:");
    let started = Instant::now();
    let set = format!(
        "SET session_replication_role = replica; UPDATE providers SET last_name = 'Round{round}-' || drchrono_id"
    );
    match shape {
        Shape::Small => {
            for from in (1..=rows).step_by(SMALL_TRANSACTION_ROWS as usize) {
                let to = from + SMALL_TRANSACTION_ROWS - 1;
                client.batch_execute(&format!("{set} WHERE drchrono_id BETWEEN {from} AND {to}")).await.unwrap();
            }
        }
        Shape::One { .. } => client.batch_execute(&set).await.unwrap(),
    }
    wait_confirmed(&client, wal_lsn(&client).await).await;
    let elapsed = started.elapsed();
    let peak = status_mib(pid, "VmHWM:");
    let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait();
    wait_slot(&client, false).await;
    Run { start, peak, elapsed }
}

const REPLICA: &str = "SET session_replication_role = replica;";

/// Waits until the slot is held (`active`) or released.
async fn wait_slot(client: &tokio_postgres::Client, active: bool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let row =
            client.query_opt("SELECT active FROM pg_replication_slots WHERE slot_name = 'august'", &[]).await.unwrap();
        if row.map(|r| r.get::<_, bool>(0)).unwrap_or(false) == active {
            return;
        }
        assert!(Instant::now() < deadline, "the slot did not become active = {active}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wal_lsn(client: &tokio_postgres::Client) -> String {
    client.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.unwrap().get(0)
}

/// Waits until the slot has confirmed `lsn`: every change before it is durable in August.
async fn wait_confirmed(client: &tokio_postgres::Client, lsn: String) {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let done: Option<bool> = client
            .query_opt(
                "SELECT confirmed_flush_lsn >= $1::text::pg_lsn FROM pg_replication_slots WHERE slot_name = 'august'",
                &[&lsn],
            )
            .await
            .unwrap()
            .and_then(|r| r.get(0));
        if done == Some(true) {
            return;
        }
        assert!(Instant::now() < deadline, "the slot did not reach {lsn}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A `/proc/<pid>/status` figure, in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024.0
}
