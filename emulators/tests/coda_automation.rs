//! The Coda emulator's automations: a staff edit (`POST /_emulator/edit`, the page's form) is
//! applied at once and fires the table's automation with the Pack's header token, the changed
//! fields only and the editor's email; API upserts that change an automation column fire it
//! as the token's owner, other writes do not; outcomes are counted in `/_emulator/stats`.

use std::time::Duration;

use august_emulators::coda::recorder::{Received, Recorder};
use august_emulators::coda::{self, Automation, Doc, Emulator, EmulatorConfig, TableSpec};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

/// An emulator whose intake table sends status and assignee changes to `to`.
async fn emulator(to: &str) -> Emulator {
    let automation = Automation {
        url: format!("{to}/api/intake/{{key}}"),
        key_column: "c-appt".into(),
        fields: [("c-status", "status"), ("c-who", "assigned_to"), ("c-consent", "consent_signed")]
            .map(|(c, f)| (c.to_string(), f.to_string()))
            .into(),
        token: "writeback-secret".into(),
    };
    let intake =
        TableSpec::new("grid-intake", "patient_intake", ["c-appt", "c-status", "c-who", "c-consent", "c-name"])
            .with_automation(automation);
    let doc = Doc::new("doc-a", [intake, TableSpec::new("grid-other", "providers", ["c-id"])]);
    let config = EmulatorConfig { quota: false, api_user: "sync@clinic.example".into(), ..EmulatorConfig::default() };
    coda::serve("127.0.0.1:0".parse().unwrap(), doc, config).await.unwrap()
}

async fn upsert(emulator: &Emulator, rows: Value) {
    let body = json!({"rows": rows, "keyColumns": ["c-appt"]});
    let url = format!("{}/docs/doc-a/tables/grid-intake/rows", emulator.base_url());
    let answer = reqwest::Client::new().post(url).bearer_auth("emulator-token").json(&body).send().await.unwrap();
    assert_eq!(answer.status(), 202);
}

fn row(appt: &str, status: &str, who: &str, name: &str) -> Value {
    json!({"cells": [{"column": "c-appt", "value": appt}, {"column": "c-status", "value": status},
                     {"column": "c-who", "value": who}, {"column": "c-consent", "value": false},
                     {"column": "c-name", "value": name}]})
}

