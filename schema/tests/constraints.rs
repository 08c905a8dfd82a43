//! Constraints that keep clinical data plausible: questionnaire score ranges above all.

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::db;

async fn insert_score(
    client: &Client,
    instrument: &str,
    total: i32,
    items: Option<serde_json::Value>,
) -> Result<(), SqlState> {
    client
        .execute(
            "INSERT INTO questionnaire_responses (patient_id, instrument, total_score, item_scores, administered_at)
             VALUES (1, $1, $2, $3, now())",
            &[&instrument, &total, &items],
        )
        .await
        .map(|_| ())
        .map_err(|e| e.code().cloned().expect("a server error"))
}

#[tokio::test]
async fn questionnaire_scores_out_of_range_are_rejected() {
    let (_db, client) = db("questionnaire_ranges").await;
    for (instrument, max) in [("PHQ-9", 27), ("GAD-7", 21), ("ASRS", 72), ("Y-BOCS", 40)] {
        assert_eq!(insert_score(&client, instrument, 0, None).await, Ok(()), "{instrument} 0");
        assert_eq!(insert_score(&client, instrument, max, None).await, Ok(()), "{instrument} {max}");
        assert_eq!(
            insert_score(&client, instrument, max + 1, None).await,
            Err(SqlState::CHECK_VIOLATION),
            "{instrument} {}",
            max + 1
        );
        assert_eq!(
            insert_score(&client, instrument, -1, None).await,
            Err(SqlState::CHECK_VIOLATION),
            "{instrument} -1"
        );
    }
    assert_eq!(insert_score(&client, "BDI-II", 10, None).await, Err(SqlState::CHECK_VIOLATION), "unknown instrument");
}

#[tokio::test]
async fn questionnaire_item_scores_must_match_the_instrument_and_the_total() {
    let (_db, client) = db("questionnaire_items").await;
    let items = |v: serde_json::Value| Some(v);
    let ok = serde_json::json!([3, 3, 3, 3, 3, 3, 3, 3, 3]);
    assert_eq!(insert_score(&client, "PHQ-9", 27, items(ok)).await, Ok(()));
    let cases = [
        ("sum differs from total", 26, serde_json::json!([3, 3, 3, 3, 3, 3, 3, 3, 3])),
        ("item above 3", 13, serde_json::json!([4, 1, 1, 1, 1, 1, 1, 1, 2])),
        ("eight items", 8, serde_json::json!([1, 1, 1, 1, 1, 1, 1, 1])),
        ("a string item", 9, serde_json::json!(["x", 1, 1, 1, 1, 1, 1, 1, 1])),
        ("a fractional item", 9, serde_json::json!([1.5, 0.5, 1, 1, 1, 1, 1, 1, 1])),
        ("not an array", 9, serde_json::json!({"q1": 9})),
    ];
    for (what, total, value) in cases {
        assert_eq!(insert_score(&client, "PHQ-9", total, items(value)).await, Err(SqlState::CHECK_VIOLATION), "{what}");
    }
    let ybocs = serde_json::json!([4, 4, 4, 4, 4, 4, 4, 4, 4, 4]);
    assert_eq!(insert_score(&client, "Y-BOCS", 40, items(ybocs)).await, Ok(()));
}

#[tokio::test]
async fn workflow_states_are_consistent() {
    let (_db, client) = db("workflow_checks").await;
    let refused = [
        ("complete needs completed_at", "INSERT INTO intake_checklists (appointment_id, status) VALUES ('A-1', 'complete')"),
        (
            "approved needs an auth number",
            "INSERT INTO prior_authorizations (patient_id, item_type, item_name, status) VALUES (1, 'medication', 'x', 'approved')",
        ),
        (
            "risk level is low, moderate or high",
            "INSERT INTO deepcura_notes (id, drchrono_patient_id, session_date, raw_payload, risk_assessment)
             VALUES (gen_random_uuid(), 1, '2026-01-01', '{}', '{\"level\": \"extreme\"}')",
        ),
        (
            "a link needs its method",
            "INSERT INTO deepcura_notes (id, drchrono_patient_id, session_date, raw_payload, clinical_note_id)
             VALUES (gen_random_uuid(), 1, '2026-01-01', '{}', 'A-1')",
        ),
        ("staff emails are stored lower-case", "INSERT INTO staff_roles (email, role) VALUES ('Someone@Clinic.example', 'admin')"),
    ];
    for (why, statement) in refused {
        let err = client.execute(statement, &[]).await.unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::CHECK_VIOLATION), "{why}");
    }
}
