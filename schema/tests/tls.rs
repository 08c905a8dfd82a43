//! Every `sslmode` against the private cluster, which runs with TLS and a certificate for
//! `localhost` only: what each mode encrypts, which certificates it refuses, and a SCRAM
//! password user through the pool.

use august_schema::{DbSettings, PoolSettings};
use august_testkit::{cluster, test_certs, Cluster, TestDb};

/// Settings for `db` as `user` on `host` (`localhost` or `127.0.0.1`) with URL parameters
/// `params` (`sslmode=…`); `None` against a server without the test certificates.
fn settings(db: &TestDb, user: &str, host: &str, params: &str) -> Option<DbSettings> {
    let cluster = cluster();
    cluster.test_tls.then(|| {
        DbSettings::from_url("DATABASE_URL", format!("postgres://{user}@{host}:{}/{}?{params}", cluster.port, db.name))
    })
}

fn root(ca: &str) -> String {
    format!("sslrootcert={}", test_certs().join(ca).display())
}

/// Whether a new connection with `settings` is encrypted, or the connection error.
async fn encrypted(settings: &DbSettings) -> Result<bool, String> {
    let config = settings.pg_config().map_err(|e| e.to_string())?;
    let client = august_schema::connect(&config).await.map_err(|e| {
        if e.to_string().contains("certificate") {
            // A refused certificate is refused on every try: nothing should retry it.
            assert_eq!(e.kind(), august_schema::ErrorKind::Permanent, "{e}");
        }
        e.to_string()
    })?;
    let row = client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap();
    Ok(row.get(0))
}

#[tokio::test]
async fn each_sslmode_connects_and_encrypts_as_libpq_would() {
    let db = august_testkit::fresh_db("tls_modes").await;
    let ca = root("ca.crt");
    for (params, expect) in [
        ("sslmode=disable".to_string(), false),
        ("sslmode=prefer".to_string(), true),
        ("application_name=x".to_string(), true), // unset on loopback: prefer
        ("sslmode=require".to_string(), true),
        (format!("sslmode=verify-ca&{ca}"), true),
        (format!("sslmode=verify-full&{ca}"), true),
    ] {
        let Some(settings) = settings(&db, "postgres", "localhost", &params) else { return };
        assert_eq!(encrypted(&settings).await, Ok(expect), "{params}");
    }
}

#[tokio::test]
async fn a_server_another_ca_did_not_sign_is_refused_by_verify_ca_and_verify_full() {
    let db = august_testkit::fresh_db("tls_other_ca").await;
    let other = root("other-ca.crt");
    for mode in ["verify-ca", "verify-full"] {
        let Some(settings) = settings(&db, "postgres", "localhost", &format!("sslmode={mode}&{other}")) else { return };
        let err = encrypted(&settings).await.unwrap_err();
        assert!(err.contains("certificate") || err.contains("UnknownIssuer"), "{mode}: {err}");
    }
}

#[tokio::test]
async fn a_certificate_for_another_host_is_refused_by_verify_full_and_accepted_by_verify_ca() {
    let db = august_testkit::fresh_db("tls_host_name").await;
    let ca = root("ca.crt");
    // The server's certificate names `localhost` only, not `127.0.0.1`.
    let Some(full) = settings(&db, "postgres", "127.0.0.1", &format!("sslmode=verify-full&{ca}")) else { return };
    let err = encrypted(&full).await.unwrap_err();
    assert!(err.contains("certificate"), "{err}");
    let Some(chain_only) = settings(&db, "postgres", "127.0.0.1", &format!("sslmode=verify-ca&{ca}")) else { return };
    assert_eq!(encrypted(&chain_only).await, Ok(true));
}

#[tokio::test]
async fn the_pool_connects_with_verify_full_and_a_scram_password() {
    let db = august_testkit::fresh_db("tls_scram_pool").await;
    let (user, password) = Cluster::SCRAM_USER;
    let ca = root("ca.crt");
    let Some(settings) =
        settings(&db, &format!("{user}:{password}"), "localhost", &format!("sslmode=verify-full&{ca}"))
    else {
        return;
    };
    let pool = august_schema::connect_pool(&PoolSettings::default(), settings.pg_config().unwrap()).await.unwrap();
    let conn = pool.get().await.unwrap();
    let row = conn
        .query_one("SELECT current_user::text, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .unwrap();
    assert_eq!((row.get::<_, String>(0), row.get::<_, bool>(1)), (user.to_string(), true));

    let wrong = DbSettings::from_url(
        "DATABASE_URL",
        format!("postgres://{user}:wrong@localhost:{}/{}?sslmode=verify-full&{ca}", cluster().port, db.name),
    );
    assert!(encrypted(&wrong).await.is_err(), "a wrong SCRAM password is refused");
}

#[tokio::test]
async fn a_client_certificate_logs_in_its_user() {
    let db = august_testkit::fresh_db("tls_client_cert").await;
    let certs = test_certs();
    let params = format!(
        "sslmode=verify-full&{}&sslcert={}&sslkey={}",
        root("ca.crt"),
        certs.join("client.crt").display(),
        certs.join("client.key").display()
    );
    let Some(with) = settings(&db, Cluster::CERT_USER, "localhost", &params) else { return };
    let pool = august_schema::connect_pool(&PoolSettings::default(), with.pg_config().unwrap()).await.unwrap();
    let user: String = pool.get().await.unwrap().query_one("SELECT current_user::text", &[]).await.unwrap().get(0);
    assert_eq!(user, Cluster::CERT_USER);

    let Some(without) =
        settings(&db, Cluster::CERT_USER, "localhost", &format!("sslmode=verify-full&{}", root("ca.crt")))
    else {
        return;
    };
    assert!(encrypted(&without).await.is_err(), "without the certificate the user is refused");
}
