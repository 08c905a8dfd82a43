//! Deliveries that arrive out of order: an older copy than the stored one is answered 2xx,
//! writes nothing (the row and `change_log` stay as they were) and is logged `stale`.

use august_ingest::deepcura::encrypt;
use axum::http::StatusCode;
use serde_json::json;

use crate::deepcura::{gridhook, note};
use crate::drchrono::delivery;
use crate::{send, state, DEEPCURA_SECRET};

/// The row's text and the `change_log` count, to compare before and after.
async fn snapshot(db: &august_testkit::TestDb, row: &str) -> (String, i64) {
    let text: String = db.client().await.query_one(row, &[]).await.unwrap().get(0);
    (text, db.count("SELECT count(*) FROM change_log").await)
}

#[tokio::test]
async fn an_older_gridhook_after_a_newer_one_writes_nothing() {
    let db = august_testkit::fresh_db("ingest_stale_gridhook").await;
    let state = state(&db).await;
    let version = |updated_at: &str, transcript: &str| {
        let mut n = note();
        n["updated_at"] = json!(updated_at);
        n["transcript"] = json!(transcript);
        gridhook(DEEPCURA_SECRET, encrypt(DEEPCURA_SECRET, n.to_string().as_bytes(), [3; 16]))
    };
    let (status, answer) = send(&state, version("2026-02-01T12:00:00Z", "the newer note")).await;
    assert_eq!((status, answer["written"].as_i64()), (StatusCode::OK, Some(1)), "{answer}");
    let row = "SELECT to_jsonb(n)::text FROM deepcura_notes n";
    let before = snapshot(&db, row).await;
    assert!(before.0.contains("the newer note"));

    // A retry of an earlier version (an hour older, written in another zone) arrives late.
    let (status, answer) = send(&state, version("2026-02-01T12:00:00+01:00", "the older note")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!((answer["status"].as_str(), answer["written"].as_i64()), (Some("stale"), Some(0)));
    assert_eq!(snapshot(&db, row).await, before, "the row and the audit log are unchanged");
    assert_eq!(
        db.count("SELECT count(*) FROM sync_log WHERE source = 'deepcura_gridhook' AND status = 'stale' AND records_written = 0 AND error_message IS NULL").await,
        1
    );

    // A newer one still lands.
    let (_, answer) = send(&state, version("2026-02-01T12:00:01Z", "the newest note")).await;
    assert_eq!(answer["written"], 1, "{answer}");
    assert!(snapshot(&db, row).await.0.contains("the newest note"));
    // An undated note is applied but does not clear the stored time: the older one stays stale.
    let mut undated = note();
    undated["transcript"] = json!("an undated note");
    let undated = gridhook(DEEPCURA_SECRET, encrypt(DEEPCURA_SECRET, undated.to_string().as_bytes(), [4; 16]));
    assert_eq!(send(&state, undated).await.1["written"], 1);
    let (_, answer) = send(&state, version("2026-02-01T12:00:00Z", "the older note")).await;
    assert_eq!(answer["status"], "stale", "{answer}");
}

#[tokio::test]
async fn an_older_lock_or_unlock_writes_nothing() {
    let db = august_testkit::fresh_db("ingest_stale_lock").await;
    let state = state(&db).await;
    let note = |updated_at: &str| {
        json!({"appointment": "A-77", "patient": "501", "archived": false, "updated_at": updated_at,
               "signee": {"locked_by": "Dr Freud"}})
    };
    let (status, _) = send(&state, delivery("CLINICAL_NOTE_UNLOCK", "u-1", note("2026-03-01T09:00:00"))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&state, delivery("CLINICAL_NOTE_LOCK", "l-1", note("2026-03-01T10:00:00"))).await;
    assert_eq!(status, StatusCode::OK);
    let row = "SELECT to_jsonb(n)::text FROM clinical_notes n WHERE drchrono_id = 'A-77'";
    let before = snapshot(&db, row).await;
    assert!(before.0.contains(r#""locked": true"#), "{}", before.0);

    // DrChrono retries the earlier UNLOCK (its first delivery failed) after the LOCK.
    let (status, answer) = send(&state, delivery("CLINICAL_NOTE_UNLOCK", "u-0", note("2026-03-01T09:30:00"))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "stale");
    assert_eq!(snapshot(&db, row).await, before, "still locked; no audit row");
    assert_eq!(
        db.count(
            "SELECT count(*) FROM sync_log WHERE delivery_id = 'u-0' AND status = 'stale' AND records_written = 0"
        )
        .await,
        1
    );
    // The stale delivery was claimed: its redelivery is a duplicate, still writing nothing.
    let (_, again) = send(&state, delivery("CLINICAL_NOTE_UNLOCK", "u-0", note("2026-03-01T09:30:00"))).await;
    assert_eq!(again["status"], "duplicate");
    // An older LOCK after a newer UNLOCK is stale the same way.
    send(&state, delivery("CLINICAL_NOTE_UNLOCK", "u-2", note("2026-03-01T11:00:00"))).await;
    let unlocked = snapshot(&db, row).await;
    assert!(unlocked.0.contains(r#""locked": false"#), "{}", unlocked.0);
    let (_, answer) = send(&state, delivery("CLINICAL_NOTE_LOCK", "l-0", note("2026-03-01T10:30:00"))).await;
    assert_eq!(answer["status"], "stale");
    assert_eq!(snapshot(&db, row).await, unlocked);
}
