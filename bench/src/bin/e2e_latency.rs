//! `e2e_latency`: commit → Coda-durable latency at a steady 1,000 changes/s (`AUGUST_BENCH_RATE`)
//! for 20 s (`AUGUST_BENCH_SECS`), with the Coda emulator's quota off, for two designs run one
//! after the other on the same Postgres, the same rows and the same load:
//!
//! * **August**: the real `august replicate` binary (cdc → dataflow → Coda sink), mirroring
//!   `scheduling_ops` (appointment + patient + provider + insurance + intake + note + link);
//! * **the old design's shape**, written here as the baseline: an `AFTER UPDATE` trigger that
//!   `pg_notify`s the appointment id, and one loop that `LISTEN`s, fetches the joined row and
//!   sends one upsert per event.
//!
//! Each change sets an appointment's `reason` to `seq-N`. A change is durable when the emulator
//! applies a write carrying it or a later change of the same row; both designs are timed by the
//! same observer (the emulator in this process) against the same clock (the generator's, after
//! its commit returned). Prints p50/p99 of each and their ratio. August's own histogram
//! (commit → recorded durable in its ledger) is scraped from its `/metrics` as a cross-check.
//!
//! `cargo run --release -p august-bench --bin e2e_latency` (builds `august` first).

#![allow(clippy::unwrap_used)] // a benchmark stops at the first broken assumption

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use august_bench::{emulated_doc, BenchDb};
use august_dataflow::views::scheduling_ops::SPEC;
use august_emulators::coda::{self as coda_emulator, Emulator, EmulatorConfig};
use august_sinks::coda::mapping::Mapping;
use serde_json::{json, Value};

const APPOINTMENTS: usize = 5_000;
const CONNECTIONS: usize = 4;
const DOC: &str = "doc-bench";
const TABLE: &str = "grid-sched";

/// What the load committed and what the observer saw: `(row, seq, when)`.
#[derive(Default)]
struct Book {
    commits: Vec<(usize, u64, Instant)>,
    seen: Vec<(usize, u64, Instant)>,
}

fn mapping_text() -> String {
    let columns: String = SPEC.columns.iter().map(|c| format!("{c} = \"c-{c}\"\n")).collect();
    format!(
        "doc_id = \"{DOC}\"\n[[tables]]\nallow = [\"direct\", \"clinical\", \"identifier\", \"operational\"]\nview = \"scheduling_ops\"\ntable_id = \"{TABLE}\"\nkey = \"appointment_id\"\non_delete = \"delete\"\n[tables.columns]\n{columns}"
    )
}

