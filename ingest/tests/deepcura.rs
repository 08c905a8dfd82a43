//! Deep Cura Gridhooks: the encrypted round trip, and every way a delivery can be wrong.

use august_ingest::deepcura::encrypt;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};

use crate::{send, state, DEEPCURA_SECRET};

pub fn note() -> Value {
    json!({
        "note_id": "6f1c2a34-0000-4000-8000-0000000000aa",
        "drchrono_patient_id": 501,
        "drchrono_appointment_id": "A-9001",
        "session_date": "2026-02-01",
        "provider_npi": "1234567890",
        "transcript": "Patient reports improved sleep.",
        "soap": {"subjective": "better", "objective": "calm", "assessment": "improving", "plan": "continue"},
        "icd10_suggestions": [{"code": "F32.1", "description": "MDD, moderate", "confidence": 0.82}],
        "cpt_suggestions": [{"code": "90837", "description": "Psychotherapy, 60 min"}],
        "medications_mentioned": [{"name": "Sertraline", "dose": "50 mg", "frequency": "daily"}],
        "risk_assessment": {"level": "low", "factors": []}
    })
}

pub fn gridhook(secret_header: &str, body: Value) -> Request<Body> {
    Request::post("/webhooks/deepcura")
        .header("content-type", "application/json")
        .header("x-deepcura-secret", secret_header)
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn an_encrypted_gridhook_is_stored_with_typed_fields() {
    let db = august_testkit::fresh_db("ingest_gridhook").await;
    let state = state(&db).await;
    let body = encrypt(DEEPCURA_SECRET, note().to_string().as_bytes(), [7; 16]);
    let (status, answer) = send(&state, gridhook(DEEPCURA_SECRET, body.clone())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let row = db
        .client()
        .await
        .query_one(
            "SELECT drchrono_patient_id, session_date::text, soap_plan, icd10_suggestions -> 0 ->> 'code', risk_assessment ->> 'level', raw_payload ->> 'transcript'
               FROM deepcura_notes WHERE id = '6f1c2a34-0000-4000-8000-0000000000aa'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 501);
    assert_eq!(row.get::<_, String>(1), "2026-02-01");
    assert_eq!(row.get::<_, String>(2), "continue");
    assert_eq!(row.get::<_, String>(3), "F32.1");
    assert_eq!(row.get::<_, String>(4), "low");
    assert_eq!(row.get::<_, String>(5), "Patient reports improved sleep.");
    assert_eq!(db.count("SELECT count(*) FROM change_log WHERE actor = 'deepcura_gridhook'").await, 1);
    // The same note again changes nothing.
    assert_eq!(send(&state, gridhook(DEEPCURA_SECRET, body)).await.1["written"], 0);
    assert_eq!(db.count("SELECT count(*) FROM change_log").await, 1);
}

#[tokio::test]
async fn wrong_secrets_and_broken_bodies_are_refused_precisely() {
    let db = august_testkit::fresh_db("ingest_gridhook_errors").await;
    let state = state(&db).await;
    let good = encrypt(DEEPCURA_SECRET, note().to_string().as_bytes(), [1; 16]);
    let (status, _) = send(&state, gridhook("wrong", good.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let mut missing_field = note();
    missing_field.as_object_mut().unwrap().remove("session_date");
    let mut bad_risk = note();
    bad_risk["risk_assessment"]["level"] = json!("extreme");
    let cases = [
        (json!({"iv": "%%%", "data": good["data"]}), StatusCode::BAD_REQUEST, "iv is not base64"),
        (json!({"iv": good["iv"], "data": "AAAA"}), StatusCode::BAD_REQUEST, "does not decrypt"),
        (encrypt("another secret", note().to_string().as_bytes(), [1; 16]), StatusCode::BAD_REQUEST, "decrypt"),
        (json!({"iv": "AAAA", "data": good["data"]}), StatusCode::BAD_REQUEST, "16 bytes"),
        (
            encrypt(DEEPCURA_SECRET, missing_field.to_string().as_bytes(), [1; 16]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "session_date",
        ),
        (
            encrypt(DEEPCURA_SECRET, bad_risk.to_string().as_bytes(), [1; 16]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "risk_assessment.level",
        ),
        (encrypt(DEEPCURA_SECRET, b"not json at all", [1; 16]), StatusCode::BAD_REQUEST, "not JSON"),
    ];
    for (body, expected, says) in cases {
        let (status, answer) = send(&state, gridhook(DEEPCURA_SECRET, body)).await;
        let message = answer["error"]["message"].as_str().unwrap_or_default().to_string();
        assert_eq!(status, expected, "{message}");
        assert!(message.contains(says), "{message} should mention {says}");
        assert!(!message.contains("improved sleep"), "no note text in errors");
    }
    assert_eq!(db.count("SELECT count(*) FROM deepcura_notes").await, 0);
    let wrong_type =
        Request::post("/webhooks/deepcura").header("x-deepcura-secret", DEEPCURA_SECRET).body(Body::from("x")).unwrap();
    assert_eq!(send(&state, wrong_type).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}
