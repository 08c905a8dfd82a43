//! Ingest's traces and logs as an operator meets them: `august ingest` exporting to an
//! in-repo OTLP/HTTP receiver. A webhook is one `webhook` span with its `ingest.commit`
//! child, whose `traceparent` the transaction carries into the WAL (read back through a
//! `test_decoding` slot); an incoming `traceparent` is continued; no attribute holds the
//! delivery's PHI; with no OTEL endpoint, or a span not sampled, the WAL carries no trace
//! context. JSON logs carry Cloud Logging's fields and the trace id; text logs to a file have
//! no colour escapes.

use std::process::Stdio;
use std::time::{Duration, Instant};

use august_testkit::otlp::{describe, OtlpReceiver};
use august_testkit::TestDb;
use serde_json::{json, Value};

use crate::support::{drchrono_webhook, free_port, August, DEEPCURA_SECRET, DRCHRONO_SECRET};

const WITHIN: Duration = Duration::from_secs(30);
/// The synthetic patient's identifying values: none may reach a span.
const PHI: [&str; 4] = ["Ada", "Lovelace", "1990-04-01", "555-0100"];

fn patient(id: i64) -> Value {
    json!({
        "id": id, "first_name": "Ada", "last_name": "Lovelace", "date_of_birth": "1990-04-01",
        "cell_phone": "555-0100", "doctor": 9, "updated_at": "2026-11-30T10:00:00"
    })
}

/// `august ingest`'s environment: `db`, webhooks on `port`; traces to `receiver` when given,
/// exported every 100 ms.
fn ingest_env(db: &TestDb, port: u16, receiver: Option<&OtlpReceiver>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("DATABASE_URL", db.url().to_string()),
        ("AUGUST_HTTP_ADDR", "127.0.0.1:0".into()),
        ("PORT", port.to_string()),
        ("AUGUST_METRICS_ADDR", format!("127.0.0.1:{}", free_port())),
        ("AUGUST_SQL_ADDR", "127.0.0.1:0".into()),
        ("DRCHRONO_WEBHOOK_SECRET", DRCHRONO_SECRET.into()),
        ("DEEPCURA_SHARED_SECRET", DEEPCURA_SECRET.into()),
    ];
    if let Some(receiver) = receiver {
        env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint().to_string()));
        env.push(("OTEL_BSP_SCHEDULE_DELAY", "100".into()));
    }
    env
}

async fn traced_ingest(db: &TestDb, receiver: Option<&OtlpReceiver>) -> (August, String) {
    let port = free_port();
    let ingest = August::spawn(&["ingest"], &ingest_env(db, port, receiver));
    ingest.line_with("webhooks listening", WITHIN).await;
    (ingest, format!("http://127.0.0.1:{port}"))
}

/// A logical slot on `db` (made before the writes it is to see) and the client it lives on.
async fn wal_slot(db: &TestDb) -> tokio_postgres::Client {
    let client = db.client().await;
    client.execute("SELECT pg_create_logical_replication_slot($1, 'test_decoding')", &[&db.name]).await.unwrap();
    client
}

