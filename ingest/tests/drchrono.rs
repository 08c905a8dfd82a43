//! DrChrono webhooks: handshake, every event family, replay, order, forgery, bad input.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};

use crate::{send, state, DRCHRONO_SECRET};

pub fn delivery(event: &str, id: &str, object: Value) -> Request<Body> {
    Request::post("/webhooks/drchrono")
        .header("content-type", "application/json")
        .header("x-drchrono-event", event)
        .header("x-drchrono-signature", DRCHRONO_SECRET)
        .header("x-drchrono-delivery", id)
        .body(Body::from(json!({"receiver": {"id": 1}, "object": object}).to_string()))
        .unwrap()
}

fn patient(updated_at: &str, phone: &str) -> Value {
    json!({"id": 501, "first_name": "Ada", "last_name": "Lovelace", "date_of_birth": "1990-04-01", "cell_phone": phone, "doctor": 9,
           "updated_at": updated_at, "created_at": "2025-01-01T08:00:00", "gender": "Female",
           "primary_insurance": {"insurance_company": "Aetna", "insurance_id_number": "M123", "is_subscriber_the_patient": true}})
}

#[tokio::test]
async fn the_handshake_answers_the_hmac_of_msg() {
    let db = august_testkit::fresh_db("ingest_handshake").await;
    let state = state(&db).await;
    let (status, body) = send(&state, Request::get("/webhooks/drchrono?msg=hello").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(DRCHRONO_SECRET.as_bytes()).unwrap();
    mac.update(b"hello");
    assert_eq!(body["secret_token"], hex::encode(mac.finalize().into_bytes()));
    let (status, body) = send(&state, Request::get("/webhooks/drchrono").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("msg"));
}

#[tokio::test]
async fn every_event_family_lands_in_its_table_as_drchrono_webhook() {
    let db = august_testkit::fresh_db("ingest_families").await;
    let state = state(&db).await;
    let cases = [
        ("PATIENT_CREATE", patient("2026-01-01T10:00:00", "555-0100")),
        (
            "APPOINTMENT_CREATE",
            json!({"id": "A-9001", "patient": 501, "doctor": 9, "scheduled_time": "2026-02-01T09:30:00", "duration": 50, "status": "Confirmed", "icd10_codes": ["F32.1"], "updated_at": "2026-01-02T10:00:00"}),
        ),
        (
            "CLINICAL_NOTE_LOCK",
            json!({"appointment": "A-9001", "patient": "501", "archived": false, "clinical_note_sections": [{"name": "SOAP", "values": []}], "signee": {"locked_by": "Dr Freud"}}),
        ),
        (
            "PATIENT_MEDICATION_CREATE",
            json!({"id": 71, "patient": 501, "doctor": 9, "name": "Sertraline", "dosage_quantity": "50", "dispense_quantity": 30, "prn": false, "date_prescribed": "2026-01-05"}),
        ),
        (
            "PATIENT_PROBLEM_CREATE",
            json!({"id": 72, "patient": 501, "doctor": 9, "name": "Depression", "icd_code": "F32.1", "icd_version": "10", "date_diagnosis": "2026-01-05"}),
        ),
        (
            "PATIENT_ALLERGY_CREATE",
            json!({"id": 73, "patient": 501, "doctor": 9, "reaction": "Hives", "status": "active"}),
        ),
        (
            "LINE_ITEM_CREATE",
            json!({"id": 74, "appointment": 9001, "patient": "501", "doctor": "9", "code": "90837", "procedure_type": "C", "price": "180.00", "modifiers": ["95"], "updated_at": "2026-02-01T11:00:00"}),
        ),
    ];
    for (i, (event, object)) in cases.iter().enumerate() {
        let (status, body) = send(&state, delivery(event, &format!("d-{i}"), object.clone())).await;
        assert_eq!(status, StatusCode::OK, "{event}: {body}");
    }
    let client = db.client().await;
    let row = client.query_one("SELECT first_name, date_of_birth::text, provider_id, drchrono_updated_at::text FROM patients WHERE drchrono_id = 501", &[]).await.unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1), row.get::<_, i64>(2)),
        ("Ada".into(), "1990-04-01".into(), 9)
    );
    assert_eq!(db.count("SELECT count(*) FROM insurance_records WHERE patient_id = 501 AND type = 'primary' AND insurance_company = 'Aetna'").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM appointments WHERE drchrono_id = 'A-9001' AND duration = 50 AND icd10_codes = '{F32.1}'").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM clinical_notes WHERE drchrono_id = 'A-9001' AND locked AND locked_by = 'Dr Freud' AND patient_id = 501").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM medications WHERE drchrono_id = 71 AND dispense_quantity = 30").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM problems WHERE drchrono_id = 72 AND icd_code = 'F32.1'").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM allergies WHERE drchrono_id = 73").await, 1);
    assert_eq!(
        db.count("SELECT count(*) FROM line_items WHERE drchrono_id = 74 AND price = 180 AND appointment_id = '9001'")
            .await,
        1
    );
    assert_eq!(
        db.count("SELECT count(*) FROM change_log WHERE actor <> 'drchrono_webhook'").await,
        0,
        "every write attributed"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM sync_log WHERE source = 'drchrono_webhook' AND status = 'succeeded'").await,
        7
    );

    // Unlock clears the flag; a delete soft-deletes; PING and unknown events are fine.
    let unlock = json!({"appointment": "A-9001", "patient": "501", "archived": false});
    assert_eq!(send(&state, delivery("CLINICAL_NOTE_UNLOCK", "d-10", unlock)).await.0, StatusCode::OK);
    assert_eq!(db.count("SELECT count(*) FROM clinical_notes WHERE NOT locked AND locked_at IS NULL").await, 1);
    assert_eq!(
        send(&state, delivery("LINE_ITEM_DELETE", "d-11", json!({"id": 74, "updated_at": "2026-02-02T11:00:00"})))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(db.count("SELECT count(*) FROM line_items WHERE drchrono_id = 74 AND deleted_at IS NOT NULL").await, 1);
    assert_eq!(send(&state, delivery("PING", "d-12", json!({}))).await.0, StatusCode::OK);
    let (status, body) = send(&state, delivery("LAB_ORDER_CREATE", "d-13", json!({"id": 1}))).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ignored")));
    assert_eq!(
        db.count("SELECT count(*) FROM sync_log WHERE status = 'ignored' AND event = 'LAB_ORDER_CREATE'").await,
        1
    );
}

