//! The migrations runner and what the migrations create.

use std::collections::BTreeSet;

use august_schema::{catalog, migrate, MigrateError, Migration};

use crate::{column_strings, count, db};

async fn tables(client: &tokio_postgres::Client) -> BTreeSet<String> {
    column_strings(client, "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'", &[])
        .await
        .into_iter()
        .collect()
}

#[tokio::test]
async fn migrating_an_empty_database_creates_every_table_and_a_second_run_changes_nothing() {
    let db = august_testkit::empty_db("migrate_empty").await;
    let mut client = db.client().await;
    let report = migrate(&mut client, Migration::embedded()).await.unwrap();
    assert_eq!(report.applied.len(), Migration::embedded().len());
    assert_eq!(report.already_applied, 0);

    let present = tables(&client).await;
    let expected = catalog::tracked().chain(catalog::AUDIT.iter().copied()).chain(["schema_migrations"]);
    for table in expected {
        assert!(present.contains(table), "{table} missing; have {present:?}");
    }

    let second = migrate(&mut client, Migration::embedded()).await.unwrap();
    assert!(second.applied.is_empty());
    assert_eq!(second.already_applied, Migration::embedded().len());
    assert_eq!(tables(&client).await, present);
    assert_eq!(count(&client, "SELECT count(*) FROM change_log").await, 0);
}

#[tokio::test]
async fn an_edited_applied_migration_is_refused_by_name() {
    let (_db, mut client) = db("migrate_edited").await;
    let edited: Vec<Migration> = Migration::embedded()
        .iter()
        .map(|m| if m.name.starts_with("0002_") { Migration { name: m.name, sql: "-- edited afterwards" } } else { *m })
        .collect();
    let err = migrate(&mut client, &edited).await.unwrap_err();
    assert!(matches!(&err, MigrateError::Edited { name, .. } if name == "0002_drchrono_mirrors.sql"), "{err}");
    assert!(err.to_string().contains("0002_drchrono_mirrors.sql"));
}

#[tokio::test]
async fn a_migration_unknown_to_this_build_is_refused_by_name() {
    let (_db, mut client) = db("migrate_unknown").await;
    client
        .execute(
            "INSERT INTO schema_migrations (name, checksum, execution_ms) VALUES ('9999_from_the_future.sql', 'x', 0)",
            &[],
        )
        .await
        .unwrap();
    let err = migrate(&mut client, Migration::embedded()).await.unwrap_err();
    assert!(err.to_string().contains("9999_from_the_future.sql"), "{err}");
}

#[tokio::test]
async fn a_failing_migration_is_rolled_back_and_named() {
    let db = august_testkit::empty_db("migrate_failing").await;
    let mut client = db.client().await;
    let broken = [
        Migration { name: "0001_ok.sql", sql: "CREATE TABLE first_ok (id int);" },
        Migration { name: "0002_broken.sql", sql: "CREATE TABLE half_done (id int); SELECT no_such_function();" },
    ];
    let err = migrate(&mut client, &broken).await.unwrap_err();
    assert!(matches!(&err, MigrateError::Failed { name, .. } if name == "0002_broken.sql"), "{err}");
    let present = tables(&client).await;
    assert!(present.contains("first_ok"));
    assert!(!present.contains("half_done"), "the failing file left nothing behind");
    assert_eq!(count(&client, "SELECT count(*) FROM schema_migrations").await, 1);
}

#[tokio::test]
async fn concurrent_runs_apply_each_file_once() {
    let db = august_testkit::empty_db("migrate_concurrent").await;
    let (mut a, mut b) = (db.client().await, db.client().await);
    let (ra, rb) = tokio::join!(migrate(&mut a, Migration::embedded()), migrate(&mut b, Migration::embedded()));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.applied.len() + rb.applied.len(), Migration::embedded().len());
    let n = i64::try_from(Migration::embedded().len()).unwrap();
    assert_eq!(count(&a, "SELECT count(*) FROM schema_migrations").await, n);
}

#[tokio::test]
async fn the_publication_covers_the_published_tables_with_full_replica_identity() {
    let (_db, client) = db("publication").await;
    let published: BTreeSet<String> =
        column_strings(&client, "SELECT tablename::text FROM pg_publication_tables WHERE pubname = 'august_cdc'", &[])
            .await
            .into_iter()
            .collect();
    let expected: BTreeSet<String> = catalog::published().map(str::to_string).collect();
    assert_eq!(published, expected);
    for table in catalog::published() {
        let identity: i8 = client
            .query_one("SELECT relreplident::\"char\" FROM pg_class WHERE oid = $1::text::regclass", &[&table])
            .await
            .unwrap()
            .get(0);
        assert_eq!(identity as u8, b'f', "{table} has REPLICA IDENTITY FULL");
    }
    for table in catalog::AUDIT {
        assert!(!published.contains(*table), "{table} must not feed the dataflow");
    }
}
