//! Sync runs: one `sync_log` row each (its id is the run id, its counts the run's), over a set
//! of feeds that no other run may touch meanwhile. Each feed is claimed with a session-level
//! advisory lock on a connection of the run's own, so the claim holds across processes and ends
//! with the run, even a killed one. A request for a feed already claimed is refused with the id
//! of the run that holds it (`/sync/*` answers 409).
//!
//! The reconciliation pass ([`Syncer::reconcile`]) is an incremental run of every feed under
//! the scheduled budget: the feeds filtered by `since` first, then providers, then the lists
//! with no change filter (medications, problems, allergies), which get only their share of what
//! is left in this window (what is left, divided by the passes still to come before the window
//! resets), so a large practice's lists are covered in turn over the hour and resume where the
//! last pass stopped.

use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

use august_schema::{DbError, ErrorKind, PgPool};

use super::budget::{pool_error, Priority};
use super::client::DrChronoClient;
use super::error::DrChronoError;
use super::feeds::{Feed, FEEDS};
use super::pull::{Counts, FeedEnd, Progress, PullOptions, Puller};

/// Source of every sync run's `sync_log` row.
pub const SOURCE: &str = "drchrono_sync";

/// Why a run did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Another run holds one of the feeds.
    #[error("a sync of {feed} is already running")]
    AlreadyRunning {
        /// The feed.
        feed: &'static str,
        /// The run that holds it, when known.
        run_id: Option<Uuid>,
    },
    /// A reconciliation pass started elsewhere less than one interval ago.
    #[error("a reconciliation pass ran recently")]
    NotDue,
    /// The system of record failed.
    #[error(transparent)]
    Failed(#[from] DrChronoError),
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run.
    pub run_id: Uuid,
    /// `succeeded`, `partial` or `failed`.
    pub status: &'static str,
    /// Its counts.
    pub counts: Counts,
    /// The first error, if any (never PHI).
    pub error: Option<String>,
}

/// Starts and runs syncs.
#[derive(Clone)]
pub struct Syncer {
    client: DrChronoClient,
    pool: PgPool,
    pg: tokio_postgres::Config,
}

/// A run whose feeds are claimed; [`ClaimedRun::run`] pulls them.
pub struct ClaimedRun {
    syncer: Syncer,
    /// The run's id.
    pub id: Uuid,
    feeds: Vec<&'static Feed>,
    options: PullOptions,
    reconcile_every: Option<Duration>,
    _claims: tokio_postgres::Client,
}

impl Syncer {
    /// A syncer over `pool`; `pg` opens each run's own claim connection.
    pub fn new(client: DrChronoClient, pool: PgPool, pg: tokio_postgres::Config) -> Self {
        Self { client, pool, pg }
    }

    /// The client.
    pub fn client(&self) -> &DrChronoClient {
        &self.client
    }

    /// The system of record.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Claims `feeds` and records the run as started (`event` names it in `sync_log`).
    pub async fn claim(
        &self,
        feeds: Vec<&'static Feed>,
        options: PullOptions,
        event: &str,
    ) -> Result<ClaimedRun, StartError> {
        self.claim_inner(feeds, options, event, None).await
    }