#[tokio::test]
async fn the_same_delivery_twice_writes_once_and_an_older_copy_loses() {
    let db = august_testkit::fresh_db("ingest_replay").await;
    let state = state(&db).await;
    let first = send(&state, delivery("PATIENT_MODIFY", "same", patient("2026-03-01T10:00:00", "555-0100"))).await;
    let again = send(&state, delivery("PATIENT_MODIFY", "same", patient("2026-03-01T10:00:00", "555-0100"))).await;
    assert_eq!((first.0, again.0, again.1["status"].as_str()), (StatusCode::OK, StatusCode::OK, Some("duplicate")));
    assert_eq!(db.count("SELECT count(*) FROM change_log WHERE table_name = 'patients'").await, 1, "one write");

    // A redelivery under a new id of the same object: the no-op guard.
    send(&state, delivery("PATIENT_MODIFY", "other-id", patient("2026-03-01T10:00:00", "555-0100"))).await;
    assert_eq!(db.count("SELECT count(*) FROM change_log WHERE table_name = 'patients'").await, 1);

    // An older copy arriving late does not overwrite.
    let (status, _) =
        send(&state, delivery("PATIENT_MODIFY", "late", patient("2026-02-01T10:00:00", "555-0999"))).await;
    assert_eq!(status, StatusCode::OK);
    let phone: String = db.client().await.query_one("SELECT cell_phone FROM patients", &[]).await.unwrap().get(0);
    assert_eq!(phone, "555-0100");
}

