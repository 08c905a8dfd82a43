//! `august replicate`: links are written back while it runs, metrics are served on
//! `AUGUST_METRICS_ADDR`, and SIGTERM stops it cleanly with the slot confirmed past what it made
//! durable. A slot of another database stops it before any copy, exit 2 naming `AUGUST_SLOT`.

use std::process::Stdio;
use std::time::{Duration, Instant};

#[tokio::test]
async fn replicate_writes_links_on_its_default_slot_serves_metrics_and_stops_cleanly_on_sigterm() {
    let db = august_testkit::fresh_db("cli_replicate").await;
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO appointments (drchrono_id, patient_id, scheduled_time, drchrono_raw) VALUES ('R-1', 3, '2026-05-01 09:00', '{}');
             INSERT INTO clinical_notes (drchrono_id, patient_id, drchrono_raw) VALUES ('R-1', 3, '{}');",
        )
        .await
        .unwrap();
    let metrics_port = crate::support::free_port();
    // AUGUST_SLOT unset: the slot is this database's own default.
    let slot = august_cdc::slot::default_slot_name(&db.name);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_august"))
        .args(["replicate", "--workers", "2"])
        .env_clear()
        .env("DATABASE_URL", db.url())
        .env("AUGUST_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("AUGUST_SQL_ADDR", "127.0.0.1:0")
        .env("AUGUST_HEARTBEAT_SECS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    client
        .batch_execute(
            "INSERT INTO deepcura_notes (id, drchrono_patient_id, drchrono_appt_id, session_date, raw_payload)
             VALUES ('00000000-0000-0000-0000-0000000000c1', 3, 'R-1', '2026-05-01', '{}')",
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let linked: Option<String> =
            client.query_one("SELECT clinical_note_id FROM deepcura_notes", &[]).await.unwrap().get(0);
        if linked.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "no link was written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("august_cdc_changes_total"), "{metrics}");
    let written: String = client.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.unwrap().get(0);
    tokio::time::sleep(Duration::from_secs(3)).await; // heartbeats carry the durable LSN past it

    let pid = child.id().unwrap() as i32;
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    let status =
        tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("exits after SIGTERM").unwrap();
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).await.unwrap();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("stopped cleanly"), "{stderr}");

    // The server notices the closed session on its own time (a busy machine, a TLS link): give
    // it a few seconds before calling the session still open.
    let deadline = Instant::now() + Duration::from_secs(10);
    let row = loop {
        let row = client
            .query_one(
                "SELECT active, confirmed_flush_lsn >= $1::text::pg_lsn FROM pg_replication_slots WHERE slot_name = $2",
                &[&written, &slot],
            )
            .await
            .unwrap();
        if !row.get::<_, bool>(0) || Instant::now() > deadline {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!row.get::<_, bool>(0), "the session ended");
    assert!(row.get::<_, bool>(1), "the slot was confirmed past the link write");
}

#[tokio::test]
async fn a_slot_of_another_database_stops_replicate_before_any_copy_naming_august_slot() {
    let (mine, other) =
        (august_testkit::fresh_db("cli_slot_mine").await, august_testkit::fresh_db("cli_slot_other").await);
    let theirs = format!("{}_slot", other.name);
    let other_client = other.client().await;
    august_cdc::slot::prepare_slot(&other_client, &other.config(), &theirs, false).await.unwrap();
    let out = tokio::task::spawn_blocking({
        let (url, slot) = (mine.url().to_string(), theirs.clone());
        move || {
            crate::august(
                &["replicate"],
                &[
                    ("DATABASE_URL", &url),
                    ("AUGUST_SLOT", &slot),
                    ("AUGUST_METRICS_ADDR", "127.0.0.1:0"),
                    ("AUGUST_SQL_ADDR", "127.0.0.1:0"),
                ],
            )
        }
    })
    .await
    .unwrap();
    let err = crate::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("AUGUST_SLOT") && err.contains(&other.name), "{err}");
    assert!(!err.contains("snapshot copied"), "nothing was copied: {err}");
    let slot_database: Option<String> = other_client
        .query_one("SELECT database::text FROM pg_replication_slots WHERE slot_name = $1", &[&theirs])
        .await
        .unwrap()
        .get(0);
    assert_eq!(slot_database, Some(other.name.clone()), "the other database's slot is untouched");
    august_cdc::slot::drop_slot(&other_client, &theirs).await.unwrap();
}
