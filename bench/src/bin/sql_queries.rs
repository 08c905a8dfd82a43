//! `sql_queries`: what a query over August's SQL endpoint costs against the same query on
//! Postgres itself, in one run on one machine, over 10,000 `scheduling_ops` rows
//! (`AUGUST_BENCH_ROWS`):
//!
//! * **point lookup** — one appointment by id, prepared, 2,000 times with random ids;
//! * **10k-row scan** — every row, 30 times;
//!
//! each by the real `august replicate` (release build) over pgwire, and by Postgres computing
//! the view from the base tables (the SQL below, the reference computation's joins: patient,
//! provider, primary insurance, intake checklist, clinical note, Deep Cura link), both through
//! `tokio-postgres`'s extended protocol. Prints p50/p99 of each and the ratios.
//!
//! Then **freshness** at 1,000 single-row commits/s for 10 s (`AUGUST_BENCH_RATE`,
//! `AUGUST_BENCH_SECS`): commit → row visible over pgwire, p50/p99, as `august_views` reports it
//! (each commit's timestamp from the WAL against the moment its frontier is applied, last 1,000
//! commits), and cross-checked by a client that commits a change and polls the endpoint until
//! it sees it, 1 in 50 commits.
//!
//! `cargo run --release -p august-bench --bin sql_queries` (builds `august` first).

#![allow(clippy::unwrap_used)] // a benchmark stops at the first broken assumption

use std::time::{Duration, Instant};

use august_bench::BenchDb;

/// `scheduling_ops` computed by Postgres from the base tables, as the reference computation
/// shapes it.
const VIEW_SQL: &str = "
SELECT a.drchrono_id AS appointment_id, a.scheduled_time, a.duration, a.status, a.reason, a.patient_id,
       nullif(concat_ws(' ', nullif(p.first_name, ''), nullif(p.last_name, '')), '') AS patient_name,
       p.date_of_birth, coalesce(p.cell_phone, p.home_phone) AS phone, p.email, a.provider_id,
       nullif(concat_ws(' ', nullif(pr.first_name, ''), nullif(pr.last_name, '')), '') AS provider_name,
       ins.insurance_company AS primary_insurance_payer, ic.status AS intake_status,
       coalesce(cn.locked, false) AS clinical_note_locked,
       EXISTS (SELECT 1 FROM deepcura_notes d WHERE d.clinical_note_id = cn.drchrono_id AND d.deleted_at IS NULL) AS deepcura_linked
FROM appointments a
LEFT JOIN patients p ON p.drchrono_id = a.patient_id AND p.deleted_at IS NULL
LEFT JOIN providers pr ON pr.drchrono_id = a.provider_id AND pr.deleted_at IS NULL
LEFT JOIN LATERAL (SELECT i.insurance_company FROM insurance_records i
                   WHERE i.patient_id = a.patient_id AND i.type = 'primary' AND i.deleted_at IS NULL
                   ORDER BY i.id LIMIT 1) ins ON true
LEFT JOIN intake_checklists ic ON ic.appointment_id = a.drchrono_id AND ic.deleted_at IS NULL
LEFT JOIN clinical_notes cn ON cn.drchrono_id = a.drchrono_id AND cn.deleted_at IS NULL
WHERE a.deleted_at IS NULL";

const PASSWORD: &str = "bench password";

#[tokio::main]
async fn main() {
    let rows: usize = std::env::var("AUGUST_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let rate: f64 = std::env::var("AUGUST_BENCH_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(1000.0);
    let secs: u64 = std::env::var("AUGUST_BENCH_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let august = august_bench::build_august();
    let db = BenchDb::start().await.unwrap();
    seed(&db, rows).await;
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    august_sql::Users::add(&users, "bench", august_sql::Role::Admin, PASSWORD).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut replicate = std::process::Command::new(&august)
        .arg("replicate")
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("AUGUST_HEARTBEAT_SECS", "1")
        .env("AUGUST_METRICS_ADDR", "127.0.0.1:0")
        .env("AUGUST_SQL_ADDR", format!("127.0.0.1:{port}"))
        .env("AUGUST_SQL_USERS_FILE", &users)
        .env("AUGUST_LOG", "warn")
        .spawn()
        .unwrap();
    let sql = connect_endpoint(port).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while count(&sql, "SELECT count(*) FROM scheduling_ops").await != rows as i64 {
        assert!(Instant::now() < deadline, "the endpoint did not show {rows} rows");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pg = db.client().await.unwrap();
    eprintln!(
        "sql_queries: {rows} scheduling_ops rows; each query over pgwire (August) and on Postgres (the view's SQL)"
    );

    let point_august = point_lookups(&sql, "SELECT * FROM scheduling_ops WHERE appointment_id = $1", rows).await;
    let point_pg = point_lookups(&pg, &format!("SELECT * FROM ({VIEW_SQL}) v WHERE appointment_id = $1"), rows).await;
    let scan_august = scans(&sql, "SELECT * FROM scheduling_ops", rows).await;
    let scan_pg = scans(&pg, VIEW_SQL, rows).await;

    println!("sql_queries: {rows} scheduling_ops rows, one machine, same run");
    for (name, ours, theirs) in [
        ("point lookup (by id, prepared)", &point_august, &point_pg),
        ("10k-row scan (SELECT *)", &scan_august, &scan_pg),
    ] {
        println!("  {name}");
        println!("    august (pgwire, live view):          {}", line(ours));
        println!("    postgres (view from base tables):   {}", line(theirs));
        println!(
            "    ratio postgres/august:  p50 {:.2}x   p99 {:.2}x",
            pct(theirs, 0.5) / pct(ours, 0.5).max(1e-9),
            pct(theirs, 0.99) / pct(ours, 0.99).max(1e-9)
        );
    }

    let (reported, observed) = freshness(&db, &sql, rows, rate, secs).await;
    println!("  freshness at {rate} single-row commits/s for {secs} s: commit → visible over pgwire");
    println!(
        "    august_views (WAL commit time → applied, last 1,000): p50 {:.1} ms   p99 {:.1} ms",
        reported.0 * 1e3,
        reported.1 * 1e3
    );
    println!("    a client's commit → its poll sees it ({} samples):   {}", observed.len(), line(&observed));
    let _ = std::process::Command::new("kill").args(["-TERM", &replicate.id().to_string()]).status();
    let _ = replicate.wait();
}

async fn connect_endpoint(port: u16) -> tokio_postgres::Client {
    let url = format!("host=127.0.0.1 port={port} user=bench password='{PASSWORD}' dbname=august");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                return client;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot connect to the SQL endpoint: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.map(|r| r.get(0)).unwrap_or(-1)
}

/// A tiny xorshift, so both sides look up the same ids.
fn ids(rows: usize, n: usize) -> Vec<String> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("B-{}", 1 + x as usize % rows)
        })
        .collect()
}

