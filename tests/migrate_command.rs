//! `august migrate` against a real database.

use august_schema::{catalog, Migration};

use crate::{august, stderr, stdout};

#[tokio::test]
async fn migrate_creates_every_table_then_reports_the_database_up_to_date() {
    let db = august_testkit::empty_db("cli_migrate").await;
    let first = august(&["migrate"], &[("DATABASE_URL", db.url())]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).contains(&format!("applied {}", Migration::embedded().len())), "{}", stdout(&first));

    let client = db.client().await;
    for table in catalog::tracked().chain(catalog::AUDIT.iter().copied()) {
        let exists: bool = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table]).await.unwrap().get(0);
        assert!(exists, "{table}");
    }

    let second = august(&["migrate"], &[("DATABASE_URL", db.url())]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(stdout(&second).contains("is up to date"), "{}", stdout(&second));
}

#[tokio::test]
async fn migrate_refuses_an_edited_migration_by_name() {
    let db = august_testkit::fresh_db("cli_migrate_edited").await;
    let client = db.client().await;
    client
        .execute(
            "UPDATE schema_migrations SET checksum = 'not-what-was-applied' WHERE name = '0003_deepcura_notes.sql'",
            &[],
        )
        .await
        .unwrap();
    let out = august(&["migrate"], &[("DATABASE_URL", db.url())]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("0003_deepcura_notes.sql") && err.contains("edited"), "{err}");
}

#[tokio::test]
async fn migrate_reads_the_seed_style_parts_and_a_config_file() {
    let db = august_testkit::empty_db("cli_migrate_parts").await;
    let cluster = august_testkit::cluster();
    let port = cluster.port.to_string();
    let parts = [
        ("DB_HOST", cluster.host.as_str()),
        ("DB_PORT", port.as_str()),
        ("DB_NAME", db.name.as_str()),
        ("DB_USER", cluster.user.as_str()),
    ];
    let out = august(&["migrate"], &parts);
    assert!(out.status.success(), "{}", stderr(&out));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("august.toml");
    std::fs::write(&file, format!("[database]\nurl = \"{}\"\n", db.url())).unwrap();
    let out = august(&["--config", file.to_str().unwrap(), "migrate"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("is up to date"));
}

#[test]
fn embedded_runs_with_no_setup_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let pg = dir.path().join("pg");
    let pg = pg.to_str().unwrap();
    let first = august(&["--embedded", pg, "migrate"], &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).contains(&format!("applied {}", Migration::embedded().len())), "{}", stdout(&first));
    let second = august(&["--embedded", pg, "migrate"], &[("DATABASE_URL", "postgres://ignored@nowhere/x")]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(stdout(&second).contains("is up to date"), "the data survived the first run: {}", stdout(&second));
    assert!(!std::path::Path::new(pg).join("data/postmaster.pid").exists(), "the server was stopped on exit");
}
