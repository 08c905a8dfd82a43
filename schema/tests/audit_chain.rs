//! The hash chains over `change_log` and `access_log`: concurrent writers leave a gap-free
//! chain, rows written before the migration are chained by it, and an edit, a deletion or a
//! forged row made behind the triggers' back is named by position.

use august_schema::audit_chain::{self, Break, ChainReport, CHAINS};
use august_schema::{migrate, set_actor, Actor, Migration};
use tokio_postgres::Client;

use crate::{count, db};

/// Writes `n` audited rows (one `change_log` and one `access_log` row each), one transaction
/// per row, as writer `task`.
async fn write_audited(client: &mut Client, task: usize, n: usize) {
    for i in 0..n {
        let tx = client.transaction().await.unwrap();
        set_actor(&tx, Actor::DrChronoWebhook).await.unwrap();
        let email = format!("writer{task}-{i}@clinic.example");
        tx.execute("INSERT INTO staff_roles (email, role) VALUES ($1, 'operations')", &[&email]).await.unwrap();
        tx.execute(
            "INSERT INTO access_log (service, method, path_template, duration_ms) VALUES ('coda', 'GET', '/docs', 1)",
            &[],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
}

async fn verify(client: &mut Client, chain: &'static str) -> ChainReport {
    audit_chain::verify(client, chain, None).await.unwrap()
}

/// Runs `sql` with every trigger off, as a superuser could.
pub async fn behind_the_triggers(client: &Client, sql: &str) {
    client
        .batch_execute(&format!("SET session_replication_role = replica; {sql}; RESET session_replication_role"))
        .await
        .unwrap();
}

#[tokio::test]
async fn eight_concurrent_writers_leave_a_gap_free_chain_that_verifies() {
    let (db, _client) = db("chain_concurrent").await;
    let mut writers = Vec::new();
    for task in 0..8 {
        let mut client = db.client().await;
        writers.push(tokio::spawn(async move { write_audited(&mut client, task, 25).await }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let mut client = db.client().await;
    for chain in CHAINS {
        let report = verify(&mut client, chain).await;
        assert_eq!(report.broken, None, "{report}");
        let rows = count(&client, &format!("SELECT count(*) FROM {chain}")).await;
        assert_eq!(report.rows, rows, "{chain}: every row checked");
        assert!(rows >= 200, "{chain}: {rows}");
        let max = count(&client, &format!("SELECT max(chain_seq) FROM {chain}")).await;
        assert_eq!((max, report.head_seq), (rows, rows), "{chain}: positions 1..{rows}, no gap, head at the end");
        let backwards = format!(
            "SELECT count(*) FROM (SELECT created_at < lag(created_at) OVER (ORDER BY chain_seq) AS back FROM {chain}) t WHERE back"
        );
        assert_eq!(count(&client, &backwards).await, 0, "{chain}: times rise with positions, so a month is one run");
        assert!(report.to_string().starts_with(&format!("{chain}: ok, {rows} rows, head {rows} ")), "{report}");
    }
}

#[tokio::test]
async fn rows_written_before_the_migration_are_chained_by_it() {
    let db = august_testkit::empty_db("chain_backfill").await;
    let mut client = db.client().await;
    let before: Vec<Migration> = Migration::embedded().iter().copied().filter(|m| m.name < "0012").collect();
    migrate(&mut client, &before).await.unwrap();
    write_audited(&mut client, 0, 3).await;
    migrate(&mut client, Migration::embedded()).await.unwrap();
    write_audited(&mut client, 1, 2).await;
    for chain in CHAINS {
        let report = verify(&mut client, chain).await;
        assert_eq!((report.rows, report.head_seq, report.broken.clone()), (5, 5, None), "{report}");
    }
    let first_ids = count(&client, "SELECT max(id) FROM change_log WHERE chain_seq <= 3").await;
    assert_eq!(first_ids, 3, "the old rows keep their order");
}

#[tokio::test]
async fn a_later_session_time_zone_does_not_change_the_hashes() {
    let (_db, mut client) = db("chain_time_zone").await;
    write_audited(&mut client, 0, 2).await;
    client.batch_execute("SET TimeZone = 'Pacific/Chatham'").await.unwrap();
    for chain in CHAINS {
        let report = verify(&mut client, chain).await;
        assert_eq!(report.broken, None, "{report}");
    }
}

/// A database with five chained rows per chain.
async fn five_rows(hint: &str) -> (august_testkit::TestDb, Client) {
    let (db, mut client) = db(hint).await;
    write_audited(&mut client, 0, 5).await;
    (db, client)
}

fn broken(report: &ChainReport) -> (Option<i64>, Break) {
    let b = report.broken.as_ref().unwrap_or_else(|| panic!("expected a break: {report}"));
    (b.seq, b.kind)
}

#[tokio::test]
async fn an_edited_row_is_named_by_its_position() {
    let (_db, mut client) = five_rows("chain_edited").await;
    behind_the_triggers(&client, "UPDATE change_log SET actor = 'nobody' WHERE chain_seq = 3").await;
    let report = verify(&mut client, "change_log").await;
    assert_eq!(broken(&report), (Some(3), Break::Edited), "{report}");
    assert!(report.to_string().starts_with("change_log: BROKEN at seq 3: edited"), "{report}");
    assert_eq!(verify(&mut client, "access_log").await.broken, None, "the other chain is untouched");
}

#[tokio::test]
async fn an_edit_that_rehashes_the_row_breaks_the_next_link() {
    let (_db, mut client) = five_rows("chain_rehashed").await;
    behind_the_triggers(
        &client,
        "UPDATE change_log t SET actor = 'nobody' WHERE chain_seq = 3;
         UPDATE change_log t SET row_hash = audit_row_digest('change_log', chain_seq, prev_hash, t) WHERE chain_seq = 3",
    )
    .await;
    let report = verify(&mut client, "change_log").await;
    assert_eq!(broken(&report), (Some(4), Break::Inserted), "{report}");
}

#[tokio::test]
async fn a_deleted_row_leaves_a_gap() {
    let (_db, mut client) = five_rows("chain_deleted").await;
    behind_the_triggers(&client, "DELETE FROM access_log WHERE chain_seq = 2").await;
    let report = verify(&mut client, "access_log").await;
    assert_eq!(broken(&report), (Some(2), Break::Deleted), "{report}");
}

#[tokio::test]
async fn a_deleted_last_row_falls_short_of_the_recorded_head() {
    let (_db, mut client) = five_rows("chain_deleted_last").await;
    behind_the_triggers(&client, "DELETE FROM change_log WHERE chain_seq = 5").await;
    let report = verify(&mut client, "change_log").await;
    assert_eq!(broken(&report), (Some(5), Break::Deleted), "{report}");
}

#[tokio::test]
async fn a_forged_row_with_a_well_computed_hash_lies_beyond_the_recorded_head() {
    let (_db, mut client) = five_rows("chain_forged").await;
    behind_the_triggers(
        &client,
        "INSERT INTO change_log (table_name, record_id, operation, actor, txid, chain_seq, prev_hash, row_hash)
         SELECT 'patients', '1', 'DELETE', 'august_migrate', 1, 6, row_hash, '\\x00'
           FROM change_log WHERE chain_seq = 5;
         UPDATE change_log t SET row_hash = audit_row_digest('change_log', chain_seq, prev_hash, t) WHERE chain_seq = 6",
    )
    .await;
    let report = verify(&mut client, "change_log").await;
    assert_eq!(broken(&report), (Some(6), Break::Inserted), "{report}");
}

#[tokio::test]
async fn verifying_from_a_position_or_a_time_checks_only_the_rows_after_it() {
    let (_db, mut client) = five_rows("chain_since").await;
    behind_the_triggers(&client, "UPDATE change_log SET actor = 'nobody' WHERE chain_seq = 2").await;
    let since = audit_chain::verify(&mut client, "change_log", Some(audit_chain::Since::Seq(3))).await.unwrap();
    assert_eq!((since.rows, since.from_seq, since.broken.clone()), (3, 3, None), "{since}");
    assert!(since.to_string().contains("3 rows from seq 3"), "{since}");
    let whole = verify(&mut client, "change_log").await;
    assert_eq!(broken(&whole), (Some(2), Break::Edited), "{whole}");
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    let none = audit_chain::verify(&mut client, "change_log", Some(audit_chain::Since::Time(later))).await.unwrap();
    assert_eq!((none.rows, none.broken), (0, None), "nothing written after that time");
    let epoch = Some(audit_chain::Since::Time(std::time::UNIX_EPOCH));
    let all = audit_chain::verify(&mut client, "change_log", epoch).await.unwrap();
    assert_eq!(broken(&all), (Some(2), Break::Edited), "{all}");
}

#[tokio::test]
async fn a_run_leaves_an_access_log_row_as_the_auditor() {
    let (_db, mut client) = five_rows("chain_run_logged").await;
    let report = verify(&mut client, "change_log").await;
    audit_chain::record_run(&client, &[report], std::time::Duration::from_millis(3)).await.unwrap();
    let row =
        client.query_one("SELECT row_count, error FROM access_log WHERE actor = 'august_auditor'", &[]).await.unwrap();
    assert_eq!((row.get::<_, i32>(0), row.get::<_, Option<String>>(1)), (5, None));
    assert_eq!(verify(&mut client, "access_log").await.broken, None, "the run's own row is chained");
}
