//! `drchrono_backfill`: a clinic's cut-over backfill through the real pull sync, from the
//! DrChrono emulator into a real Postgres.
//!
//! 1. **Calls under the quota.** A 20,000-patient practice (`AUGUST_BENCH_PATIENTS`) with the
//!    emulator enforcing 500 calls per window, the window shortened to
//!    `AUGUST_BENCH_WINDOW_SECS` (default 10 s) for both sides. Figure: the minimum possible
//!    calls (`ceil(objects / page size)` per feed) over the calls made, with 429s and the most
//!    calls the emulator saw in one window. Target ≥ 0.95, no 429s, never over 500.
//! 2. **Throughput.** The same practice, quota off: objects per second loaded into Postgres
//!    against a plain paged loop (GET, parse, follow `next`, no database) over the same lists
//!    in the same run, and against the same loop storing each page as JSON in one plain table
//!    with one statement. The ratios are what pulling into mirrors with guards and an audit
//!    trail costs.
//!
//! `cargo run --release -p august-bench --bin drchrono_backfill`

#![allow(clippy::unwrap_used)] // a benchmark stops at the first broken assumption

use std::time::{Duration, Instant};

use august_bench::BenchDb;
use august_emulators::drchrono::{self, DrChronoConfig, DrChronoEmulator};
use august_ingest::drchrono::budget::Priority;
use august_ingest::drchrono::feeds::FEEDS;
use august_ingest::drchrono::pull::{Progress, PullOptions};
use august_ingest::drchrono::runs::{RunSummary, Syncer};
use august_ingest::drchrono::{DrChronoClient, DrChronoSettings};
use august_schema::{PoolSettings, Secret};

