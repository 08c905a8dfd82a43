//! schemathesis (from PyPI) drives the write-back API through `august ingest` on a real
//! Postgres: property-based requests generated from `GET /api/openapi.json` (valid and
//! invalid bodies, every operation) against seeded rows and staff, checking that no answer is a
//! server error and that each status, content type and body is one the document declares.
//!
//! It runs when schemathesis is installed at `target/venv-schemathesis` (or at
//! `AUGUST_SCHEMATHESIS`), as `.ci/run` does; otherwise it says why it skipped, unless
//! `AUGUST_REQUIRE_SCHEMATHESIS=1` (set by `.ci/run`), which makes a missing install a failure.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::{free_port, August};

const TOKEN: &str = "schemathesis-writeback-token-0123";

/// The schemathesis executable, if installed.
fn schemathesis() -> Result<PathBuf, String> {
    let path = std::env::var_os("AUGUST_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/venv-schemathesis/bin/schemathesis"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("schemathesis is not installed at {} (`.ci/run` installs it)", path.display()))
    }
}

/// Staff of every kind the role matrix tells apart; returns the emails schemathesis may pick.
async fn seed(client: &tokio_postgres::Client) -> (Vec<String>, [String; 3]) {
    client
        .batch_execute(
            "INSERT INTO staff_roles (email, role, active) VALUES
                 ('admin@clinic.example', 'admin', true), ('ops@clinic.example', 'operations', true),
                 ('billing@clinic.example', 'billing', true),
                 ('doc@clinic.example', 'clinician', true), ('audit@clinic.example', 'auditor', true),
                 ('gone@clinic.example', 'admin', false);
             INSERT INTO intake_checklists (appointment_id, patient_id) VALUES ('A-1', 7);",
        )
        .await
        .unwrap();
    let task: uuid::Uuid = client
        .query_one(
            "INSERT INTO post_appointment_tasks (appointment_id, patient_id, task_type, title)
             VALUES ('A-1', 7, 'order_labs', 'Order labs') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let auth: uuid::Uuid = client
        .query_one(
            "INSERT INTO prior_authorizations (patient_id, item_type, item_name) VALUES (7, 'medication', 'Drug') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let staff = ["admin", "ops", "billing", "doc", "audit", "gone", "nobody"].map(|s| format!("{s}@clinic.example"));
    (staff.to_vec(), ["A-1".to_string(), task.to_string(), auth.to_string()])
}

/// The run's configuration: the seeded keys in every path (unknown ids are the Rust tests'
/// business) and the seeded editors in most bodies, so the generated requests reach past 404
/// and 403.
fn config(staff: &[String], keys: &[String; 3]) -> String {
    let editors = staff.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", ");
    let [intake, task, auth] = keys;
    format!(
        "[dictionaries.editors]\nvalues = [{editors}]\n\n[parameters]\n\
         \"body.edited_by\" = {{ dictionary = \"editors\", probability = 0.95 }}\n\
         \"path.appointment_id\" = {intake:?}\n\"path.task_id\" = {task:?}\n\"path.auth_id\" = {auth:?}\n"
    )
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_openapi_document() {
    let bin = match schemathesis() {
        Ok(bin) => bin,
        Err(why) if std::env::var("AUGUST_REQUIRE_SCHEMATHESIS").as_deref() == Ok("1") => {
            panic!("AUGUST_REQUIRE_SCHEMATHESIS=1 but {why}")
        }
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let db = august_testkit::fresh_db("schemathesis").await;
    let (staff, keys) = seed(&db.client().await).await;
    let port = free_port();
    let ingest = August::spawn(
        &["ingest"],
        &[
            ("DATABASE_URL", db.url().to_string()),
            ("AUGUST_HTTP_ADDR", format!("127.0.0.1:{port}")),
            ("AUGUST_METRICS_ADDR", format!("127.0.0.1:{}", free_port())),
            ("AUGUST_SQL_ADDR", "127.0.0.1:0".into()),
            ("DRCHRONO_WEBHOOK_SECRET", "drchrono-secret-0123456789".into()),
            ("DEEPCURA_SHARED_SECRET", "deepcura-secret-0123456789".into()),
            ("CODA_WRITEBACK_TOKEN", TOKEN.into()),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reqwest::get(format!("{base}/health")).await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "ingest never answered:\n{}", ingest.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schemathesis.toml"), config(&staff, &keys)).unwrap();
    let run = tokio::process::Command::new(&bin)
        .args(["run", &format!("{base}/api/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing", "--max-examples", "60", "--seed", "13"])
        .args(["--generation-database", "none", "--request-timeout", "10", "--workers", "2", "--no-color"])
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(150), run).await.expect("schemathesis within 150 s").unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis failed:\n{report}\naugust:\n{}", ingest.log());
    eprintln!("{report}");

    // The run reached past authentication, the role check and validation: each target
    // accepted some generated requests, and some of them changed a row.
    for target in ["intake", "tasks", "prior-auth"] {
        let sql = format!(
            "SELECT count(*) FROM sync_log WHERE source = 'coda_writeback' AND event = '{target}' AND status <> 'rejected'"
        );
        assert!(db.count(&sql).await > 0, "no generated request to {target} was accepted:\n{report}");
    }
    let stored = db.count("SELECT count(*) FROM change_log WHERE actor = 'coda_writeback'").await;
    assert!(stored > 0, "no generated request changed a row:\n{report}");
}
