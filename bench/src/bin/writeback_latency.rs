//! `writeback_latency`: the latency of a Coda write-back (`PATCH /api/intake/{appointment_id}`
//! through the real `august ingest` binary, end to end over loopback HTTP) under a concurrent
//! load, next to a plain `UPDATE intake_checklists SET notes = … WHERE appointment_id = …` sent
//! by tokio-postgres with the same concurrency, to the same rows, on the same Postgres, in the
//! same run. Each request sets a new `notes` value, so every one writes. The write-back does
//! more than the UPDATE: it checks the token, parses and validates the body, looks the editor
//! up in `staff_roles`, locks and compares the row, records the actor and the editor, writes
//! the WAL notice, `sync_log` and `access_log`, and answers with the stored row.
//!
//! Prints p50/p99 and throughput of each and their ratios. `AUGUST_BENCH_CLIENTS` (16),
//! `AUGUST_BENCH_REQUESTS` (4,000 per mode) and `AUGUST_BENCH_ROWS` (1,000) change the load.
//!
//! `cargo run --release -p august-bench --bin writeback_latency` (builds `august` first).

#![allow(clippy::unwrap_used)] // a benchmark stops at the first broken assumption

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use august_bench::BenchDb;

const TOKEN: &str = "bench-writeback-token-0123456789";
const EDITOR: &str = "ops@bench.example";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The load: which rows each client touches, in which order.
#[derive(Clone, Copy)]
struct Load {
    clients: usize,
    requests: usize,
    rows: usize,
}

impl Load {
    /// The appointment id of client `c`'s `n`th request: each client keeps to its own rows, so
    /// neither side waits on another client's row lock.
    fn row(&self, c: usize, n: usize) -> String {
        format!("B-{:05}", (c + self.clients * n) % self.rows)
    }

    fn per_client(&self) -> usize {
        self.requests / self.clients
    }
}

/// Latencies and wall time of one mode.
struct Run {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Run {
    fn percentile(&self, p: usize) -> Duration {
        self.latencies[(self.latencies.len() * p / 100).min(self.latencies.len() - 1)]
    }

