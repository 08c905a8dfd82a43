//! `august`: the command line that wires August's stages together.
//!
//! Exit codes: 0 done, 1 failed while running, 2 a setting (or the command line) is wrong —
//! reported as one line naming the setting.

mod commands;
mod demo;
mod embedded;
mod metrics;
mod pipeline;
mod settings;
mod status;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::settings::Sources;

/// Keeps a psychiatric clinic's clinical data flowing: DrChrono and Deep Cura into Postgres,
/// Postgres through a dataflow into Coda.
#[derive(Debug, Parser)]
#[command(name = "august", version, about)]
struct Cli {
    /// TOML file with settings; environment variables override it.
    #[arg(long, global = true, env = "AUGUST_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Use a private PostgreSQL run from the installed server binaries, kept in DIR and reused
    /// on the next run, instead of the configured database. Needs no setup.
    #[arg(long, global = true, value_name = "DIR", num_args = 0..=1, default_missing_value = ".august/pg")]
    embedded: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending database migrations (safe to run repeatedly and concurrently).
    Migrate,
    /// Print every setting (environment variable, config file key, default) as a table.
    Settings,
    /// Print committed changes as JSON lines (one per row change), like a decoded
    /// pg_recvlogical. Values are PHI; --keys-only prints ids alone.
    Tail(commands::tail::TailArgs),
    /// List every view with its key column and columns, each with its PHI class (for writing a
    /// Coda mapping file); with --mapping, which PHI the mapping sends to which Coda table.
    Views {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
        /// A Coda mapping file: print, per mapped table, the columns of each PHI class it carries.
        #[arg(long, value_name = "FILE")]
        mapping: Option<PathBuf>,
    },
    /// Replicate: change stream → dataflow → sinks, until SIGTERM or Ctrl-C.
    Replicate(commands::replicate::ReplicateArgs),
    /// Serve the webhook endpoints (DrChrono, Deep Cura) until SIGTERM or Ctrl-C.
    Ingest,
    /// Serve the webhook endpoints and replicate, in one process (a single clinic's
    /// deployment), until SIGTERM or Ctrl-C.
    Serve(commands::replicate::ReplicateArgs),
    /// Pull from DrChrono's API: the initial backfill, or what changed since the last pull.
    Sync(commands::sync::SyncArgs),
    /// Compare DrChrono with Postgres (counts, checksums, differing ids) and, with --coda,
    /// every mapped Coda table with its view. Exit 0 when equal, 1 with the differences.
    Verify(commands::verify::VerifyArgs),
    /// The rows Coda refused: list, resolve, or replay them (ids and keys only, never values).
    #[command(subcommand)]
    DeadLetters(commands::dead_letters::DeadLettersCommand),
    /// Check the tamper-evident audit trail: `verify` recomputes the hash chains over
    /// change_log and access_log. Exit 0 when intact, 1 when broken (positions and ids only).
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// The SQL endpoint's users: add one (password from stdin, only its SCRAM verifier is
    /// kept) or remove one.
    #[command(subcommand)]
    SqlUser(commands::sql::SqlUserCommand),
    /// Serve the in-repo Coda API emulator for the tables of a mapping file.
    CodaEmulator(commands::coda_emulator::EmulatorArgs),
    /// Serve the in-repo DrChrono API emulator with a synthetic clinic.
    DrchronoEmulator(commands::drchrono_emulator::EmulatorArgs),
    /// Run everything on a private Postgres and the Coda emulator, with a synthetic clinic
    /// sending webhooks, and show it live. Needs no configuration.
    Demo(demo::DemoArgs),
}

