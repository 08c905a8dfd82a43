//! `august ingest`: the webhook endpoints alone (for scaled-out HTTP), on `PORT` (Cloud Run)
//! or `AUGUST_HTTP_ADDR`, with a header-read timeout and a limit on requests in flight
//! ([`august_ingest::server`]), graceful shutdown on SIGTERM or Ctrl-C, and Prometheus metrics at
//! `GET /metrics` on `AUGUST_METRICS_ADDR` (not on the webhook port). `serve` and `demo` bind
//! the same endpoints beside the pipeline. With `CODA_WRITEBACK_TOKEN` set they include the
//! Coda write-back ([`august_ingest::writeback`]).

use std::time::Duration;

use august_ingest::drchrono::runs::Syncer;
use august_ingest::oidc::OidcVerifier;
use august_ingest::server::HttpLimits;
use august_ingest::sync_api::{self, SyncApi};
use august_ingest::{app, IngestState};
use tokio_util::sync::CancellationToken;

use crate::settings::Sources;
use crate::ConfigError;

/// Serves until SIGTERM or Ctrl-C; in-flight requests finish first.
pub async fn run(sources: &Sources) -> anyhow::Result<()> {
    let recorder = crate::metrics::install()?;
    let webhooks = Webhooks::bind(sources).await?;
    let stop_metrics = CancellationToken::new();
    let (_, metrics) = crate::metrics::serve_from(sources, recorder, stop_metrics.clone().cancelled_owned()).await?;
    let served = webhooks.serve_until(crate::shutdown_signal()).await;
    stop_metrics.cancel();
    let _ = metrics.await;
    served?;
    tracing::info!("ingest stopped cleanly");
    Ok(())
}

/// The webhook endpoints, bound and ready to serve.
pub struct Webhooks {
    /// Where they listen.
    pub addr: std::net::SocketAddr,
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: HttpLimits,
    reconcile: Option<(Syncer, Duration)>,
}

impl Webhooks {
    /// Checks the settings, opens the pool and binds the listener (`PORT`/`AUGUST_HTTP_ADDR`).
    pub async fn bind(sources: &Sources) -> anyhow::Result<Self> {
        let (settings, pg) = sources.database().map_err(ConfigError)?;
        let (addr, drchrono_secret, deepcura_secret) = sources.ingest().map_err(ConfigError)?;
        let limits = sources.http_limits().map_err(ConfigError)?;
        let writeback_token = sources.writeback_token().map_err(ConfigError)?;
        sources.metrics_addr().map_err(ConfigError)?;
        let (drchrono, oidc) = (sources.drchrono().map_err(ConfigError)?, sources.sync_oidc().map_err(ConfigError)?);
        let reconcile_every = sources.reconcile_every().map_err(ConfigError)?;
        let pool = august_schema::connect_pool(&settings.pool, pg.clone()).await?;
        let syncer = super::sync::syncer(drchrono, &pool, &pg).await?;
        let sync = match (oidc, &syncer) {
            (None, _) => SyncApi::not_configured("AUGUST_SYNC_OIDC_AUDIENCE"),
            (Some(_), None) => SyncApi::not_configured("DRCHRONO_CLIENT_ID and DRCHRONO_CLIENT_SECRET"),
            (Some(oidc), Some(syncer)) => {
                let verifier = OidcVerifier::new(oidc.jwks_url, oidc.audience, oidc.invoker, reqwest::Client::new());
                SyncApi::new(syncer.clone(), verifier)
            }
        };
        let reconcile = match (syncer, reconcile_every) {
            (Some(syncer), Some(every)) => Some((syncer, every)),
            _ => None,
        };
        let writeback = match writeback_token {
            Some(token) => {
                let state = august_ingest::writeback::WritebackState::load(pool.clone(), token).await?;
                tracing::info!("Coda write-back on: PATCH /api/intake, /api/tasks, /api/prior-auth");
                Some(august_ingest::writeback::router(state))
            }
            None => {
                tracing::info!("Coda write-back off (CODA_WRITEBACK_TOKEN is not set)");
                None
            }
        };
        let state = IngestState { pool, drchrono_secret, deepcura_secret };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ConfigError(august_schema::SettingError::new("AUGUST_HTTP_ADDR", e.to_string())))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "webhooks listening");
        let mut router = app(state).merge(sync_api::routes(sync));
        if let Some(writeback) = writeback {
            router = router.merge(writeback);
        }
        Ok(Self { addr, listener, router, limits, reconcile })
    }

    /// Serves until `stop` resolves; requests in flight then finish (each has 10 s at most).
    /// With DrChrono credentials and `AUGUST_RECONCILE_SECS`, reconciliation passes run
    /// meanwhile.
    pub async fn serve_until(self, stop: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let stopped = CancellationToken::new();
        let reconciling = self.reconcile.map(|(syncer, every)| {
            tracing::info!(every_secs = every.as_secs(), "DrChrono reconciliation on");
            tokio::spawn(super::sync::reconcile_until(syncer, every, stopped.clone()))
        });
        let signal = stopped.clone();
        let served = august_ingest::server::serve(self.listener, self.router, self.limits, async move {
            stop.await;
            signal.cancel();
        })
        .await;
        stopped.cancel();
        if let Some(reconciling) = reconciling {
            let _ = reconciling.await;
        }
        served?;
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
