//! The one PostgreSQL server a test run uses: a throw-away embedded cluster, or the server
//! named by `AUGUST_TEST_DATABASE_URL`.

use std::path::PathBuf;
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

impl Cluster {
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
        embedded: Some(embedded),
    })
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
        embedded: None,
    })
}

/// Migrates the template database once, on a thread of its own (the caller may be inside an
/// async runtime, where a second runtime cannot be started).
fn create_template(cluster: &Cluster) -> Result<(), String> {
    let admin = cluster.url("postgres");
    let template = cluster.template.clone();
    let url = cluster.url(&template);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            let admin = connect(&admin).await?;
            for statement in [format!("DROP DATABASE IF EXISTS {template}"), format!("CREATE DATABASE {template}")] {
                admin.batch_execute(&statement).await.map_err(|e| DbError::new(statement, e).to_string())?;
            }
            let mut client = connect(&url).await?;
            migrate(&mut client, Migration::embedded()).await.map_err(|e| e.to_string())?;
            Ok(())
        })
    })
    .join()
    .map_err(|_| "template thread panicked".to_string())?
}

pub(crate) async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    august_schema::connect(&config).await.map_err(|e| e.to_string())
}
