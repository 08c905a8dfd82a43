//! A write that changes nothing is not a write: no row version, no audit row, nothing on the
//! replication stream. And an older copy never overwrites a newer one.

use august_schema::{set_actor, Actor, Upsert, UpsertOutcome};
use chrono::{NaiveDate, NaiveDateTime};
use tokio_postgres::Client;

use crate::{column_strings, count, db};

const COLUMNS: &[&str] =
    &["drchrono_id", "first_name", "last_name", "date_of_birth", "drchrono_raw", "drchrono_updated_at"];

fn patient_upsert() -> Upsert {
    Upsert::new("patients", &["drchrono_id"], COLUMNS, Some("drchrono_updated_at"))
}

fn at(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap()
}

async fn write_patient(client: &mut Client, last_name: &str, updated_at: &str) -> UpsertOutcome {
    let raw = serde_json::json!({"id": 7, "last_name": last_name, "updated_at": updated_at});
    let dob = NaiveDate::from_ymd_opt(1990, 4, 1).unwrap();
    let updated = at(updated_at);
    let tx = client.transaction().await.unwrap();
    set_actor(&tx, Actor::DrChronoWebhook).await.unwrap();
    let outcome = patient_upsert().run(&tx, &[&7_i64, &"Grace", &last_name, &dob, &raw, &updated]).await.unwrap();
    tx.commit().await.unwrap();
    outcome
}

/// Changes on a slot, without consuming them: pgoutput messages for published tables
/// (Insert/Update/Delete/Truncate), and every decoded row change from test_decoding.
async fn slot_changes(client: &Client, slot: &str) -> (i64, Vec<String>) {
    let pgoutput = client
        .query_one(
            "SELECT count(*) FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
                 'proto_version', '1', 'publication_names', 'august_cdc')
              WHERE get_byte(data, 0) IN (73, 85, 68, 84)", // 'I' 'U' 'D' 'T'
            &[&format!("{slot}_pgoutput")],
        )
        .await
        .unwrap()
        .get(0);
    let decoded = column_strings(
        client,
        "SELECT data FROM pg_logical_slot_peek_changes($1, NULL, NULL, 'skip-empty-xacts', '1')
              WHERE data LIKE 'table %'",
        &[&format!("{slot}_decoded")],
    )
    .await;
    (pgoutput, decoded)
}

#[tokio::test]
async fn replayed_upsert_writes_nothing_and_streams_nothing() {
    let (db, mut client) = db("noop_replay").await;
    assert_eq!(write_patient(&mut client, "Hopper", "2026-01-01T09:00:00").await, UpsertOutcome::Inserted);
    let before =
        client.query_one("SELECT xmin::text, updated_at FROM patients WHERE drchrono_id = 7", &[]).await.unwrap();
    let audit_before = count(&client, "SELECT count(*) FROM change_log").await;

    let slot = db.name.clone();
    client
        .execute("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", &[&format!("{slot}_pgoutput")])
        .await
        .unwrap();
    client
        .execute("SELECT pg_create_logical_replication_slot($1, 'test_decoding')", &[&format!("{slot}_decoded")])
        .await
        .unwrap();

    // The same payload, delivered again.
    assert_eq!(write_patient(&mut client, "Hopper", "2026-01-01T09:00:00").await, UpsertOutcome::Unchanged);

    let after =
        client.query_one("SELECT xmin::text, updated_at FROM patients WHERE drchrono_id = 7", &[]).await.unwrap();
    assert_eq!(before.get::<_, String>(0), after.get::<_, String>(0), "no new row version");
    assert_eq!(
        before.get::<_, chrono::DateTime<chrono::Utc>>(1),
        after.get::<_, chrono::DateTime<chrono::Utc>>(1),
        "updated_at untouched"
    );
    assert_eq!(count(&client, "SELECT count(*) FROM change_log").await, audit_before, "no audit row");
    let (pgoutput, decoded) = slot_changes(&client, &slot).await;
    assert_eq!(pgoutput, 0, "nothing for the publication");
    assert!(decoded.is_empty(), "no row change anywhere in the database: {decoded:?}");

    // Control: a real change does show on both, so the checks above can fail.
    assert_eq!(write_patient(&mut client, "Hopper-Murray", "2026-01-02T09:00:00").await, UpsertOutcome::Updated);
    let (pgoutput, decoded) = slot_changes(&client, &slot).await;
    assert_eq!(pgoutput, 1, "one UPDATE for the publication");
    assert!(decoded.iter().any(|d| d.starts_with("table public.patients: UPDATE")), "{decoded:?}");
    let audited = |d: &String| d.starts_with("table public.change_log_") && d.contains(": INSERT:"); // a month's partition
    assert!(decoded.iter().any(audited), "{decoded:?}");

    for suffix in ["pgoutput", "decoded"] {
        client.execute("SELECT pg_drop_replication_slot($1)", &[&format!("{slot}_{suffix}")]).await.unwrap();
    }
}

#[tokio::test]
async fn a_plain_update_that_changes_nothing_writes_nothing() {
    let (_db, client) = db("noop_plain_update").await;
    client.execute("INSERT INTO intake_checklists (appointment_id, patient_id) VALUES ('A-1', 7)", &[]).await.unwrap();
    let before: String = client.query_one("SELECT xmin::text FROM intake_checklists", &[]).await.unwrap().get(0);
    let touched = client
        .execute("UPDATE intake_checklists SET consent_signed = false, status = 'not_started'", &[])
        .await
        .unwrap();
    assert_eq!(touched, 0, "suppressed: the row is as it was");
    let after: String = client.query_one("SELECT xmin::text FROM intake_checklists", &[]).await.unwrap().get(0);
    assert_eq!(before, after);
    assert_eq!(count(&client, "SELECT count(*) FROM change_log WHERE operation = 'UPDATE'").await, 0);

    // A real change still lands, and moves updated_at.
    let touched = client.execute("UPDATE intake_checklists SET consent_signed = true", &[]).await.unwrap();
    assert_eq!(touched, 1);
    let moved: bool =
        client.query_one("SELECT updated_at > created_at FROM intake_checklists", &[]).await.unwrap().get(0);
    assert!(moved);
    assert_eq!(count(&client, "SELECT count(*) FROM change_log WHERE operation = 'UPDATE'").await, 1);
}

#[tokio::test]
async fn an_older_copy_does_not_overwrite_a_newer_one() {
    let (_db, mut client) = db("noop_stale_guard").await;
    assert_eq!(write_patient(&mut client, "Newer", "2026-03-01T10:00:00").await, UpsertOutcome::Inserted);
    assert_eq!(write_patient(&mut client, "Older", "2026-02-01T10:00:00").await, UpsertOutcome::Unchanged);
    let stored: String =
        client.query_one("SELECT last_name FROM patients WHERE drchrono_id = 7", &[]).await.unwrap().get(0);
    assert_eq!(stored, "Newer");
    // Same timestamp but different content is accepted: DrChrono's clock has 1 s resolution.
    assert_eq!(write_patient(&mut client, "Same-second", "2026-03-01T10:00:00").await, UpsertOutcome::Updated);
}