/// The emulator's list name of a feed (its path's last segment).
fn list_of(path: &str) -> &str {
    path.trim_start_matches("/api/")
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn backfill(emulator: &DrChronoEmulator, calls: u32, window: Duration) -> (RunSummary, Duration) {
    let db = BenchDb::start().await.unwrap();
    let config = DrChronoConfig::default();
    let settings = DrChronoSettings {
        api_base: emulator.base_url(),
        client_id: config.client_id,
        client_secret: Secret::new(config.client_secret),
        refresh_token: Some(Secret::new(config.refresh_token)),
        token_key: Secret::new("benchmark token key, not a secret".into()),
        calls_per_hour: calls,
        calls_reserve: 0,
        rate_window: window,
    };
    let pool = august_schema::connect_pool(&PoolSettings::default(), db.config.clone()).await.unwrap();
    let client = DrChronoClient::connect(&settings, pool.clone(), db.config.clone()).await.unwrap();
    let syncer = Syncer::new(client, pool, db.config.clone());
    let options = PullOptions { full: true, since: None, priority: Priority::Manual };
    let started = Instant::now();
    let run = syncer.claim(FEEDS.iter().collect(), options, "bench").await.unwrap();
    let summary = run.run(tokio::sync::watch::channel(Progress::default()).0).await;
    let took = started.elapsed();
    assert_eq!(summary.status, "succeeded", "{:?}", summary.error);
    drop(db);
    (summary, took)
}

/// GET every page of every feed, parse it, follow `next`; with `store`, also upsert each
/// page's objects as JSON into one plain table in one statement (no guards, no audit).
async fn plain_loop(emulator: &DrChronoEmulator, store: Option<&tokio_postgres::Client>) -> (u64, Duration) {
    if let Some(db) = store {
        db.batch_execute("CREATE TABLE plain_objects (feed text, id text, body jsonb, PRIMARY KEY (feed, id))")
            .await
            .unwrap();
    }
    let http = reqwest::Client::new();
    let config = DrChronoConfig::default();
    let refresh_token = emulator.refresh_token().unwrap(); // the newest: refreshes rotate it
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
        ("client_id", config.client_id.as_str()),
        ("client_secret", config.client_secret.as_str()),
    ];
    let token: serde_json::Value =
        http.post(format!("{}/o/token/", emulator.base_url())).form(&form).send().await.unwrap().json().await.unwrap();
    let token = token["access_token"].as_str().unwrap().to_string();
    let started = Instant::now();
    let mut objects = 0u64;
    for feed in FEEDS {
        let mut url = format!("{}{}?page_size={}", emulator.base_url(), feed.path, feed.page_size);
        if feed.verbose {
            url.push_str("&verbose=true");
        }
        for (k, v) in feed.extra {
            url.push_str(&format!("&{k}={v}"));
        }
        if feed.path == "/api/appointments" {
            url.push_str("&since=1970-01-01");
        }
        loop {
            let page: serde_json::Value =
                http.get(&url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
            objects += page["results"].as_array().map_or(0, Vec::len) as u64;
            match page["next"].as_str() {
                Some(next) => url = next.to_string(),
                None => break,
            }
        }
    }
    (objects, started.elapsed())
}

#[tokio::main]
async fn main() {
    let patients = env("AUGUST_BENCH_PATIENTS", 20_000) as usize;
    let window = Duration::from_secs(env("AUGUST_BENCH_WINDOW_SECS", 10));

    // 1. Calls under the quota.
    let config = DrChronoConfig { patients, calls_per_window: Some(500), window, ..DrChronoConfig::default() };
    let emulator = drchrono::serve("127.0.0.1:0".parse().unwrap(), config).await.unwrap();
    let counts = emulator.counts();
    let minimum: u64 = FEEDS
        .iter()
        .map(|f| (counts.get(list_of(f.path)).copied().unwrap_or(0) as u64).div_ceil(u64::from(f.page_size)).max(1))
        .sum();
    let objects: usize = FEEDS.iter().map(|f| counts.get(list_of(f.path)).copied().unwrap_or(0)).sum();
    println!("drchrono_backfill: {patients} patients, {objects} objects over {} feeds", FEEDS.len());
    let (summary, took) = backfill(&emulator, 500, window).await;
    let stats = emulator.stats();
    println!(
        "quota on (500 calls per {} s window): {} calls made for a minimum of {minimum}: ratio {:.3} (target >= 0.95); \
         {} 429s; at most {} calls in one window; {} objects in {:.1} s",
        window.as_secs(),
        stats.api_calls,
        minimum as f64 / stats.api_calls as f64,
        stats.throttled,
        stats.max_calls_in_window,
        summary.counts.fetched,
        took.as_secs_f64()
    );
    emulator.stop().await;

    // 2. Throughput, quota off.
    let config = DrChronoConfig { patients, calls_per_window: None, ..DrChronoConfig::default() };
    let emulator = drchrono::serve("127.0.0.1:0".parse().unwrap(), config).await.unwrap();
    let (summary, august) = backfill(&emulator, 1_000_000, Duration::from_secs(3600)).await;
    let (plain_objects, plain) = plain_loop(&emulator, None).await;
    let scratch = BenchDb::start().await.unwrap();
    let (stored_objects, stored) = plain_loop(&emulator, Some(&scratch.client().await.unwrap())).await;
    let rate = |objects: f64, took: Duration| objects / took.as_secs_f64();
    let august_rate = rate(f64::from(summary.counts.fetched), august);
    let plain_rate = rate(plain_objects as f64, plain);
    let stored_rate = rate(stored_objects as f64, stored);
    println!(
        "quota off: August {august_rate:.0} objects/s into its mirrors ({} in {:.1} s); a plain paged loop \
         {plain_rate:.0} objects/s with no database: ratio {:.3}; the same loop upserting each page as JSON \
         into one plain table {stored_rate:.0} objects/s: ratio {:.2}",
        summary.counts.fetched,
        august.as_secs_f64(),
        august_rate / plain_rate,
        august_rate / stored_rate
    );
    emulator.stop().await;
}
