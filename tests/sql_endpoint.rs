//! The SQL endpoint as its users meet it: `august replicate` with `AUGUST_SQL_ADDR` on, users
//! added with `august sql-user add`, and real clients — `psql` (simple protocol, `\dt`, `\d`),
//! `tokio-postgres`, and Python's `psycopg` 3 and `asyncpg` (extended protocol, parameters,
//! binary results) from the venv `.ci/run` makes (`target/sql-venv`).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{free_port, August};

const ADMIN_PASSWORD: &str = "admin pass phrase 1";
const AUDITOR_PASSWORD: &str = "auditor pass phrase 2";
const OPS_PASSWORD: &str = "ops pass phrase 3";

/// `august sql-user add NAME --role ROLE` with `password` on stdin.
pub fn add_user(users: &std::path::Path, name: &str, role: &str, password: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_august"))
        .args(["sql-user", "add", name, "--role", role])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AUGUST_SQL_USERS_FILE", users)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A running `august replicate` with its SQL endpoint, and the users file it reads.
struct Endpoint {
    _august: August,
    port: u16,
    users: tempfile::TempDir,
}

impl Endpoint {
    async fn start(db: &august_testkit::TestDb) -> Endpoint {
        Endpoint::start_with(db, &[]).await
    }

    async fn start_with(db: &august_testkit::TestDb, extra: &[(&'static str, String)]) -> Endpoint {
        let users = tempfile::tempdir().unwrap();
        let file = users.path().join("users.toml");
        add_user(&file, "ops_admin", "admin", ADMIN_PASSWORD);
        add_user(&file, "auditor1", "auditor", AUDITOR_PASSWORD);
        add_user(&file, "ops1", "operations", OPS_PASSWORD);
        let port = free_port();
        let mut env = vec![
            ("DATABASE_URL", db.url().to_string()),
            ("AUGUST_METRICS_ADDR", "127.0.0.1:0".into()),
            ("AUGUST_SQL_ADDR", format!("127.0.0.1:{port}")),
            ("AUGUST_SQL_USERS_FILE", file.display().to_string()),
            ("AUGUST_HEARTBEAT_SECS", "1".into()),
        ];
        env.extend(extra.iter().cloned());
        let august = August::spawn(&["replicate"], &env);
        august.line_with("SQL endpoint listening", Duration::from_secs(60)).await;
        Endpoint { _august: august, port, users }
    }

    fn url(&self, user: &str, password: &str) -> String {
        format!("host=127.0.0.1 port={} user={user} password='{password}' dbname=august", self.port)
    }

    async fn client(&self, user: &str, password: &str) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.url(user, password), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }

    /// `psql -c sql` as `user`: (exit status ok, stdout, stderr).
    fn psql(&self, user: &str, password: &str, sql: &str) -> (bool, String, String) {
        let out = Command::new("psql")
            .args([&self.url(user, password), "-X", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    }
}

/// Waits until `sql`'s first value (a count) is `want`.
async fn until_count(client: &tokio_postgres::Client, sql: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: i64 = client.query_one(sql, &[]).await.unwrap().get(0);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{sql}: {got}, not {want}, after 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const SEED: &str = "INSERT INTO patients (drchrono_id, first_name, last_name, cell_phone, drchrono_raw)
         VALUES (7, 'Ada', 'Lovelace', '555-0100', '{}');
     INSERT INTO appointments (drchrono_id, patient_id, scheduled_time, duration, status, drchrono_raw)
         VALUES ('A-7', 7, '2026-03-02 10:00', 50, 'Arrived', '{}');
     INSERT INTO clinical_notes (drchrono_id, patient_id, locked, drchrono_raw) VALUES ('A-7', 7, true, '{}');";

#[tokio::test]
async fn psql_describes_and_queries_the_views_each_role_sees_its_columns_and_writes_are_refused() {
    let db = august_testkit::fresh_db("sql_psql").await;
    let pg = db.client().await;
    pg.batch_execute(SEED).await.unwrap();
    let sql = Endpoint::start(&db).await;
    let users = std::fs::read_to_string(sql.users.path().join("users.toml")).unwrap();
    assert!(users.contains("SCRAM-SHA-256$4096:") && !users.contains(ADMIN_PASSWORD), "verifiers only: {users}");

    let admin = sql.client("ops_admin", ADMIN_PASSWORD).await;
    until_count(&admin, "SELECT count(*) FROM scheduling_ops", 1).await;

    // psql: the catalog queries of \dt and \d, and a query over the simple protocol.
    let (ok, out, err) = sql.psql("ops_admin", ADMIN_PASSWORD, "\\dt");
    assert!(ok, "{err}");
    for table in ["scheduling_ops", "clinical_notes", "august_status", "august_slot", "august_views"] {
        assert!(out.contains(table), "\\dt lists {table}: {out}");
    }
    let (ok, out, err) = sql.psql("ops_admin", ADMIN_PASSWORD, "\\d scheduling_ops");
    assert!(ok, "{err}");
    for (column, ty) in
        [("duration", "bigint"), ("scheduled_time", "timestamp without time zone"), ("deepcura_linked", "boolean")]
    {
        assert!(out.lines().any(|l| l.contains(column) && l.contains(ty)), "{column} is {ty}: {out}");
    }
    let (ok, out, err) = sql.psql(
        "ops_admin",
        ADMIN_PASSWORD,
        "SELECT appointment_id, patient_name, duration + 10 AS longer FROM scheduling_ops WHERE status = 'Arrived'",
    );
    assert!(ok, "{err}");
    assert!(out.contains("A-7") && out.contains("Ada Lovelace") && out.contains("60"), "{out}");

    // Read-only: DML and DDL are refused with SQLSTATE 25006, and nothing changes.
    for statement in [
        "INSERT INTO scheduling_ops (appointment_id) VALUES ('x')",
        "DROP TABLE scheduling_ops",
        "CREATE TABLE t (a int)",
    ] {
        let err = admin.simple_query(statement).await.unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some("25006"), "{statement}: {err:?}");
    }
    let (ok, _, err) = sql.psql("ops_admin", ADMIN_PASSWORD, "DELETE FROM scheduling_ops");
    assert!(!ok && err.contains("read-only"), "{err}");

    // A wrong password and an unknown user fail alike.
    for (user, password) in [("ops_admin", "wrong"), ("nobody", "wrong")] {
        let err =
            tokio_postgres::connect(&sql.url(user, password), tokio_postgres::NoTls).await.err().expect("refused");
        assert_eq!(err.code().map(|c| c.code()), Some("28P01"), "{user}: {err:?}");
    }

    // Roles: the auditor sees ids only of the views, and every system table whole.
    let auditor = sql.client("auditor1", AUDITOR_PASSWORD).await;
    let rows = auditor.simple_query("SELECT * FROM scheduling_ops").await.unwrap();
    let columns: Vec<String> = rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::RowDescription(columns) => {
                Some(columns.iter().map(|c| c.name().to_string()).collect())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(columns, ["appointment_id", "patient_id", "provider_id"]);
    let err = auditor.simple_query("SELECT patient_name FROM scheduling_ops").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42703"), "{err:?}");
    let state: String = auditor.query_one("SELECT state FROM august_status", &[]).await.unwrap().get(0);
    assert_eq!(state, "running");
    let rows: i64 =
        auditor.query_one("SELECT rows FROM august_views WHERE view = 'scheduling_ops'", &[]).await.unwrap().get(0);
    assert_eq!(rows, 1);
    // Operations sees contact details but no clinical content.
    let ops = sql.client("ops1", OPS_PASSWORD).await;
    let name: String = ops.query_one("SELECT patient_name FROM clinical_notes", &[]).await.unwrap().get(0);
    assert_eq!(name, "Ada Lovelace");
    let err = ops.query_one("SELECT soap_plan FROM clinical_notes", &[]).await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42703"), "{err:?}");

    // A transaction reads one LSN throughout; outside one, each query reads the latest.
    admin.batch_execute("BEGIN").await.unwrap();
    let before: i64 = admin.query_one("SELECT count(*) FROM appointments", &[]).await.unwrap().get(0);
    let pinned: String = admin.query_one("SHOW august_lsn", &[]).await.unwrap().get(0);
    pg.batch_execute("INSERT INTO appointments (drchrono_id, patient_id, drchrono_raw) VALUES ('A-8', 7, '{}')")
        .await
        .unwrap();
    let other = sql.client("ops_admin", ADMIN_PASSWORD).await;
    until_count(&other, "SELECT count(*) FROM appointments", 2).await;
    let inside: i64 = admin.query_one("SELECT count(*) FROM appointments", &[]).await.unwrap().get(0);
    let still: String = admin.query_one("SHOW august_lsn", &[]).await.unwrap().get(0);
    assert_eq!((inside, &still), (before, &pinned), "the open transaction keeps its snapshot");
    admin.batch_execute("COMMIT").await.unwrap();
    let after: i64 = admin.query_one("SELECT count(*) FROM appointments", &[]).await.unwrap().get(0);
    assert_eq!(after, before + 1);

    // Every query left an access_log row: who, which tables, rows; refusals their SQLSTATE.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let logged = pg
        .query(
            "SELECT actor, method, path_template, row_count, coalesce(error, '') FROM access_log WHERE service = 'sql'",
            &[],
        )
        .await
        .unwrap();
    let logged: Vec<(String, String, String, Option<i32>, String)> =
        logged.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))).collect();
    assert!(
        logged.iter().any(|(a, m, p, r, _)| a == "sql:ops_admin (admin)"
            && m == "SELECT"
            && p == "scheduling_ops"
            && *r == Some(1)),
        "{logged:?}"
    );
    assert!(
        logged.iter().any(|(a, m, _, _, e)| a == "sql:ops_admin (admin)" && m == "INSERT" && e == "25006"),
        "{logged:?}"
    );
    assert!(logged.iter().any(|(a, _, p, _, _)| a == "sql:auditor1 (auditor)" && p == "august_status"), "{logged:?}");
    let text = format!("{logged:?}");
    assert!(!text.contains("Ada") && !text.contains("Lovelace") && !text.contains("555-0100"), "no values: {text}");

    // The Grafana dashboard's panels run as its provisioned user's role would run them.
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("dashboards/grafana/august-sql.json").unwrap()).unwrap();
    let grafana = sql.client("ops1", OPS_PASSWORD).await;
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(
        panels.iter().any(|p| p["title"] == "Per-view lag")
            && panels.iter().any(|p| p["title"] == "Deep Cura review queue")
    );
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let sql_text = target["rawSql"].as_str().unwrap();
            assert_eq!(target["datasource"]["uid"], "${datasource}");
            let rows = grafana.query(sql_text, &[]).await.unwrap_or_else(|e| panic!("{}: {e:?}", panel["title"]));
            if panel["title"] == "Per-view lag" {
                let views: Vec<String> = rows.iter().map(|r| r.get("view")).collect();
                assert!(views.contains(&"scheduling_ops".to_string()), "{views:?}");
            }
        }
    }
}