#[tokio::test]
async fn a_forged_signature_is_refused_with_nothing_written() {
    let db = august_testkit::fresh_db("ingest_forged").await;
    let state = state(&db).await;
    let mut request = delivery("PATIENT_CREATE", "forged", patient("2026-01-01T10:00:00", "555-0100"));
    request.headers_mut().insert("x-drchrono-signature", "not-the-secret".parse().unwrap());
    let (status, body) = send(&state, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    let mut unsigned = delivery("PATIENT_CREATE", "unsigned", patient("2026-01-01T10:00:00", "555-0100"));
    unsigned.headers_mut().remove("x-drchrono-signature");
    assert_eq!(send(&state, unsigned).await.0, StatusCode::UNAUTHORIZED);
    for table in ["patients", "change_log", "sync_log", "processed_messages"] {
        assert_eq!(db.count(&format!("SELECT count(*) FROM {table}")).await, 0, "{table}");
    }
}

#[tokio::test]
async fn each_malformed_input_gets_its_own_error() {
    let db = august_testkit::fresh_db("ingest_malformed").await;
    let state = state(&db).await;
    let raw = |content_type: &str, body: Vec<u8>, event: &str| {
        Request::post("/webhooks/drchrono")
            .header("content-type", content_type)
            .header("x-drchrono-event", event)
            .header("x-drchrono-signature", DRCHRONO_SECRET)
            .header("x-drchrono-delivery", "m")
            .body(Body::from(body))
            .unwrap()
    };
    let cases = [
        (raw("application/json", b"{not json".to_vec(), "PATIENT_CREATE"), StatusCode::BAD_REQUEST, "bad_request"),
        (
            raw("text/plain", b"{}".to_vec(), "PATIENT_CREATE"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            raw("application/json", br#"{"receiver": {}}"#.to_vec(), "PATIENT_CREATE"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            raw("application/json", br#"{"object": {"first_name": "x"}}"#.to_vec(), "PATIENT_CREATE"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            raw(
                "application/json",
                br#"{"object": {"id": 1, "date_of_birth": "1990-13-40"}}"#.to_vec(),
                "PATIENT_CREATE",
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (raw("application/json", vec![b' '; 2 << 20], "PATIENT_CREATE"), StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
    ];
    for (request, expected, code) in cases {
        let (status, body) = send(&state, request).await;
        assert_eq!((status, body["error"]["code"].as_str()), (expected, Some(code)), "{body}");
        assert!(!body["error"]["message"].as_str().unwrap().contains("1990"), "no values in messages");
    }
    let (_, body) =
        send(&state, raw("application/json", br#"{"object": {"first_name": "x"}}"#.to_vec(), "PATIENT_CREATE")).await;
    assert!(body["error"]["message"].as_str().unwrap().contains("object.id"), "names the field: {body}");
    let mut no_event = raw("application/json", b"{}".to_vec(), "x");
    no_event.headers_mut().remove("x-drchrono-event");
    assert_eq!(send(&state, no_event).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(db.count("SELECT count(*) FROM patients").await, 0);
}

#[tokio::test]
async fn health_reports_the_database() {
    let db = august_testkit::fresh_db("ingest_health").await;
    let state = state(&db).await;
    let (status, body) = send(&state, Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!((status, body["database"].as_str()), (StatusCode::OK, Some("ok")));
    let dead = august_ingest::IngestState {
        pool: bb8::Pool::builder().connection_timeout(std::time::Duration::from_millis(300)).build_unchecked(
            bb8_postgres::PostgresConnectionManager::new(
                "postgres://nobody@127.0.0.1:1/none".parse().unwrap(),
                august_schema::tls::PgTls::unverified(tokio_postgres::config::SslMode::Disable).connector(),
            ),
        ),
        ..state
    };
    let (status, _) = send(&dead, Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}
