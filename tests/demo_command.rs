//! `august demo` with no configuration at all: its first line is the status page's URL; rows
//! reach the emulated Coda tables within seconds, the staff's edits in Coda come back to
//! Postgres through the write-back endpoints, the status line reports both, and Ctrl-C
//! (SIGINT) stops every server and process it started; a second run reuses the data folder.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::August;

/// The URL on the demo's line that starts with `label`.
async fn url_after(demo: &August, label: &str) -> String {
    let line = demo.line_with(label, Duration::from_secs(90)).await;
    line.split_whitespace().find(|w| w.contains("://")).unwrap().trim_end_matches('/').to_string()
}

/// Processes whose command line names `dir` (the demo's Postgres and its guardian do).
fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.to_str().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| std::fs::read(entry.ok()?.path().join("cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| cmdline.contains(needle))
        .collect()
}

#[tokio::test]
async fn the_demo_mirrors_a_clinic_into_coda_and_ctrl_c_leaves_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let args = ["demo", "--dir", data.to_str().unwrap(), "--http-port", "0", "--coda-port", "0", "--rate", "20"];
    let mut demo = August::spawn(&args, &[]);
    let status_page = url_after(&demo, "August status page").await;
    let first = demo.stderr.lock().unwrap()[0].clone();
    assert!(first.starts_with("august demo: status page: ") && first.contains(&status_page), "{}", demo.log());
    let coda = url_after(&demo, "Coda emulator").await;
    let august = url_after(&demo, "August health").await.trim_end_matches("/health").to_string();

    let deadline = Instant::now() + Duration::from_secs(60);
    let page = loop {
        let page = reqwest::get(format!("{coda}/")).await.unwrap().text().await.unwrap();
        if page.contains("DEMO-") && page.contains("Psychotherapy follow-up") {
            break page;
        }
        assert!(Instant::now() < deadline, "no demo rows in the emulator:\n{}", demo.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(page.contains("grid-scheduling-ops") && page.contains("grid-clinical-notes"));
    let health = reqwest::get(format!("{august}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    let page = reqwest::get(&status_page).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("August status"));
    let line = demo.line_with("mirrored", Duration::from_secs(30)).await;
    assert!(line.contains("rows") && line.contains("Coda writes") && line.contains("/10 per 6 s"), "{line}");
    assert!(line.contains("write-backs"), "{line}");
    // The staff edit in Coda (the emulator's edit endpoint); its automation's calls are
    // answered 2xx and land in Postgres as the editor's.
    let database = url_after(&demo, "PostgreSQL:").await;
    let (db, connection) = tokio_postgres::connect(&database, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats: serde_json::Value =
            reqwest::get(format!("{coda}/_emulator/stats")).await.unwrap().json().await.unwrap();
        let edited: i64 = db
            .query_one(
                "SELECT count(*) FROM change_log WHERE actor = 'coda_writeback' AND actor_detail = 'frontdesk@clinic.example'
                    AND table_name = 'intake_checklists'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if stats["automations"]["by_status"]["200"].as_u64().unwrap_or(0) > 0 && edited > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no staff edit reached Postgres: {stats}\n{}", demo.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(db);
    assert!(!processes_using(&data).is_empty(), "the demo's Postgres runs from {}", data.display());

    demo.signal("INT");
    let status = demo.exit(Duration::from_secs(60)).await;
    assert!(status.success(), "{}", demo.log());
    assert!(demo.log().contains("August stopped cleanly"), "{}", demo.log());
    for url in [&coda, &august] {
        assert!(reqwest::get(format!("{url}/")).await.is_err(), "{url} still answers");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !processes_using(&data).is_empty() {
        assert!(Instant::now() < deadline, "left running: {:?}", processes_using(&data));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!data.join("data/postmaster.pid").exists(), "Postgres stopped");

    // The next run finds its data and starts where the clinic left off.
    let mut again = August::spawn(&args, &[]);
    again.line_with("schema ready (0 migrations applied now)", Duration::from_secs(90)).await;
    again.line_with("Coda emulator", Duration::from_secs(30)).await;
    again.signal("TERM");
    assert!(again.exit(Duration::from_secs(60)).await.success(), "{}", again.log());
}

#[test]
fn the_demo_refuses_another_database_flag_with_exit_2() {
    let out = crate::august(&["demo", "--embedded", "/tmp/elsewhere"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(crate::stderr(&out).contains("--embedded"), "{}", crate::stderr(&out));
    let out = crate::august(&["demo", "--rate", "0"], &[]);
    assert_eq!(out.status.code(), Some(2), "a rate of 0 is refused by name");
    assert!(crate::stderr(&out).contains("--rate"), "{}", crate::stderr(&out));
}
