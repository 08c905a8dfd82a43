//! The SQL endpoint in `serve` and `replicate` ([`start`]), and `august sql-user add NAME
//! --role ROLE` / `august sql-user remove NAME`, which edit its users file
//! (`AUGUST_SQL_USERS_FILE`): the password is read from stdin and only its SCRAM-SHA-256
//! verifier is written.

use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::Arc;

use august_dataflow::Output;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::settings::Sources;
use crate::ConfigError;

/// What to do with the SQL endpoint's users.
#[derive(Debug, clap::Subcommand)]
pub enum SqlUserCommand {
    /// Add a user (or set a new password and role); the password is the first line of stdin.
    Add {
        /// The login name.
        name: String,
        /// One of admin, clinician, operations, billing, auditor, read_only.
        #[arg(long)]
        role: String,
    },
    /// Remove a user: its next login fails, and so does its next query.
    Remove {
        /// The login name.
        name: String,
    },
}

/// Runs the subcommand.
pub fn run(sources: &Sources, command: SqlUserCommand) -> anyhow::Result<()> {
    let path = sources.sql_users_file();
    let bad = |message: String| ConfigError(august_schema::SettingError::new("AUGUST_SQL_USERS_FILE", message));
    match command {
        SqlUserCommand::Add { name, role } => {
            let role = august_sql::Role::parse(&role).ok_or_else(|| {
                ConfigError(august_schema::SettingError::new(
                    "--role",
                    "must be one of admin, clinician, operations, billing, auditor, read_only",
                ))
            })?;
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password)?;
            let password = password.trim_end_matches(['\n', '\r']);
            august_sql::Users::add(&path, &name, role, password).map_err(|e| bad(e.to_string()))?;
            println!("{name}: {} in {}", role.name(), path.display());
        }
        SqlUserCommand::Remove { name } => {
            if !august_sql::Users::remove(&path, &name).map_err(|e| bad(e.to_string()))? {
                anyhow::bail!("{name} is not in {}", path.display());
            }
            println!("{name}: removed from {}", path.display());
        }
    }
    Ok(())
}

/// A running endpoint.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops taking connections and waits for its access log to be stored.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Binds the endpoint when `AUGUST_SQL_ADDR` is not empty; the sender takes the dataflow's
/// output for its views.
pub async fn start(
    sources: &Sources,
    pg: &tokio_postgres::Config,
    metrics: PrometheusHandle,
    slot: Option<String>,
) -> anyhow::Result<Option<(Running, mpsc::Sender<Output>)>> {
    let Some(config) = sources.sql().map_err(ConfigError)? else {
        tracing::info!("AUGUST_SQL_ADDR is empty: the SQL endpoint is off");
        return Ok(None);
    };
    let live = Arc::new(august_sql::LiveViews::default());
    let status = crate::status::sql_status::source(metrics, slot);
    let endpoint =
        august_sql::Endpoint::bind(&config, live.clone(), status, pg.clone()).await.map_err(|e| match e {
            august_sql::SqlError::Bind(m) => ConfigError(august_schema::SettingError::new("AUGUST_SQL_ADDR", m)).into(),
            august_sql::SqlError::UsersFile(m) => {
                ConfigError(august_schema::SettingError::new("AUGUST_SQL_USERS_FILE", m)).into()
            }
            august_sql::SqlError::Tls { setting, message } => {
                ConfigError(august_schema::SettingError::new(setting, message)).into()
            }
            other => anyhow::Error::from(other),
        })?;
    let addr = endpoint.local_addr()?;
    let (tx, rx) = mpsc::channel(crate::pipeline::OUTPUT_BUFFER);
    tokio::spawn(live.follow(rx));
    let stop = CancellationToken::new();
    let run = endpoint.run(stop.clone());
    let task = tokio::spawn(async move {
        if let Err(e) = run.await {
            tracing::error!(error = %e, "the SQL endpoint could not start: queries to it wait unanswered");
        }
    });
    Ok(Some((Running { addr, stop, task }, tx)))
}
