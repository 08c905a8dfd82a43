//! Every change to a tracked table leaves exactly one attributed `change_log` row.

use august_schema::{catalog, set_actor, Actor};

use crate::{column_strings, count, db};

#[tokio::test]
async fn insert_update_delete_each_write_one_attributed_audit_row() {
    let (_db, mut client) = db("audit_crud").await;

    let tx = client.transaction().await.unwrap();
    set_actor(&tx, Actor::DrChronoWebhook).await.unwrap();
    tx.execute(
        "INSERT INTO patients (drchrono_id, first_name, last_name, drchrono_raw) VALUES (101, 'Ada', 'Lovelace', '{}')",
        &[],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let tx = client.transaction().await.unwrap();
    set_actor(&tx, Actor::DrChronoWebhook).await.unwrap();
    tx.execute("UPDATE patients SET cell_phone = '555-0100', last_name = 'King' WHERE drchrono_id = 101", &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let tx = client.transaction().await.unwrap();
    set_actor(&tx, Actor::Migrate).await.unwrap();
    tx.execute("DELETE FROM patients WHERE drchrono_id = 101", &[]).await.unwrap();
    tx.commit().await.unwrap();

    let rows = client
        .query(
            "SELECT operation, actor, changed_fields, record_id, drchrono_id, old_values, new_values
               FROM change_log WHERE table_name = 'patients' ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 3, "one audit row per statement");

    let ops: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ops, ["INSERT", "UPDATE", "DELETE"]);
    let actors: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
    assert_eq!(actors, ["drchrono_webhook", "drchrono_webhook", "august_migrate"]);
    for row in &rows {
        assert_eq!(row.get::<_, Option<String>>(4).as_deref(), Some("101"));
        assert_eq!(row.get::<_, Option<String>>(3).as_deref(), Some("101"), "record id is the tracked key");
    }

    let inserted: Vec<String> = rows[0].get(2);
    assert!(inserted.contains(&"first_name".to_string()) && inserted.contains(&"drchrono_id".to_string()));
    assert!(!inserted.contains(&"cell_phone".to_string()), "unset columns are not listed: {inserted:?}");

    let updated: Vec<String> = rows[1].get(2);
    assert_eq!(updated, ["cell_phone", "last_name"], "only the changed fields, never updated_at");
    let old: serde_json::Value = rows[1].get(5);
    let new: serde_json::Value = rows[1].get(6);
    assert_eq!(old, serde_json::json!({"cell_phone": null, "last_name": "Lovelace"}));
    assert_eq!(new, serde_json::json!({"cell_phone": "555-0100", "last_name": "King"}));

    let deleted_old: serde_json::Value = rows[2].get(5);
    assert_eq!(deleted_old["last_name"], "King", "a delete keeps the whole old row");
}

#[tokio::test]
async fn a_write_without_an_actor_is_recorded_as_unattributed() {
    let (_db, client) = db("audit_unattributed").await;
    client
        .execute("INSERT INTO staff_roles (email, role) VALUES ('ops@clinic.example', 'operations')", &[])
        .await
        .unwrap();
    let row = client
        .query_one("SELECT actor, record_id FROM change_log WHERE table_name = 'staff_roles'", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "unattributed");
    assert_eq!(row.get::<_, String>(1), "ops@clinic.example");
}

#[tokio::test]
async fn every_tracked_table_carries_the_audit_and_noop_triggers() {
    let (_db, client) = db("audit_triggers").await;
    for table in catalog::tracked() {
        let triggers = column_strings(
            &client,
            "SELECT tgname::text FROM pg_trigger WHERE tgrelid = $1::text::regclass AND NOT tgisinternal ORDER BY 1",
            &[&table],
        )
        .await;
        assert_eq!(
            triggers,
            ["a_skip_noop_update", "b_touch_updated_at", "z_audit_row", "z_audit_truncate"],
            "{table}"
        );
    }
}

#[tokio::test]
async fn truncate_is_audited() {
    let (_db, mut client) = db("audit_truncate").await;
    let tx = client.transaction().await.unwrap();
    set_actor(&tx, Actor::Migrate).await.unwrap();
    tx.execute("TRUNCATE intake_checklists", &[]).await.unwrap();
    tx.commit().await.unwrap();
    let row = client
        .query_one("SELECT operation, actor FROM change_log WHERE table_name = 'intake_checklists'", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "TRUNCATE");
    assert_eq!(row.get::<_, String>(1), "august_migrate");
}

#[tokio::test]
async fn the_change_log_is_append_only() {
    let (_db, client) = db("audit_append_only").await;
    client.execute("INSERT INTO staff_roles (email, role) VALUES ('a@clinic.example', 'admin')", &[]).await.unwrap();
    let err = client.execute("UPDATE change_log SET actor = 'someone_else'", &[]).await.unwrap_err();
    assert!(err.as_db_error().unwrap().message().contains("append-only"), "{err}");
    let err = client.execute("DELETE FROM change_log", &[]).await.unwrap_err();
    assert!(err.as_db_error().unwrap().message().contains("append-only"), "{err}");
    assert_eq!(count(&client, "SELECT count(*) FROM change_log WHERE actor = 'unattributed'").await, 1);
}

#[tokio::test]
async fn processed_messages_cleanup_removes_only_rows_older_than_seven_days() {
    let (_db, client) = db("processed_cleanup").await;
    client
        .batch_execute(
            "INSERT INTO processed_messages (source, message_id, processed_at) VALUES
                ('drchrono', 'old-1', now() - interval '8 days'),
                ('drchrono', 'old-2', now() - interval '7 days 1 minute'),
                ('drchrono', 'recent', now() - interval '6 days 23 hours'),
                ('deepcura', 'new', now())",
        )
        .await
        .unwrap();
    let removed: i64 = client.query_one("SELECT august_cleanup_processed_messages()", &[]).await.unwrap().get(0);
    assert_eq!(removed, 2);
    let left: Vec<String> =
        column_strings(&client, "SELECT message_id FROM processed_messages ORDER BY message_id", &[]).await;
    assert_eq!(left, ["new", "recent"]);
}
