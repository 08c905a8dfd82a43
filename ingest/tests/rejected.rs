//! Deliveries whose data Postgres refuses: 422 `rejected`, recorded in `sync_log` without a
//! value, nothing in the mirror; a database that is down or read-only stays 503.

use std::time::Duration;

use august_ingest::deepcura::encrypt;
use august_ingest::IngestState;
use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::deepcura::{gridhook, note};
use crate::drchrono::delivery;
use crate::{send, state, Logs, DEEPCURA_SECRET};

/// Asserts a 422 `rejected` whose message names `names` and holds none of `values`, and one
/// `rejected` row in `sync_log` for `source` that holds none either.
async fn assert_rejected(
    db: &august_testkit::TestDb,
    (status, body): (StatusCode, Value),
    source: &str,
    names: &[&str],
    values: &[&str],
) {
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("rejected")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    for name in names {
        assert!(message.contains(name), "{message} should name {name}");
    }
    let row = db
        .client()
        .await
        .query_one(
            "SELECT count(*), string_agg(concat_ws(' ', event, delivery_id, error_code, error_message), ' ')
               FROM sync_log WHERE source = $1 AND status = 'rejected'",
            &[&source],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1, "one rejected row");
    let logged: String = row.get(1);
    for value in values {
        assert!(!body.to_string().contains(value), "`{value}` in the answer {body}");
        assert!(!logged.contains(value), "`{value}` in sync_log: {logged}");
    }
}

#[tokio::test]
async fn a_drchrono_delivery_postgres_refuses_is_rejected_once_and_never_retried() {
    let db = august_testkit::fresh_db("ingest_rejected_drchrono").await;
    let state = state(&db).await;
    let (_guard, logs) = Logs::capture();
    let patient = |status: &str, first_name: &str| {
        json!({"id": 7301, "first_name": first_name, "last_name": "Roe", "date_of_birth": "1984-03-07",
               "cell_phone": "555-0142", "patient_status": status, "updated_at": "2026-01-01T10:00:00"})
    };
    let values = ["Jane", "Roe", "1984-03-07", "555-0142"];

    // A status outside the CHECK, holding PHI.
    let answer = send(&state, delivery("PATIENT_CREATE", "d-check", patient("Jane Roe 1984-03-07", "Jane"))).await;
    assert_rejected(
        &db,
        answer,
        "drchrono_webhook",
        &["check_violation", "23514", "patients_patient_status_check"],
        &values,
    )
    .await;
    // A NUL in a name: JSON allows it, Postgres text does not.
    let answer = send(&state, delivery("PATIENT_MODIFY", "d-nul", patient("A", "Jane\u{0}Roe"))).await;
    assert_eq!(answer.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], "rejected");

    assert_eq!(db.count("SELECT count(*) FROM patients").await, 0, "nothing in the mirror");
    assert_eq!(db.count("SELECT count(*) FROM processed_messages").await, 0, "the claim rolled back");
    assert_eq!(db.count("SELECT count(*) FROM sync_log WHERE status = 'rejected'").await, 2);
    assert_eq!(db.count("SELECT count(*) FROM sync_log WHERE status <> 'rejected'").await, 0);
    let logged = logs.text();
    assert!(logged.contains("rejected") && logged.contains("23514"), "the refusal is logged: {logged}");
    for value in values {
        assert!(!logged.contains(value), "`{value}` logged: {logged}");
    }
}

#[tokio::test]
async fn a_gridhook_postgres_refuses_is_rejected_without_its_text() {
    let db = august_testkit::fresh_db("ingest_rejected_gridhook").await;
    let state = state(&db).await;
    let (_guard, logs) = Logs::capture();
    let mut refused = note();
    refused["transcript"] = json!("Jane Roe says she sleeps badly\u{0} since March");
    let body = encrypt(DEEPCURA_SECRET, refused.to_string().as_bytes(), [3; 16]);
    let answer = send(&state, gridhook(DEEPCURA_SECRET, body)).await;
    let values = ["Jane", "sleeps badly", "March"];
    assert_rejected(&db, answer, "deepcura_gridhook", &["character_not_in_repertoire", "22021"], &values).await;
    assert_eq!(db.count("SELECT count(*) FROM deepcura_notes").await, 0, "nothing in the mirror");
    let logged = logs.text();
    assert!(logged.contains("22021"), "the refusal is logged: {logged}");
    for value in values {
        assert!(!logged.contains(value), "`{value}` logged: {logged}");
    }
}

#[tokio::test]
async fn a_database_that_is_down_busy_or_read_only_still_answers_503() {
    let db = august_testkit::fresh_db("ingest_rejected_outage").await;
    let object = json!({"id": 7302, "first_name": "Jane", "updated_at": "2026-01-01T10:00:00"});
    let admin = db.client().await;
    let (_guard, logs) = Logs::capture();
    let alter = |setting: &str| format!("ALTER DATABASE \"{}\" {setting}", db.name);
    let unavailable = |(status, body): (StatusCode, Value)| {
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable")),
            "{body}"
        );
    };

    // Down: no new connection is accepted.
    let limits = august_schema::PoolSettings { connect_timeout: Duration::from_millis(300), ..Default::default() };
    let down =
        IngestState { pool: august_schema::connect_pool(&limits, db.config()).await.unwrap(), ..state(&db).await };
    // (A database cannot close itself to connections: that is said from another one.)
    let other = august_testkit::fresh_db("ingest_rejected_outage_admin").await;
    let elsewhere = other.client().await;
    elsewhere.batch_execute(&alter("ALLOW_CONNECTIONS false")).await.unwrap();
    unavailable(send(&down, delivery("PATIENT_CREATE", "d-down", object.clone())).await);
    elsewhere.batch_execute(&alter("ALLOW_CONNECTIONS true")).await.unwrap();

    // Busy: the table is locked past lock_timeout (55P03, retryable).
    admin.batch_execute(&alter("SET lock_timeout = '200ms'")).await.unwrap();
    admin.batch_execute("BEGIN; LOCK TABLE patients IN ACCESS EXCLUSIVE MODE").await.unwrap();
    unavailable(send(&state(&db).await, delivery("PATIENT_CREATE", "d-locked", object.clone())).await);
    admin.batch_execute("ROLLBACK").await.unwrap();

    // Read-only, as on a standby after a failover (25006): permanent, but not about the data,
    // so the delivery stays with the sender.
    admin.batch_execute(&alter("SET default_transaction_read_only = on")).await.unwrap();
    unavailable(send(&state(&db).await, delivery("PATIENT_CREATE", "d-read-only", object)).await);
    assert_eq!(db.count("SELECT count(*) FROM sync_log").await, 0, "nothing recorded as rejected");
    let logged = logs.text();
    for code in ["lock_not_available (SQLSTATE 55P03)", "read_only_sql_transaction (SQLSTATE 25006)"] {
        assert!(logged.contains(code), "{code} should be logged: {logged}");
    }
    assert!(!logged.contains("Jane"), "{logged}");
}