    async fn claim_inner(
        &self,
        feeds: Vec<&'static Feed>,
        options: PullOptions,
        event: &str,
        reconcile_every: Option<Duration>,
    ) -> Result<ClaimedRun, StartError> {
        let claims = august_schema::connect(&self.pg).await.map_err(DrChronoError::Db)?;
        for feed in &feeds {
            let got: bool = claims
                .query_one("SELECT pg_try_advisory_lock(hashtext('august.drchrono_sync'), hashtext($1))", &[&feed.name])
                .await
                .map_err(|e| DrChronoError::Db(DbError::new("claim a DrChrono feed", e)))?
                .get(0);
            if !got {
                let run_id = self.running(feed.name).await.ok().flatten();
                return Err(StartError::AlreadyRunning { feed: feed.name, run_id });
            }
        }
        let names: Vec<&str> = feeds.iter().map(|f| f.name).collect();
        let client = self.pool.get().await.map_err(pool_error)?;
        if let Some(every) = reconcile_every {
            // Several instances each reconcile on their own clock: together, not more often
            // than one pass per interval (less a little, for timer drift).
            let due: bool = client
                .query_one(
                    "SELECT coalesce(max(started_at), '-infinity') < now() - make_interval(secs => $2)
                       FROM sync_log WHERE source = $1 AND event = 'reconcile'",
                    &[&SOURCE, &(every.as_secs_f64() * 0.9)],
                )
                .await
                .map_err(|e| DrChronoError::Db(DbError::new("find the last reconciliation pass", e)))?
                .get(0);
            if !due {
                return Err(StartError::NotDue);
            }
        }
        // Runs that still say `started` on these feeds were killed: their claims are gone.
        client
            .execute(
                "UPDATE sync_log SET status = 'failed', error_code = 'abandoned', finished_at = now()
                  WHERE source = $1 AND status = 'started'
                    AND id IN (SELECT run_id FROM drchrono_sync_state WHERE resource = ANY($2))",
                &[&SOURCE, &names],
            )
            .await
            .map_err(|e| DrChronoError::Db(DbError::new("close abandoned sync runs", e)))?;
        let id: Uuid = client
            .query_one(
                "INSERT INTO sync_log (source, event, status, resources) VALUES ($1, $2, 'started', $3) RETURNING id",
                &[&SOURCE, &event, &names],
            )
            .await
            .map_err(|e| DrChronoError::Db(DbError::new("record a sync run", e)))?
            .get(0);
        client
            .execute(
                "INSERT INTO drchrono_sync_state AS s (resource, run_id) SELECT unnest($1::text[]), $2
                 ON CONFLICT (resource) DO UPDATE SET run_id = EXCLUDED.run_id",
                &[&names, &id],
            )
            .await
            .map_err(|e| DrChronoError::Db(DbError::new("mark the feeds' run", e)))?;
        Ok(ClaimedRun { syncer: self.clone(), id, feeds, options, reconcile_every, _claims: claims })
    }

    /// The run that holds `feed` now, if one does.
    pub async fn running(&self, feed: &str) -> Result<Option<Uuid>, DrChronoError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_opt(
                "SELECT s.run_id FROM drchrono_sync_state s JOIN sync_log l ON l.id = s.run_id
                  WHERE s.resource = $1 AND l.status = 'started'",
                &[&feed],
            )
            .await
            .map_err(|e| DbError::new("find the running sync", e))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// One reconciliation pass, if no other process is running one; `every` is the time
    /// between passes (it sizes the unfiltered lists' share of the window).
    pub async fn reconcile(&self, every: Duration) -> Result<Option<RunSummary>, DrChronoError> {
        let options = PullOptions { full: false, since: None, priority: Priority::Scheduled };
        match self.claim_inner(FEEDS.iter().collect(), options, "reconcile", Some(every)).await {
            Ok(run) => Ok(Some(run.run(watch::channel(Progress::default()).0).await)),
            Err(StartError::AlreadyRunning { feed, .. }) => {
                tracing::info!(feed, "a sync is running elsewhere; this reconciliation pass is skipped");
                Ok(None)
            }
            Err(StartError::NotDue) => Ok(None),
            Err(StartError::Failed(e)) => Err(e),
        }
    }
}

