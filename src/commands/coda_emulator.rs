//! `august coda-emulator`: the in-repo Coda API, for trying August without a Coda account and
//! for tests. Serves the doc, tables and columns a mapping file names; with a write-back token,
//! each table whose mapping names `edits` carries the Coda automation that sends staff edits
//! (and API changes of those columns) to August's write-back URL.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use august_emulators::coda::{self, rebase, Automation, Doc, EmulatorConfig, Faults, TableSpec};
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
    /// Token the automations send to August's write-back endpoints (Authorization: Bearer …);
    /// without it, no table has an automation.
    #[arg(long, env = "CODA_WRITEBACK_TOKEN", hide_env_values = true)]
    writeback_token: Option<String>,
    /// Send the automations to this server (http://host:port) instead of the one the
    /// mapping's write-back URLs name.
    #[arg(long, value_name = "URL")]
    writeback_base: Option<String>,
    /// Email of the API token's owner: API changes that fire an automation are theirs.
    #[arg(long, value_name = "EMAIL", default_value = "api@coda-emulator.example")]
    api_user: String,
}

/// The automations an emulated doc carries: the write-back token, and where to send them.
#[derive(Debug, Clone)]
pub(crate) struct Automations {
    /// The token the automations send.
    pub token: String,
    /// The server to send them to instead of the mapping's (`http://host:port`).
    pub base: Option<String>,
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
    if let Some(base) = &args.writeback_base {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(
                ConfigError(august_schema::SettingError::new("--writeback-base", "must be an http(s) URL")).into()
            );
        }
    }
    let automations = args
        .writeback_token
        .filter(|t| !t.is_empty())
        .map(|token| Automations { token, base: args.writeback_base.clone() });
    let config = EmulatorConfig {
        token: args.token,
        quota: !args.no_quota,
        faults,
        api_user: args.api_user,
        ..EmulatorConfig::default()
    };
    let emulator = coda::serve(args.listen, emulated_doc(&mapping, automations.as_ref()), config).await?;
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
/// columns (a mapping knows only their ids, so the ids are their names too), and, given
/// `automations`, the automation of each table whose mapping names `edits`.
pub(crate) fn emulated_doc(mapping: &Mapping, automations: Option<&Automations>) -> Doc {
    let tables = mapping.tables.iter().map(|t| {
        let table = TableSpec::new(&t.table_id, &t.view, t.columns.values());
        let (Some(edits), Some(automations)) = (&t.edits, automations) else { return table };
        // The mapping was checked: its key and every edited column are mapped.
        let column = |view_column: &str| t.columns.get(view_column).cloned().unwrap_or_default();
        let url = match &automations.base {
            Some(base) => rebase(&edits.url, base),
            None => edits.url.clone(),
        };
        table.with_automation(Automation {
            url,
            key_column: column(&t.key),
            fields: edits.fields.iter().map(|(view_column, field)| (column(view_column), field.clone())).collect(),
            token: automations.token.clone(),
        })
    });
    Doc::new(&mapping.doc_id, tables)
}