async fn point_lookups(client: &tokio_postgres::Client, sql: &str, rows: usize) -> Vec<f64> {
    let statement = client.prepare(sql).await.unwrap();
    let mut times = Vec::new();
    for (i, id) in ids(rows, 2_200).iter().enumerate() {
        let started = Instant::now();
        let found = client.query(&statement, &[id]).await.unwrap();
        assert_eq!(found.len(), 1, "{id}");
        if i >= 200 {
            times.push(started.elapsed().as_secs_f64()); // the first 200 warm up
        }
    }
    times
}

async fn scans(client: &tokio_postgres::Client, sql: &str, rows: usize) -> Vec<f64> {
    let statement = client.prepare(sql).await.unwrap();
    let mut times = Vec::new();
    for i in 0..33 {
        let started = Instant::now();
        assert_eq!(client.query(&statement, &[]).await.unwrap().len(), rows);
        if i >= 3 {
            times.push(started.elapsed().as_secs_f64());
        }
    }
    times
}

/// Commits `rate` single-row changes per second for `secs`; every 50th, a second client polls
/// the endpoint until the change shows. Returns August's own p50/p99 and the polled latencies.
async fn freshness(
    db: &BenchDb,
    sql: &tokio_postgres::Client,
    rows: usize,
    rate: f64,
    secs: u64,
) -> ((f64, f64), Vec<f64>) {
    let pg = db.client().await.unwrap();
    let update = pg.prepare("UPDATE appointments SET reason = $1 WHERE drchrono_id = $2").await.unwrap();
    let probe = sql.prepare("SELECT reason FROM scheduling_ops WHERE appointment_id = $1").await.unwrap();
    let total = (rate * secs as f64) as usize;
    let started = Instant::now();
    let mut observed = Vec::new();
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let (reason, id) = (format!("seq-{n}"), format!("B-{}", 1 + n % rows));
        pg.execute(&update, &[&reason, &id]).await.unwrap();
        if n % 50 == 0 {
            let committed = Instant::now();
            loop {
                let seen: Option<String> = sql.query_one(&probe, &[&id]).await.unwrap().get(0);
                if seen.as_deref() == Some(reason.as_str()) {
                    break;
                }
                assert!(committed.elapsed() < Duration::from_secs(30), "{id} never showed {reason}");
            }
            observed.push(committed.elapsed().as_secs_f64());
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let row = sql
        .query_one("SELECT lag_p50_seconds, lag_p99_seconds FROM august_views WHERE view = 'scheduling_ops'", &[])
        .await
        .unwrap();
    ((row.get::<_, Option<f64>>(0).unwrap_or(f64::NAN), row.get::<_, Option<f64>>(1).unwrap_or(f64::NAN)), observed)
}

fn pct(times: &[f64], q: f64) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn line(times: &[f64]) -> String {
    format!("p50 {:.2} ms   p99 {:.2} ms   (n = {})", pct(times, 0.5) * 1e3, pct(times, 0.99) * 1e3, times.len())
}

async fn seed(db: &BenchDb, rows: usize) {
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
             INSERT INTO appointments (drchrono_id, patient_id, provider_id, scheduled_time, duration, status, reason, drchrono_raw)
               SELECT 'B-' || g, 1 + g % 2000, 1 + g % 5, timestamp '2026-12-01 08:00' + g * interval '1 minute', 30,
                      'Scheduled', 'initial', '{{}}' FROM generate_series(1, {rows}) g;
             INSERT INTO clinical_notes (drchrono_id, patient_id, locked, drchrono_raw)
               SELECT 'B-' || g, 1 + g % 2000, g % 2 = 0, '{{}}' FROM generate_series(1, {rows}, 3) g;
             ANALYZE;"
        ))
        .await
        .unwrap();
}
