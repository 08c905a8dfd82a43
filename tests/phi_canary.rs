//! A PHI canary over everything August emits: `august serve` at `AUGUST_LOG=trace` (JSON logs,
//! tracing on) stores a patient with distinctive names, birth date and phone, mirrors it to
//! Coda, and refuses a delivery whose bad field carries PHI too; none of those values appears
//! in any log line, metric series, span or error body. The Postgres client logs statement
//! parameters at debug: August holds such dependencies at INFO whatever the filter says.

use std::time::Duration;

use august_testkit::otlp::OtlpReceiver;
use serde_json::json;

use crate::support::{
    coda_row, drchrono_env, drchrono_webhook, emulator, free_port, post_drchrono, serve_env, wait_streaming, August,
    DRCHRONO_SECRET,
};

const TOKEN: &str = "canary-token";
const PHI: &[&str] = &["Zephyrine", "Quillfeather", "1931-07-19", "555-0142", "Marrowby"];

#[tokio::test]
async fn no_phi_reaches_a_log_line_a_metric_a_span_or_an_error_body_even_at_trace_level() {
    let db = august_testkit::fresh_db("phi_canary").await;
    let receiver = OtlpReceiver::start().await.unwrap();
    let (_coda_process, coda) = emulator(TOKEN, &[]).await;
    let (port, metrics_port, sql_port) = (free_port(), free_port(), free_port());
    let users = tempfile::tempdir().unwrap();
    let users_file = users.path().join("users.toml");
    crate::sql_endpoint::add_user(&users_file, "canary", "admin", "canary sql password");
    let extra = [
        ("AUGUST_HTTP_ADDR", "127.0.0.1:0".to_string()),
        ("AUGUST_SQL_ADDR", format!("127.0.0.1:{sql_port}")),
        ("AUGUST_SQL_USERS_FILE", users_file.display().to_string()),
        ("AUGUST_LOG", "trace".to_string()),
        ("AUGUST_LOG_FORMAT", "json".to_string()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint().to_string()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
    ];
    let mut serve = August::spawn(&["serve"], &serve_env(&db, port, metrics_port, &coda, TOKEN, &extra));
    serve.line_with("serving webhooks and replicating", Duration::from_secs(60)).await;
    wait_streaming(&db).await;
    let base = format!("http://127.0.0.1:{port}");
    let patient = json!({
        "id": 4242, "first_name": "Zephyrine", "last_name": "Quillfeather", "date_of_birth": "1931-07-19",
        "cell_phone": "555-0142", "address": "1 Marrowby Lane", "doctor": 9, "updated_at": "2026-11-30T10:00:00"
    });
    drchrono_webhook(&base, DRCHRONO_SECRET, "PATIENT_CREATE", "canary-1", patient).await;
    let row = coda_row(&coda, TOKEN, "grid-patients", "c-first-name", "Zephyrine", |_| true).await;
    assert_eq!(row["c-drchrono-id"], 4242, "the patient reached Coda: the flow ran");

    // A refusal whose offending value is PHI: the answer names the field, not the value.
    let bad = json!({"receiver": {"id": 1}, "object": {"id": 4243, "first_name": "Zephyrine", "date_of_birth": "Quillfeather"}});
    let refused = post_drchrono(&base, DRCHRONO_SECRET, "PATIENT_MODIFY", "canary-2", &bad).await;
    assert!(refused.status().is_client_error(), "{}", refused.status());
    let body = refused.text().await.unwrap();
    assert!(body.contains("\"error\""), "{body}");

    // SQL whose literals are PHI: a query that finds the patient, one that fails on a value, a
    // refused write. The client gets its own values back; no log line, span or metric may.
    let url = format!("host=127.0.0.1 port={sql_port} user=canary password='canary sql password' dbname=august");
    let (sql, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let query = "SELECT drchrono_id FROM patients WHERE first_name = 'Zephyrine' AND last_name <> 'Marrowby'";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !sql
        .simple_query(query)
        .await
        .unwrap()
        .iter()
        .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
    {
        assert!(std::time::Instant::now() < deadline, "the patient never showed over SQL");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sql.simple_query("SELECT CAST('Quillfeather' AS int)").await.is_err());
    assert!(sql.simple_query("INSERT INTO patients (first_name) VALUES ('Zephyrine')").await.is_err());

    let scrape = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.unwrap().text().await.unwrap();
    let status =
        reqwest::get(format!("http://127.0.0.1:{metrics_port}/status.json")).await.unwrap().text().await.unwrap();
    receiver.named("coda.write", Duration::from_secs(30)).await;
    serve.signal("TERM");
    assert!(serve.exit(Duration::from_secs(30)).await.success());
    let log = serve.log();
    assert!(log.contains("\"severity\":\"DEBUG\""), "debug events are logged: the filter is really open:\n{log}");
    let spans = receiver.spans();
    let span_texts: Vec<&str> = spans.iter().flat_map(|s| s.texts()).collect();
    for value in PHI {
        assert!(!body.contains(value), "the error body holds {value}: {body}");
        assert!(!scrape.contains(value), "a metric holds {value}");
        assert!(!status.contains(value), "the status page holds {value}");
        assert!(!span_texts.iter().any(|t| t.contains(value)), "a span holds {value}");
        let line = log.lines().find(|l| l.contains(value));
        assert!(line.is_none(), "a log line holds {value}: {}", line.unwrap_or_default());
    }
}

/// The same canary over the pull sync (a backfill of the DrChrono emulator's patients, one of
/// them malformed so the skip path runs) and the Coda write-back (an accepted edit whose note
/// carries PHI, and a refused one whose bad value is PHI): no served patient's identifying
/// value, and no canary value, appears in a log line, metric, span or error body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_phi_leaves_through_the_pull_sync_or_the_write_back_even_at_trace_level() {
    const WRITEBACK_TOKEN: &str = "canary-writeback-token-0123";
    const STAFF: &str = "ops.canary@clinic.example";
    let db = august_testkit::fresh_db("phi_canary_sync").await;
    crate::support::staff_and_intake(&db, STAFF, "A-4242", 4242).await;
    let config = august_emulators::drchrono::DrChronoConfig { patients: 4, ..Default::default() };
    let drchrono = august_emulators::drchrono::serve("127.0.0.1:0".parse().unwrap(), config).await.unwrap();
    let patients = drchrono.objects("patients");
    assert!(drchrono.malform_patient(patients[0]["id"].as_i64().unwrap()));
    let receiver = OtlpReceiver::start().await.unwrap();
    let (_coda_process, coda) = emulator(TOKEN, &[]).await;
    let (port, metrics_port) = (free_port(), free_port());
    let mut extra = drchrono_env(&db, &drchrono);
    extra.extend([
        ("AUGUST_HTTP_ADDR", "127.0.0.1:0".to_string()),
        ("AUGUST_LOG", "trace".to_string()),
        ("AUGUST_LOG_FORMAT", "json".to_string()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint().to_string()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
        ("CODA_WRITEBACK_TOKEN", WRITEBACK_TOKEN.to_string()),
        ("AUGUST_RECONCILE_SECS", "2".to_string()),
    ]);
    let serve = August::spawn(&["serve"], &serve_env(&db, port, metrics_port, &coda, TOKEN, &extra));
    serve.line_with("serving webhooks and replicating", Duration::from_secs(60)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while db.count("SELECT count(*) FROM patients").await < 3 {
        assert!(std::time::Instant::now() < deadline, "the pull sync stored no patients:\n{}", serve.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let base = format!("http://127.0.0.1:{port}");
    let patch = |body: serde_json::Value| {
        reqwest::Client::new()
            .patch(format!("{base}/api/intake/A-4242"))
            .bearer_auth(WRITEBACK_TOKEN)
            .json(&body)
            .send()
    };
    let note = "Zephyrine Quillfeather (1931-07-19) asked to be called on 555-0142";
    let accepted = patch(json!({"edited_by": STAFF, "notes": note})).await.unwrap();
    assert_eq!(accepted.status(), 200, "{}", accepted.text().await.unwrap());
    let refused = patch(json!({"edited_by": STAFF, "status": "Marrowby"})).await.unwrap();
    assert!(refused.status().is_client_error(), "{}", refused.status());
    let body = refused.text().await.unwrap();
    assert!(body.contains("\"error\"") && body.contains("status"), "names the field: {body}");
    let stored = db.count(&format!("SELECT count(*) FROM intake_checklists WHERE notes = '{note}'")).await;
    assert_eq!(stored, 1, "the edit landed: the flow ran");
    receiver.named("writeback", Duration::from_secs(30)).await;

    let scrape = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.unwrap().text().await.unwrap();
    serve.signal("TERM");
    let mut serve = serve;
    assert!(serve.exit(Duration::from_secs(30)).await.success());
    let log = serve.log();
    for path in ["DrChrono page stored", "write-back answered"] {
        let debug = log.lines().find(|l| l.contains(path)).unwrap_or_default();
        assert!(debug.contains("\"severity\":\"DEBUG\""), "{path} is logged at debug: the filter is really open");
    }
    let spans = receiver.spans();
    let span_texts: Vec<&str> = spans.iter().flat_map(|s| s.texts()).collect();
    let mut values: Vec<String> = PHI.iter().map(|v| v.to_string()).collect();
    for patient in &patients {
        for field in ["last_name", "cell_phone", "date_of_birth", "email", "address"] {
            if let Some(v) = patient[field].as_str().filter(|v| v.len() >= 5) {
                values.push(v.to_string());
            }
        }
    }
    assert!(values.len() > PHI.len() + 8, "the served patients' values are checked too: {}", values.len());
    for value in &values {
        assert!(!body.contains(value.as_str()), "the error body holds {value}: {body}");
        assert!(!scrape.contains(value.as_str()), "a metric holds {value}");
        assert!(!span_texts.iter().any(|t| t.contains(value.as_str())), "a span holds {value}");
        let line = log.lines().find(|l| l.contains(value.as_str()));
        assert!(line.is_none(), "a log line holds {value}: {}", line.unwrap_or_default());
    }
}
