//! `august dead-letters`: what an operator sees and does with rows Coda refused.

use crate::{august, stderr, stdout};

#[tokio::test]
async fn dead_letters_are_listed_by_id_without_values_then_resolved_and_replayed() {
    let db = august_testkit::fresh_db("dead_letters_command").await;
    let client = db.client().await;
    for (key, message) in [("A-1", "Cell value 'Jane Doe' is not valid"), ("A-2", "Cell value '555-0100' is not valid")]
    {
        client
            .execute(
                "INSERT INTO sink_dead_letters (sink, view, row_key, content_hash, target, status_code, message, payload, lsn)
                 VALUES ('coda', 'scheduling_ops', $1, 'h', 'doc/grid', 400, $2, '{\"cells\": {}}', '0/10')",
                &[&key, &message],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO coda_sync_state (view, row_key, content_hash, pushed_lsn) VALUES ('scheduling_ops', $1, 'old', '0/1')",
                &[&key],
            )
            .await
            .unwrap();
    }
    let env = [("DATABASE_URL", db.url())];
    let listed = august(&["dead-letters", "list"], &env);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let table = stdout(&listed);
    assert!(table.contains("A-1") && table.contains("A-2") && table.contains("2 dead letter(s)"), "{table}");
    assert!(!table.contains("Jane") && !table.contains("555-0100"), "no value, no message: {table}");
    let ids: Vec<i64> = client
        .query("SELECT id FROM sink_dead_letters ORDER BY row_key", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();

    let resolved = august(&["dead-letters", "resolve", &ids[0].to_string()], &env);
    assert!(stdout(&resolved).contains("resolved 1 of 1"), "{}", stdout(&resolved));
    let replayed = august(&["dead-letters", "replay", "--view", "scheduling_ops"], &env);
    assert!(stdout(&replayed).contains("1 row(s) will be sent"), "{}", stdout(&replayed));
    assert_eq!(db.count("SELECT count(*) FROM sink_dead_letters WHERE resolved_at IS NULL").await, 0);
    assert_eq!(
        db.count("SELECT count(*) FROM coda_sync_state WHERE row_key = 'A-2'").await,
        0,
        "the replayed row is forgotten by the ledger, so the next start sends it"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM coda_sync_state WHERE row_key = 'A-1'").await,
        1,
        "a resolved one is not"
    );
    let all = stdout(&august(&["dead-letters", "list", "--all"], &env));
    assert!(all.contains("resolved") && all.contains("replayed"), "{all}");
}
