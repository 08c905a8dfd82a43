//! A staff edit in Coda, end to end through `august serve`: the Coda emulator (its own process,
//! quota on) fires its automation at August's write-back endpoint as a Pack action would; the
//! edit lands in Postgres, audited with the editor; cdc and the dataflow carry it back; and the
//! Coda sink writes only what Coda does not already hold: nothing to the edited table, one
//! write to the table that shows the intake status beside the appointment.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{
    coda_row, drchrono_webhook, emulator, free_port, sample, serve_env, total, August, DRCHRONO_SECRET,
};

const WRITEBACK_TOKEN: &str = "writeback-token-0123456789";
const TOKEN: &str = "e2e-token";
const STAFF: &str = "ops.lead@clinic.example";

async fn scrape(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap().text().await.unwrap()
}

/// Waits until the sink has nothing pending and its counters stop moving; returns the scrape.
async fn settled(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    loop {
        let now = scrape(port).await;
        let quiet = total(&now, "august_coda_pending_rows") == 0.0;
        let written = |s: &str| sample(s, "august_coda_rows_written_total", r#"view="scheduling_ops""#);
        if quiet && !last.is_empty() && written(&now) == written(&last) {
            return now;
        }
        assert!(Instant::now() < deadline, "the Coda sink never settled");
        last = now;
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
}

#[tokio::test]
async fn a_staff_edit_in_coda_lands_in_postgres_and_comes_back_without_an_echo() {
    let db = august_testkit::fresh_db("e2e_writeback").await;
    crate::support::staff_and_intake(&db, STAFF, "A-7001", 601).await;
    let (port, metrics_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    let flags = ["--writeback-token", WRITEBACK_TOKEN, "--writeback-base", &base];
    let (_coda_process, coda) = emulator(TOKEN, &flags).await;
    let serve = August::spawn(
        &["serve"],
        &serve_env(&db, port, metrics_port, &coda, TOKEN, &[("CODA_WRITEBACK_TOKEN", WRITEBACK_TOKEN.into())]),
    );
    serve.line_with("serving webhooks and replicating", Duration::from_secs(60)).await;
    drchrono_webhook(
        &base,
        DRCHRONO_SECRET,
        "PATIENT_CREATE",
        "wb-1",
        json!({
            "id": 601, "first_name": "Grace", "last_name": "Hopper", "date_of_birth": "1986-12-09", "doctor": 9,
            "updated_at": "2026-11-30T10:00:00"
        }),
    )
    .await;
    drchrono_webhook(
        &base,
        DRCHRONO_SECRET,
        "APPOINTMENT_CREATE",
        "wb-2",
        json!({
            "id": "A-7001", "patient": 601, "doctor": 9, "scheduled_time": "2026-12-03T09:30:00", "duration": 50,
            "status": "Confirmed", "reason": "Intake", "updated_at": "2026-11-30T10:01:00"
        }),
    )
    .await;
    let shows = |status: &'static str| move |v: &Value| v["c-intake-status"] == json!(status);
    coda_row(&coda, TOKEN, "grid-patient-intake", "c-appointment-id", "A-7001", shows("in_progress")).await;
    coda_row(&coda, TOKEN, "grid-scheduling-ops", "c-appointment-id", "A-7001", |v| {
        v["c-intake-status"] == json!("in_progress") && v["c-patient-name"] == json!("Grace Hopper")
    })
    .await;
    let before = settled(metrics_port).await;

    // The staff member marks the checklist blocked in Coda's UI.
    let edit = json!({"table": "grid-patient-intake", "row": "A-7001", "values": {"c-intake-status": "blocked"}, "user": STAFF});
    let response = reqwest::Client::new().post(format!("{coda}/_emulator/edit")).json(&edit).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    coda_row(&coda, TOKEN, "grid-scheduling-ops", "c-appointment-id", "A-7001", shows("blocked")).await;
    let after = settled(metrics_port).await;
    let audit = db.client().await.query_one(
        "SELECT actor, actor_detail, changed_fields FROM change_log WHERE table_name = 'intake_checklists' AND operation = 'UPDATE'",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        (audit.get::<_, String>(0), audit.get::<_, Option<String>>(1)),
        ("coda_writeback".into(), Some(STAFF.into()))
    );
    assert_eq!(audit.get::<_, Vec<String>>(2), vec!["status".to_string()]);

    let delta = |name: &str, view: &str| {
        let labels = format!(r#"view="{view}""#);
        sample(&after, name, &labels) - sample(&before, name, &labels)
    };
    assert_eq!(delta("august_coda_rows_written_total", "patient_intake"), 0.0, "Coda already shows the edit");
    assert_eq!(delta("august_coda_rows_written_total", "scheduling_ops"), 1.0, "the derived row, once");
    assert_eq!(delta("august_coda_echoes_avoided_total", "patient_intake"), 1.0);
    let (_, stats) = crate::support::get_json(&format!("{coda}/_emulator/stats"), TOKEN).await;
    assert_eq!(
        stats["automations"]["calls"],
        json!(1),
        "one write-back request, no echo of August's own write: {stats}"
    );
    let written =
        db.count("SELECT count(*) FROM sync_log WHERE source = 'coda_writeback' AND status = 'succeeded'").await;
    assert_eq!(written, 1);

    serve.signal("TERM");
}
