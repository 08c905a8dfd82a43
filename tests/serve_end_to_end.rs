//! `august serve` end to end, as deployed: the real binary against a real Postgres and the
//! Coda emulator as a separate server (Coda's quota on). A DrChrono patient, appointment and
//! locked clinical note and a Deep Cura Gridhook go in over HTTP; the joined, enriched rows come
//! out in Coda, the link is written back, the latency is measured, and SIGTERM stops it all.

use std::time::Duration;

use serde_json::json;

use crate::support::{
    coda_row, drchrono_webhook, emulator, free_port, serve_env, August, DEEPCURA_SECRET, DRCHRONO_SECRET,
};

const TOKEN: &str = "e2e-token";

#[tokio::test]
async fn a_webhook_reaches_coda_joined_and_enriched_through_august_serve() {
    let db = august_testkit::fresh_db("e2e_serve").await;
    let (_coda_process, coda) = emulator(TOKEN, &[]).await;
    let (port, metrics_port) = (free_port(), free_port());
    let mut serve = August::spawn(
        &["serve"],
        &serve_env(&db, port, metrics_port, &coda, TOKEN, &[("AUGUST_HTTP_ADDR", "127.0.0.1:0".into())]),
    );
    serve.line_with("serving webhooks and replicating", Duration::from_secs(60)).await;
    let head = serve.line_with("audit chain head", Duration::from_secs(30)).await;
    assert!(head.contains("access_log") && head.contains("seq") && head.contains("hash"), "{head}");
    let retention = serve.line_with("retention job done", Duration::from_secs(30)).await;
    assert!(retention.contains("partitions_created=0") && retention.contains("dead_letters_purged=0"), "{retention}");
    let august = format!("http://127.0.0.1:{port}");

    drchrono_webhook(&august, DRCHRONO_SECRET, "PATIENT_CREATE", "e2e-1", json!({
        "id": 501, "first_name": "Ada", "last_name": "Lovelace", "date_of_birth": "1990-04-01", "cell_phone": "555-0100",
        "doctor": 9, "updated_at": "2026-11-30T10:00:00",
        "primary_insurance": {"insurance_company": "Aetna", "insurance_id_number": "M123", "is_subscriber_the_patient": true}
    }))
    .await;
    drchrono_webhook(
        &august,
        DRCHRONO_SECRET,
        "APPOINTMENT_CREATE",
        "e2e-2",
        json!({
            "id": "A-9001", "patient": 501, "doctor": 9, "scheduled_time": "2026-12-01T09:30:00", "duration": 50,
            "status": "Arrived", "reason": "Follow-up", "updated_at": "2026-11-30T10:01:00"
        }),
    )
    .await;
    drchrono_webhook(
        &august,
        DRCHRONO_SECRET,
        "CLINICAL_NOTE_LOCK",
        "e2e-3",
        json!({"appointment": "A-9001", "patient": "501", "archived": false}),
    )
    .await;
    let note = json!({
        "note_id": "6f1c2a34-0000-4000-8000-0000000000aa", "drchrono_patient_id": 501, "drchrono_appointment_id": "A-9001",
        "session_date": "2026-12-01", "provider_npi": "1234567890", "transcript": "Synthetic transcript.",
        "soap": {"subjective": "sleeping better", "objective": "calm", "assessment": "improving", "plan": "continue CBT"},
        "icd10_suggestions": [{"code": "F41.1", "description": "GAD", "confidence": 0.8}],
        "cpt_suggestions": [{"code": "90837", "description": "Psychotherapy, 60 min"}],
        "risk_assessment": {"level": "low", "factors": []}
    });
    let body = august_ingest::deepcura::encrypt(DEEPCURA_SECRET, note.to_string().as_bytes(), [3; 16]);
    let response = reqwest::Client::new()
        .post(format!("{august}/webhooks/deepcura"))
        .header("X-DeepCura-Secret", DEEPCURA_SECRET)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let clinical = coda_row(&coda, TOKEN, "grid-clinical-notes", "c-clinical-note-id", "A-9001", |v| {
        v["c-soap-subjective"] == json!("sleeping better")
    })
    .await;
    assert_eq!(clinical["c-patient-name"], json!("Ada Lovelace"));
    assert_eq!((&clinical["c-soap-plan"], &clinical["c-locked"]), (&json!("continue CBT"), &json!(true)));
    assert_eq!((&clinical["c-icd10-suggestions"], &clinical["c-risk-level"]), (&json!("F41.1"), &json!("low")));
    let scheduling = coda_row(&coda, TOKEN, "grid-scheduling-ops", "c-appointment-id", "A-9001", |v| {
        v["c-deepcura-linked"] == json!(true)
    })
    .await;
    assert_eq!(scheduling["c-patient-name"], json!("Ada Lovelace"));
    assert_eq!(scheduling["c-primary-insurance-payer"], json!("Aetna"));
    assert_eq!((&scheduling["c-status"], &scheduling["c-clinical-note-locked"]), (&json!("Arrived"), &json!(true)));
    let linked = db
        .count("SELECT count(*) FROM deepcura_notes WHERE clinical_note_id = 'A-9001' AND link_method IS NOT NULL")
        .await;
    assert_eq!(linked, 1, "the Deep Cura note is linked to the clinical note");

    let on_webhook_port = reqwest::get(format!("{august}/metrics")).await.unwrap().status();
    assert_eq!(on_webhook_port, 404, "metrics are not served on the public webhook port");
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"august_e2e_latency_seconds_bucket{view="clinical_notes""#), "{metrics}");
    assert!(metrics.contains("august_ingest_deliveries_total") && metrics.contains("august_cdc_changes_total"));
    let access = db.count("SELECT count(*) FROM access_log WHERE service = 'coda' AND method = 'POST'").await;
    assert!(access > 0, "every Coda call leaves an access_log row");

    serve.signal("TERM");
    let status = serve.exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{}", serve.log());
    // The last lines may still be on their way from the pipe: wait for them.
    serve.line_with("stopped cleanly", Duration::from_secs(10)).await;
}
