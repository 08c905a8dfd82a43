//! `august ingest`: the webhook endpoints alone (for scaled-out HTTP), on `PORT` (Cloud Run)
//! or `AUGUST_HTTP_ADDR`, with graceful shutdown on SIGTERM or Ctrl-C, and Prometheus metrics at
//! `GET /metrics`. `serve` and `demo` bind the same endpoints beside the pipeline.

use august_ingest::{app, IngestState};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use crate::settings::Sources;
use crate::ConfigError;

/// Serves until SIGTERM or Ctrl-C; in-flight requests finish first.
pub async fn run(sources: &Sources) -> anyhow::Result<()> {
    let webhooks = Webhooks::bind(sources, crate::metrics::install()?).await?;
    webhooks.serve_until(crate::shutdown_signal()).await?;
    tracing::info!("ingest stopped cleanly");
    Ok(())
}

/// The webhook endpoints, bound and ready to serve.
pub struct Webhooks {
    /// Where they listen.
    pub addr: std::net::SocketAddr,
    listener: tokio::net::TcpListener,
    router: axum::Router,
}

impl Webhooks {
    /// Checks the settings, opens the pool and binds the listener (`PORT`/`AUGUST_HTTP_ADDR`).
    pub async fn bind(sources: &Sources, metrics: PrometheusHandle) -> anyhow::Result<Self> {
        let (settings, pg) = sources.database().map_err(ConfigError)?;
        let (addr, drchrono_secret, deepcura_secret) = sources.ingest().map_err(ConfigError)?;
        let pool = august_schema::connect_pool(&settings.pool, pg).await?;
        let state = IngestState { pool, drchrono_secret, deepcura_secret };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ConfigError(august_schema::SettingError::new("AUGUST_HTTP_ADDR", e.to_string())))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "webhooks listening");
        Ok(Self { addr, listener, router: app(state).merge(crate::metrics::route(metrics)) })
    }

    /// Serves until `stop` resolves; requests in flight then finish (each has 10 s at most).
    pub async fn serve_until(self, stop: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router).with_graceful_shutdown(stop).await?;
        Ok(())
    }

    /// Serves in a task of its own until `stop` is cancelled; `ended` is cancelled when it ends.
    pub fn spawn(
        self,
        stop: CancellationToken,
        ended: CancellationToken,
    ) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        tokio::spawn(async move {
            let result = self.serve_until(stop.cancelled_owned()).await;
            ended.cancel();
            result
        })
    }
}
