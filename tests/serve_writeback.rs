//! A staff edit in Coda round trip through `august serve`: the emulator's edit endpoint fires
//! the table's automation (as `august coda-emulator --writeback-token` builds it from the demo
//! mapping), August's write-back endpoint stores it in Postgres as the editor's, and cdc →
//! dataflow carry the change to the derived view in another Coda table.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{demo_mapping_path, emulator, free_port, get_json, August};

const TOKEN: &str = "e2e-token";
const WRITEBACK: &str = "e2e-writeback-token";
const SECRET: &str = "drchrono-secret-0123456789";

/// The values of the row of `table` keyed `key`, once `ready` holds of them.
async fn coda_row(coda: &str, table: &str, key_column: &str, key: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let (_, page) = get_json(&format!("{coda}/docs/demo-clinic/tables/{table}/rows?limit=500"), TOKEN).await;
        let row = page["items"].as_array().into_iter().flatten().find(|r| r["values"][key_column] == json!(key));
        if let Some(row) = row.filter(|r| ready(&r["values"])) {
            return row["values"].clone();
        }
        assert!(Instant::now() < deadline, "{table} never showed {key} as expected: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_staff_edit_in_coda_reaches_postgres_and_the_derived_view_in_coda() {
    let db = august_testkit::fresh_db("e2e_writeback").await;
    let port = free_port();
    let august = format!("http://127.0.0.1:{port}");
    let flags = ["--no-quota", "--writeback-token", WRITEBACK, "--writeback-base", &august];
    let (_coda_process, coda) = emulator(TOKEN, &flags).await;
    let mut serve = August::spawn(
        &["serve"],
        &[
            ("DATABASE_URL", db.url().to_string()),
            ("PORT", port.to_string()),
            ("AUGUST_HTTP_ADDR", "127.0.0.1:0".into()),
            ("DRCHRONO_WEBHOOK_SECRET", SECRET.into()),
            ("DEEPCURA_SHARED_SECRET", "deepcura-secret-0123456789".into()),
            ("AUGUST_CODA_MAPPING", demo_mapping_path().display().to_string()),
            ("CODA_API_BASE", coda.clone()),
            ("CODA_API_TOKEN", TOKEN.into()),
            ("CODA_WRITEBACK_TOKEN", WRITEBACK.into()),
            ("AUGUST_CODA_WRITES_PER_6S", "6000".into()),
            ("AUGUST_SLOT", db.name.clone()),
            ("AUGUST_METRICS_ADDR", format!("127.0.0.1:{}", free_port())),
            ("AUGUST_HEARTBEAT_SECS", "1".into()),
        ],
    );
    serve.line_with("serving webhooks and replicating", Duration::from_secs(60)).await;

    let http = reqwest::Client::new();
    for (event, object) in [
        (
            "PATIENT_CREATE",
            json!({"id": 601, "first_name": "Grace", "last_name": "Hopper", "doctor": 9,
                                  "updated_at": "2026-11-30T10:00:00"}),
        ),
        (
            "APPOINTMENT_CREATE",
            json!({"id": "A-7001", "patient": 601, "doctor": 9, "scheduled_time": "2026-12-01T09:30:00",
                                      "duration": 50, "status": "Scheduled", "updated_at": "2026-11-30T10:01:00"}),
        ),
    ] {
        let answer = http
            .post(format!("{august}/webhooks/drchrono"))
            .header("X-drchrono-signature", SECRET)
            .header("X-drchrono-event", event)
            .header("X-drchrono-delivery", format!("wb-{event}"))
            .json(&json!({"receiver": {"id": 1}, "object": object}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{event}");
    }
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO staff_roles (email, role) VALUES ('frontdesk@clinic.example', 'operations');
             INSERT INTO intake_checklists (appointment_id, patient_id) VALUES ('A-7001', 601);",
        )
        .await
        .unwrap();
    coda_row(&coda, "grid-patient-intake", "c-appointment-id", "A-7001", |v| {
        v["c-intake-status"] == json!("not_started")
    })
    .await;

    let edit = json!({"table": "grid-patient-intake", "row": "A-7001", "user": "frontdesk@clinic.example",
                      "values": {"c-intake-status": "in_progress", "c-consent-signed": true}});
    let answer = http.post(format!("{coda}/_emulator/edit")).json(&edit).send().await.unwrap();
    assert_eq!(answer.status(), 200);

    let scheduling = coda_row(&coda, "grid-scheduling-ops", "c-appointment-id", "A-7001", |v| {
        v["c-intake-status"] == json!("in_progress")
    })
    .await;
    assert_eq!(scheduling["c-appointment-id"], json!("A-7001"), "the derived view shows the staff's edit");
    let stored = db
        .count(
            "SELECT count(*) FROM intake_checklists WHERE appointment_id = 'A-7001' AND status = 'in_progress'
                AND consent_signed",
        )
        .await;
    assert_eq!(stored, 1, "Postgres holds the edit");
    let audited = db
        .count(
            "SELECT count(*) FROM change_log WHERE table_name = 'intake_checklists' AND actor = 'coda_writeback'
                AND actor_detail = 'frontdesk@clinic.example'",
        )
        .await;
    assert_eq!(audited, 1, "one audited change, the editor's");
    let (_, stats) = get_json(&format!("{coda}/_emulator/stats"), TOKEN).await;
    assert_eq!(stats["automations"]["by_status"]["200"], json!(1), "{stats}");

    serve.signal("TERM");
    assert!(serve.exit(Duration::from_secs(30)).await.success(), "{}", serve.log());
}
