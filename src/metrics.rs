//! Prometheus metrics: one recorder per process (installed once, by the command that serves
//! them), rendered at `GET /metrics` on an address of its own, `AUGUST_METRICS_ADDR` (loopback
//! by default), never on the public webhook port. Labels carry ids and names of views and
//! events, never PHI.

use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets for commit-to-Coda latency: from well under a second (no quota pressure) to the
/// minutes a large backlog can take at Coda's 10 writes per 6 s.
const LATENCY_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Installs the process's recorder. Histograms of latency get buckets (for
/// `histogram_quantile` in dashboards); others are summaries.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(august_sinks::coda::writer::LATENCY_METRIC.into()), LATENCY_BUCKETS)
        .map_err(|e| anyhow::anyhow!("cannot configure metrics: {e}"))?
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("cannot record metrics: {e}"))
}

/// `GET /metrics` and the status page (`crate::status`), to merge into a router.
pub fn route(handle: PrometheusHandle) -> Router {
    Router::new()
        .merge(crate::status::routes(handle.clone()))
        .route("/metrics", get(move || std::future::ready(handle.render())))
}

/// Serves `handle`'s `GET /metrics` on `AUGUST_METRICS_ADDR` until `stop` resolves: what
/// `serve`, `ingest`, `replicate` and the demo do (each installs the recorder first, so nothing
/// recorded while starting is lost). Returns where it listens.
pub async fn serve_from(
    sources: &crate::settings::Sources,
    handle: PrometheusHandle,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let addr = sources.metrics_addr().map_err(crate::ConfigError)?;
    serve_alone(addr, handle, stop).await
}

/// Serves `GET /metrics` alone on `addr` until `stop` resolves.
pub async fn serve_alone(
    addr: std::net::SocketAddr,
    handle: PrometheusHandle,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| crate::ConfigError(august_schema::SettingError::new("AUGUST_METRICS_ADDR", e.to_string())))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "metrics listening");
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, route(handle)).with_graceful_shutdown(stop).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    Ok((addr, task))
}
