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
