//! The one PostgreSQL server a test run uses: a throw-away embedded cluster, or the server
//! named by `AUGUST_TEST_DATABASE_URL`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use august_schema::embedded::EmbeddedPostgres;
use august_schema::{migrate, DbError, Migration};

/// The server tests run against.
#[derive(Debug)]
pub struct Cluster {
    /// Host to connect to.
    pub host: String,
    /// Port to connect to.
    pub port: u16,
    /// Superuser (or a user allowed to create databases).
    pub user: String,
    /// Password, for an external server that needs one.
    pub password: Option<String>,
    /// Name of the migrated template database each test copies.
    pub template: String,
    /// Whether the server has the test certificates and users ([`Cluster::SCRAM_USER`]):
    /// the private cluster has, an external server has not.
    pub test_tls: bool,
    embedded: Option<EmbeddedPostgres>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The run's server, started on first use. Panics with a clear message when no server can be
/// had: a test that needs Postgres cannot go on without one. A failed start is remembered, so
/// the other tests fail at once with the same message instead of trying again.
pub fn cluster() -> &'static Cluster {
    let cluster = CLUSTER.get_or_init(|| {
        let cluster = match std::env::var("AUGUST_TEST_DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => external(&url)?,
            _ => private()?,
        };
        create_template(&cluster).map_err(|e| format!("cannot prepare the template database: {e}"))?;
        Ok(cluster)
    });
    match cluster {
        Ok(cluster) => cluster,
        Err(e) => panic!("{e}"),
    }
}

/// A password user (`scram-sha-256`, `REPLICATION`) and a client-certificate user the private
/// cluster accepts only over TLS from `127.0.0.1`; every other login is the `postgres`
/// superuser on trust.
const TLS_HBA: &str = "hostssl all scram_user 127.0.0.1/32 scram-sha-256\n\
                       hostssl all cert_user 127.0.0.1/32 cert\n";

/// What the private cluster adds to `postgresql.conf`: TLS with the test certificates, and the
/// test CA for client certificates.
const TLS_SETTINGS: &str = "
# set by august-testkit
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_ca_file = 'ca.crt'
";

/// The folder of the test-only CA, server and client certificates and the other CA (see
/// `testkit/certs/README.md`).
pub fn test_certs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("certs")
}

impl Cluster {
    /// The SCRAM user's name and password.
    pub const SCRAM_USER: (&'static str, &'static str) = ("scram_user", "scram-test-password");

    /// The user who logs in with the test client certificate (`certs/client.crt`) alone.
    pub const CERT_USER: &'static str = "cert_user";

