//! Retention by month: the daily job creates the coming partitions, clears old processed-message
//! ids and reports stray rows; a month is archived to a file whose hash is recorded, detached
//! (dropped only when asked), and the kept trail still verifies, linked to the archive; a broken
//! chain or an out-of-order month is refused; no retention setting lets a row be deleted.

use std::time::SystemTime;

use august_schema::audit_chain::{self, Break};
use august_schema::audit_retention::{self, ArchiveError, Partition};
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::audit_chain::behind_the_triggers;
use crate::{count, db};

fn at(text: &str) -> SystemTime {
    chrono::DateTime::parse_from_rfc3339(text).unwrap().into()
}

/// Audit rows of January and February 2026 in both chains and the disclosures, then one now.
async fn months_of_trail(client: &Client) {
    client
        .batch_execute(
            "SELECT august_audit_partitions(t::regclass, 0, '2026-01-01') FROM unnest(ARRAY['change_log', 'access_log', 'coda_disclosures']) t;
             INSERT INTO access_log (service, method, path_template, duration_ms, created_at)
                  SELECT 'coda', 'GET', '/docs', 1, '2026-01-10T00:00:00Z'::timestamptz + n * interval '1 day' FROM generate_series(0, 2) n;
             INSERT INTO change_log (table_name, record_id, operation, actor, txid, created_at)
                  VALUES ('patients', '1', 'INSERT', 'test', 1, '2026-01-20T00:00:00Z');
             INSERT INTO access_log (service, method, path_template, duration_ms, created_at)
                  SELECT 'drchrono', 'GET', '/api/patients', 1, '2026-02-10T00:00:00Z'::timestamptz + n * interval '1 day' FROM generate_series(0, 1) n;
             INSERT INTO coda_disclosures (view, row_key, doc_id, coda_table, operation, content_hash, created_at)
                  VALUES ('patients', '1', 'doc', 'grid', 'upsert', 'h', '2026-01-21T00:00:00Z');
             INSERT INTO access_log (service, method, path_template, duration_ms) VALUES ('coda', 'GET', '/docs', 1);",
        )
        .await
        .unwrap();
}

fn named<'a>(partitions: &'a [Partition], name: &str) -> &'a Partition {
    partitions.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("{name} in {partitions:?}"))
}

#[tokio::test]
async fn the_daily_job_keeps_partitions_ahead_clears_old_message_ids_and_reports_stray_rows() {
    let (_db, client) = db("retention_job").await;
    let next = client.query_one("SELECT to_char(now() AT TIME ZONE 'UTC' + interval '1 month', 'YYYY_MM')", &[]).await;
    let next: String = next.unwrap().get(0);
    client.batch_execute(&format!("DROP TABLE access_log_{next}")).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO processed_messages (source, message_id, processed_at) VALUES
                ('drchrono', 'old', now() - interval '8 days'), ('drchrono', 'recent', now() - interval '1 day');
             INSERT INTO access_log (service, method, path_template, duration_ms, created_at)
                  VALUES ('coda', 'GET', '/docs', 1, '2001-01-01T00:00:00Z')",
        )
        .await
        .unwrap();
    let done = audit_retention::maintain(&client).await.unwrap();
    assert_eq!(done.partitions_created, 1, "only the missing month");
    assert_eq!(done.processed_messages_deleted, 1);
    assert_eq!(done.in_default, [("access_log", 1)], "a row of a month with no partition");
    assert!(client
        .query_one(&format!("SELECT to_regclass('access_log_{next}')::text"), &[])
        .await
        .unwrap()
        .get::<_, Option<String>>(0)
        .is_some());
    let again = audit_retention::maintain(&client).await.unwrap();
    assert_eq!((again.partitions_created, again.processed_messages_deleted), (0, 0), "nothing left to do");

    // Append-only whatever the session claims: 0001's retention escape is gone.
    let err = client
        .batch_execute("BEGIN; SET LOCAL august.audit_retention = 'on'; DELETE FROM access_log; COMMIT")
        .await
        .unwrap_err();
    assert_eq!(err.as_db_error().unwrap().message(), "access_log is append-only");
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(count(&client, "SELECT count(*) FROM access_log").await, 1);
}

