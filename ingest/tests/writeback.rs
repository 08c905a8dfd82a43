//! The Coda write-back API through a real server on a loopback port and a real Postgres: every
//! endpoint's happy path with its audit rows and WAL notice, replays, `completed_at`, and (in
//! the modules) every refusal and the OpenAPI document.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "writeback_openapi.rs"]
mod openapi;
#[path = "writeback_refusals.rs"]
mod refusals;

use august_ingest::server::{serve, HttpLimits};
use august_ingest::writeback::{self, WritebackState};
use august_ingest::{app, IngestState};
use august_schema::{PoolSettings, Secret};
use august_testkit::TestDb;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "coda-writeback-token-0123456789";
pub const TASK: &str = "6f1c2a34-0000-4000-8000-00000000a001";
pub const AUTH: &str = "6f1c2a34-0000-4000-8000-00000000b001";
pub const INTAKE: &str = "A-100";

/// A served app (webhooks and write-back) over one test database with seeded rows and staff.
pub struct Server {
    pub db: TestDb,
    pub base: String,
    pub http: reqwest::Client,
    pub state: WritebackState,
    stop: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

const SEED: &str = "
    SELECT set_config('app.actor', 'august_demo', false);
    INSERT INTO staff_roles (email, role, active) VALUES
        ('ops@clinic.example', 'operations', true), ('billing@clinic.example', 'billing', true),
        ('clin@clinic.example', 'clinician', true), ('admin@clinic.example', 'admin', true),
        ('audit@clinic.example', 'auditor', true), ('ro@clinic.example', 'read_only', true),
        ('gone@clinic.example', 'operations', false);
    INSERT INTO intake_checklists (appointment_id, patient_id) VALUES ('A-100', 501);
    INSERT INTO intake_checklists (appointment_id, patient_id, deleted_at) VALUES ('A-DEL', 502, now());
    INSERT INTO post_appointment_tasks (id, appointment_id, patient_id, task_type, title)
        VALUES ('6f1c2a34-0000-4000-8000-00000000a001', 'A-100', 501, 'order_labs', 'Order labs');
    INSERT INTO prior_authorizations (id, patient_id, item_type, item_name)
        VALUES ('6f1c2a34-0000-4000-8000-00000000b001', 501, 'medication', 'Sertraline');
";

impl Server {
    pub async fn start(hint: &str) -> Server {
        let db = august_testkit::fresh_db(hint).await;
        db.client().await.batch_execute(SEED).await.unwrap();
        let pool = august_schema::connect_pool(&PoolSettings::default(), db.config()).await.unwrap();
        let state = WritebackState::load(pool.clone(), Secret::new(TOKEN.into())).await.unwrap();
        let ingest = IngestState {
            pool,
            drchrono_secret: Secret::new("drchrono-webhook-secret".into()),
            deepcura_secret: Secret::new("deepcura-shared-secret".into()),
        };
        let router = app(ingest).merge(writeback::router(state.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, router, HttpLimits::default(), stop.clone().cancelled_owned()));
        Server { db, base, http: reqwest::Client::new(), state, stop }
    }

    /// `PATCH path` with the token and `body`; the status and the JSON answer.
    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .patch(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.db.count(sql).await
    }

    /// Starts a `test_decoding` slot: [`Server::wal`] then shows what was written after this.
    pub async fn watch_wal(&self) {
        let client = self.db.client().await;
        client
            .execute("SELECT pg_create_logical_replication_slot($1, 'test_decoding')", &[&self.slot()])
            .await
            .unwrap();
    }

    /// The decoded changes and messages since the last call (BEGIN/COMMIT left out).
    pub async fn wal(&self) -> Vec<String> {
        let client = self.db.client().await;
        let rows = client
            .query("SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL, 'include-xids', '0')", &[&self.slot()])
            .await
            .unwrap();
        rows.iter().map(|r| r.get::<_, String>(0)).filter(|d| d != "BEGIN" && d != "COMMIT").collect()
    }

