//! `august replicate` killed with SIGKILL in the middle of a stream of 5,000 changes, and
//! started again: Coda (the emulator, its own process) ends equal, row for row, to what the
//! views say from Postgres, and it never received a write for a row whose content it held
//! (the writes in flight at the kill are settled at the restart, not sent again).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::support::{converged, demo_mapping, demo_mapping_path, emulator, get_json, August};

const TOKEN: &str = "kill-token";
const CHANGES: usize = 5_000;

/// Writes `CHANGES` row changes in small transactions over patients, their insurance,
/// appointments, intake checklists, clinical notes and Deep Cura notes: inserts, updates, soft
/// and hard deletes, so every view moves. Counts the changes committed in `done`.
async fn clinic_stream(db: tokio_postgres::Client, done: Arc<AtomicUsize>) {
    let mut rng = StdRng::seed_from_u64(7);
    let mut db = db;
    let mut written = 0;
    while written < CHANGES {
        let tx = db.transaction().await.unwrap();
        tx.execute("SELECT set_config('app.actor', 'kill_test', true)", &[]).await.unwrap();
        for _ in 0..rng.random_range(1..=4) {
            let patient = rng.random_range(1..=150i64);
            let appointment = format!("K-{}", rng.random_range(1..=300));
            let (sql, text): (&str, String) = match rng.random_range(0..10) {
                0..=1 => (
                    "INSERT INTO patients (drchrono_id, first_name, last_name, cell_phone, drchrono_raw) VALUES ($1, 'Pat', 'Ient', $2, '{}')
                     ON CONFLICT (drchrono_id) DO UPDATE SET cell_phone = EXCLUDED.cell_phone, deleted_at = NULL",
                    format!("555-{:04}", rng.random_range(0..10_000)),
                ),
                2 => ("UPDATE patients SET deleted_at = now() WHERE drchrono_id = $1 AND $2 <> ''", "x".into()),
                3 => (
                    "INSERT INTO insurance_records (patient_id, type, insurance_company, drchrono_raw) VALUES ($1, 'primary', $2, '{}')
                     ON CONFLICT (patient_id, type) DO UPDATE SET insurance_company = EXCLUDED.insurance_company",
                    ["Aetna", "Cigna", "Medicare"][rng.random_range(0..3)].into(),
                ),
                4..=5 => (
                    "INSERT INTO appointments (drchrono_id, patient_id, provider_id, scheduled_time, status, drchrono_raw)
                     VALUES ($2, $1, 9, '2026-12-01 09:00', 'Scheduled', '{}')
                     ON CONFLICT (drchrono_id) DO UPDATE SET status = (ARRAY['Confirmed','Arrived','Complete'])[1 + (random() * 2)::int]",
                    appointment,
                ),
                6 => ("DELETE FROM appointments WHERE drchrono_id = $2 AND $1::bigint > 0", appointment),
                7 => (
                    "INSERT INTO intake_checklists (appointment_id, patient_id) VALUES ($2, $1)
                     ON CONFLICT (appointment_id) DO UPDATE SET consent_signed = NOT intake_checklists.consent_signed",
                    appointment,
                ),
                8 => (
                    "INSERT INTO clinical_notes (drchrono_id, patient_id, locked, drchrono_raw) VALUES ($2, $1, true, '{}')
                     ON CONFLICT (drchrono_id) DO UPDATE SET locked = NOT clinical_notes.locked",
                    appointment,
                ),
                _ => (
                    "INSERT INTO deepcura_notes (id, drchrono_patient_id, drchrono_appt_id, session_date, soap_subjective, raw_payload)
                     VALUES (gen_random_uuid(), $1, $2, '2026-12-01', 'better', '{}')",
                    appointment,
                ),
            };
            tx.execute(sql, &[&patient, &text]).await.unwrap();
            written += 1;
        }
        tx.commit().await.unwrap();
        done.store(written, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn a_replicate_killed_mid_stream_restarts_to_an_exact_mirror_without_redundant_writes() {
    let db = august_testkit::fresh_db("e2e_kill").await;
    // Each write takes 200 ms to complete, so the kill finds writes Coda will apply after the
    // writer is gone: the next run must learn that they landed instead of sending them again.
    let (_coda_process, coda) = emulator(TOKEN, &["--no-quota", "--mutation-delay-ms", "200"]).await;
    let env = [
        ("DATABASE_URL", db.url().to_string()),
        ("AUGUST_SLOT", db.name.clone()),
        ("AUGUST_METRICS_ADDR", "127.0.0.1:0".into()),
        ("AUGUST_SQL_ADDR", "127.0.0.1:0".into()),
        ("AUGUST_HEARTBEAT_SECS", "1".into()),
        ("AUGUST_CODA_MAPPING", demo_mapping_path().display().to_string()),
        ("CODA_API_BASE", coda.clone()),
        ("CODA_API_TOKEN", TOKEN.into()),
        ("AUGUST_CODA_WRITES_PER_6S", "60000".into()),
        ("AUGUST_CODA_READS_PER_6S", "60000".into()),
    ];
    let mut first = August::spawn(&["replicate"], &env);
    first.line_with("replicating", Duration::from_secs(60)).await;

    let done = Arc::new(AtomicUsize::new(0));
    let stream = tokio::spawn(clinic_stream(db.client().await, done.clone()));
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (_, stats) = get_json(&format!("{coda}/_emulator/stats"), TOKEN).await;
        if done.load(Ordering::Relaxed) >= 2_000 && stats["writes"].as_u64() > Some(20) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no writes reached Coda ({} changes made): {stats}\n{}",
            done.load(Ordering::Relaxed),
            first.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.signal("KILL");
    first.exit(Duration::from_secs(10)).await;
    let killed_at = done.load(Ordering::Relaxed);
    assert!(killed_at < CHANGES, "killed in the middle of the stream ({killed_at})");

    let mut second = August::spawn(&["replicate"], &env);
    stream.await.unwrap();
    let rows = converged(&db.config(), &coda, TOKEN, &demo_mapping(), Duration::from_secs(120))
        .await
        .unwrap_or_else(|difference| panic!("Coda never matched the views: {difference}\n{}", second.log()));
    assert!(rows > 500, "the stream left {rows} rows across the views");
    let (_, stats) = get_json(&format!("{coda}/_emulator/stats"), TOKEN).await;
    assert_eq!(stats["rows_unchanged"], 0, "a write carried content Coda already held: {stats}");

    assert!(second.log().contains("settled Coda writes left unconfirmed"), "the kill left no write in flight");
    second.signal("TERM");
    assert!(second.exit(Duration::from_secs(30)).await.success(), "{}", second.log());
}
