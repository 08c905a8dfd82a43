//! `august coda-emulator` serves a mapping's tables and stops cleanly; with a write-back token
//! its tables' automations send staff edits to the write-back URL; a bad mapping stops
//! `august replicate` at start-up with exit code 2.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{august, stderr};

const MAPPING: &str = r#"
doc_id = "doc-cli"
[[tables]]
allow = ["direct", "clinical", "identifier", "operational"]
view = "scheduling_ops"
table_id = "grid-sched"
key = "appointment_id"
on_delete = "delete"
[tables.columns]
appointment_id = "c-appt"
patient_name = "c-name"
"#;

/// Starts `august coda-emulator --listen 127.0.0.1:0 --from-mapping <mapping> <extra…>` and
/// returns it with its base URL.
async fn spawn_emulator(mapping: &std::path::Path, extra: &[&str]) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_august"))
        .args(["coda-emulator", "--listen", "127.0.0.1:0", "--from-mapping"])
        .arg(mapping)
        .args(extra)
        .env_clear()
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.unwrap().unwrap().unwrap();
    let base = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().trim_end_matches('/').to_string();
    (child, base)
}

#[tokio::test]
async fn the_emulator_serves_its_page_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(&mapping, MAPPING).unwrap();
    let (mut child, base) = spawn_emulator(&mapping, &[]).await;
    let page = reqwest_get(&format!("{base}/")).await;
    assert!(page.contains("grid-sched") && page.contains("c-name"), "{page}");
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.unwrap().unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn with_a_writeback_token_the_demo_mapping_edits_fire_to_the_writeback_url() {
    use august_emulators::coda::recorder::Recorder;
    use serde_json::json;
    let august = Recorder::start(200).await.unwrap();
    let mapping = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo-mapping.toml");
    let extra = ["--no-quota", "--writeback-token", "wb-secret", "--writeback-base", &august.base_url()];
    let (_child, base) = spawn_emulator(std::path::Path::new(mapping), &extra).await;
    let http = reqwest::Client::new();
    let row = |status: &str| {
        json!({"cells": [{"column": "c-appointment-id", "value": "DEMO-7"},
                                             {"column": "c-intake-status", "value": status}]})
    };
    let doc = august_sinks::coda::mapping::Mapping::load(std::path::Path::new(mapping)).unwrap().doc_id;
    let upsert_in = |status: &str| {
        http.post(format!("{base}/docs/{doc}/tables/grid-patient-intake/rows"))
            .bearer_auth("emulator-token")
            .json(&json!({"rows": [row(status)], "keyColumns": ["c-appointment-id"]}))
    };
    assert_eq!(upsert_in("not_started").send().await.unwrap().status(), 202);
    let edit = json!({"table": "patient_intake", "row": "DEMO-7", "values": {"c-intake-status": "in_progress"},
                      "user": "frontdesk@clinic.example"});
    let answer = http.post(format!("{base}/_emulator/edit")).json(&edit).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let received = august.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(received.len(), 1, "one call for one edit");
    assert_eq!(received[0].method, "PATCH");
    assert_eq!(received[0].path, "/api/intake/DEMO-7", "the mapping's URL, on the given server");
    assert_eq!(received[0].authorization.as_deref(), Some("Bearer wb-secret"));
    assert_eq!(
        received[0].body,
        json!({"status": "in_progress", "edited_by": "frontdesk@clinic.example", "coda_row_id": "i-000001"})
    );
    // An API write changing the status fires too, as the API token's owner.
    assert_eq!(upsert_in("complete").send().await.unwrap().status(), 202);
    let received = august.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(received[1].body["status"], "complete");
    assert_eq!(received[1].body["edited_by"], "api@coda-emulator.example");
}

async fn reqwest_get(url: &str) -> String {
    let (host, path) = url.trim_start_matches("http://").split_once('/').unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut response).await.unwrap();
    response
}

#[test]
fn a_mapping_naming_an_unknown_view_stops_replicate_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(&mapping, MAPPING.replace("scheduling_ops", "no_such_view")).unwrap();
    let out = august(
        &["replicate"],
        &[
            ("DATABASE_URL", "postgres://u@127.0.0.1:1/d"),
            ("AUGUST_CODA_MAPPING", mapping.to_str().unwrap()),
            ("CODA_API_TOKEN", "t"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("AUGUST_CODA_MAPPING") && err.contains("no_such_view"), "{err}");
}
