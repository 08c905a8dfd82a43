//! Every refusal of the write-back: its status, code and message (naming fields, never values),
//! nothing written to the target, a `rejected` sync_log row, and a refresh notice when the row
//! exists; 401 reads and writes nothing at all.

use august_ingest::writeback::fields;
use serde_json::{json, Value};

use crate::{answer, relevant, Server, AUTH, INTAKE, TASK, TOKEN};

const SECRET_VALUE: &str = "Zyxwv-PHI-like-value";

/// The refresh notices in `wal`, as their JSON content.
fn refreshes(wal: &[String]) -> Vec<Value> {
    wal.iter()
        .filter(|l| l.contains("prefix: august.coda_refresh"))
        .map(|l| serde_json::from_str(l.split_once("content:").unwrap().1).unwrap())
        .collect()
}

#[tokio::test]
async fn the_field_schemas_are_read_from_the_catalog_and_follow_it() {
    let server = Server::start("wb_schemas").await;
    let schemas = &server.state.schemas;
    let intake = schemas.get("intake").unwrap();
    let status = intake.column("status").unwrap();
    assert_eq!(status.allowed.as_deref().unwrap(), ["not_started", "in_progress", "complete", "blocked"]);
    assert!(!status.nullable);
    assert!(intake.column("notes").unwrap().nullable);
    assert_eq!(intake.completion.as_deref(), Some("complete"));
    let tasks = schemas.get("tasks").unwrap();
    let title = tasks.column("title").unwrap();
    assert_eq!((title.min_length, title.max_length), (Some(1), Some(500)));
    assert_eq!(tasks.column("due_date").unwrap().kind, fields::Kind::Date);
    assert_eq!(tasks.completion.as_deref(), Some("done"));
    let auth = schemas.get("prior-auth").unwrap();
    let units = auth.column("units_approved").unwrap();
    assert_eq!((units.minimum, units.nullable), (Some(0), true));
    assert_eq!(auth.column("icd10_codes").unwrap().kind, fields::Kind::TextList);
    assert_eq!(auth.completion, None);
    assert!(
        auth.constraint_columns.values().any(|c| c == &["status".to_string(), "auth_number".to_string()]),
        "{:?}",
        auth.constraint_columns
    );
    // A later migration's check is picked up at the next start, with no code change.
    let client = server.db.client().await;
    client.batch_execute("ALTER TABLE post_appointment_tasks ADD CHECK (length(details) <= 2000)").await.unwrap();
    let reloaded = fields::load(&client).await.unwrap();
    assert_eq!(reloaded.get("tasks").unwrap().column("details").unwrap().max_length, Some(2000));
}

#[tokio::test]
async fn invalid_bodies_are_refused_by_field_with_nothing_written_and_the_row_refreshed() {
    let server = Server::start("wb_invalid").await;
    server.watch_wal().await;
    let ops = "ops@clinic.example";
    let long = "x".repeat(501);
    let intake = format!("/api/intake/{INTAKE}");
    let task = format!("/api/tasks/{TASK}");
    let auth = format!("/api/prior-auth/{AUTH}");
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (&intake, json!({"edited_by": ops, "colour": SECRET_VALUE}), "unknown_field", "colour"),
        (&intake, json!({"edited_by": ops, "appointment_id": SECRET_VALUE}), "read_only_field", "appointment_id"),
        (&intake, json!({"edited_by": ops, "patient_id": 7}), "read_only_field", "patient_id"),
        (&intake, json!({"edited_by": ops, "completed_at": "2026-01-01T00:00:00Z"}), "read_only_field", "completed_at"),
        (&task, json!({"edited_by": ops, "updated_at": "2026-01-01T00:00:00Z"}), "read_only_field", "updated_at"),
        (&task, json!({"edited_by": ops, "id": TASK}), "read_only_field", "id"),
        (&intake, json!({"edited_by": ops, "status": SECRET_VALUE}), "invalid_field", "status"),
        (&intake, json!({"edited_by": ops, "status": null}), "invalid_field", "status"),
        (&intake, json!({"edited_by": ops, "consent_signed": "yes"}), "invalid_field", "consent_signed"),
        (&task, json!({"edited_by": ops, "title": ""}), "invalid_field", "title"),
        (&task, json!({"edited_by": ops, "title": long}), "invalid_field", "title"),
        (&task, json!({"edited_by": ops, "due_date": "03/01/2026"}), "invalid_field", "due_date"),
        (
            &auth,
            json!({"edited_by": "billing@clinic.example", "units_approved": -1}),
            "invalid_field",
            "units_approved",
        ),
        (
            &auth,
            json!({"edited_by": "billing@clinic.example", "units_approved": 1.5}),
            "invalid_field",
            "units_approved",
        ),
        (&auth, json!({"edited_by": "billing@clinic.example", "icd10_codes": [1]}), "invalid_field", "icd10_codes"),
        (
            &auth,
            json!({"edited_by": "billing@clinic.example", "submitted_at": "yesterday"}),
            "invalid_field",
            "submitted_at",
        ),
        (&intake, json!({"notes": SECRET_VALUE}), "invalid_field", "edited_by"),
        (&intake, json!({"edited_by": "not-an-email", "notes": "x"}), "invalid_field", "edited_by"),
        (
            &intake,
            json!({"edited_by": ops, "expected_updated_at": "soon", "notes": "x"}),
            "invalid_field",
            "expected_updated_at",
        ),
        (&intake, json!({"edited_by": ops}), "no_fields", "intake_checklists"),
        (
            &auth,
            json!({"edited_by": "billing@clinic.example", "status": "approved"}),
            "constraint_violation",
            "status, auth_number",
        ),
    ];
    for (path, body, code, named) in &cases {
        let (status, answer) = server.patch(path, body).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (422, Some(*code)), "{path} {body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{body}: {message} names {named}");
        assert!(!message.contains(SECRET_VALUE) && !message.contains("xxxx"), "{message} holds no value");
    }
    assert_eq!(
        server.count("SELECT count(*) FROM change_log WHERE actor <> 'august_demo'").await,
        0,
        "nothing written"
    );
    let rejected =
        server.count("SELECT count(*) FROM sync_log WHERE source = 'coda_writeback' AND status = 'rejected'").await;
    assert_eq!(rejected, i64::try_from(cases.len()).unwrap());
    assert_eq!(server.count("SELECT count(*) FROM sync_log WHERE error_code = 'read_only_field'").await, 5);
    assert_eq!(server.count("SELECT count(*) FROM access_log WHERE status_code = 422").await, rejected);
    let wal = server.wal().await;
    for table in ["intake_checklists", "post_appointment_tasks", "prior_authorizations"] {
        assert!(!wal.iter().any(|l| l.contains(&format!("public.{table}:"))), "{table} untouched: {wal:?}");
    }
    let notices = refreshes(&wal);
    assert_eq!(notices.len(), cases.len(), "one refresh per refusal of an existing row");
    assert!(notices.iter().all(|n| n["fields"] == json!([])));
    assert_eq!(notices[0], json!({"target": "intake", "key": INTAKE, "fields": []}));
}

