//! Replication over TLS: the consumer streaming a change under `verify-full`, and the
//! walsender client's own TLS and SCRAM against the private cluster (certificate for
//! `localhost` only; see `testkit/certs/`).

use std::time::Duration;

use august_cdc::walsender::WalSender;
use august_cdc::{ChangeKind, Event, Lsn};
use august_schema::DbSettings;
use august_testkit::{cluster, test_certs, Cluster, TestDb};
use tokio::sync::watch;

use crate::mirror::test_config;

/// `db`'s client configuration as `user` on `host` with URL parameters `params`; `None`
/// against a server without the test certificates.
fn config(db: &TestDb, user: &str, host: &str, params: &str) -> Option<tokio_postgres::Config> {
    let cluster = cluster();
    let url = format!("postgres://{user}@{host}:{}/{}?{params}", cluster.port, db.name);
    cluster.test_tls.then(|| DbSettings::from_url("DATABASE_URL", url).pg_config().unwrap())
}

fn verify_full() -> String {
    format!("sslmode=verify-full&sslrootcert={}", test_certs().join("ca.crt").display())
}

async fn next(stream: &mut august_cdc::ChangeStream) -> Option<Event> {
    tokio::time::timeout(Duration::from_secs(30), stream.next()).await.expect("an event within 30 s")
}

#[tokio::test]
async fn the_consumer_streams_a_change_over_verify_full_tls() {
    let db = august_testkit::fresh_db("cdc_tls_stream").await;
    let Some(pg) = config(&db, "postgres", "localhost", &verify_full()) else { return };
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE tls_probe (id int PRIMARY KEY, note text);
             ALTER TABLE tls_probe REPLICA IDENTITY FULL;
             ALTER PUBLICATION august_cdc ADD TABLE tls_probe;",
        )
        .await
        .unwrap();
    let (_durable, durable_watch) = watch::channel(Lsn::ZERO);
    let mut stream = august_cdc::start(pg, test_config(&db.name), durable_watch);
    while !matches!(next(&mut stream).await, Some(Event::SnapshotEnd { .. })) {}
    client.execute("INSERT INTO tls_probe VALUES (1, 'over tls')", &[]).await.unwrap();
    loop {
        match next(&mut stream).await.expect("the consumer keeps running") {
            Event::Change(change) if change.relation.name == "tls_probe" => {
                assert!(matches!(change.kind, ChangeKind::Insert { .. }));
                break;
            }
            _ => {}
        }
    }
    let walsender_ssl: bool = client
        .query_one(
            "SELECT s.ssl FROM pg_replication_slots r JOIN pg_stat_ssl s ON s.pid = r.active_pid
             WHERE r.slot_name = $1",
            &[&db.name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(walsender_ssl, "the replication session is encrypted");
    stream.finish().await.unwrap();
}

#[tokio::test]
async fn the_walsender_client_authenticates_a_scram_user_over_tls() {
    let db = august_testkit::fresh_db("cdc_tls_scram").await;
    let (user, password) = Cluster::SCRAM_USER;
    let Some(pg) = config(&db, &format!("{user}:{password}"), "localhost", &verify_full()) else { return };
    let mut session = WalSender::connect(&pg).await.unwrap();
    let rows = session.simple_query("IDENTIFY_SYSTEM").await.unwrap();
    assert_eq!(rows.len(), 1);
    session.finish().await;

    let Some(wrong) = config(&db, &format!("{user}:wrong"), "localhost", &verify_full()) else { return };
    assert!(WalSender::connect(&wrong).await.is_err(), "a wrong SCRAM password is refused");
}

#[tokio::test]
async fn the_walsender_client_refuses_a_certificate_it_cannot_verify_for_good() {
    let db = august_testkit::fresh_db("cdc_tls_refused").await;
    let other_ca = format!("sslmode=verify-ca&sslrootcert={}", test_certs().join("other-ca.crt").display());
    let ca = format!("sslrootcert={}", test_certs().join("ca.crt").display());
    for (host, params) in [("localhost", other_ca), ("127.0.0.1", format!("sslmode=verify-full&{ca}"))] {
        let Some(pg) = config(&db, "postgres", host, &params) else { return };
        let err = WalSender::connect(&pg).await.unwrap_err();
        assert_eq!(err.kind(), august_schema::ErrorKind::Permanent, "{host} {params}: {err}");
        assert!(err.to_string().contains("TLS"), "{err}");
    }
    // The chain alone is good for 127.0.0.1, and `disable` still works.
    for (host, params) in [("127.0.0.1", format!("sslmode=verify-ca&{ca}")), ("localhost", "sslmode=disable".into())] {
        let Some(pg) = config(&db, "postgres", host, &params) else { return };
        WalSender::connect(&pg).await.unwrap_or_else(|e| panic!("{host} {params}: {e}")).finish().await;
    }
}