#[tokio::test]
async fn with_a_certificate_the_endpoint_speaks_tls_and_refuses_plaintext() {
    let db = august_testkit::fresh_db("sql_tls").await;
    let certs = august_testkit::test_certs();
    let sql = Endpoint::start_with(
        &db,
        &[
            ("AUGUST_SQL_SSLCERT", certs.join("server.crt").display().to_string()),
            ("AUGUST_SQL_SSLKEY", certs.join("server.key").display().to_string()),
        ],
    )
    .await;
    let ca = certs.join("ca.crt").display().to_string();
    let url = |mode: &str| format!("{} sslmode={mode} sslrootcert={ca}", sql.url("ops_admin", ADMIN_PASSWORD));
    let out = Command::new("psql")
        .args([&url("verify-ca"), "-X", "-At", "-c", "SELECT state FROM august_status"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "running");
    // Plaintext: psql itself will not take channel binding without TLS; a driver that logs in
    // anyway is refused at its first statement.
    let out = Command::new("psql").args([&url("disable"), "-X", "-At", "-c", "SELECT 1"]).output().unwrap();
    assert!(!out.status.success(), "plaintext psql got in");
    let plain = sql.client("ops_admin", ADMIN_PASSWORD).await;
    let err = plain.simple_query("SELECT state FROM august_status").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("28000"), "{err:?}");
    assert!(format!("{err:?}").contains("requires TLS"), "{err:?}");
}

