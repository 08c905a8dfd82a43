//! `august ingest` serves the webhooks over real HTTP, its metrics on `AUGUST_METRICS_ADDR`
//! (not on the webhook port), and stops cleanly; missing secrets stop it at start-up with exit
//! code 2.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::{august, stderr};

async fn http(port: u16, request: &str) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.ok()?;
    let mut response = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut response).await.ok()?;
    Some(response)
}

#[tokio::test]
async fn ingest_serves_webhooks_on_its_port_and_metrics_on_the_metrics_address_and_stops_on_sigterm() {
    let db = august_testkit::fresh_db("cli_ingest").await;
    let port = crate::support::free_port();
    let metrics_port = crate::support::free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_august"))
        .arg("ingest")
        .env_clear()
        .env("DATABASE_URL", db.url())
        .env("AUGUST_HTTP_ADDR", "127.0.0.1:0")
        .env("PORT", port.to_string())
        .env("AUGUST_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("AUGUST_SQL_ADDR", "127.0.0.1:0")
        .env("DRCHRONO_WEBHOOK_SECRET", "drchrono-secret-0123456789")
        .env("DEEPCURA_SHARED_SECRET", "deepcura-secret-0123456789")
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        if let Some(response) = http(port, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await {
            break response;
        }
        assert!(Instant::now() < deadline, "ingest never listened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(health.starts_with("HTTP/1.1 200") && health.contains(r#""database":"ok""#), "{health}");
    let body = r#"{"receiver":{},"object":{}}"#;
    let ping = format!(
        "POST /webhooks/drchrono HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nX-drchrono-event: PING\r\nX-drchrono-signature: drchrono-secret-0123456789\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = http(port, &ping).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let openapi = http(port, "GET /api/openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    assert!(openapi.starts_with("HTTP/1.1 404"), "no CODA_WRITEBACK_TOKEN, no write-back: {openapi}");
    let on_webhook_port = http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    assert!(on_webhook_port.starts_with("HTTP/1.1 404"), "metrics are not on the webhook port: {on_webhook_port}");
    let metrics = http(metrics_port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    assert!(metrics.contains("august_ingest_deliveries_total") && metrics.contains(r#"event="PING""#), "{metrics}");
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait()).await.unwrap().unwrap();
    assert!(status.success());
}

#[test]
fn a_missing_webhook_secret_exits_2_naming_it() {
    let out = august(
        &["ingest"],
        &[("DATABASE_URL", "postgres://u@127.0.0.1:1/d"), ("DEEPCURA_SHARED_SECRET", "deepcura-secret-0123456789")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("DRCHRONO_WEBHOOK_SECRET"), "{}", stderr(&out));
}

#[tokio::test]
async fn with_a_writeback_token_ingest_serves_the_coda_write_back_and_its_document() {
    let db = august_testkit::fresh_db("cli_ingest_writeback").await;
    db.client()
        .await
        .batch_execute(
            "INSERT INTO staff_roles (email, role) VALUES ('ops@clinic.example', 'operations');
             INSERT INTO intake_checklists (appointment_id, patient_id) VALUES ('A-1', 1);",
        )
        .await
        .unwrap();
    let port = crate::support::free_port();
    let metrics_port = crate::support::free_port();
    let token = "coda-writeback-token-0123456789";
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_august"))
        .arg("ingest")
        .env_clear()
        .env("DATABASE_URL", db.url())
        .env("PORT", port.to_string())
        .env("AUGUST_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("AUGUST_SQL_ADDR", "127.0.0.1:0")
        .env("DRCHRONO_WEBHOOK_SECRET", "drchrono-secret-0123456789")
        .env("DEEPCURA_SHARED_SECRET", "deepcura-secret-0123456789")
        .env("CODA_WRITEBACK_TOKEN", token)
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let openapi = loop {
        if let Some(response) =
            http(port, "GET /api/openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await
        {
            break response;
        }
        assert!(Instant::now() < deadline, "ingest never listened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(openapi.starts_with("HTTP/1.1 200") && openapi.contains("IntakePatch"), "{openapi}");
    let body = r#"{"edited_by":"ops@clinic.example","status":"in_progress"}"#;
    let edit = format!(
        "PATCH /api/intake/A-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = http(port, &edit).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains(r#""status":"in_progress""#), "{answer}");
    assert_eq!(
        db.count(
            "SELECT count(*) FROM change_log WHERE actor = 'coda_writeback' AND actor_detail = 'ops@clinic.example'"
        )
        .await,
        1
    );
    let metrics = http(metrics_port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    assert!(
        metrics.contains(r#"august_writeback_requests_total{target="intake",outcome="succeeded"} 1"#)
            && metrics.contains("august_writeback_seconds"),
        "{metrics}"
    );
    child.start_kill().unwrap();
    let _ = child.wait().await;
}