#[tokio::test]
async fn an_archived_month_is_in_its_file_out_of_the_table_and_the_trail_still_verifies() {
    let (_db, mut client) = db("retention_archive").await;
    months_of_trail(&client).await;
    let dir = tempfile::tempdir().unwrap();

    let january = audit_retention::partitions_before(&client, at("2026-02-01T00:00:00Z")).await.unwrap();
    let names: Vec<&str> = january.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["change_log_2026_01", "access_log_2026_01", "coda_disclosures_2026_01"]);
    let mut archived = Vec::new();
    for p in &january {
        let drop = p.table == "access_log";
        archived.push(audit_retention::archive(&mut client, p, dir.path(), drop).await.unwrap());
    }
    let access = &archived[1];
    assert_eq!((access.rows, access.seqs, access.dropped), (3, Some((1, 3)), true));
    let file = std::fs::read(&access.file).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&file)), access.sha256);
    let text = String::from_utf8(file).unwrap();
    assert!(text.starts_with("id,service,method,path_template,") && text.lines().count() == 4, "{text}");
    assert_eq!((archived[2].rows, archived[2].seqs), (1, None), "the disclosures are archived, unchained");
    let recorded = count(&client, "SELECT count(*) FROM audit_archives WHERE file_sha256 <> ''").await;
    assert_eq!(recorded, 3);
    let gone = "SELECT count(*) FROM pg_class WHERE relname = 'access_log_2026_01'";
    assert_eq!(count(&client, gone).await, 0, "dropped when asked");
    let kept = "SELECT count(*) FROM pg_class WHERE relname = 'change_log_2026_01' AND NOT relispartition";
    assert_eq!(count(&client, kept).await, 1, "detached, kept otherwise");
    assert_eq!(count(&client, "SELECT count(*) FROM access_log WHERE created_at < '2026-02-01'").await, 0);

    let report = audit_chain::verify(&mut client, "access_log", None).await.unwrap();
    assert_eq!(report.broken, None, "{report}");
    assert_eq!((report.from_seq, report.archived), (4, 3));
    assert!(report.to_string().contains("from seq 4 (seq 1 to 3 archived, 3 rows)"), "{report}");
    let logged =
        count(&client, "SELECT count(*) FROM access_log WHERE method = 'ARCHIVE' AND actor = 'august_auditor'");
    assert_eq!(logged.await, 3);

    // The archive's record is the link: without it, the kept trail starts at a gap.
    behind_the_triggers(&client, "DELETE FROM audit_archives WHERE chain = 'access_log'").await;
    let report = audit_chain::verify(&mut client, "access_log", None).await.unwrap();
    assert_eq!(report.broken.map(|b| (b.seq, b.kind)), Some((Some(1), Break::Deleted)));
}

#[tokio::test]
async fn a_broken_chain_or_a_month_out_of_order_is_not_archived() {
    let (_db, mut client) = db("retention_refused").await;
    months_of_trail(&client).await;
    let dir = tempfile::tempdir().unwrap();
    let partitions = audit_retention::partitions_before(&client, at("2026-03-01T00:00:00Z")).await.unwrap();

    let february = named(&partitions, "access_log_2026_02");
    match audit_retention::archive(&mut client, february, dir.path(), false).await {
        Err(ArchiveError::Refused { reason, .. }) => assert!(reason.contains("archive months in order"), "{reason}"),
        other => panic!("{other:?}"),
    }
    behind_the_triggers(&client, "UPDATE access_log SET duration_ms = 9 WHERE chain_seq = 2").await;
    match audit_retention::archive(&mut client, named(&partitions, "access_log_2026_01"), dir.path(), true).await {
        Err(ArchiveError::Refused { reason, .. }) => {
            assert!(reason.contains("chain is broken (edited at seq 2)"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no file written");
    assert_eq!(count(&client, "SELECT count(*) FROM access_log WHERE created_at < '2026-03-01'").await, 5);
    assert_eq!(count(&client, "SELECT count(*) FROM audit_archives").await, 0);
}

#[tokio::test]
async fn rows_from_before_the_partitioning_are_one_partition_that_verifies_and_archives_whole() {
    let db = august_testkit::empty_db("retention_upgrade").await;
    let mut client = db.client().await;
    let embedded = august_schema::Migration::embedded();
    let before = embedded.iter().position(|m| m.name.starts_with("0013_")).unwrap();
    august_schema::migrate(&mut client, &embedded[..before]).await.unwrap();
    // Times from transaction starts: chain order and month order disagree across the month's end.
    for at in ["2026-01-31T23:59:58Z", "2026-02-01T00:00:01Z", "2026-01-31T23:59:59Z", "2026-02-02T00:00:00Z"] {
        client
            .execute(
                "INSERT INTO access_log (service, method, path_template, duration_ms, created_at)
                 VALUES ('coda', 'GET', '/docs', 1, $1::text::timestamptz)",
                &[&at],
            )
            .await
            .unwrap();
    }
    august_schema::migrate(&mut client, embedded).await.unwrap();
    assert_eq!(count(&client, "SELECT count(*) FROM access_log_before").await, 4, "all of them, together");
    let report = audit_chain::verify(&mut client, "access_log", None).await.unwrap();
    assert_eq!((report.broken.clone(), report.rows), (None, 4), "{report}");
    client
        .execute(
            "INSERT INTO access_log (service, method, path_template, duration_ms) VALUES ('coda', 'GET', '/docs', 1)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(audit_retention::maintain(&client).await.unwrap().in_default, []);

    let partitions = audit_retention::partitions_before(&client, at("2026-03-01T00:00:00Z")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let archived =
        audit_retention::archive(&mut client, named(&partitions, "access_log_before"), dir.path(), true).await;
    let archived = archived.unwrap();
    assert_eq!((archived.rows, archived.seqs), (4, Some((1, 4))));
    assert!(!dir.path().join("access_log_before.csv.partial").exists() && archived.file.is_file());
    let report = audit_chain::verify(&mut client, "access_log", None).await.unwrap();
    assert_eq!((report.broken.clone(), report.from_seq, report.archived), (None, 5, 4), "{report}");
    let since = audit_chain::verify(&mut client, "access_log", Some(audit_chain::Since::Seq(2))).await.unwrap();
    assert_eq!((since.broken, since.from_seq), (None, 5), "a position inside the archive starts at the kept trail");
}
