//! The live views and August's own state as SQL over the Postgres wire protocol, in the same
//! process, with no other database: `psql`, a Postgres driver or Grafana's Postgres
//! datasource connect to `AUGUST_SQL_ADDR` and query the dataflow's views as tables.
//!
//! * **Rows** ([`live`]): a copy of the dataflow's output, applied a whole frontier at a time,
//!   so every query reads one LSN;
//! * **Tables** ([`columns`], [`system`], [`catalog`]): every view as a typed table, the system
//!   tables, `pg_catalog` and `information_schema`, per role;
//! * **Queries** ([`query`]): Apache DataFusion plans and runs them (filters, joins,
//!   aggregates, ORDER BY); writes are refused (SQLSTATE 25006); each query leaves an
//!   `access_log` row;
//! * **Wire** ([`server`], [`wire`]): `pgwire`'s simple and extended protocols, SCRAM-SHA-256
//!   against the users file ([`users`]), TLS when a certificate is configured.
#![forbid(missing_docs)]

pub mod catalog;
pub mod columns;
pub mod live;
pub mod query;
pub mod server;
pub mod system;
pub mod users;
pub mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use august_schema::access_log::AccessLog;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use live::LiveViews;
pub use system::{PipelineStatus, Status};
pub use users::{Role, Users};

/// What can go wrong setting the endpoint up.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The users file is unreadable or malformed (permanent).
    #[error("AUGUST_SQL_USERS_FILE: {0}")]
    UsersFile(String),
    /// A certificate or key is unreadable (permanent).
    #[error("{setting}: {message}")]
    Tls {
        /// The setting that names the file.
        setting: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The address cannot be bound (permanent).
    #[error("AUGUST_SQL_ADDR: {0}")]
    Bind(String),
    /// A value does not fit its column's type: a bug in a view's declaration (permanent).
    #[error("{table}.{column}: a value does not fit the column's declared type")]
    Shape {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// Postgres failed (retryable).
    #[error("{0}")]
    Postgres(String),
    /// The SQL engine failed (permanent).
    #[error("SQL engine: {0}")]
    Engine(String),
}

impl SqlError {
    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SqlError::Postgres(_))
    }
}

/// The endpoint's settings.
#[derive(Debug, Clone)]
pub struct SqlConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The users file.
    pub users_file: PathBuf,
    /// PEM files of the server certificate and its key, for TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// A bound endpoint; [`Endpoint::run`] serves it.
pub struct Endpoint {
    listener: TcpListener,
    users: Arc<server::UserSource>,
    tls: Option<(tokio_rustls::TlsAcceptor, Vec<u8>)>,
    live: Arc<LiveViews>,
    status: PipelineStatus,
    pg: tokio_postgres::Config,
}

impl Endpoint {
    /// Reads the users file and the certificate and binds: every setting's error comes here,
    /// before anything starts.
    pub async fn bind(
        config: &SqlConfig,
        live: Arc<LiveViews>,
        status: PipelineStatus,
        pg: tokio_postgres::Config,
    ) -> Result<Endpoint, SqlError> {
        let users = Arc::new(server::UserSource::new(config.users_file.clone())?);
        let tls = match &config.tls {
            Some((cert, key)) => Some(tls(cert, key)?),
            None => None,
        };
        let listener =
            TcpListener::bind(config.addr).await.map_err(|e| SqlError::Bind(format!("{}: {e}", config.addr)))?;
        Ok(Endpoint { listener, users, tls, live, status, pg })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Reads the column types and builds every role's catalog (connections wait in the
    /// listen queue meanwhile), then serves connections until `stop`, and waits for the access
    /// log to be stored.
    pub async fn run(self, stop: CancellationToken) -> Result<(), SqlError> {
        let client = august_schema::connect(&self.pg).await.map_err(|e| SqlError::Postgres(format!("connect: {e}")))?;
        let tables = catalog::Tables::load(&client).await?;
        drop(client);
        let log = AccessLog::start("sql", august_schema::Actor::Auditor, self.pg.clone());
        let engine = Arc::new(query::Engine::new(tables, self.live, self.status, self.pg, log)?);
        let (acceptor, cert) = match self.tls {
            Some((acceptor, pem)) => (Some(acceptor), Some(pem)),
            None => (None, None),
        };
        let handlers = Arc::new(server::Handlers::new(engine.clone(), self.users, cert));
        tracing::info!(addr = %self.listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), tls = acceptor.is_some(), "SQL endpoint listening");
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((socket, _)) => {
                    let (handlers, tls) = (handlers.clone(), acceptor.clone());
                    tokio::spawn(async move {
                        if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                            tracing::debug!(error = %e, "SQL connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "SQL endpoint: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
        engine.flush_log().await;
        Ok(())
    }
}

/// The TLS acceptor of a PEM certificate chain and key, and the certificate's PEM (for SCRAM
/// channel binding).
fn tls(cert: &std::path::Path, key: &std::path::Path) -> Result<(tokio_rustls::TlsAcceptor, Vec<u8>), SqlError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |setting: &'static str, message: String| SqlError::Tls { setting, message };
    let pem = std::fs::read(cert).map_err(|e| bad("AUGUST_SQL_SSLCERT", format!("{}: {e}", cert.display())))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("AUGUST_SQL_SSLCERT", format!("{}: {e}", cert.display())))?;
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| bad("AUGUST_SQL_SSLKEY", format!("{}: {e}", key.display())))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| bad("AUGUST_SQL_SSLCERT", e.to_string()))?;
    Ok((tokio_rustls::TlsAcceptor::from(Arc::new(config)), pem))
}
