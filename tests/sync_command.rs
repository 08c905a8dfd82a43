//! `august sync` and `august verify` as an operator runs them for a cut-over, and `serve`'s
//! reconciliation carrying a change made in DrChrono into Coda: the real binary, a real
//! Postgres, the DrChrono emulator (in this process) and the Coda emulator (its own process).

use std::time::{Duration, Instant};

use august_emulators::drchrono::{self, DrChronoConfig, DrChronoEmulator};
use serde_json::{json, Value};

use crate::support::{demo_mapping_path, drchrono_env, emulator, free_port, get_json, August};
use crate::{august, stderr, stdout};

async fn run(args: &[&str], env: &[(&'static str, String)]) -> std::process::Output {
    let (args, env): (Vec<String>, Vec<(&'static str, String)>) =
        (args.iter().map(|a| a.to_string()).collect(), env.to_vec());
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        august(&args, &env)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_backfills_verify_agrees_and_a_changed_row_is_named_by_id() {
    let db = august_testkit::fresh_db("sync_command").await;
    let drchrono =
        drchrono::serve("127.0.0.1:0".parse().unwrap(), DrChronoConfig { patients: 25, ..Default::default() })
            .await
            .unwrap();
    let env = drchrono_env(&db, &drchrono);

    let synced = run(&["sync", "all", "--quiet"], &env).await;
    assert!(synced.status.success(), "{}", stderr(&synced));
    assert!(stdout(&synced).contains("succeeded"), "{}", stdout(&synced));
    assert_eq!(db.count("SELECT count(*) FROM patients").await as usize, drchrono.counts()["patients"]);

    let verified = run(&["verify"], &env).await;
    assert!(verified.status.success(), "{}\n{}", stdout(&verified), stderr(&verified));
    assert!(stdout(&verified).contains("verified"), "{}", stdout(&verified));

    // Someone edits the mirror behind DrChrono's back: verify names the row by id, exit 1.
    let patient = drchrono.objects("patients")[7]["id"].as_i64().unwrap();
    let client = db.client().await;
    client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL app.actor = 'august_migrate'; UPDATE patients SET cell_phone = 'tampered-phone' WHERE drchrono_id = {patient}; COMMIT;"
        ))
        .await
        .unwrap();
    let differs = run(&["verify", "patients"], &env).await;
    assert_eq!(differs.status.code(), Some(1), "{}", stdout(&differs));
    let table = stdout(&differs);
    let line = table.lines().find(|l| l.split_whitespace().nth(1) == Some("patients")).unwrap_or_default().to_string();
    assert!(line.contains("differs") && line.contains(&patient.to_string()), "{table}");
    assert!(!table.contains("tampered"), "values never appear, ids only: {table}");

    let unknown = run(&["sync", "everything"], &env).await;
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("RESOURCE"), "{}", stderr(&unknown));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reconciles_a_change_made_in_drchrono_into_coda() {
    const TOKEN: &str = "sync-e2e-token";
    let db = august_testkit::fresh_db("sync_reconcile").await;
    let drchrono =
        drchrono::serve("127.0.0.1:0".parse().unwrap(), DrChronoConfig { patients: 3, ..Default::default() })
            .await
            .unwrap();
    let (_coda_process, coda) = emulator(TOKEN, &["--no-quota"]).await;
    let port = free_port();
    let mut env = drchrono_env(&db, &drchrono);
    env.extend([
        ("PORT", port.to_string()),
        ("AUGUST_HTTP_ADDR", "127.0.0.1:0".into()),
        ("DRCHRONO_WEBHOOK_SECRET", "drchrono-secret-0123456789".into()),
        ("DEEPCURA_SHARED_SECRET", "deepcura-secret-0123456789".into()),
        ("AUGUST_CODA_MAPPING", demo_mapping_path().display().to_string()),
        ("CODA_API_BASE", coda.clone()),
        ("CODA_API_TOKEN", TOKEN.into()),
        ("AUGUST_CODA_WRITES_PER_6S", "6000".into()),
        ("AUGUST_SLOT", db.name.clone()),
        ("AUGUST_METRICS_ADDR", "127.0.0.1:0".into()),
        ("AUGUST_SQL_ADDR", "127.0.0.1:0".into()),
        ("AUGUST_HEARTBEAT_SECS", "1".into()),
        ("AUGUST_RECONCILE_SECS", "2".into()),
    ]);
    let env: Vec<(&str, String)> = env.into_iter().collect();
    let mut serve = August::spawn(&["serve"], &env);
    serve.line_with("serving webhooks and replicating", Duration::from_secs(60)).await;

    // The first pass backfills; the appointment's row reaches Coda with its patient's phone.
    let appointment = drchrono
        .objects("appointments")
        .into_iter()
        .find(|a| a["patient"].is_i64() && a["status"].is_string())
        .expect("an appointment with a patient");
    let (id, patient) = (appointment["id"].as_str().unwrap().to_string(), appointment["patient"].as_i64().unwrap());
    let phone_of = |emulator: &DrChronoEmulator| {
        let patients = emulator.objects("patients");
        patients.iter().find(|p| p["id"] == json!(patient)).unwrap()["cell_phone"].clone()
    };
    let before = phone_of(&drchrono);
    coda_row(&coda, TOKEN, &id, |v| v["c-phone"] == before).await;

    assert!(drchrono.modify_patient(patient));
    let after = phone_of(&drchrono);
    assert_ne!(before, after);
    coda_row(&coda, TOKEN, &id, |v| v["c-phone"] == after).await;
    let passes = db.count("SELECT count(*) FROM sync_log WHERE source = 'drchrono_sync' AND event = 'reconcile'").await;
    assert!(passes >= 2, "the change came with a later pass");

    serve.signal("TERM");
    let status = serve.exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", serve.log());
    assert!(!serve.log().contains(&after.as_str().unwrap_or("?").to_string()), "no phone number in the log");
}

async fn coda_row(coda: &str, token: &str, appointment: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, page) =
            get_json(&format!("{coda}/docs/demo-clinic/tables/grid-scheduling-ops/rows?limit=500"), token).await;
        let row = page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["values"]["c-appointment-id"] == json!(appointment));
        if let Some(row) = row.filter(|r| ready(&r["values"])) {
            return row["values"].clone();
        }
        assert!(Instant::now() < deadline, "scheduling_ops never showed {appointment} as expected: {page}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
