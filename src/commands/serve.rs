//! `august serve`: the webhook endpoints and the replication pipeline in one process, the
//! default deployment for a single clinic. Metrics for both are at `GET /metrics` on
//! `AUGUST_METRICS_ADDR`, not on the webhook port. SIGTERM or Ctrl-C stops the endpoints taking
//! deliveries (those in flight finish) and stops the pipeline as `replicate` does; exit 0.
//! Every ten minutes it logs the audit chains' heads ([`super::audit::spawn_head_log`]); every
//! day it runs the retention job ([`super::retention::spawn_daily`]).

use tokio_util::sync::CancellationToken;

use super::ingest::Webhooks;
use super::replicate::ReplicateArgs;
use crate::pipeline::{Pipeline, PipelineStats};
use crate::settings::Sources;

/// Serves until SIGTERM or Ctrl-C.
pub async fn run(sources: &Sources, args: ReplicateArgs) -> anyhow::Result<()> {
    let serving = Serving::start(sources, &args).await?;
    tracing::info!("serving webhooks and replicating; stop with SIGTERM or Ctrl-C");
    serving.run_until(crate::shutdown_signal()).await
}

/// Webhooks and pipeline, running.
pub struct Serving {
    /// Where the webhooks listen.
    pub addr: std::net::SocketAddr,
    /// Where `GET /metrics` listens.
    pub metrics_addr: std::net::SocketAddr,
    /// The pipeline's counters.
    pub stats: PipelineStats,
    pipeline: Pipeline,
    webhooks: tokio::task::JoinHandle<anyhow::Result<()>>,
    metrics: tokio::task::JoinHandle<()>,
    housekeeping: Vec<tokio::task::JoinHandle<()>>,
    stop_http: CancellationToken,
    http_ended: CancellationToken,
}

impl Serving {
    /// Binds the endpoints and the metrics (so a bad address fails before anything starts),
    /// starts the pipeline, then serves.
    pub async fn start(sources: &Sources, args: &ReplicateArgs) -> anyhow::Result<Self> {
        let recorder = crate::metrics::install()?;
        let webhooks = Webhooks::bind(sources).await?;
        let addr = webhooks.addr;
        let (stop_http, http_ended) = (CancellationToken::new(), CancellationToken::new());
        let (metrics_addr, metrics) =
            crate::metrics::serve_from(sources, recorder.clone(), stop_http.clone().cancelled_owned()).await?;
        let pipeline = Pipeline::start(sources, args.dataflow()?, args.resnapshot, recorder).await?;
        let webhooks = webhooks.spawn(stop_http.clone(), http_ended.clone());
        let housekeeping = super::retention::spawn_housekeeping(sources)?;
        Ok(Self {
            addr,
            metrics_addr,
            stats: pipeline.stats.clone(),
            pipeline,
            webhooks,
            metrics,
            housekeeping,
            stop_http,
            http_ended,
        })
    }

    /// Runs until `stop` resolves or either half fails, then stops both.
    pub async fn run_until(self, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let Serving { pipeline, webhooks, metrics, housekeeping, stop_http, http_ended, .. } = self;
        let stop_both = async {
            tokio::select! {
                _ = stop => {}
                _ = http_ended.cancelled() => {}
            }
            stop_http.cancel();
        };
        let replicated = pipeline.run_until(stop_both).await;
        housekeeping.iter().for_each(tokio::task::JoinHandle::abort);
        stop_http.cancel();
        let served = webhooks.await?;
        let _ = metrics.await;
        replicated?;
        served
    }
}