#[tokio::test]
async fn only_active_staff_whose_role_edits_the_table_may_edit_it() {
    let server = Server::start("wb_roles").await;
    server.watch_wal().await;
    let intake = format!("/api/intake/{INTAKE}");
    let auth = format!("/api/prior-auth/{AUTH}");
    for (path, editor, roles) in [
        (&intake, "gone@clinic.example", "admin, operations"),
        (&intake, "audit@clinic.example", "admin, operations"),
        (&intake, "ro@clinic.example", "admin, operations"),
        (&intake, "billing@clinic.example", "admin, operations"),
        (&intake, "stranger@elsewhere.example", "admin, operations"),
        (&auth, "ops@clinic.example", "admin, billing"),
    ] {
        let (status, answer) = server.patch(path, &json!({"edited_by": editor, "notes": "x"})).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")), "{editor}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(roles) && !message.contains(editor), "{message}");
    }
    assert_eq!(server.count("SELECT count(*) FROM change_log WHERE actor <> 'august_demo'").await, 0);
    let wal = server.wal().await;
    assert_eq!(refreshes(&wal).len(), 6, "each refusal refreshes the Coda row: {wal:?}");
    assert_eq!(
        server
            .count("SELECT count(*) FROM access_log WHERE status_code = 403 AND actor_detail = 'audit@clinic.example'")
            .await,
        1
    );
    // The matrix's other side: billing edits prior auths, a clinician edits tasks.
    let (status, _) = server.patch(&auth, &json!({"edited_by": "billing@clinic.example", "notes": "x"})).await;
    assert_eq!(status, 200);
    let (status, _) =
        server.patch(&format!("/api/tasks/{TASK}"), &json!({"edited_by": "clin@clinic.example", "details": "x"})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn unknown_and_deleted_rows_are_not_found() {
    let server = Server::start("wb_not_found").await;
    for (path, field) in [
        ("/api/intake/A-404", "notes"),
        ("/api/intake/A-DEL", "notes"),
        ("/api/tasks/not-a-uuid", "details"),
        ("/api/prior-auth/6f1c2a34-0000-4000-8000-0000000000ff", "notes"),
    ] {
        let (status, answer) = server.patch(path, &json!({"edited_by": "admin@clinic.example", field: "x"})).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("not_found")), "{path}: {answer}");
    }
    assert_eq!(server.count("SELECT count(*) FROM change_log WHERE actor <> 'august_demo'").await, 0);
    assert_eq!(server.count("SELECT count(*) FROM sync_log WHERE error_code = 'not_found'").await, 4);
}