/// The slot's decoded WAL so far, one text per change or message (left in the slot).
async fn wal(client: &tokio_postgres::Client, db: &TestDb) -> Vec<String> {
    let rows =
        client.query("SELECT data FROM pg_logical_slot_peek_changes($1, NULL, NULL)", &[&db.name]).await.unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// Drops the slot (a slot left behind keeps the cluster's WAL).
async fn drop_slot(client: &tokio_postgres::Client, db: &TestDb) {
    client.execute("SELECT pg_drop_replication_slot($1)", &[&db.name]).await.unwrap();
}

/// The contents of the WAL's `august.trace` messages.
fn trace_messages(wal: &[String]) -> Vec<String> {
    wal.iter()
        .filter(|line| line.starts_with("message: transactional: 1 prefix: august.trace,"))
        .map(|line| line.rsplit("content:").next().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_webhook_is_a_webhook_span_whose_commit_span_context_the_wal_carries() {
    let db = august_testkit::fresh_db("traces_webhook").await;
    let receiver = OtlpReceiver::start().await.unwrap();
    let slot = wal_slot(&db).await;
    let (_ingest, base) = traced_ingest(&db, Some(&receiver)).await;
    drchrono_webhook(&base, DRCHRONO_SECRET, "PATIENT_CREATE", "trace-1", patient(701)).await;

    let webhook = receiver.named("webhook", WITHIN).await;
    assert_eq!((webhook.kind, webhook.parent_span_id.as_deref(), webhook.service.as_str()), ("server", None, "august"));
    assert_eq!(webhook.attr("august.source"), Some("drchrono"));
    assert_eq!(webhook.attr("august.event"), Some("PATIENT_CREATE"));
    assert_eq!(webhook.attr("http.route"), Some("/webhooks/drchrono"));
    assert_eq!(webhook.attr("http.response.status_code"), Some("200"));
    assert_eq!(webhook.attr("august.outcome"), Some("accepted"));
    let commit = receiver.child(&webhook, "ingest.commit", WITHIN).await;

    let wal = wal(&slot, &db).await;
    assert!(wal.iter().any(|l| l.starts_with("table public.patients: INSERT")), "the delivery's change: {wal:?}");
    assert_eq!(trace_messages(&wal), vec![commit.traceparent()], "one message, the commit span's context");

    for span in receiver.spans() {
        for text in span.texts() {
            assert!(!PHI.iter().any(|phi| text.contains(phi)), "PHI in span {}: {text:?}", span.name);
        }
    }
    drop_slot(&slot, &db).await;
}

#[tokio::test]
async fn an_incoming_traceparent_makes_the_delivery_its_child_and_a_refusal_is_recorded() {
    let db = august_testkit::fresh_db("traces_parent").await;
    let receiver = OtlpReceiver::start().await.unwrap();
    let (_ingest, base) = traced_ingest(&db, Some(&receiver)).await;
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let response = reqwest::Client::new()
        .post(format!("{base}/webhooks/drchrono"))
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .header("X-drchrono-signature", "not-the-secret")
        .header("X-drchrono-event", "PATIENT_CREATE")
        .header("X-drchrono-delivery", "trace-2")
        .json(&json!({"receiver": {}, "object": patient(702)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let webhook = receiver.named("webhook", WITHIN).await;
    assert_eq!((webhook.trace_id.as_str(), webhook.parent_span_id.as_deref()), (trace, Some(parent)));
    assert_eq!(webhook.attr("http.response.status_code"), Some("401"));
    assert_eq!(webhook.attr("august.outcome"), Some("unauthorized"));
    let spans = receiver.spans();
    assert!(
        !spans.iter().any(|s| s.name == "ingest.commit"),
        "a refused delivery commits nothing: {}",
        describe(&spans)
    );
}

#[tokio::test]
async fn with_no_otel_endpoint_or_an_unsampled_span_the_wal_carries_no_trace_context() {
    let receiver = OtlpReceiver::start().await.unwrap();
    for (case, traced) in [("off", false), ("unsampled", true)] {
        let db = august_testkit::fresh_db(&format!("traces_{case}")).await;
        let slot = wal_slot(&db).await;
        let port = free_port();
        let mut env = ingest_env(&db, port, traced.then_some(&receiver));
        env.push(("OTEL_TRACES_SAMPLER", "always_off".into()));
        let ingest = August::spawn(&["ingest"], &env);
        ingest.line_with("webhooks listening", WITHIN).await;
        drchrono_webhook(&format!("http://127.0.0.1:{port}"), DRCHRONO_SECRET, "PATIENT_CREATE", case, patient(703))
            .await;
        let wal = wal(&slot, &db).await;
        assert!(wal.iter().any(|l| l.starts_with("table public.patients: INSERT")), "{case}: the change: {wal:?}");
        assert!(!wal.iter().any(|l| l.starts_with("message:")), "{case}: no message at all: {wal:?}");
        drop_slot(&slot, &db).await;
    }
}

#[test]
fn a_bad_otel_value_exits_2_naming_the_variable() {
    for (variable, value) in [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_SDK_DISABLED", "maybe"),
    ] {
        let mut env = vec![("DATABASE_URL", "postgres://u@127.0.0.1:1/d"), (variable, value)];
        if variable != "OTEL_EXPORTER_OTLP_ENDPOINT" {
            env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"));
        }
        let out = crate::august(&["migrate"], &env);
        let err = crate::stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{variable}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.contains(variable), "names {variable}: {err}");
    }
}

/// `august ingest` with its standard error to a file; returns the file and the webhook URL
/// once it answers `/health`.
async fn ingest_logging_to_file(
    db: &TestDb,
    receiver: Option<&OtlpReceiver>,
    extra: &[(&str, &str)],
) -> (tokio::process::Child, std::path::PathBuf, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stderr.log");
    let port = free_port();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_august"));
    command.arg("ingest").env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (key, value) in ingest_env(db, port, receiver) {
        command.env(key, value);
    }
    for (key, value) in extra {
        command.env(key, value);
    }
    let file = std::fs::File::create(&path).unwrap();
    let child = command.stdout(Stdio::null()).stderr(file).kill_on_drop(true).spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + WITHIN;
    while !reqwest::get(format!("{base}/health")).await.is_ok_and(|r| r.status() == 200) {
        assert!(Instant::now() < deadline, "ingest never answered: {}", std::fs::read_to_string(&path).unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (child, path, dir, base)
}

/// Stops `child` with SIGTERM and returns the log it wrote to `path`.
async fn stopped_log(mut child: tokio::process::Child, path: &std::path::Path) -> String {
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::time::timeout(WITHIN, child.wait()).await.unwrap().unwrap();
    let log = std::fs::read_to_string(path).unwrap();
    assert!(status.success(), "{log}");
    log
}

#[tokio::test]
async fn json_logs_carry_cloud_logging_fields_and_the_trace_of_the_delivery() {
    let db = august_testkit::fresh_db("traces_json").await;
    let receiver = OtlpReceiver::start().await.unwrap();
    let env = [("AUGUST_LOG_FORMAT", "json"), ("GOOGLE_CLOUD_PROJECT", "clinic-prod")];
    let (child, path, _dir, base) = ingest_logging_to_file(&db, Some(&receiver), &env).await;
    let refused = reqwest::Client::new()
        .post(format!("{base}/webhooks/deepcura"))
        .header("X-DeepCura-Secret", "not-the-secret")
        .json(&json!({"iv": "", "data": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let webhook = receiver.named("webhook", WITHIN).await;
    let log = stopped_log(child, &path).await;

    let lines: Vec<Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(["DEBUG", "INFO", "WARNING", "ERROR"].contains(&line["severity"].as_str().unwrap()), "{line}");
        assert!(line["message"].is_string(), "{line}");
        chrono::DateTime::parse_from_rfc3339(line["time"].as_str().unwrap()).unwrap();
    }
    let listening = lines.iter().find(|l| l["message"] == "webhooks listening").expect("the start-up line");
    assert!(listening["addr"].is_string() && listening["severity"] == "INFO", "event fields: {listening}");
    assert!(listening.get("logging.googleapis.com/trace").is_none(), "no span, no trace: {listening}");
    let refusal = lines.iter().find(|l| l["message"] == "webhook delivery refused").expect("the refusal line");
    assert_eq!(refusal["logging.googleapis.com/trace"], format!("projects/clinic-prod/traces/{}", webhook.trace_id));
    assert_eq!(refusal["logging.googleapis.com/spanId"], webhook.span_id.as_str());
    assert_eq!((&refusal["status"], &refusal["outcome"]), (&json!(401), &json!("unauthorized")));
}

#[tokio::test]
async fn text_logs_to_a_file_have_no_colour_escapes() {
    let db = august_testkit::fresh_db("logs_text").await;
    let (child, path, _dir, _base) = ingest_logging_to_file(&db, None, &[]).await;
    let log = stopped_log(child, &path).await;
    assert!(log.contains("webhooks listening") && log.contains("INFO"), "{log}");
    assert!(!log.contains('\u{1b}'), "no ANSI escapes in a file: {log:?}");
}

#[tokio::test]
async fn a_write_back_is_a_writeback_span_whose_commit_span_context_the_wal_carries() {
    const WRITEBACK_TOKEN: &str = "writeback-token-0123456789";
    const STAFF: &str = "ops.lead@clinic.example";
    let db = august_testkit::fresh_db("traces_writeback").await;
    crate::support::staff_and_intake(&db, STAFF, "A-7101", 611).await;
    let receiver = OtlpReceiver::start().await.unwrap();
    let slot = wal_slot(&db).await;
    let port = free_port();
    let mut env = ingest_env(&db, port, Some(&receiver));
    env.push(("CODA_WRITEBACK_TOKEN", WRITEBACK_TOKEN.into()));
    let ingest = August::spawn(&["ingest"], &env);
    ingest.line_with("webhooks listening", WITHIN).await;
    let response = reqwest::Client::new()
        .patch(format!("http://127.0.0.1:{port}/api/intake/A-7101"))
        .bearer_auth(WRITEBACK_TOKEN)
        .json(&json!({"edited_by": STAFF, "status": "complete"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    let writeback = receiver.named("writeback", WITHIN).await;
    assert_eq!((writeback.kind, writeback.attr("http.response.status_code")), ("server", Some("200")));
    assert_eq!(writeback.attr("august.outcome"), Some("succeeded"));
    assert!(writeback.attr("august.target").is_some(), "{writeback:?}");
    let commit = receiver.child(&writeback, "ingest.commit", WITHIN).await;
    assert_eq!(trace_messages(&wal(&slot, &db).await), vec![commit.traceparent()]);
    for span in receiver.spans() {
        assert!(!span.texts().any(|t| t.contains(STAFF)), "the editor's email in {}", span.name);
    }
    drop_slot(&slot, &db).await;
}
