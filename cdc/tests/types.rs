//! What one change looks like on the stream: every type, keys, deletes, truncates, TOAST,
//! savepoints and schema changes.

use std::time::Duration;

use august_cdc::{Change, ChangeKind, Event, Value};
use chrono::{NaiveDate, TimeZone, Utc};

use crate::mirror::test_config;
use crate::Consumer;

const TYPED: &str = "CREATE TABLE typed_things (
        id int PRIMARY KEY, i2 smallint, i8 bigint, n numeric, f8 float8, b bool, t text, vc varchar(10),
        u uuid, d date, ts timestamp, tstz timestamptz, j jsonb, js json, texts text[], ints int[],
        bytes bytea, nothing text);
    ALTER TABLE typed_things REPLICA IDENTITY FULL;
    ALTER PUBLICATION august_cdc ADD TABLE typed_things;";

fn changes(consumer: &Consumer) -> Vec<Change> {
    consumer
        .mirror
        .events
        .iter()
        .filter_map(|e| if let Event::Change(c) = e { Some(c.clone()) } else { None })
        .collect()
}

async fn start(hint: &str, setup: &str) -> (august_testkit::TestDb, tokio_postgres::Client, Consumer) {
    let db = august_testkit::fresh_db(hint).await;
    let client = db.client().await;
    client.batch_execute(setup).await.unwrap();
    let mut consumer = Consumer::start(&db, test_config(&db.name));
    consumer.mirror.keep_events = true;
    consumer.pump_until(Duration::from_secs(30), |m| m.snapshot_lsn.is_some()).await;
    (db, client, consumer)
}