    fn slot(&self) -> String {
        format!("wb_{}", self.db.name.chars().filter(char::is_ascii_alphanumeric).collect::<String>())
            .chars()
            .take(60)
            .collect::<String>()
            .to_lowercase()
    }
}

pub async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The WAL lines that touch `table` or are write-back notices.
pub fn relevant(wal: &[String], table: &str) -> Vec<String> {
    wal.iter().filter(|l| l.contains(&format!("public.{table}:")) || l.starts_with("message:")).cloned().collect()
}

#[tokio::test]
async fn each_endpoint_stores_the_edit_with_the_editor_in_every_audit_row_and_a_notice() {
    let server = Server::start("wb_happy").await;
    server.watch_wal().await;
    let cases = [
        (
            "intake",
            format!("/api/intake/{INTAKE}"),
            "intake_checklists",
            INTAKE,
            "Ops@Clinic.example",
            json!({"insurance_verified": true, "notes": "called insurer"}),
            "ops@clinic.example",
        ),
        (
            "tasks",
            format!("/api/tasks/{TASK}"),
            "post_appointment_tasks",
            TASK,
            "clin@clinic.example",
            json!({"priority": "high", "due_date": "2026-03-01"}),
            "clin@clinic.example",
        ),
        (
            "prior-auth",
            format!("/api/prior-auth/{AUTH}"),
            "prior_authorizations",
            AUTH,
            "billing@clinic.example",
            json!({"status": "approved", "auth_number": "PA-77", "units_approved": 30, "icd10_codes": ["F32.1"]}),
            "billing@clinic.example",
        ),
    ];
    for (target, path, table, key, editor, fields, email) in cases {
        let mut body = fields.clone();
        body["edited_by"] = json!(editor);
        body["coda_row_id"] = json!("i-row1");
        let (status, row) = server.patch(&path, &body).await;
        assert_eq!(status, 200, "{target}: {row}");
        for (name, value) in fields.as_object().unwrap() {
            assert_eq!(&row[name], value, "{target}.{name}: the stored row is answered");
        }
        let stored = server.db.client().await;
        let audit = stored
            .query_one(
                "SELECT actor, actor_detail, changed_fields FROM change_log WHERE table_name = $1 AND operation = 'UPDATE'",
                &[&table],
            )
            .await
            .unwrap();
        assert_eq!(audit.get::<_, String>(0), "coda_writeback");
        assert_eq!(audit.get::<_, Option<String>>(1).as_deref(), Some(email), "{target}: the editor, lower-cased");
        let mut changed: Vec<String> = fields.as_object().unwrap().keys().cloned().collect();
        changed.sort();
        assert_eq!(audit.get::<_, Vec<String>>(2), changed);
        let sync = stored
            .query_one(
                "SELECT status, records_written, delivery_id FROM sync_log WHERE source = 'coda_writeback' AND event = $1",
                &[&target],
            )
            .await
            .unwrap();
        assert_eq!((sync.get::<_, String>(0).as_str(), sync.get::<_, i32>(1)), ("succeeded", 1));
        assert_eq!(sync.get::<_, String>(2), key);
        let template = writeback::path_template(august_schema::writeback::target(target).unwrap().route);
        let access = stored
            .query_one(
                "SELECT method, status_code, actor, actor_detail, duration_ms >= 0 FROM access_log WHERE service = 'coda' AND path_template = $1",
                &[&template],
            )
            .await
            .unwrap();
        assert_eq!(access.get::<_, String>(0), "PATCH");
        assert_eq!(access.get::<_, i32>(1), 200);
        assert_eq!(access.get::<_, String>(2), "coda_writeback");
        assert_eq!(access.get::<_, Option<String>>(3).as_deref(), Some(email));
        let wal = relevant(&server.wal().await, table);
        assert_eq!(wal.len(), 2, "{target}: one row change and one notice: {wal:?}");
        assert!(wal[0].starts_with(&format!("table public.{table}: UPDATE")), "{wal:?}");
        let notice = &wal[1];
        assert!(notice.contains("transactional: 1 prefix: august.coda_edit"), "{notice}");
        let content: Value = serde_json::from_str(notice.split_once("content:").unwrap().1).unwrap();
        let mut names: Vec<Value> = fields.as_object().unwrap().keys().map(|k| json!(k)).collect();
        names.sort_by_key(|v| v.to_string());
        assert_eq!(content, json!({"target": target, "key": key, "coda_row_id": "i-row1", "fields": names}));
    }
    assert_eq!(
        server.count("SELECT count(*) FROM access_log WHERE path_template = '/api/intake/{appointmentId}'").await,
        1
    );
}

#[tokio::test]
async fn a_replay_answers_the_stored_row_and_writes_nothing() {
    let server = Server::start("wb_replay").await;
    let path = format!("/api/tasks/{TASK}");
    let body = json!({"edited_by": "ops@clinic.example", "status": "in_progress", "title": "Order labs"});
    let (status, first) = server.patch(&path, &body).await;
    assert_eq!(status, 200, "{first}");
    server.watch_wal().await;
    let changes = server.count("SELECT count(*) FROM change_log").await;
    let (status, again) = server.patch(&path, &body).await;
    assert_eq!((status, &again), (200, &first), "the replay answers the stored row, updated_at unchanged");
    assert_eq!(server.count("SELECT count(*) FROM change_log").await, changes, "no change_log row");
    assert_eq!(
        relevant(&server.wal().await, "post_appointment_tasks"),
        Vec::<String>::new(),
        "no row change, no notice"
    );
    assert_eq!(
        server.count("SELECT count(*) FROM sync_log WHERE source = 'coda_writeback' AND status = 'duplicate' AND records_written = 0").await,
        1
    );
    // A different value is an edit again.
    let (status, _) = server.patch(&path, &json!({"edited_by": "ops@clinic.example", "status": "open"})).await;
    assert_eq!(status, 200);
    assert_eq!(relevant(&server.wal().await, "post_appointment_tasks").len(), 2);
}

#[tokio::test]
async fn completed_at_is_set_by_completion_kept_by_other_edits_and_cleared_by_reopening() {
    let server = Server::start("wb_completed").await;
    let completed = |row: &Value| row["completed_at"].as_str().map(str::to_string);
    for (path, done, open) in
        [(format!("/api/intake/{INTAKE}"), "complete", "in_progress"), (format!("/api/tasks/{TASK}"), "done", "open")]
    {
        let edit = |fields: Value| {
            let mut body = fields;
            body["edited_by"] = json!("admin@clinic.example");
            body
        };
        let (status, row) = server.patch(&path, &edit(json!({"status": done}))).await;
        assert_eq!(status, 200, "{row}");
        let at = completed(&row).expect("completion sets completed_at");
        let (_, row) = server.patch(&path, &edit(json!({"assigned_to": "ops@clinic.example"}))).await;
        assert_eq!(completed(&row).as_ref(), Some(&at), "another edit keeps it");
        let (_, row) = server.patch(&path, &edit(json!({"status": done}))).await;
        assert_eq!(completed(&row).as_ref(), Some(&at), "completing again keeps the first time");
        let (status, row) = server.patch(&path, &edit(json!({"status": open}))).await;
        assert_eq!(status, 200, "{row}");
        assert_eq!(completed(&row), None, "reopening clears it");
    }
}
