//! `august coda-emulator` serves a mapping's tables and stops cleanly; a bad mapping stops
//! `august replicate` at start-up with exit code 2.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{august, stderr};

const MAPPING: &str = r#"
doc_id = "doc-cli"
[[tables]]
view = "scheduling_ops"
table_id = "grid-sched"
key = "appointment_id"
on_delete = "delete"
[tables.columns]
appointment_id = "c-appt"
patient_name = "c-name"
"#;

#[tokio::test]
async fn the_emulator_serves_its_page_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("mapping.toml");
    std::fs::write(&mapping, MAPPING).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_august"))
        .args(["coda-emulator", "--listen", "127.0.0.1:0", "--from-mapping"])
        .arg(&mapping)
        .env_clear()
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.unwrap().unwrap().unwrap();
    let base = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_string();
    let page = reqwest_get(&format!("{base}/")).await;
    assert!(page.contains("grid-sched") && page.contains("c-name"), "{page}");
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.unwrap().unwrap();
    assert!(status.success());
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
