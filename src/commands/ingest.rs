//! `august ingest`: the webhook endpoints alone (for scaled-out HTTP), on `PORT` (Cloud Run)
//! or `AUGUST_HTTP_ADDR`, with graceful shutdown on SIGTERM or Ctrl-C, and Prometheus metrics at
//! `GET /metrics`.

use august_ingest::{app, IngestState};

use crate::settings::Sources;
use crate::ConfigError;

/// Serves until SIGTERM or Ctrl-C; in-flight requests finish first.
pub async fn run(sources: &Sources) -> anyhow::Result<()> {
    let (settings, pg) = sources.database().map_err(ConfigError)?;
    let (addr, drchrono_secret, deepcura_secret) = sources.ingest().map_err(ConfigError)?;
    let pool = august_schema::connect_pool(&settings.pool, pg).await?;
    let state = IngestState { pool, drchrono_secret, deepcura_secret };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ConfigError(august_schema::SettingError::new("AUGUST_HTTP_ADDR", e.to_string())))?;
    tracing::info!(addr = %listener.local_addr()?, "ingest listening");
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("cannot record metrics: {e}"))?;
    let router = app(state).route("/metrics", axum::routing::get(move || std::future::ready(metrics.render())));
    axum::serve(listener, router).with_graceful_shutdown(crate::shutdown_signal()).await?;
    tracing::info!("ingest stopped cleanly");
    Ok(())
}