#[tokio::test]
async fn every_type_round_trips() {
    let (_db, client, mut consumer) = start("cdc_types", TYPED).await;
    client
        .batch_execute(
            r#"INSERT INTO typed_things VALUES (1, -32768, 9223372036854775807, 123456789012345678901234567890.123456789,
                 0.1, true, 'tab	and "quotes"', 'short', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2026-02-28',
                 '2026-03-01 12:34:56.789', '2026-03-01 12:34:56+02', '{"b": [1, {"c": null}], "a": "x"}', '{"raw":  1}',
                 ARRAY['a', 'b c', NULL, 'd"e'], ARRAY[1, 2, 3], '\x00ff10', NULL)"#,
        )
        .await
        .unwrap();
    consumer.catch_up(&client).await;
    let inserted = changes(&consumer);
    let [Change { relation, kind: ChangeKind::Insert { new } }] = inserted.as_slice() else { panic!("{inserted:?}") };
    let get = |name: &str| new.get(relation, name).unwrap().clone();
    assert_eq!(get("id"), Value::Int(1));
    assert_eq!(get("i2"), Value::Int(-32768));
    assert_eq!(get("i8"), Value::Int(i64::MAX));
    assert_eq!(get("n"), Value::Numeric("123456789012345678901234567890.123456789".into()), "numeric is lossless");
    assert_eq!(get("f8"), Value::Numeric("0.1".into()));
    assert_eq!(get("b"), Value::Bool(true));
    assert_eq!(get("t"), Value::Text("tab\tand \"quotes\"".into()));
    assert_eq!(get("vc"), Value::Text("short".into()));
    assert_eq!(get("u"), Value::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".parse().unwrap()));
    assert_eq!(get("d"), Value::Date(NaiveDate::from_ymd_opt(2026, 2, 28).unwrap()));
    assert_eq!(
        get("ts"),
        Value::Timestamp(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap().and_hms_milli_opt(12, 34, 56, 789).unwrap())
    );
    assert_eq!(get("tstz"), Value::TimestampTz(Utc.with_ymd_and_hms(2026, 3, 1, 10, 34, 56).unwrap()));
    assert_eq!(get("j").to_json(), serde_json::json!({"a": "x", "b": [1, {"c": null}]}));
    assert_eq!(get("js"), Value::Json(r#"{"raw":  1}"#.into()), "json keeps its text");
    assert_eq!(
        get("texts"),
        Value::Array(vec![Value::Text("a".into()), Value::Text("b c".into()), Value::Null, Value::Text("d\"e".into())])
    );
    assert_eq!(get("ints"), Value::Array(vec![Value::Int(1), Value::Int(2), Value::Int(3)]));
    assert_eq!(get("bytes"), Value::Bytes(vec![0, 255, 16]));
    assert_eq!(get("nothing"), Value::Null);
    consumer.stream.finish().await.unwrap();
}

#[tokio::test]
async fn key_changing_updates_deletes_and_truncates_arrive_as_such() {
    let (_db, client, mut consumer) = start("cdc_keys", TYPED).await;
    client.batch_execute("INSERT INTO typed_things (id, t) VALUES (1, 'one'), (5, 'five')").await.unwrap();
    client.batch_execute("UPDATE typed_things SET id = 2 WHERE id = 1").await.unwrap();
    client.batch_execute("DELETE FROM typed_things WHERE id = 2").await.unwrap();
    client.batch_execute("TRUNCATE typed_things").await.unwrap();
    consumer.catch_up(&client).await;

    let all = changes(&consumer);
    let update = all.iter().find(|c| c.op() == "update").unwrap();
    assert_eq!(update.old_key(), Some(vec![Value::Int(1)]), "the old key travels with a key-changing update");
    assert_eq!(update.key(), vec![Value::Int(2)]);
    let delete = all.iter().find(|c| c.op() == "delete").unwrap();
    assert_eq!(delete.key(), vec![Value::Int(2)]);
    let ChangeKind::Delete { old } = &delete.kind else { unreachable!() };
    assert_eq!(old.get(&delete.relation, "t"), Some(&Value::Text("one".into())), "a delete carries the whole old row");
    let truncated = consumer
        .mirror
        .events
        .iter()
        .find_map(|e| if let Event::Truncate(r) = e { Some(r.clone()) } else { None })
        .unwrap();
    assert_eq!(truncated[0].name, "typed_things");
    assert!(consumer.mirror.rows.is_empty(), "the mirror is empty after the truncate");
    assert!(consumer.mirror.faults.is_empty(), "{:?}", consumer.mirror.faults);
}

#[tokio::test]
async fn a_toasted_value_survives_an_update_of_another_column() {
    let setup = "ALTER TABLE deepcura_notes ALTER COLUMN transcript SET STORAGE EXTERNAL";
    let (db, client, mut consumer) = start("cdc_toast", setup).await;
    let transcript: String = (0..64 * 1024).map(|i| char::from(b'a' + (i * 7 % 26) as u8)).collect();
    client
        .execute(
            "INSERT INTO deepcura_notes (id, drchrono_patient_id, session_date, transcript, raw_payload)
             VALUES ('00000000-0000-0000-0000-000000000001', 1, '2026-01-05', $1, '{}')",
            &[&transcript],
        )
        .await
        .unwrap();
    let probe = format!("{}_probe", db.name);
    client.execute("SELECT pg_create_logical_replication_slot($1, 'test_decoding')", &[&probe]).await.unwrap();
    client.batch_execute("UPDATE deepcura_notes SET needs_review = true").await.unwrap();
    consumer.catch_up(&client).await;

    // Control: Postgres really sent the transcript as an unchanged TOAST value.
    let decoded: Vec<String> = client
        .query("SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL) WHERE data LIKE 'table public.deepcura_notes: UPDATE%'", &[&probe])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        decoded[0].contains("transcript[text]:unchanged-toast-datum"),
        "{}",
        &decoded[0][..300.min(decoded[0].len())]
    );

    let update = changes(&consumer).into_iter().find(|c| c.op() == "update").unwrap();
    let ChangeKind::Update { new, .. } = &update.kind else { unreachable!() };
    assert_eq!(new.get(&update.relation, "transcript"), Some(&Value::Text(transcript)));
    assert_eq!(new.get(&update.relation, "needs_review"), Some(&Value::Bool(true)));
    client.execute("SELECT pg_drop_replication_slot($1)", &[&probe]).await.unwrap();
}

#[tokio::test]
async fn rows_of_a_rolled_back_savepoint_never_appear() {
    let (_db, client, mut consumer) = start("cdc_savepoint", TYPED).await;
    client
        .batch_execute(
            "BEGIN;
             INSERT INTO typed_things (id, t) VALUES (1, 'kept');
             SAVEPOINT s;
             INSERT INTO typed_things (id, t) VALUES (2, 'rolled back');
             UPDATE typed_things SET t = 'rolled back too' WHERE id = 1;
             ROLLBACK TO SAVEPOINT s;
             INSERT INTO typed_things (id, t) VALUES (3, 'kept too');
             COMMIT;",
        )
        .await
        .unwrap();
    consumer.catch_up(&client).await;
    let texts: Vec<Value> = changes(&consumer).iter().map(|c| c.key()[0].clone()).collect();
    assert_eq!(texts, [Value::Int(1), Value::Int(3)]);
    assert_eq!(consumer.mirror.rows, crate::table_rows(&client).await);
}

#[tokio::test]
async fn a_column_added_or_dropped_mid_stream_is_applied_without_restart() {
    let (_db, client, mut consumer) = start("cdc_schema_change", TYPED).await;
    client.batch_execute("INSERT INTO typed_things (id, t) VALUES (1, 'before')").await.unwrap();
    client.batch_execute("ALTER TABLE typed_things ADD COLUMN added text").await.unwrap();
    client.batch_execute("INSERT INTO typed_things (id, t, added) VALUES (2, 'after', 'new column')").await.unwrap();
    client.batch_execute("ALTER TABLE typed_things DROP COLUMN vc").await.unwrap();
    client.batch_execute("INSERT INTO typed_things (id, t, added) VALUES (3, 'dropped', 'still here')").await.unwrap();
    consumer.catch_up(&client).await;
    let all = changes(&consumer);
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].relation.column_index("added"), None);
    let ChangeKind::Insert { new } = &all[1].kind else { unreachable!() };
    assert_eq!(new.get(&all[1].relation, "added"), Some(&Value::Text("new column".into())));
    assert_eq!(all[2].relation.column_index("vc"), None, "the dropped column is gone");
    assert_eq!(all[2].key(), vec![Value::Int(3)], "keys survive the relation being resent");
    assert_eq!(consumer.stream.stats().reconnects.load(std::sync::atomic::Ordering::Relaxed), 0);
}
