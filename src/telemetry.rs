//! Logs and traces for the process: one `tracing` subscriber, built once at start-up from
//! the settings (`AUGUST_LOG`, `AUGUST_LOG_FORMAT`), with the layers that consume events and
//! spans stacked on one registry.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::settings::Sources;
use crate::ConfigError;

/// What must live as long as the process logs and traces (dropped at exit to flush).
pub struct Telemetry {}

/// Installs the process's subscriber: the filter, then the log output (text or JSON on
/// stderr).
pub fn init(sources: &Sources) -> anyhow::Result<Telemetry> {
    let (filter, json) = sources.log().map_err(ConfigError)?;
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .map_err(|_| ConfigError(august_schema::SettingError::new("AUGUST_LOG", "is not a valid log filter")))?;
    let output = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let output = if json { output.json().boxed() } else { output.boxed() };
    tracing_subscriber::registry().with(output.with_filter(filter)).with(crate::status::recent_errors()).init();
    Ok(Telemetry {})
}
