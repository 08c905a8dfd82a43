//! Prometheus metrics: one recorder per process (installed once, by the command that serves
//! them), rendered at `GET /metrics` on an address of its own, `AUGUST_METRICS_ADDR` (loopback
//! by default), never on the public webhook port. Every metric is in the catalog
//! ([`august_schema::metrics`]): the recorder takes each histogram's buckets from it and
//! describes them all, so every scrape carries `# HELP` and `# TYPE`. Labels carry names of
//! views, feeds, routes and outcomes, never PHI. Alongside, a sampler reports the database's
//! size (and the configured capacity) every minute, for the storage alert.

use std::time::Duration;

use august_schema::metrics::{self as catalog, Kind};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// How often the database's size is sampled.
const DATABASE_SAMPLE: Duration = Duration::from_secs(60);

/// Installs the process's recorder, with every histogram's buckets from the catalog, and
/// records the build and start time.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let mut builder = PrometheusBuilder::new();
    for m in catalog::ALL.iter().filter(|m| m.kind == Kind::Histogram) {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(m.name.into()), m.buckets)
            .map_err(|e| anyhow::anyhow!("cannot configure metrics: {e}"))?;
    }
    let handle = builder.install_recorder().map_err(|e| anyhow::anyhow!("cannot record metrics: {e}"))?;
    catalog::describe();
    ::metrics::gauge!(catalog::BUILD_INFO.name, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    ::metrics::gauge!(catalog::START_TIME.name).set(started.as_secs_f64());
    Ok(handle)
}

/// `GET /metrics` and the status page (`crate::status`), to merge into a router.
pub fn route(handle: PrometheusHandle) -> Router {
    Router::new()
        .merge(crate::status::routes(handle.clone()))
        .route("/metrics", get(move || std::future::ready(handle.render())))
}

/// Serves `handle`'s `GET /metrics` on `AUGUST_METRICS_ADDR` until `stop` resolves, and
/// samples the database's size meanwhile: what `serve`, `ingest`, `replicate` and the demo do
/// (each installs the recorder first, so nothing recorded while starting is lost). Returns
/// where it listens.
pub async fn serve_from(
    sources: &crate::settings::Sources,
    handle: PrometheusHandle,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let addr = sources.metrics_addr().map_err(crate::ConfigError)?;
    let capacity = sources.db_capacity_bytes().map_err(crate::ConfigError)?;
    let sampler = sources.database().ok().map(|(_, pg)| tokio::spawn(sample_database(pg, capacity)));
    let (addr, serving) = serve_alone(addr, handle, stop).await?;
    let task = tokio::spawn(async move {
        let _ = serving.await;
        if let Some(sampler) = sampler {
            sampler.abort();
        }
    });
    Ok((addr, task))
}

/// Sets `august_postgres_capacity_bytes` (when configured) and, every minute,
/// `august_postgres_database_bytes`; a failed sample leaves the last value and tries again.
async fn sample_database(pg: tokio_postgres::Config, capacity: Option<u64>) {
    if let Some(bytes) = capacity {
        ::metrics::gauge!(catalog::POSTGRES_CAPACITY_BYTES.name).set(bytes as f64);
    }
    let mut client: Option<tokio_postgres::Client> = None;
    let mut ticks = tokio::time::interval(DATABASE_SAMPLE);
    loop {
        ticks.tick().await;
        if client.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
            client = august_schema::connect(&pg).await.ok();
        }
        let Some(c) = &client else { continue };
        match c.query_one("SELECT pg_database_size(current_database())", &[]).await {
            Ok(row) => ::metrics::gauge!(catalog::POSTGRES_DATABASE_BYTES.name).set(row.get::<_, i64>(0) as f64),
            Err(e) => tracing::debug!(error = %august_schema::DbError::new("sample the database size", e), "retrying"),
        }
    }
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