async fn edit(emulator: &Emulator, body: Value) -> (u16, Value) {
    let url = format!("{}/_emulator/edit", emulator.base_url());
    let answer = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

async fn stats(emulator: &Emulator) -> Value {
    reqwest::get(format!("{}/_emulator/stats", emulator.base_url())).await.unwrap().json().await.unwrap()
}

fn patch(path: &str, body: Value) -> Received {
    Received { method: "PATCH".into(), path: path.into(), authorization: Some("Bearer writeback-secret".into()), body }
}

#[tokio::test]
async fn a_staff_edit_is_applied_at_once_and_sends_the_changed_fields_with_the_token_and_the_editor() {
    let august = Recorder::start(200).await.unwrap();
    let emulator = emulator(&august.base_url()).await;
    upsert(&emulator, json!([row("A-1", "not_started", "", "x"), row("A 2", "not_started", "", "y")])).await;

    let (status, answer) = edit(
        &emulator,
        json!({"table": "patient_intake", "row": "A 2", "values": {"c-status": "in_progress", "c-consent": true, "c-name": "z"},
               "user": "frontdesk@clinic.example"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["values"]["c-status"], "in_progress", "the answer is the edited row");
    assert_eq!(emulator.rows("doc-a", "grid-intake")[1]["c-consent"], true, "applied before the answer");
    let row_id = answer["id"].as_str().unwrap().to_string();

    // By row id and column name; clearing a cell sends null.
    let (status, _) = edit(
        &emulator,
        json!({"table": "grid-intake", "row": row_id, "values": {"c-who": "a@clinic.example"}, "user": "ops@clinic.example"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = edit(
        &emulator,
        json!({"table": "grid-intake", "row": "A 2", "values": {"c-who": null}, "user": "ops@clinic.example"}),
    )
    .await;
    assert_eq!(status, 200);

    let received = august.wait_for(3, WAIT).await;
    assert_eq!(
        received,
        vec![
            patch(
                "/api/intake/A%202",
                json!({"status": "in_progress", "consent_signed": true, "edited_by": "frontdesk@clinic.example", "coda_row_id": row_id})
            ),
            patch(
                "/api/intake/A%202",
                json!({"assigned_to": "a@clinic.example", "edited_by": "ops@clinic.example", "coda_row_id": row_id})
            ),
            patch(
                "/api/intake/A%202",
                json!({"assigned_to": null, "edited_by": "ops@clinic.example", "coda_row_id": row_id})
            ),
        ],
        "c-name is no automation column, so it is not sent"
    );
    let automations = &stats(&emulator).await["automations"];
    assert_eq!(automations["calls"], 3);
    assert_eq!(automations["by_status"]["200"], 3);
    assert_eq!(automations["failures"], 0);
}

#[tokio::test]
async fn edits_of_unknown_tables_rows_or_columns_are_refused_and_fire_nothing() {
    let august = Recorder::start(200).await.unwrap();
    let emulator = emulator(&august.base_url()).await;
    upsert(&emulator, json!([row("A-1", "not_started", "", "x")])).await;
    let user = "ops@clinic.example";
    let cases = [
        (json!({"table": "nope", "row": "A-1", "values": {"c-status": "blocked"}, "user": user}), 404, "nope"),
        (json!({"table": "grid-intake", "row": "B-9", "values": {"c-status": "blocked"}, "user": user}), 404, "B-9"),
        (json!({"table": "grid-intake", "row": "A-1", "values": {"c-nope": "blocked"}, "user": user}), 400, "c-nope"),
        (
            json!({"table": "grid-intake", "row": "A-1", "values": {"c-status": {"a": 1}}, "user": user}),
            400,
            "c-status",
        ),
        (json!({"table": "grid-intake", "row": "A-1", "values": {"c-status": "blocked"}, "user": ""}), 400, "user"),
        (json!({"table": "grid-intake", "row": "A-1"}), 400, "values"),
    ];
    for (body, expected, named) in cases {
        let (status, answer) = edit(&emulator, body.clone()).await;
        assert_eq!(status, expected, "{body} → {answer}");
        assert!(answer["message"].as_str().unwrap().contains(named), "{answer} names {named}");
    }
    assert_eq!(emulator.rows("doc-a", "grid-intake")[0]["c-status"], "not_started", "nothing applied");
    // A last good edit: it is the only call made.
    let (status, _) =
        edit(&emulator, json!({"table": "grid-intake", "row": "A-1", "values": {"c-status": "blocked"}, "user": user}))
            .await;
    assert_eq!(status, 200);
    let received = august.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(200)).await; // room for a wrong extra call to show
    assert_eq!(august.received().len(), 1, "{received:?}");
    assert_eq!(received[0].body["status"], "blocked");
}

#[tokio::test]
async fn the_page_form_edits_a_cell_with_its_type_and_fires_the_automation() {
    let august = Recorder::start(200).await.unwrap();
    let emulator = emulator(&august.base_url()).await;
    upsert(&emulator, json!([row("A-1", "not_started", "", "x")])).await;
    let page = reqwest::get(format!("{}/", emulator.base_url())).await.unwrap().text().await.unwrap();
    assert!(page.contains("action=\"/_emulator/edit\"") && page.contains("name=\"column\""), "{page}");

    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let form = [
        ("table", "grid-intake"),
        ("row", "A-1"),
        ("column", "c-consent"),
        ("value", "true"),
        ("user", "fd@clinic.example"),
    ];
    let answer = no_redirect.post(format!("{}/_emulator/edit", emulator.base_url())).form(&form).send().await.unwrap();
    assert_eq!(answer.status(), 303, "back to the page");
    assert_eq!(emulator.rows("doc-a", "grid-intake")[0]["c-consent"], true, "a boolean cell stays a boolean");
    let received = august.wait_for(1, WAIT).await;
    assert_eq!(received[0].body["consent_signed"], true);
    assert_eq!(received[0].body["edited_by"], "fd@clinic.example");

    let bad =
        [("table", "grid-intake"), ("row", "A-1"), ("column", "c-nope"), ("value", "1"), ("user", "fd@clinic.example")];
    let answer = no_redirect.post(format!("{}/_emulator/edit", emulator.base_url())).form(&bad).send().await.unwrap();
    assert_eq!(answer.status(), 400);
}

#[tokio::test]
async fn api_writes_fire_the_automation_as_the_token_owner_only_when_an_automation_column_changes() {
    let august = Recorder::start(403).await.unwrap();
    let emulator = emulator(&august.base_url()).await;
    upsert(&emulator, json!([row("A-1", "not_started", "", "x")])).await; // a new row: no change
    upsert(&emulator, json!([row("A-1", "not_started", "", "renamed")])).await; // no automation column
    upsert(&emulator, json!([row("A-1", "not_started", "", "renamed")])).await; // nothing at all
    upsert(&emulator, json!([row("A-1", "complete", "", "renamed")])).await; // the status changed
    let received = august.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(200)).await; // room for a wrong extra call to show
    let row_id = emulator.rows("doc-a", "grid-intake").len();
    assert_eq!(row_id, 1);
    assert_eq!(
        august.received(),
        vec![patch(
            "/api/intake/A-1",
            json!({"status": "complete", "edited_by": "sync@clinic.example", "coda_row_id": "i-000001"})
        )],
        "{received:?}"
    );
    let automations = &stats(&emulator).await["automations"];
    assert_eq!(automations["by_status"]["403"], 1, "refusals are counted by status");
}

#[tokio::test]
async fn calls_nobody_answers_are_counted_as_failures_and_the_base_can_be_moved() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let emulator = emulator(&nowhere).await;
    upsert(&emulator, json!([row("A-1", "not_started", "", "x")])).await;
    let one =
        json!({"table": "grid-intake", "row": "A-1", "values": {"c-status": "blocked"}, "user": "o@clinic.example"});
    assert_eq!(edit(&emulator, one).await.0, 200);
    let deadline = std::time::Instant::now() + WAIT;
    while stats(&emulator).await["automations"]["failures"] != 1 {
        assert!(std::time::Instant::now() < deadline, "{}", stats(&emulator).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let august = Recorder::start(200).await.unwrap();
    emulator.point_automations_at(&august.base_url());
    let two =
        json!({"table": "grid-intake", "row": "A-1", "values": {"c-status": "complete"}, "user": "o@clinic.example"});
    assert_eq!(edit(&emulator, two).await.0, 200);
    let received = august.wait_for(1, WAIT).await;
    assert_eq!(received[0].path, "/api/intake/A-1");
    assert_eq!(emulator.stats().automations.succeeded(), 1);
    assert_eq!(emulator.stats().automations.refused(), 1);
}
