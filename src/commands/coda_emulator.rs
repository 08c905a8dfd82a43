//! `august coda-emulator`: the in-repo Coda API, for trying August without a Coda account and
//! for tests. Serves the doc, tables and columns a mapping file names.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use august_emulators::coda::{self, Doc, EmulatorConfig, Faults, TableSpec};
use august_sinks::coda::mapping::Mapping;

use crate::ConfigError;

/// How the emulator runs.
#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Mapping file whose doc, tables and columns to serve.
    #[arg(long, value_name = "FILE")]
    from_mapping: PathBuf,
    /// Token clients must send (Authorization: Bearer …).
    #[arg(long, env = "CODA_API_TOKEN", default_value = "emulator-token", hide_env_values = true)]
    token: String,
    /// Do not enforce Coda's quotas (10 writes and 100 reads per 6 s).
    #[arg(long)]
    no_quota: bool,
    /// Fraction of requests answered 503 (half of them after hanging for 35 s).
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Milliseconds added to every request.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Milliseconds before a write's mutation completes.
    #[arg(long, default_value_t = 0)]
    mutation_delay_ms: u64,
}

/// Serves until Ctrl-C or SIGTERM.
pub async fn run(args: EmulatorArgs) -> anyhow::Result<()> {
    let mapping = Mapping::load(&args.from_mapping)
        .map_err(|e| ConfigError(august_schema::SettingError::new("--from-mapping", e.to_string())))?;
    if !(0.0..=1.0).contains(&args.error_rate) {
        return Err(ConfigError(august_schema::SettingError::new("--error-rate", "must be between 0 and 1")).into());
    }
    let faults = Faults {
        error_rate: args.error_rate,
        timeout: Duration::from_secs(35),
        latency: Duration::from_millis(args.latency_ms),
        mutation_delay: Duration::from_millis(args.mutation_delay_ms),
    };
    let config = EmulatorConfig { token: args.token, quota: !args.no_quota, faults, ..EmulatorConfig::default() };
    let emulator = coda::serve(args.listen, emulated_doc(&mapping), config).await?;
    eprintln!(
        "august: Coda emulator on {} (doc {}); its tables at {}/",
        emulator.base_url(),
        mapping.doc_id,
        emulator.base_url()
    );
    crate::shutdown_signal().await;
    Ok(())
}

/// The doc a mapping file names, as the emulator serves it: each mapped table with its mapped
/// columns (a mapping knows only their ids, so the ids are their names too).
pub(crate) fn emulated_doc(mapping: &Mapping) -> Doc {
    let tables = mapping.tables.iter().map(|t| TableSpec::new(&t.table_id, &t.view, t.columns.values()));
    Doc::new(&mapping.doc_id, tables)
}
