//! `august audit verify` as an operator runs it: exit 0 on an intact trail, 1 naming the
//! broken position (and no value) after a row was edited behind the triggers, 2 for a bad
//! `--since`; every run leaves its own `access_log` row.

use crate::{august, stderr, stdout};

#[tokio::test]
async fn audit_verify_passes_an_intact_trail_and_names_an_edited_row_by_position_only() {
    let db = august_testkit::fresh_db("audit_verify_command").await;
    let mut client = db.client().await;
    let tx = client.transaction().await.unwrap();
    august_schema::set_actor(&tx, august_schema::Actor::DrChronoWebhook).await.unwrap();
    for (id, first, last) in [(101_i64, "Ada", "Lovelace"), (102, "Grace", "Hopper")] {
        tx.execute(
            "INSERT INTO patients (drchrono_id, first_name, last_name, drchrono_raw) VALUES ($1, $2, $3, '{}')",
            &[&id, &first, &last],
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let env = [("DATABASE_URL", db.url())];

    let intact = august(&["audit", "verify"], &env);
    assert!(intact.status.success(), "{}{}", stdout(&intact), stderr(&intact));
    let out = stdout(&intact);
    assert!(out.contains("change_log: ok, 2 rows, head 2 ") && out.contains("access_log: ok, 0 rows"), "{out}");

    client
        .batch_execute(
            "SET session_replication_role = replica;
             UPDATE change_log SET new_values = new_values || '{\"last_name\": \"Byron\"}' WHERE chain_seq = 2;
             RESET session_replication_role",
        )
        .await
        .unwrap();
    let broken = august(&["audit", "verify"], &env);
    assert_eq!(broken.status.code(), Some(1), "{}{}", stdout(&broken), stderr(&broken));
    let out = format!("{}{}", stdout(&broken), stderr(&broken));
    assert!(out.contains("change_log: BROKEN at seq 2: edited"), "{out}");
    assert!(out.contains("access_log: ok, 1 rows"), "the first run's row is chained: {out}");
    for phi in ["Ada", "Lovelace", "Grace", "Hopper", "Byron"] {
        assert!(!out.contains(phi), "no value in the output: {out}");
    }

    let bad = august(&["audit", "verify", "--since", "yesterday"], &env);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("--since"), "{}", stderr(&bad));
    assert_eq!(db.count("SELECT count(*) FROM access_log WHERE actor = 'august_auditor'").await, 2);
    let failed_run =
        db.count("SELECT count(*) FROM access_log WHERE actor = 'august_auditor' AND error = 'broken: change_log'");
    assert_eq!(failed_run.await, 1);
}

/// Two patients, an appointment of each (one later deleted), a staff edit with an editor, and
/// the Coda ledger holding rows of both: the report on one shows only theirs.
async fn two_patients(db: &august_testkit::TestDb) {
    let mut client = db.client().await;
    let tx = client.transaction().await.unwrap();
    august_schema::set_actor(&tx, august_schema::Actor::DrChronoWebhook).await.unwrap();
    tx.batch_execute(
        "INSERT INTO patients (drchrono_id, first_name, last_name, drchrono_raw)
              VALUES (900, 'Quintessa', 'Marlowe', '{}'), (901, 'Other', 'Person', '{}');
         INSERT INTO appointments (drchrono_id, patient_id, drchrono_raw)
              VALUES ('a900', 900, '{}'), ('b900', 900, '{}'), ('a901', 901, '{}');
         UPDATE patients SET last_name = 'Marlowe-Finch' WHERE drchrono_id = 900;
         DELETE FROM appointments WHERE drchrono_id = 'b900';
         INSERT INTO coda_sync_state (view, row_key, content_hash, coda_row_id, pushed_lsn)
              VALUES ('scheduling_ops', 'a900', 'h1', 'i-row-a900', '0/1'), ('scheduling_ops', 'a901', 'h2', NULL, '0/1'),
                     ('patients', '900', 'h3', 'i-row-900', '0/1');
         INSERT INTO coda_disclosures (view, row_key, doc_id, coda_table, operation, classes, content_hash, request_id)
              VALUES ('scheduling_ops', 'a900', 'doc', 'grid-sched', 'upsert', '{direct,identifier}', 'h1', 'r1'),
                     ('scheduling_ops', 'a901', 'doc', 'grid-sched', 'upsert', '{direct,identifier}', 'h2', 'r1'),
                     ('patients', '900', 'doc', 'grid-pat', 'upsert', '{direct}', 'h3', 'r2'),
                     ('scheduling_ops', 'b900', 'doc', 'grid-sched', 'upsert', '{direct,identifier}', 'h4', 'r3'),
                     ('scheduling_ops', 'b900', 'doc', 'grid-sched', 'delete', '{}', NULL, 'r4');",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn audit_patient_reports_their_changes_and_disclosures_only_with_values_when_asked() {
    let db = august_testkit::fresh_db("audit_patient_report").await;
    two_patients(&db).await;
    let env = [("DATABASE_URL", db.url())];

    let run = august(&["audit", "patient", "900", "--format", "json"], &env);
    assert!(run.status.success(), "{}", stderr(&run));
    let report: serde_json::Value = serde_json::from_str(&stdout(&run)).unwrap();
    let changes = report["changes"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str)> = changes
        .iter()
        .map(|c| (c["table"].as_str().unwrap(), c["record"].as_str().unwrap(), c["operation"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            ("patients", "900", "INSERT"),
            ("appointments", "a900", "INSERT"),
            ("appointments", "b900", "INSERT"),
            ("patients", "900", "UPDATE"),
            ("appointments", "b900", "DELETE"),
        ],
        "their records only, a deleted one too, in order"
    );
    assert_eq!(changes[3]["fields"], "last_name");
    assert_eq!(changes[3]["actor"], "drchrono_webhook");
    assert!(!stdout(&run).contains("Marlowe") && !stdout(&run).contains("Quintessa"), "no values unless asked");
    let held: Vec<(&str, &str, &str, &str, &str)> = report["disclosures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let text = |c: &str| d[c].as_str().unwrap_or("-");
            (text("row"), text("operation"), text("coda_table"), text("classes"), text("coda_row_id"))
        })
        .collect();
    assert_eq!(
        held,
        [
            ("a900", "upsert", "doc/grid-sched", "direct identifier", "i-row-a900"),
            ("900", "upsert", "doc/grid-pat", "direct", "i-row-900"),
            ("b900", "upsert", "doc/grid-sched", "direct identifier", "-"),
            ("b900", "delete", "doc/grid-sched", "", "-"),
        ],
        "theirs only, the deleted appointment's too, in order"
    );

    let with_values = august(&["audit", "patient", "900", "--values", "--format", "csv"], &env);
    assert!(with_values.status.success(), "{}", stderr(&with_values));
    let csv = stdout(&with_values);
    assert!(csv.starts_with("seq,at,table,record,operation,actor,editor,fields,old_values,new_values\n"), "{csv}");
    assert!(csv.contains("Marlowe-Finch"), "the new value is shown: {csv}");

    let table = august(&["audit", "patient", "900", "--since", "2999-01-01T00:00:00Z"], &env);
    assert!(stdout(&table).starts_with("changes (0)\nSEQ"), "{}", stdout(&table));
    assert!(stdout(&table).contains("disclosures (0)"), "{}", stdout(&table));

    let logged = db.client().await;
    let subjects: Vec<String> = logged
        .query("SELECT request_id FROM access_log WHERE path_template = 'audit patient' ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(subjects, ["patient 900", "patient 900 with values", "patient 900"], "each run is logged");
}

#[tokio::test]
async fn audit_actors_and_access_count_per_actor_day_and_per_system_status() {
    let db = august_testkit::fresh_db("audit_actors_access").await;
    two_patients(&db).await;
    db.client()
        .await
        .batch_execute(
            "INSERT INTO access_log (service, method, path_template, status_code, duration_ms)
                  VALUES ('coda', 'PUT', 'rows', 202, 10), ('coda', 'PUT', 'rows', 202, 30), ('coda', 'PUT', 'rows', 429, 5),
                         ('drchrono', 'GET', 'patients', NULL, 1000)",
        )
        .await
        .unwrap();
    let env = [("DATABASE_URL", db.url())];

    let actors = august(&["audit", "actors", "--format", "json"], &env);
    assert!(actors.status.success(), "{}", stderr(&actors));
    let report: serde_json::Value = serde_json::from_str(&stdout(&actors)).unwrap();
    let writes = report["writes"].as_array().unwrap();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!((writes[0]["actor"].as_str(), writes[0]["writes"].as_str()), (Some("drchrono_webhook"), Some("7")));

    let access = august(&["audit", "access"], &env);
    assert!(access.status.success(), "{}", stderr(&access));
    let out = stdout(&access);
    let lines: Vec<Vec<&str>> = out.lines().skip(2).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0][..3], ["coda", "202", "2"], "{out}");
    assert_eq!(lines[0][5..], ["10", "30"], "median and slowest: {out}");
    assert_eq!(lines[1][..3], ["coda", "429", "1"], "{out}");
    assert_eq!(lines[2][..3], ["drchrono", "none", "1"], "{out}");
    let next = august(&["audit", "access", "--format", "csv"], &env);
    assert!(stdout(&next).contains("postgres,none,2,"), "the previous reports' own rows: {}", stdout(&next));
}

#[tokio::test]
async fn audit_archive_moves_a_past_month_to_a_file_and_verify_links_the_kept_trail_to_it() {
    let db = august_testkit::fresh_db("audit_archive_command").await;
    db.client()
        .await
        .batch_execute(
            "SELECT august_audit_partitions('access_log', 0, '2026-01-01');
             INSERT INTO access_log (service, method, path_template, duration_ms, created_at)
                  VALUES ('coda', 'GET', '/docs', 1, '2026-01-10T00:00:00Z'), ('coda', 'GET', '/docs', 1, '2026-01-11T00:00:00Z');
             INSERT INTO access_log (service, method, path_template, duration_ms) VALUES ('coda', 'GET', '/docs', 1);",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().to_str().unwrap();
    let env = [("DATABASE_URL", db.url())];

    let run = august(&["audit", "archive", "--before", "2026-02", "--to", to, "--drop"], &env);
    assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    let out = stdout(&run);
    let line = out.lines().find(|l| l.starts_with("access_log_2026_01:")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("2 rows, seq 1 to 2 -> ") && line.ends_with("detached and dropped"), "{line}");
    assert!(dir.path().join("access_log_2026_01.csv").is_file());

    let verified = august(&["audit", "verify"], &env);
    assert!(verified.status.success(), "{}{}", stdout(&verified), stderr(&verified));
    assert!(
        stdout(&verified).contains("access_log: ok, 2 rows from seq 3 (seq 1 to 2 archived, 2 rows)"),
        "{}",
        stdout(&verified)
    );

    for (args, setting) in [(["--before", "2026-13"], "--before"), (["--before", "2999-01"], "--before")] {
        let bad = august(&["audit", "archive", args[0], args[1], "--to", to], &env);
        assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
        assert!(stderr(&bad).contains(setting), "{}", stderr(&bad));
    }
    let again = august(&["audit", "archive", "--before", "2026-02", "--to", to], &env);
    assert!(again.status.success() && stdout(&again).contains("nothing to archive"), "{}", stdout(&again));
}