    fn rate(&self) -> f64 {
        august_bench::rate(self.latencies.len() as u64, self.elapsed)
    }
}

/// Runs `clients` loops of `per_client` calls of `one(client, n)` at once, timing each call.
async fn measure<S, F, Fut>(load: Load, setup: impl Fn(usize) -> Fut, one: F) -> Run
where
    S: Send + Sync + 'static,
    Fut: Future<Output = S> + Send,
    F: Fn(Arc<S>, usize, usize) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync + Clone + 'static,
{
    let mut states = Vec::new();
    for c in 0..load.clients {
        states.push(Arc::new(setup(c).await));
    }
    let started = Instant::now();
    let tasks: Vec<_> = states
        .into_iter()
        .enumerate()
        .map(|(c, state)| {
            let one = one.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(load.per_client());
                for n in 0..load.per_client() {
                    let t = Instant::now();
                    one(state.clone(), c, n).await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Run { latencies, elapsed }
}

async fn seed(db: &BenchDb, rows: usize) {
    let client = db.client().await.unwrap();
    client
        .batch_execute(&format!(
            "INSERT INTO staff_roles (email, role) VALUES ('{EDITOR}', 'operations');
             INSERT INTO intake_checklists (appointment_id, patient_id)
             SELECT 'B-' || lpad(i::text, 5, '0'), i FROM generate_series(0, {rows} - 1) AS i;
             ANALYZE intake_checklists;"
        ))
        .await
        .unwrap();
}

/// Starts `august ingest` (release) on `db`; returns the child and its base URL once it answers.
async fn ingest(db: &BenchDb, clients: usize) -> (std::process::Child, String) {
    let august = august_bench::build_august();
    let port = free_port();
    let child = std::process::Command::new(august)
        .arg("ingest")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("DB_POOL_MAX_SIZE", clients.to_string())
        .env("AUGUST_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("AUGUST_METRICS_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("AUGUST_SQL_ADDR", "127.0.0.1:0")
        .env("DRCHRONO_WEBHOOK_SECRET", "bench-drchrono-secret-0123")
        .env("DEEPCURA_SHARED_SECRET", "bench-deepcura-secret-0123")
        .env("CODA_WRITEBACK_TOKEN", TOKEN)
        .env("AUGUST_LOG", "warn")
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http.get(format!("{base}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "august ingest never answered /health");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (child, base)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn write_backs(load: Load, base: &str, round: &'static str) -> Run {
    let base = Arc::new(base.to_string());
    measure(
        load,
        |_| async { reqwest::Client::new() },
        move |http: Arc<reqwest::Client>, c, n| {
            let url = format!("{base}/api/intake/{}", load.row(c, n));
            Box::pin(async move {
                let body = serde_json::json!({ "edited_by": EDITOR, "notes": format!("{round} {c}-{n}") });
                let response = http.patch(url).bearer_auth(TOKEN).json(&body).send().await.unwrap();
                let status = response.status();
                let text = response.text().await.unwrap();
                assert!(status.is_success(), "{status}: {text}");
            })
        },
    )
    .await
}

async fn updates(load: Load, db: &BenchDb, round: &'static str) -> Run {
    let config = db.config.clone();
    measure(
        load,
        move |_| {
            let config = config.clone();
            async move { august_schema::connect(&config).await.unwrap() }
        },
        move |client: Arc<tokio_postgres::Client>, c, n| {
            let key = load.row(c, n);
            Box::pin(async move {
                let notes = format!("{round} {c}-{n}");
                let changed = client
                    .execute(
                        "UPDATE intake_checklists SET notes = $1, updated_at = now() WHERE appointment_id = $2",
                        &[&notes, &key],
                    )
                    .await
                    .unwrap();
                assert_eq!(changed, 1);
            })
        },
    )
    .await
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn line(name: &str, run: &Run) {
    println!(
        "  {name:<44} p50 {:>7.2} ms   p99 {:>7.2} ms   {:>8.0} /s",
        ms(run.percentile(50)),
        ms(run.percentile(99)),
        run.rate()
    );
}

#[tokio::main]
async fn main() {
    let load = Load {
        clients: env("AUGUST_BENCH_CLIENTS", 16).max(1),
        requests: env("AUGUST_BENCH_REQUESTS", 4_000),
        rows: env("AUGUST_BENCH_ROWS", 1_000).max(1),
    };
    let db = BenchDb::start().await.unwrap();
    seed(&db, load.rows).await;
    let (mut child, base) = ingest(&db, load.clients).await;

    // A short warm-up of each (connections, caches, the pool), then the measured runs,
    // alternated so that neither side has the table's later state to itself.
    let warm = Load { requests: load.clients * 20, ..load };
    updates(warm, &db, "warm").await;
    write_backs(warm, &base, "warm").await;
    let plain_1 = updates(load, &db, "plain-1").await;
    let august_1 = write_backs(load, &base, "august-1").await;
    let plain_2 = updates(load, &db, "plain-2").await;
    let august_2 = write_backs(load, &base, "august-2").await;
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();

    let merge = |a: Run, b: Run| {
        let mut latencies = [a.latencies, b.latencies].concat();
        latencies.sort();
        Run { latencies, elapsed: a.elapsed + b.elapsed }
    };
    let (plain, august) = (merge(plain_1, plain_2), merge(august_1, august_2));
    println!(
        "writeback_latency: {} concurrent clients, {} requests per mode (two rounds each), {} intake checklists",
        load.clients,
        plain.latencies.len(),
        load.rows
    );
    line("PATCH /api/intake/{id} (august ingest, HTTP)", &august);
    line("UPDATE intake_checklists (tokio-postgres)", &plain);
    println!(
        "  ratio write-back / UPDATE:  p50 {:.2}x   p99 {:.2}x   throughput {:.3}",
        ms(august.percentile(50)) / ms(plain.percentile(50)),
        ms(august.percentile(99)) / ms(plain.percentile(99)),
        august.rate() / plain.rate()
    );
}
