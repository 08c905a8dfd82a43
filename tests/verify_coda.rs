//! `august verify --coda` against the real pieces: a real Postgres, the Coda emulator as its own
//! process, and rows put into Coda by `august replicate`. Equal tables show no difference; a
//! row changed in Postgres only, a row deleted from Coda and a row deleted from Postgres only
//! each show as exactly that key, named by column, never by value.

use std::time::{Duration, Instant};

use august_sinks::coda::compare::compare_with;
use august_sinks::coda::mapping::Mapping;

use crate::support::{coda_client, converged, emulator_for, August};

const TOKEN: &str = "verify-token";

const MAPPING: &str = r#"
doc_id = "doc-verify"
[[tables]]
allow = ["direct", "clinical", "identifier", "operational"]
view = "patients"
table_id = "grid-patients"
key = "drchrono_id"
on_delete = "delete"
[tables.columns]
drchrono_id = "c-id"
first_name = "c-first"
cell_phone = "c-phone"

[[tables]]
allow = ["direct", "clinical", "identifier", "operational"]
view = "scheduling_ops"
table_id = "grid-sched"
key = "appointment_id"
on_delete = "delete"
[tables.columns]
appointment_id = "c-appt"
patient_name = "c-name"
status = "c-status"
"#;

/// Each difference as `view key: problem`.
async fn differences(
    client: &august_sinks::coda::client::CodaClient,
    mapping: &Mapping,
    db: &august_testkit::TestDb,
) -> Vec<String> {
    let comparison = compare_with(client, mapping, &db.config()).await.unwrap();
    comparison.differences.iter().map(|d| format!("{} {}: {}", d.view, d.key, d.problem)).collect()
}

#[tokio::test]
async fn verify_coda_reports_each_differing_row_by_key_and_column() {
    let db = august_testkit::fresh_db("verify_coda").await;
    let pg = db.client().await;
    pg.batch_execute(
        "INSERT INTO patients (drchrono_id, first_name, last_name, cell_phone, drchrono_raw) VALUES
             (1, 'Ada', 'One', '555-0001', '{}'), (2, 'Bea', 'Two', '555-1002', '{}');
         INSERT INTO appointments (drchrono_id, patient_id, scheduled_time, status, drchrono_raw) VALUES
             ('A-1', 1, '2026-05-01 09:00', 'Confirmed', '{}'), ('A-2', 2, '2026-05-01 10:00', 'Arrived', '{}');",
    )
    .await
    .unwrap();
    let mapping_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(mapping_file.path(), MAPPING).unwrap();
    let mapping = Mapping::load(mapping_file.path()).unwrap();
    let (_coda_process, coda) = emulator_for(mapping_file.path(), TOKEN, &["--no-quota"]).await;
    let env = [
        ("DATABASE_URL", db.url().to_string()),
        ("AUGUST_SLOT", db.name.clone()),
        ("AUGUST_METRICS_ADDR", "127.0.0.1:0".into()),
        ("AUGUST_SQL_ADDR", "127.0.0.1:0".into()),
        ("AUGUST_HEARTBEAT_SECS", "1".into()),
        ("AUGUST_CODA_MAPPING", mapping_file.path().display().to_string()),
        ("CODA_API_BASE", coda.clone()),
        ("CODA_API_TOKEN", TOKEN.into()),
        ("AUGUST_CODA_WRITES_PER_6S", "60000".into()),
        ("AUGUST_CODA_READS_PER_6S", "60000".into()),
    ];

    // The real sink fills Coda; once it holds every row, nothing differs.
    let mut replicate = August::spawn(&["replicate"], &env);
    let rows = converged(&db.config(), &coda, TOKEN, &mapping, Duration::from_secs(60))
        .await
        .unwrap_or_else(|difference| panic!("Coda never matched the views: {difference}\n{}", replicate.log()));
    assert_eq!(rows, 4, "two patients and two appointments");
    replicate.signal("TERM");
    assert!(replicate.exit(Duration::from_secs(30)).await.success(), "{}", replicate.log());
    let client = coda_client(&coda, TOKEN, &db.config());
    assert_eq!(differences(&client, &mapping, &db).await, Vec::<String>::new());

    // With replicate stopped, a change in Postgres reaches only the comparison.
    pg.execute("UPDATE patients SET cell_phone = '555-0002' WHERE drchrono_id = 2", &[]).await.unwrap();
    assert_eq!(differences(&client, &mapping, &db).await, ["patients 2: differs: cell_phone"]);

    // A row deleted from Coda.
    let listed = client.list_rows(&mapping.doc_id, "grid-sched").await.unwrap();
    let row_id = listed.iter().find(|(_, values)| values["c-appt"] == "A-1").map(|(id, _)| id.clone()).unwrap();
    client.write_slot().await;
    let request = client.delete_rows(&mapping.doc_id, "grid-sched", &[row_id]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.mutation_completed(&request).await.unwrap() {
        assert!(Instant::now() < deadline, "the delete never completed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        differences(&client, &mapping, &db).await,
        ["patients 2: differs: cell_phone", "scheduling_ops A-1: missing in Coda"]
    );

    // A row deleted from Postgres only.
    pg.execute("DELETE FROM appointments WHERE drchrono_id = 'A-2'", &[]).await.unwrap();
    assert_eq!(
        differences(&client, &mapping, &db).await,
        ["patients 2: differs: cell_phone", "scheduling_ops A-1: missing in Coda", "scheduling_ops A-2: only in Coda"]
    );

    // The command itself: the same differences, exit 1, and no value printed.
    let output = crate::august(
        &["verify", "--coda", "--no-drchrono"],
        &env.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
    );
    let (stdout, stderr) = (crate::stdout(&output), crate::stderr(&output));
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    for expected in ["differs: cell_phone", "missing in Coda", "only in Coda", "A-1", "A-2"] {
        assert!(stdout.contains(expected), "{expected:?} not in:\n{stdout}");
    }
    for value in ["555-0002", "555-1002", "Bea", "Arrived"] {
        assert!(!stdout.contains(value) && !stderr.contains(value), "a value was printed:\n{stdout}{stderr}");
    }
}