    /// A private cluster of the caller's own, for tests that restart or reconfigure the
    /// server and so must not share it. Stopped and removed when the process ends.
    pub fn start_private() -> &'static Cluster {
        let cluster = private().unwrap_or_else(|e| panic!("{e}"));
        create_template(&cluster).unwrap_or_else(|e| panic!("cannot prepare the template database: {e}"));
        Box::leak(Box::new(cluster))
    }

    /// A fresh, migrated database on this server (see [`crate::fresh_db`]).
    pub async fn fresh_db(&'static self, hint: &str) -> crate::TestDb {
        crate::database::create_on(self, hint, &self.template).await
    }

    /// A `postgres://` URL for database `dbname` on this server.
    pub fn url(&self, dbname: &str) -> String {
        let auth = match &self.password {
            Some(p) => format!("{}:{}", self.user, p),
            None => self.user.clone(),
        };
        format!("postgres://{auth}@{}:{}/{dbname}", self.host, self.port)
    }

    /// Path of a PostgreSQL program (`pg_recvlogical`, `pgbench`, …) of the private cluster.
    /// `None` against an external server.
    pub fn bin(&self, program: &str) -> Option<PathBuf> {
        self.embedded.as_ref().map(|e| e.bin(program))
    }

    /// Restarts the server (`pg_ctl restart -m fast`), dropping every connection. Panics for
    /// an external server, which tests must not restart.
    pub fn restart(&self) {
        let embedded = self.embedded.as_ref().expect("only the private test cluster can be restarted");
        embedded.restart().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Restarts the server as after a crash (`pg_ctl restart -m immediate`: no checkpoint,
    /// crash recovery at start), dropping every connection. Panics for an external server.
    pub fn restart_immediate(&self) {
        let embedded = self.embedded.as_ref().expect("only the private test cluster can be restarted");
        embedded.restart_immediate().unwrap_or_else(|e| panic!("{e}"));
    }

    pub(crate) fn is_private(&self) -> bool {
        self.embedded.is_some()
    }
}

fn private() -> Result<Cluster, String> {
    let root =
        tempfile::Builder::new().prefix("august-pg-").tempdir().map_err(|e| format!("temporary folder: {e}"))?.keep();
    let embedded = EmbeddedPostgres::start(&root, true)
        .map_err(|e| format!("cannot start a private PostgreSQL for the tests: {e}"))?;
    Ok(Cluster {
        host: embedded.host().to_string(),
        port: embedded.port(),
        user: "postgres".to_string(),
        password: None,
        template: "august_template".to_string(),
        test_tls: true,
        embedded: Some(embedded),
    })
    .and_then(|cluster| {
        enable_tls(&cluster, &root.join("data"))?;
        Ok(cluster)
    })
}

/// Turns TLS on with the test certificates and adds the SCRAM and client-certificate users. The
/// files are copied into the data folder because Postgres wants the key owned by the server's
/// user with mode 0600.
fn enable_tls(cluster: &Cluster, data: &Path) -> Result<(), String> {
    let owner = std::fs::metadata(data).map_err(|e| format!("{}: {e}", data.display()))?;
    for file in ["server.crt", "server.key", "ca.crt"] {
        let to = data.join(file);
        std::fs::copy(test_certs().join(file), &to).map_err(|e| format!("copy {file}: {e}"))?;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).map_err(|e| format!("{file}: {e}"))?;
        std::os::unix::fs::chown(&to, Some(owner.uid()), Some(owner.gid())).map_err(|e| format!("{file}: {e}"))?;
    }
    let conf = data.join("postgresql.conf");
    let mut settings = std::fs::read_to_string(&conf).map_err(|e| format!("postgresql.conf: {e}"))?;
    settings.push_str(TLS_SETTINGS);
    std::fs::write(&conf, settings).map_err(|e| format!("postgresql.conf: {e}"))?;
    // pg_hba.conf is read top down: these lines go before initdb's trust lines.
    let hba = data.join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).map_err(|e| format!("pg_hba.conf: {e}"))?;
    std::fs::write(&hba, format!("{TLS_HBA}{rules}")).map_err(|e| format!("pg_hba.conf: {e}"))?;
    let admin = cluster.url("postgres");
    on_own_thread(async move {
        let client = connect(&admin).await?;
        let (user, password) = Cluster::SCRAM_USER;
        let cert_user = Cluster::CERT_USER;
        client
            .batch_execute(&format!(
                "SELECT pg_reload_conf(); SET password_encryption = 'scram-sha-256'; \
                 CREATE ROLE {user} LOGIN REPLICATION PASSWORD '{password}'; CREATE ROLE {cert_user} LOGIN"
            ))
            .await
            .map_err(|e| DbError::new("turn TLS on", e).to_string())?;
        // The reload is asynchronous: wait until a new session sees it.
        for _ in 0..200 {
            let ssl: String = connect(&admin)
                .await?
                .query_one("SHOW ssl", &[])
                .await
                .map_err(|e| DbError::new("SHOW ssl", e).to_string())?
                .get(0);
            if ssl == "on" {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        Err("the test cluster did not turn TLS on".to_string())
    })
}

/// Runs `work` on a thread with a runtime of its own (the caller may be inside an async
/// runtime, where a second runtime cannot be started).
fn on_own_thread<F>(work: F) -> Result<(), String>
where
    F: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(work)
    })
    .join()
    .map_err(|_| "test cluster set-up thread panicked".to_string())?
}

fn external(url: &str) -> Result<Cluster, String> {
    let config: tokio_postgres::Config =
        url.parse().map_err(|_| "AUGUST_TEST_DATABASE_URL is not a valid connection string".to_string())?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    Ok(Cluster {
        host,
        port: config.get_ports().first().copied().unwrap_or(5432),
        user: config.get_user().unwrap_or("postgres").to_string(),
        password: config.get_password().map(|p| String::from_utf8_lossy(p).into_owned()),
        template: format!("august_template_{}", std::process::id()),
        test_tls: false,
        embedded: None,
    })
}

/// Migrates the template database once.
fn create_template(cluster: &Cluster) -> Result<(), String> {
    let admin = cluster.url("postgres");
    let template = cluster.template.clone();
    let url = cluster.url(&template);
    on_own_thread(async move {
        let admin = connect(&admin).await?;
        for statement in [format!("DROP DATABASE IF EXISTS {template}"), format!("CREATE DATABASE {template}")] {
            admin.batch_execute(&statement).await.map_err(|e| DbError::new(statement, e).to_string())?;
        }
        let mut client = connect(&url).await?;
        migrate(&mut client, Migration::embedded()).await.map_err(|e| e.to_string())?;
        Ok(())
    })
}

pub(crate) async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    august_schema::connect(&config).await.map_err(|e| e.to_string())
}