impl ClaimedRun {
    /// Pulls every claimed feed in order, then records how the run ended. Progress goes to
    /// `progress` after every page.
    pub async fn run(self, progress: watch::Sender<Progress>) -> RunSummary {
        let puller = Puller {
            client: &self.syncer.client,
            pool: &self.syncer.pool,
            run_id: self.id,
            options: self.options,
            progress: &progress,
        };
        let mut counts = Counts::default();
        let mut status = "succeeded";
        let mut first_error: Option<DrChronoError> = None;
        let mut share: Option<u32> = None;
        for feed in &self.feeds {
            if feed.unfiltered() && share.is_none() {
                share = self.unfiltered_share().await;
            }
            let before = counts.pages;
            let result = puller.pull(feed, share.filter(|_| feed.unfiltered()), &mut counts).await;
            if let Some(left) = share.as_mut().filter(|_| feed.unfiltered()) {
                *left = left.saturating_sub(counts.pages - before);
            }
            count_run(feed, &result);
            match result {
                Ok(FeedEnd::Finished) => {}
                Ok(FeedEnd::Stopped) => status = "partial",
                Err(e) => {
                    self.feed_failed(feed, &e).await;
                    let stop_all = !matches!(e, DrChronoError::Refused { .. } | DrChronoError::BadPage { .. });
                    if matches!(e, DrChronoError::BudgetSpent { .. }) {
                        status = "partial";
                    } else {
                        status = "failed";
                        tracing::error!(feed = feed.name, error = %e, "DrChrono pull failed");
                    }
                    first_error.get_or_insert(e);
                    if stop_all {
                        break;
                    }
                }
            }
        }
        let error = first_error.as_ref().map(ToString::to_string);
        let code = first_error.as_ref().map(DrChronoError::code);
        if let Err(e) = self.record_end(status, code, error.as_deref()).await {
            tracing::error!(error = %e, run_id = %self.id, "could not record the end of a sync run");
        }
        if first_error.as_ref().is_some_and(|e| e.kind() == ErrorKind::Retryable) {
            tracing::warn!(run_id = %self.id, "sync run stopped early; the next run resumes where it stopped");
        }
        self.syncer.client.flush_access_log().await;
        if self.reconcile_every.is_some() && status != "failed" {
            let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            metrics::gauge!(august_schema::metrics::DRCHRONO_LAST_RECONCILE.name).set(now);
        }
        RunSummary { run_id: self.id, status, counts, error }
    }

    /// Calls the unfiltered lists may spend in this pass (a reconciliation only).
    async fn unfiltered_share(&self) -> Option<u32> {
        let every = self.reconcile_every?;
        let (available, left) = self.syncer.client.budget().available(Priority::Scheduled).await.ok()?;
        let passes_left = (left.as_secs_f64() / every.as_secs_f64().max(1.0)).ceil().max(1.0);
        Some((f64::from(available) / passes_left).floor() as u32)
    }

    async fn feed_failed(&self, feed: &Feed, error: &DrChronoError) {
        if let Ok(client) = self.syncer.pool.get().await {
            let _ = client
                .execute(
                    "UPDATE drchrono_sync_state SET last_error = $2 WHERE resource = $1",
                    &[&feed.name, &error.to_string()],
                )
                .await;
        }
    }

    async fn record_end(&self, status: &str, code: Option<&str>, message: Option<&str>) -> Result<(), DrChronoError> {
        let client = self.syncer.pool.get().await.map_err(pool_error)?;
        client
            .execute(
                "UPDATE sync_log SET status = $2, error_code = $3, error_message = $4, finished_at = now() WHERE id = $1",
                &[&self.id, &status, &code, &message],
            )
            .await
            .map_err(|e| DbError::new("record the end of a sync run", e))?;
        Ok(())
    }
}

/// Counts one feed's pull in `august_drchrono_sync_runs_total{feed,outcome}`: `ok`, `partial`
/// (stopped by the budget or a page limit), `auth_error` (DrChrono refused our tokens) or
/// `failed`.
fn count_run(feed: &Feed, result: &Result<FeedEnd, DrChronoError>) {
    let outcome = match result {
        Ok(FeedEnd::Finished) => "ok",
        Ok(FeedEnd::Stopped) | Err(DrChronoError::BudgetSpent { .. }) => "partial",
        Err(
            DrChronoError::Reauthorise(_) | DrChronoError::BadTokenKey | DrChronoError::Refused { status: 401, .. },
        ) => "auth_error",
        Err(_) => "failed",
    };
    let name = august_schema::metrics::DRCHRONO_SYNC_RUNS.name;
    metrics::counter!(name, "feed" => feed.name, "outcome" => outcome).increment(1);
}