/// A failure that is the operator's to fix in the settings (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("config error: {0}")]
pub struct ConfigError(#[from] pub august_schema::SettingError);

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Settings => {
            return commands::views::print_all(&settings::markdown_table()).map_or_else(report, |_| ExitCode::SUCCESS)
        }
        Command::Views { json, mapping } => {
            return commands::views::run(*json, mapping.as_deref()).map_or_else(report, |_| ExitCode::SUCCESS)
        }
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return report(anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    listen_for_shutdown(&runtime);
    if let Command::Demo(args) = cli.command {
        if cli.embedded.is_some() {
            let why = "is not for `august demo`, which runs its own private PostgreSQL (its folder is --dir)";
            return report(ConfigError(august_schema::SettingError::new("--embedded", why)).into());
        }
        return run_demo(&runtime, args);
    }
    let (server, env) = match &cli.embedded {
        None => (None, std::env::vars().collect()),
        Some(dir) => match runtime.block_on(embedded::start(dir)) {
            Ok((server, env)) => (Some(server), env),
            Err(e) => return report(e),
        },
    };
    let sources = match Sources::load(cli.config.as_deref(), env) {
        Ok(sources) => sources,
        Err(e) => return report(ConfigError(e).into()),
    };
    let telemetry = match telemetry::init(&sources) {
        Ok(telemetry) => telemetry,
        Err(e) => return report(e),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Migrate => commands::migrate::run(&sources).await,
            Command::Settings | Command::Views { .. } | Command::Demo(_) => Ok(()),
            Command::Replicate(args) => commands::replicate::run(&sources, args).await,
            Command::CodaEmulator(args) => commands::coda_emulator::run(args).await,
            Command::DrchronoEmulator(args) => commands::drchrono_emulator::run(args).await,
            Command::Ingest => commands::ingest::run(&sources).await,
            Command::Serve(args) => commands::serve::run(&sources, args).await,
            Command::Tail(args) => commands::tail::run(&sources, args).await,
            Command::Sync(args) => commands::sync::run(&sources, args).await,
            Command::DeadLetters(command) => commands::dead_letters::run(&sources, command).await,
            Command::Audit(command) => commands::audit::run(&sources, command).await,
            Command::SqlUser(command) => commands::sql::run(&sources, command),
            Command::Verify(args) => commands::verify::run(&sources, args).await,
        }
    });
    let stopped = server.map(|s| s.stop()).transpose();
    // The run's last spans go out before the process reports and exits.
    telemetry.shutdown();
    match (result, stopped) {
        (Err(e), _) => report(e),
        (Ok(()), Err(e)) => report(e.into()),
        (Ok(()), Ok(_)) => ExitCode::SUCCESS,
    }
}

/// `august demo`: its own embedded Postgres and settings; quiet logs (warnings) unless
/// `AUGUST_LOG` says otherwise, so the status line stays readable.
fn run_demo(runtime: &tokio::runtime::Runtime, args: demo::DemoArgs) -> ExitCode {
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    if !env.iter().any(|(k, _)| k == "AUGUST_LOG") {
        env.push(("AUGUST_LOG".into(), "warn,tokio_postgres=error".into()));
    }
    let logged = Sources::load(None, env).map_err(|e| ConfigError(e).into()).and_then(|s| telemetry::init(&s));
    match logged.and_then(|_telemetry| runtime.block_on(demo::run(args))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(e),
    }
}

/// Prints the error as one line and picks the exit code.
fn report(error: anyhow::Error) -> ExitCode {
    if error.downcast_ref::<ConfigError>().is_some() {
        eprintln!("august: {error}");
        return ExitCode::from(2);
    }
    eprintln!("august: error: {}", safe_chain(&error));
    ExitCode::FAILURE
}

/// `{:#}` of the chain, cut before a raw Postgres client error: its DETAIL and message can
/// quote a whole row. August's own `DbError` (no source) says what is safe to say; this
/// guards any chain that wraps a client error directly.
fn safe_chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        if cause.is::<tokio_postgres::Error>() || cause.is::<tokio_postgres::error::DbError>() {
            text.push_str(": (database error detail withheld)");
            break;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause.to_string());
    }
    text
}

/// Cancelled on the first Ctrl-C or SIGTERM (what Cloud Run and `kill` send).
static SHUTDOWN: std::sync::OnceLock<tokio_util::sync::CancellationToken> = std::sync::OnceLock::new();

/// Listens for Ctrl-C and SIGTERM from the start, so one that arrives while a command is still
/// starting stops it cleanly once it runs, instead of killing it half-way.
fn listen_for_shutdown(runtime: &tokio::runtime::Runtime) {
    let token = SHUTDOWN.get_or_init(tokio_util::sync::CancellationToken::new).clone();
    let _guard = runtime.enter();
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    runtime.spawn(async move {
        match (terminate, interrupt) {
            (Ok(mut terminate), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
        token.cancel();
    });
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    SHUTDOWN.get_or_init(tokio_util::sync::CancellationToken::new).cancelled().await;
}

#[cfg(test)]
mod tests {
    use super::safe_chain;

    #[test]
    fn the_exit_message_stops_before_a_raw_postgres_error() {
        let raw = "postgres://august:s3cret@[bad".parse::<tokio_postgres::Config>().unwrap_err();
        let error = anyhow::Error::new(raw).context("read the settings").context("start");
        let shown = safe_chain(&error);
        assert_eq!(shown, "start: read the settings: (database error detail withheld)");
    }
}