#[tokio::main]
async fn main() {
    let rate: f64 = std::env::var("AUGUST_BENCH_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(1000.0);
    let secs: u64 = std::env::var("AUGUST_BENCH_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let august = august_bench::build_august();
    let db = BenchDb::start().await.unwrap();
    seed(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let mapping_file = dir.path().join("mapping.toml");
    std::fs::write(&mapping_file, mapping_text()).unwrap();
    let mapping = Mapping::parse(&mapping_text(), "bench").unwrap();
    eprintln!("e2e_latency: {APPOINTMENTS} appointments, {rate} changes/s for {secs} s per design");

    // August: the real binary.
    let (emulator, book) = observed_emulator(&mapping).await;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut replicate = std::process::Command::new(&august)
        .arg("replicate")
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("AUGUST_CODA_MAPPING", &mapping_file)
        .env("CODA_API_BASE", emulator.base_url())
        .env("CODA_API_TOKEN", "emulator-token")
        .env("AUGUST_CODA_WRITES_PER_6S", "6000000")
        .env("AUGUST_CODA_READS_PER_6S", "6000000")
        .env("AUGUST_HEARTBEAT_SECS", "1")
        .env("AUGUST_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("AUGUST_SQL_ADDR", "127.0.0.1:0")
        .env("AUGUST_LOG", "warn")
        .spawn()
        .unwrap();
    wait_for_rows(&emulator, APPOINTMENTS).await;
    let ours = run_load(&db, &book, rate, secs, 0).await;
    let histogram =
        reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.unwrap().text().await.unwrap();
    let _ = std::process::Command::new("kill").args(["-TERM", &replicate.id().to_string()]).status();
    let _ = replicate.wait();

    // The baseline: trigger + NOTIFY + fetch the row + one upsert per event.
    let (emulator, book) = observed_emulator(&mapping).await;
    let client = db.client().await.unwrap();
    client
        .batch_execute(
            "CREATE FUNCTION bench_notify() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN PERFORM pg_notify('bench_appointments', NEW.drchrono_id); RETURN NEW; END $$;
             CREATE TRIGGER bench_notify AFTER UPDATE ON appointments FOR EACH ROW EXECUTE FUNCTION bench_notify();",
        )
        .await
        .unwrap();
    let listener = tokio::spawn(baseline_loop(db.config.clone(), emulator.base_url()));
    tokio::time::sleep(Duration::from_millis(500)).await; // LISTEN is in place

    let theirs = run_load(&db, &book, rate, secs, 1 << 40).await;
    listener.abort();

    println!("e2e_latency: commit → Coda durable at {rate} changes/s for {secs} s (emulator, quota off)");
    println!("  august   (cdc → dataflow → Coda sink):            {}", ours.line());
    println!("  baseline (trigger + NOTIFY + fetch + 1 upsert/event): {}", theirs.line());
    println!(
        "  ratio baseline/august:  p50 {:.1}x   p99 {:.1}x",
        theirs.p50.as_secs_f64() / ours.p50.as_secs_f64().max(1e-9),
        theirs.p99.as_secs_f64() / ours.p99.as_secs_f64().max(1e-9)
    );
    if let Some(mean) = histogram_mean(&histogram) {
        println!("  august's own histogram (commit → ledger-durable), mean: {:.1} ms", mean * 1000.0);
    }
}

/// Providers, patients with primary insurance, and their appointments.
async fn seed(db: &BenchDb) {
    let client = db.client().await.unwrap();
    client
        .batch_execute(&format!(
            "SELECT set_config('app.actor', 'bench', false);
             INSERT INTO providers (drchrono_id, first_name, last_name, drchrono_raw)
               SELECT g, 'Doc', 'Tor' || g, '{{}}' FROM generate_series(1, 5) g;
             INSERT INTO patients (drchrono_id, first_name, last_name, date_of_birth, cell_phone, drchrono_raw)
               SELECT g, 'Pat', 'Ient' || g, date '1980-01-01' + g, '555-' || g, '{{}}' FROM generate_series(1, 2000) g;
             INSERT INTO insurance_records (patient_id, type, insurance_company, drchrono_raw)
               SELECT g, 'primary', 'Aetna', '{{}}' FROM generate_series(1, 2000) g;
             INSERT INTO appointments (drchrono_id, patient_id, provider_id, scheduled_time, status, reason, drchrono_raw)
               SELECT 'B-' || g, 1 + g % 2000, 1 + g % 5, timestamp '2026-12-01 08:00' + g * interval '1 minute',
                      'Scheduled', 'initial', '{{}}' FROM generate_series(1, {APPOINTMENTS}) g;"
        ))
        .await
        .unwrap();
}

/// A fresh emulator (quota off) whose applied writes are recorded in the returned book.
async fn observed_emulator(mapping: &Mapping) -> (Emulator, Arc<Mutex<Book>>) {
    let config = EmulatorConfig { quota: false, ..EmulatorConfig::default() };
    let emulator = coda_emulator::serve("127.0.0.1:0".parse().unwrap(), emulated_doc(mapping), config).await.unwrap();
    let book = Arc::new(Mutex::new(Book::default()));
    let mut applied = emulator.observe();
    let seen = book.clone();
    tokio::spawn(async move {
        while let Some(write) = applied.recv().await {
            let mut book = seen.lock().unwrap();
            for row in &write.rows {
                let (Some(Value::String(key)), Some(Value::String(reason))) =
                    (row.get("c-appointment_id"), row.get("c-reason"))
                else {
                    continue;
                };
                let (Some(n), Some(seq)) = (key.strip_prefix("B-"), reason.strip_prefix("seq-")) else { continue };
                book.seen.push((n.parse().unwrap(), seq.parse().unwrap(), write.at));
            }
        }
    });
    (emulator, book)
}

async fn wait_for_rows(emulator: &Emulator, rows: usize) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while emulator.rows(DOC, TABLE).len() < rows {
        assert!(Instant::now() < deadline, "the initial copy never reached the emulator");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Latencies of one design.
struct Figures {
    p50: Duration,
    p99: Duration,
    durable: usize,
    sent: usize,
}

impl Figures {
    fn line(&self) -> String {
        format!(
            "p50 {:>8.1} ms   p99 {:>8.1} ms   ({} of {} durable)",
            self.p50.as_secs_f64() * 1000.0,
            self.p99.as_secs_f64() * 1000.0,
            self.durable,
            self.sent
        )
    }
}

/// The steady load: `CONNECTIONS` writers, each owning every `CONNECTIONS`-th appointment (so
/// one row's changes commit in order), one single-row transaction per change, numbered from
/// `first` (each design's load must change every row it touches). Then waits up to
/// 60 s for every change to be durable and reads the latencies off the book.
async fn run_load(db: &BenchDb, book: &Arc<Mutex<Book>>, rate: f64, secs: u64, first: u64) -> Figures {
    let per_connection = Duration::from_secs_f64(CONNECTIONS as f64 / rate);
    let total = (rate * secs as f64) as u64;
    let mut writers = Vec::new();
    for c in 0..CONNECTIONS {
        let client = db.client().await.unwrap();
        let book = book.clone();
        writers.push(tokio::spawn(async move {
            let update = client.prepare("UPDATE appointments SET reason = $1 WHERE drchrono_id = $2").await.unwrap();
            let mut ticks = tokio::time::interval(per_connection);
            let rows_owned = APPOINTMENTS / CONNECTIONS;
            let (mut seq, mut k) = (c as u64, 0usize);
            while seq < total {
                ticks.tick().await;
                let row = 1 + c + CONNECTIONS * ((k * 7919) % rows_owned); // spread over this writer's rows
                client.execute(&update, &[&format!("seq-{}", first + seq), &format!("B-{row}")]).await.unwrap();
                book.lock().unwrap().commits.push((row, first + seq, Instant::now()));
                seq += CONNECTIONS as u64;
                k += 1;
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let figures = figures(&book.lock().unwrap());
        if figures.durable == figures.sent || Instant::now() > deadline {
            return figures;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A change is durable at the first applied write of its row carrying it or a later change.
fn figures(book: &Book) -> Figures {
    let mut seen: HashMap<usize, Vec<(u64, Instant)>> = HashMap::new();
    for (row, seq, at) in &book.seen {
        seen.entry(*row).or_default().push((*seq, *at));
    }
    let mut latencies: Vec<Duration> = book
        .commits
        .iter()
        .filter_map(|(row, seq, committed)| {
            let at = seen.get(row)?.iter().filter(|(s, _)| s >= seq).map(|(_, at)| *at).min()?;
            Some(at.saturating_duration_since(*committed))
        })
        .collect();
    latencies.sort_unstable();
    let at = |q: f64| latencies.get(((latencies.len().max(1) - 1) as f64 * q) as usize).copied().unwrap_or_default();
    Figures { p50: at(0.5), p99: at(0.99), durable: latencies.len(), sent: book.commits.len() }
}

/// The old design's loop: each notification's row is fetched, then sent as one upsert.
async fn baseline_loop(pg: tokio_postgres::Config, coda: String) {
    // This connection's notifications are read off it directly, so it is made here, with the
    // same TLS as every other connection to the target.
    let tls = august_schema::tls::for_config(&pg);
    let (listener, mut connection) = tls.apply(&pg).connect(tls.connector()).await.unwrap();
    let (tx, mut ids) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let Ok(tokio_postgres::AsyncMessage::Notification(n)) = message {
                let _ = tx.send(n.payload().to_string());
            }
        }
    });
    listener.batch_execute("LISTEN bench_appointments").await.unwrap();

    let db = august_schema::connect(&pg).await.unwrap();
    let fetch = db.prepare(FETCH).await.unwrap();
    let http = reqwest::Client::new();
    let url = format!("{coda}/docs/{DOC}/tables/{TABLE}/rows");
    while let Some(id) = ids.recv().await {
        let Some(row) = db.query_opt(&fetch, &[&id]).await.unwrap() else { continue };
        let values: Vec<Option<Value>> = row.get(0);
        let cells: Vec<Value> = SPEC
            .columns
            .iter()
            .zip(values)
            .map(|(c, v)| json!({"column": format!("c-{c}"), "value": v.unwrap_or_else(|| json!(""))}))
            .collect();
        let body = json!({"rows": [{"cells": cells}], "keyColumns": ["c-appointment_id"]});
        let response = http.post(&url).bearer_auth("emulator-token").json(&body).send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
}

/// The scheduling row, as the old design's fetch would build it in SQL (NULLs as "").
const FETCH: &str = "
SELECT ARRAY[to_jsonb(a.drchrono_id), to_jsonb(a.scheduled_time::text), to_jsonb(a.duration), to_jsonb(a.status),
             to_jsonb(a.reason), to_jsonb(a.patient_id), to_jsonb(concat_ws(' ', p.first_name, p.last_name)),
             to_jsonb(p.date_of_birth::text), to_jsonb(coalesce(p.cell_phone, p.home_phone)), to_jsonb(p.email),
             to_jsonb(a.provider_id), to_jsonb(concat_ws(' ', pr.first_name, pr.last_name)), to_jsonb(i.insurance_company),
             to_jsonb(ic.status), to_jsonb(coalesce(cn.locked, false)),
             to_jsonb(EXISTS (SELECT 1 FROM deepcura_notes d WHERE d.clinical_note_id = a.drchrono_id))]::jsonb[]
  FROM appointments a
  LEFT JOIN patients p ON p.drchrono_id = a.patient_id AND p.deleted_at IS NULL
  LEFT JOIN providers pr ON pr.drchrono_id = a.provider_id AND pr.deleted_at IS NULL
  LEFT JOIN insurance_records i ON i.patient_id = a.patient_id AND i.type = 'primary' AND i.deleted_at IS NULL
  LEFT JOIN intake_checklists ic ON ic.appointment_id = a.drchrono_id AND ic.deleted_at IS NULL
  LEFT JOIN clinical_notes cn ON cn.drchrono_id = a.drchrono_id AND cn.deleted_at IS NULL
 WHERE a.drchrono_id = $1";

/// The mean of `august_e2e_latency_seconds` from a Prometheus text page.
fn histogram_mean(page: &str) -> Option<f64> {
    let value = |name: &str| -> Option<f64> {
        let sums: BTreeMap<&str, f64> = page
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| Some((l, l.rsplit(' ').next()?.parse().ok()?)))
            .collect();
        (!sums.is_empty()).then(|| sums.values().sum())
    };
    let (sum, count) = (value("august_e2e_latency_seconds_sum")?, value("august_e2e_latency_seconds_count")?);
    (count > 0.0).then(|| sum / count)
}