#[tokio::test]
async fn a_stale_expected_updated_at_is_a_conflict_that_names_the_current_time() {
    let server = Server::start("wb_conflict").await;
    let path = format!("/api/intake/{INTAKE}");
    let edit = |notes: &str, expected: &Value| json!({"edited_by": "ops@clinic.example", "notes": notes, "expected_updated_at": expected});
    let (status, first) = server.patch(&path, &json!({"edited_by": "ops@clinic.example", "notes": "one"})).await;
    assert_eq!(status, 200);
    let seen = first["updated_at"].clone();
    let (status, second) = server.patch(&path, &edit("two", &seen)).await;
    assert_eq!(status, 200, "the current updated_at is not stale: {second}");
    server.watch_wal().await;
    let (status, answer) = server.patch(&path, &edit("three", &seen)).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "conflict");
    assert_eq!(answer["error"]["updated_at"], second["updated_at"], "the row's current updated_at");
    let stored = server
        .db
        .client()
        .await
        .query_one("SELECT notes FROM intake_checklists WHERE appointment_id = 'A-100'", &[])
        .await
        .unwrap();
    assert_eq!(stored.get::<_, String>(0), "two");
    let wal = server.wal().await;
    assert_eq!(refreshes(&wal), vec![json!({"target": "intake", "key": INTAKE, "fields": []})]);
    assert!(relevant(&wal, "intake_checklists").iter().all(|l| l.starts_with("message:")));
}

/// Sends a request head that announces a body and never sends it; the status line answered.
/// A server that waited for the body would answer only at its 10 s time limit, with 503.
async fn head_only(server: &Server, authorization: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.base.trim_start_matches("http://")).await.unwrap();
    let auth = authorization.map(|a| format!("authorization: {a}\r\n")).unwrap_or_default();
    let head = format!(
        "PATCH /api/intake/{INTAKE} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 64\r\n{auth}\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 512];
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(30), stream.read(&mut answer)).await.unwrap().unwrap();
    String::from_utf8_lossy(&answer[..read]).lines().next().unwrap_or("").to_string()
}

#[tokio::test]
async fn transport_refusals_come_before_the_body_and_401_writes_nothing() {
    let server = Server::start("wb_transport").await;
    let url = format!("{}/api/intake/{INTAKE}", server.base);
    for auth in [None, Some("Bearer wrong-token-0123456789abc"), Some(&format!("Basic {TOKEN}") as &str)] {
        assert_eq!(head_only(&server, auth).await, "HTTP/1.1 401 Unauthorized", "{auth:?}: answered without the body");
    }
    let (status, got) =
        answer(server.http.patch(&url).bearer_auth("nope").json(&json!({})).send().await.unwrap()).await;
    assert_eq!((status, got["error"]["code"].as_str()), (401, Some("unauthorized")));
    assert_eq!(server.count("SELECT count(*) FROM sync_log").await, 0, "401 writes nothing");
    assert_eq!(server.count("SELECT count(*) FROM access_log").await, 0);
    let send = |content_type: &'static str, body: Vec<u8>| {
        server.http.patch(&url).bearer_auth(TOKEN).header("content-type", content_type).body(body).send()
    };
    let (status, got) = answer(send("text/plain", b"{}".to_vec()).await.unwrap()).await;
    assert_eq!((status, got["error"]["code"].as_str()), (415, Some("unsupported_media_type")));
    let big = format!(r#"{{"edited_by":"ops@clinic.example","notes":"{}"}}"#, "x".repeat(1 << 20));
    let (status, got) = answer(send("application/json", big.into_bytes()).await.unwrap()).await;
    assert_eq!((status, got["error"]["code"].as_str()), (413, Some("too_large")));
    let (status, got) = answer(send("application/json", b"{not json".to_vec()).await.unwrap()).await;
    assert_eq!((status, got["error"]["code"].as_str()), (400, Some("bad_request")));
    assert_eq!(server.count("SELECT count(*) FROM change_log WHERE actor <> 'august_demo'").await, 0);
    assert_eq!(server.count("SELECT count(*) FROM sync_log WHERE status = 'rejected'").await, 3);
    assert_eq!(
        server.count("SELECT count(*) FROM access_log WHERE status_code IN (400, 413, 415) AND path_template = '/api/intake/{appointmentId}'").await,
        3
    );
}

#[tokio::test]
async fn of_two_racing_edits_from_the_same_version_one_wins_and_the_other_conflicts() {
    let server = Server::start("wb_race").await;
    let path = format!("/api/tasks/{TASK}");
    let (_, first) = server.patch(&path, &json!({"edited_by": "ops@clinic.example", "details": "v1"})).await;
    let seen = first["updated_at"].clone();
    let edit =
        |details: &str| json!({"edited_by": "ops@clinic.example", "details": details, "expected_updated_at": seen});
    let (edit_a, edit_b) = (edit("a"), edit("b"));
    let (a, b) = tokio::join!(server.patch(&path, &edit_a), server.patch(&path, &edit_b));
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    let (winner, loser) = if a.0 == 200 { (&a.1, &b.1) } else { (&b.1, &a.1) };
    assert_eq!(loser["error"]["updated_at"], winner["updated_at"], "the loser is told the winner's version");
    let stored = server.db.client().await.query_one("SELECT details FROM post_appointment_tasks", &[]).await.unwrap();
    assert_eq!(Some(stored.get::<_, String>(0).as_str()), winner["details"].as_str());
}
