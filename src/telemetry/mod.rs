//! Logs and traces for the process: one `tracing` subscriber, built once at start-up from
//! the settings (`AUGUST_LOG`, `AUGUST_LOG_FORMAT`) and OpenTelemetry's standard `OTEL_*`
//! variables, with the layers that consume events and spans stacked on one registry:
//!
//! * the log output on stderr: text, coloured only when stderr is a terminal, or JSON with
//!   Cloud Logging's field names ([`cloud_logging`]);
//! * when an OTLP endpoint is set ([`otlp_export`]), the `tracing-opentelemetry` layer that
//!   turns August's spans (targets `august*`) into OpenTelemetry spans, exported in batches;
//!   the W3C TraceContext propagator is registered for incoming `traceparent` headers. With
//!   no endpoint there is no such layer and spans cost what a disabled span costs.
//!
//! [`Telemetry`] flushes the spans still queued when it is dropped (or [`Telemetry::shutdown`]).

pub mod cloud_logging;
pub mod otlp_export;

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{FilterExt, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, Registry};

use crate::settings::Sources;
use crate::ConfigError;

/// What must live as long as the process logs and traces (dropped at exit to flush).
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still queued and stops the exporter (at most
    /// [`otlp_export::SHUTDOWN_TIMEOUT`]); dropping does the same.
    pub fn shutdown(mut self) {
        self.flush();
    }

    fn flush(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown_with_timeout(otlp_export::SHUTDOWN_TIMEOUT) {
                eprintln!("traces: the last spans may not have been exported: {e}");
            }
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.flush();
    }
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Dependencies whose debug and trace events can carry values (PHI, secrets): the Postgres
/// client logs each statement's parameters at debug, the HTTP stacks headers and bodies at
/// trace. They are held at INFO whatever `AUGUST_LOG` says (their `tracing` events here, their
/// `log` records by [`LOG_CRATE_LEVEL`]); August's own events name ids only.
const VALUE_CARRYING: &[&str] = &[
    "tokio_postgres",
    "postgres_protocol",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "tower_http",
    "axum",
    // the SQL endpoint's engine and wire: their debug output quotes queries and plans
    "datafusion",
    "datafusion_pg_catalog",
    "sqlparser",
    "pgwire",
    "arrow",
];

/// The most verbose level of records logged through the `log` crate that August hears.
const LOG_CRATE_LEVEL: tracing_log::log::LevelFilter = tracing_log::log::LevelFilter::Info;

/// A filter that lets everything through but the [`VALUE_CARRYING`] targets' debug and trace.
fn values_capped() -> Targets {
    VALUE_CARRYING.iter().fold(Targets::new().with_default(tracing::Level::TRACE), |t, target| {
        t.with_target(*target, tracing::Level::INFO)
    })
}

/// Installs the process's subscriber: the filter and the log output, and the OpenTelemetry
/// layer when tracing is on. A bad setting or `OTEL_*` value is a [`ConfigError`] naming it.
pub fn init(sources: &Sources) -> anyhow::Result<Telemetry> {
    let (filter, json) = sources.log().map_err(ConfigError)?;
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .map_err(|_| ConfigError(august_schema::SettingError::new("AUGUST_LOG", "is not a valid log filter")))?
        .and(values_capped());
    let export = otlp_export::TraceExport::from_sources(sources).map_err(ConfigError)?;
    let output = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let output: BoxedLayer = if json {
        let project = sources.standard("GOOGLE_CLOUD_PROJECT").map(|p| p.trim().to_string());
        output.with_ansi(false).event_format(cloud_logging::CloudLogging { project }).with_filter(filter).boxed()
    } else {
        output.with_ansi(std::io::stderr().is_terminal()).with_filter(filter).boxed()
    };
    // The status page's recent warnings and errors, whatever the log filter lets through.
    let mut layers = vec![output, crate::status::recent_errors().boxed()];
    let mut provider = None;
    if let Some(export) = export {
        let sdk = export.provider().map_err(ConfigError)?;
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
        opentelemetry::global::set_tracer_provider(sdk.clone());
        // August's own spans and their events; never a dependency's (the exporter's HTTP
        // client among them), whatever `AUGUST_LOG` lets through to the log.
        let ours = Targets::new().with_target("august", tracing::Level::INFO);
        layers.push(tracing_opentelemetry::layer().with_tracer(sdk.tracer("august")).with_filter(ours).boxed());
        provider = Some(sdk);
    }
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layers))
        .map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))?;
    // Dependencies that log through `log` (the Postgres client, the HTTP client) are heard
    // at INFO and above only: their debug records carry statement parameters and headers.
    tracing_log::LogTracer::builder()
        .with_max_level(LOG_CRATE_LEVEL)
        .init()
        .map_err(|e| anyhow::anyhow!("cannot route `log` records: {e}"))?;
    Ok(Telemetry { provider })
}