#[tokio::test]
async fn python_drivers_bind_parameters_and_read_binary_results() {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/sql-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: `.ci/run` makes it (python3 -m venv target/sql-venv; pip install 'psycopg[binary]' asyncpg)",
        python.display()
    );
    let db = august_testkit::fresh_db("sql_python").await;
    db.client().await.batch_execute(SEED).await.unwrap();
    let sql = Endpoint::start(&db).await;
    until_count(&sql.client("ops_admin", ADMIN_PASSWORD).await, "SELECT count(*) FROM scheduling_ops", 1).await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql/clients.py");
    let out = Command::new(&python)
        .arg(script)
        .env("AUGUST_SQL_DSN", sql.url("ops_admin", ADMIN_PASSWORD))
        .env("AUGUST_SQL_PORT", sql.port.to_string())
        .env("AUGUST_SQL_PASSWORD", ADMIN_PASSWORD)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "psycopg text: A-7 50 2026-03-02 10:00:00 True",
        "psycopg binary: 1 60",
        "asyncpg: A-7 50 2026-03-02 10:00:00 False",
        "asyncpg prepared: 1 0",
        "psycopg refused: 25006",
    ] {
        assert!(stdout.contains(line), "{line:?} in {stdout}");
    }
}

#[tokio::test]
async fn a_query_during_a_burst_of_commits_sees_one_frontier() {
    let db = august_testkit::fresh_db("sql_burst").await;
    let pg = db.client().await;
    pg.batch_execute("INSERT INTO patients (drchrono_id, first_name, drchrono_raw) VALUES (1, 'P', '{}')")
        .await
        .unwrap();
    let sql = Endpoint::start(&db).await;
    let reader = sql.client("ops_admin", ADMIN_PASSWORD).await;
    until_count(&reader, "SELECT count(*) FROM patients", 1).await;

    // One appointment per transaction, with the WAL position before and after its COMMIT: its
    // commit record lies between the two.
    const COMMITS: usize = 300;
    let writer = tokio::spawn(async move {
        let mut bounds = Vec::with_capacity(COMMITS);
        for i in 0..COMMITS {
            pg.batch_execute(&format!(
                "BEGIN; INSERT INTO appointments (drchrono_id, patient_id, drchrono_raw) VALUES ('B-{i}', 1, '{{}}')"
            ))
            .await
            .unwrap();
            let before: u64 =
                lsn(pg.query_one("SELECT pg_current_wal_insert_lsn()::text", &[]).await.unwrap().get::<_, &str>(0));
            pg.batch_execute("COMMIT").await.unwrap();
            let after: u64 =
                lsn(pg.query_one("SELECT pg_current_wal_insert_lsn()::text", &[]).await.unwrap().get::<_, &str>(0));
            bounds.push((before, after));
        }
        bounds
    });
    let mut seen = Vec::new();
    while !writer.is_finished() {
        let messages = reader
            .simple_query(
                "SELECT (SELECT count(*) FROM scheduling_ops) AS ops, (SELECT count(*) FROM appointments) AS appts; SHOW august_lsn",
            )
            .await
            .unwrap();
        let rows: Vec<&tokio_postgres::SimpleQueryRow> = messages
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
                _ => None,
            })
            .collect();
        let (ops, appts): (i64, i64) =
            (rows[0].get(0).unwrap().parse().unwrap(), rows[0].get(1).unwrap().parse().unwrap());
        assert_eq!(ops, appts, "two views in one query are as of one LSN");
        seen.push((ops, lsn(rows[1].get(0).unwrap())));
    }
    let bounds = writer.await.unwrap();
    assert!(seen.len() > 10, "queries ran during the burst: {}", seen.len());
    let moving = seen.iter().filter(|(n, _)| *n > 0 && (*n as usize) < COMMITS).count();
    assert!(moving > 3, "some queries fell mid-burst: {seen:?}");
    for (count, frontier) in seen {
        // The reference at that LSN: the commits whose record lies below it.
        let surely = bounds.iter().filter(|(_, after)| *after <= frontier).count() as i64;
        let possibly = bounds.iter().filter(|(before, _)| *before < frontier).count() as i64;
        assert!(
            (surely..=possibly).contains(&count),
            "at {frontier:#x} the view held {count} rows; the commits below it number {surely}..={possibly}"
        );
    }
}

/// An LSN's text (`X/Y`) as a number.
fn lsn(text: &str) -> u64 {
    let (hi, lo) = text.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}
