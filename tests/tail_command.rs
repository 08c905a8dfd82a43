//! `august tail` prints committed changes as JSON lines.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

/// Waits until `august tail`'s slot is streaming from a consistent point. A slot shows as
/// active while it still waits for the transactions running anywhere in the cluster to end
/// (other tests' included); changes committed before its consistent point are not decoded, so
/// the wait is for `confirmed_flush_lsn`, which is set only once the point is found.
async fn wait_for_temporary_slot(client: &tokio_postgres::Client) {
    for _ in 0..600 {
        let n: i64 = client.query_one("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'august_tail_%' AND active AND confirmed_flush_lsn IS NOT NULL AND database = current_database()", &[]).await.unwrap().get(0);
        if n > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("august tail never started streaming");
}

async fn tail(
    db: &august_testkit::TestDb,
    args: &[&str],
) -> (tokio::process::Child, tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_august"))
        .arg("tail")
        .args(args)
        .env_clear()
        .env("DATABASE_URL", db.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

async fn next_line(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.unwrap().unwrap().expect("a line")
}

#[tokio::test]
async fn tail_prints_one_json_line_per_change_of_the_chosen_tables() {
    let db = august_testkit::fresh_db("cli_tail").await;
    let client = db.client().await;
    let (mut child, mut lines) = tail(&db, &["--table", "providers", "--keys-only"]).await;
    wait_for_temporary_slot(&client).await;

    client
        .batch_execute("INSERT INTO patients (drchrono_id, first_name, drchrono_raw) VALUES (1, 'Ada', '{}')")
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO providers (drchrono_id, last_name, drchrono_raw) VALUES (5, 'Freud', '{}')")
        .await
        .unwrap();
    client.batch_execute("UPDATE providers SET drchrono_id = 6 WHERE drchrono_id = 5").await.unwrap();

    let insert: serde_json::Value = serde_json::from_str(&next_line(&mut lines).await).unwrap();
    assert_eq!(insert["table"], "providers", "patients were filtered out: {insert}");
    assert_eq!(insert["op"], "insert");
    assert_eq!(insert["key"], serde_json::json!({"id": 1}));
    assert!(insert["lsn"].as_str().unwrap().contains('/'));
    assert!(insert.get("values").is_none(), "--keys-only prints no values");
    let update: serde_json::Value = serde_json::from_str(&next_line(&mut lines).await).unwrap();
    assert_eq!(update["op"], "update");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn tail_prints_values_unless_asked_not_to() {
    let db = august_testkit::fresh_db("cli_tail_values").await;
    let client = db.client().await;
    let (mut child, mut lines) = tail(&db, &[]).await;
    wait_for_temporary_slot(&client).await;
    client.batch_execute("INSERT INTO staff_roles (email, role) VALUES ('x@clinic.example', 'admin'); INSERT INTO providers (drchrono_id, last_name, drchrono_raw) VALUES (9, 'Jung', '{}')").await.unwrap();
    let line: serde_json::Value = serde_json::from_str(&next_line(&mut lines).await).unwrap();
    assert_eq!(line["table"], "providers", "staff_roles is not published");
    assert_eq!(line["values"]["last_name"], "Jung");
    assert_eq!(line["values"]["drchrono_id"], 9);
    child.kill().await.unwrap();
}
