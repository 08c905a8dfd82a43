//! `august sync [RESOURCE…|all] [--full] [--since DATE]`: DrChrono pull sync from the command
//! line, for the initial backfill and for people. The same pulls as `/sync/*` and the
//! reconciliation pass, under the whole hourly budget (a spent hour is waited out, not fatal),
//! with a progress bar: feed, pages, rows, calls left this hour. Also where the binary builds
//! the [`Syncer`] that `serve` and `ingest` use, and the reconciliation loop.

use std::time::Duration;

use august_ingest::drchrono::budget::Priority;
use august_ingest::drchrono::feeds::{feeds_for, Feed, RESOURCES};
use august_ingest::drchrono::pull::{Progress, PullOptions};
use august_ingest::drchrono::runs::{StartError, Syncer};
use august_ingest::drchrono::{DrChronoClient, DrChronoSettings};
use august_schema::{PgPool, SettingError};
use tokio_util::sync::CancellationToken;

use crate::settings::Sources;
use crate::ConfigError;

/// What to pull.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Resources to pull (patients, providers, appointments, clinical-notes, medications,
    /// problems, allergies, line-items), or `all`.
    #[arg(value_name = "RESOURCE", default_value = "all")]
    resources: Vec<String>,
    /// Ignore the watermarks and unfinished passes: read every list whole.
    #[arg(long)]
    full: bool,
    /// Pull what changed on or after this day (YYYY-MM-DD), whatever the watermarks say.
    #[arg(long, value_name = "DATE")]
    since: Option<chrono::NaiveDate>,
    /// No progress bar (one line per feed instead).
    #[arg(long)]
    quiet: bool,
}

/// The syncer over `pool`, when DrChrono credentials are configured (`settings`, from
/// [`Sources::drchrono`], read before anything connects).
pub async fn syncer(
    settings: Option<DrChronoSettings>,
    pool: &PgPool,
    pg: &tokio_postgres::Config,
) -> anyhow::Result<Option<Syncer>> {
    let Some(settings) = settings else { return Ok(None) };
    let client = DrChronoClient::connect(&settings, pool.clone(), pg.clone()).await?;
    Ok(Some(Syncer::new(client, pool.clone(), pg.clone())))
}

/// The feeds of the resources named on the command line; an unknown name is a usage error
/// (exit 2) that lists the known ones.
pub fn resources(names: &[String]) -> Result<Vec<&'static Feed>, ConfigError> {
    feeds_for(names.iter().map(String::as_str)).map_err(|unknown| {
        let known: Vec<&str> = RESOURCES.iter().map(|(n, _)| *n).collect();
        ConfigError(SettingError::new(
            "RESOURCE",
            format!("`{unknown}` is not a resource (one of {}, or all)", known.join(", ")),
        ))
    })
}

/// The syncer, for a command that cannot work without DrChrono. Every setting is checked
/// before anything connects.
pub async fn connect(sources: &Sources, command: &str) -> anyhow::Result<Syncer> {
    let why = format!("is not set ({command} needs the DrChrono credentials)");
    let drchrono = sources
        .drchrono()
        .map_err(ConfigError)?
        .ok_or_else(|| ConfigError(SettingError::new("DRCHRONO_CLIENT_ID", why)))?;
    let (settings, pg) = sources.database().map_err(ConfigError)?;
    let pool = august_schema::connect_pool(&settings.pool, pg.clone()).await?;
    let client = DrChronoClient::connect(&drchrono, pool.clone(), pg.clone()).await?;
    Ok(Syncer::new(client, pool, pg))
}

/// Runs an incremental pass of every feed every `every` until `stop`; one process at a time
/// (the feeds' claims), and not more often than `every` across processes.
pub async fn reconcile_until(syncer: Syncer, every: Duration, stop: CancellationToken) {
    let first = tokio::time::Instant::now() + every.min(Duration::from_secs(10));
    let mut ticks = tokio::time::interval_at(first, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            result = syncer.reconcile(every) => match result {
                Ok(Some(run)) => tracing::info!(
                    run_id = %run.run_id, status = run.status, fetched = run.counts.fetched,
                    inserted = run.counts.inserted, updated = run.counts.updated, "reconciliation pass ended"
                ),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "reconciliation pass could not run"),
            },
        }
    }
}

/// Pulls, with a progress bar; exit 1 when the run failed.
pub async fn run(sources: &Sources, args: SyncArgs) -> anyhow::Result<()> {
    let feeds = resources(&args.resources)?;
    let syncer = connect(sources, "august sync").await?;
    let options = PullOptions { full: args.full, since: args.since, priority: Priority::Manual };
    let event = if args.full { "sync_full" } else { "sync" };
    let run = match syncer.claim(feeds, options, event).await {
        Ok(run) => run,
        Err(StartError::AlreadyRunning { feed, run_id }) => {
            let run = run_id.map(|id| format!(" (run {id})")).unwrap_or_default();
            anyhow::bail!("a sync of {feed} is already running{run}; wait for it to finish")
        }
        Err(e) => return Err(e.into()),
    };
    let (progress, mut watch) = tokio::sync::watch::channel(Progress::default());
    let bar = (!args.quiet).then(progress_bar);
    let shown = bar.clone();
    let show = tokio::spawn(async move {
        let mut feed = "";
        while watch.changed().await.is_ok() {
            let p = watch.borrow_and_update().clone();
            let line = format!(
                "{:<20} pages {:>5} · rows {:>7} (new {}, changed {}, unchanged {}, failed {}) · calls left this hour {}",
                p.feed,
                p.counts.pages,
                p.counts.fetched,
                p.counts.inserted,
                p.counts.updated,
                p.counts.unchanged,
                p.counts.failed,
                p.calls_left.map_or("?".into(), |c| c.to_string())
            );
            match &shown {
                Some(bar) => bar.set_message(line),
                None if p.feed != feed => eprintln!("{line}"),
                None => {}
            }
            feed = p.feed;
        }
    });
    let id = run.id;
    let summary = tokio::select! {
        summary = run.run(progress) => summary,
        _ = crate::shutdown_signal() => anyhow::bail!("stopped; run {id} resumes from its last page with the next sync"),
    };
    let _ = show.await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let c = summary.counts;
    println!(
        "run {}: {} · {} pages · {} rows fetched: {} new, {} changed, {} unchanged, {} failed",
        summary.run_id, summary.status, c.pages, c.fetched, c.inserted, c.updated, c.unchanged, c.failed
    );
    match summary.error {
        Some(error) if summary.status == "failed" => anyhow::bail!("{error}"),
        Some(error) => {
            println!("stopped early: {error}; the next sync resumes where this one stopped");
            Ok(())
        }
        None => Ok(()),
    }
}

fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
