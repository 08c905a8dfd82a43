//! `august demo`: the whole pipeline with no configuration, accounts or servers to set up.
//!
//! It starts a private PostgreSQL from the installed binaries (data in `--dir`, reused on the
//! next run) and migrates it; serves the Coda emulator with the tables of the bundled demo
//! mapping (`examples/demo-mapping.toml`, every view) and the DrChrono emulator with a
//! synthetic practice; backfills that practice through the real pull sync (as a clinic's
//! cut-over does); runs `serve` (webhooks + replication + 15-minute reconciliation, here every
//! minute) against all three, with a write-back token, the emulator's automations pointed at
//! its write-back endpoints; and plays a synthetic clinic through the real webhook endpoints at
//! a steady rate ([`clinic`]), its staff working in the Coda tables ([`staff`]), with one live
//! status line ([`status`]); the first line it prints is the URL of August's status page
//! (`crate::status`). Ctrl-C or SIGTERM stops the clinic, then `serve` cleanly, then Postgres:
//! nothing it started keeps running (the emulator and `serve` live in this process; Postgres
//! also stops if the process is killed).

pub mod clinic;
pub mod staff;
pub mod status;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use august_emulators::coda::{self as coda_emulator, EmulatorConfig};
use august_emulators::drchrono::{self as drchrono_emulator, DrChronoConfig};
use august_sinks::coda::mapping::Mapping;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::commands::coda_emulator::{emulated_doc, Automations};
use crate::commands::replicate::ReplicateArgs;
use crate::commands::serve::Serving;
use crate::settings::Sources;

/// The bundled mapping: every view, one emulated Coda table each.
pub const MAPPING: &str = include_str!("../../examples/demo-mapping.toml");

/// How the demo runs.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Folder for the demo's private PostgreSQL (kept for the next run).
    #[arg(long, value_name = "DIR", default_value = ".august/demo")]
    dir: PathBuf,
    /// Events per second the synthetic clinic sends (webhooks and staff edits).
    #[arg(long, default_value_t = 2.0, value_parser = rate)]
    rate: f64,
    /// Port of August's webhook endpoints and /health (0: any free port; a taken default
    /// moves to a free one).
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// Port of August's /metrics and /status page (0: any free port; a taken default moves to
    /// a free one).
    #[arg(long, default_value_t = 9464)]
    metrics_port: u16,
    /// Port of the Coda emulator (0: any free port; a taken default moves to a free one).
    #[arg(long, default_value_t = 8090)]
    coda_port: u16,
    /// Port of the DrChrono emulator (0: any free port; a taken default moves to a free one).
    #[arg(long, default_value_t = 8091)]
    drchrono_port: u16,
    /// Patients of the synthetic practice in the DrChrono emulator, backfilled at the start.
    #[arg(long, default_value_t = 100)]
    patients: usize,
    /// Let the emulator ignore Coda's quota of 10 writes per 6 s (and August too).
    #[arg(long)]
    no_quota: bool,
    /// Stop by itself after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "SECONDS")]
    stop_after: Option<u64>,
}

fn rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if (0.05..=500.0).contains(&r) => Ok(r),
        _ => Err("must be a number of events per second from 0.05 to 500".into()),
    }
}

/// Runs the demo until Ctrl-C or SIGTERM (or `--stop-after`).
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    // The page to open comes first, before Postgres starts: its port is settled now.
    let metrics = reserve(args.metrics_port, 9464)?;
    eprintln!("august demo: status page: http://{metrics}/status (live once August has started)");
    let (postgres, env) = crate::embedded::start(&args.dir).await?;
    let result = run_on(&args, metrics, env).await;
    eprintln!("august demo: stopping PostgreSQL (its data stays in {})", args.dir.display());
    postgres.stop()?;
    result
}

async fn run_on(args: &DemoArgs, metrics: SocketAddr, mut env: Vec<(String, String)>) -> anyhow::Result<()> {
    let database = env.iter().find(|(k, _)| k == "DATABASE_URL").map(|(_, v)| v.clone()).context("no database")?;
    let pg: tokio_postgres::Config = database.parse()?;
    let mut client = august_schema::connect(&pg).await?;
    let report = august_schema::migrate(&mut client, august_schema::Migration::embedded()).await?;
    drop(client);
    eprintln!("august demo: schema ready ({} migrations applied now)", report.applied.len());

    let mapping = Mapping::parse(MAPPING, "examples/demo-mapping.toml")?;
    let mapping_file = args.dir.join("demo-mapping.toml");
    std::fs::write(&mapping_file, MAPPING).with_context(|| format!("write {}", mapping_file.display()))?;
    let secret = || -> String { hex(rand::rng().random::<[u8; 16]>()) };
    let (token, drchrono_secret, deepcura_secret, writeback) = (secret(), secret(), secret(), secret());
    let http = free_or_any(args.http_port, 8080);
    // The SQL endpoint with one login of the demo's own (demo data only: its password is shown).
    let (sql, sql_password, sql_users) = (free_or_any(6875, 6875), secret(), args.dir.join("demo-sql-users.toml"));
    august_sql::Users::add(&sql_users, "demo", august_sql::Role::Admin, &sql_password)?;
    // The API token's owner is no staff member: an automation fired by August's own writes is
    // refused (and the row refreshed from Postgres), never taken for a staff edit.
    let emulator = EmulatorConfig {
        token: token.clone(),
        quota: !args.no_quota,
        api_user: "coda-api@clinic.example".into(),
        ..EmulatorConfig::default()
    };
    let automations = Automations { token: writeback.clone(), base: Some(format!("http://{http}")) };
    let doc = emulated_doc(&mapping, Some(&automations));
    let emulator = coda_emulator::serve(free_or_any(args.coda_port, 8090), doc, emulator).await?;

    // A fresh refresh token each run: the emulator starts anew, and a new seed replaces the
    // token the last run's emulator had rotated.
    let drchrono = DrChronoConfig { patients: args.patients, refresh_token: secret(), ..DrChronoConfig::default() };
    let (client_id, client_secret, refresh_token) =
        (drchrono.client_id.clone(), drchrono.client_secret.clone(), drchrono.refresh_token.clone());
    let drchrono = drchrono_emulator::serve(free_or_any(args.drchrono_port, 8091), drchrono).await?;

    let settings = [
        ("DRCHRONO_API_BASE", drchrono.base_url()),
        ("DRCHRONO_CLIENT_ID", client_id),
        ("DRCHRONO_CLIENT_SECRET", client_secret),
        ("DRCHRONO_REFRESH_TOKEN", refresh_token),
        // Demo data only, kept in the demo's folder: a fixed key is fine here, never elsewhere.
        ("DRCHRONO_TOKEN_KEY", "august demo token key (demo data only)".into()),
        ("AUGUST_RECONCILE_SECS", "60".into()),
        ("AUGUST_HTTP_ADDR", http.to_string()),
        ("AUGUST_METRICS_ADDR", metrics.to_string()),
        ("AUGUST_SQL_ADDR", sql.to_string()),
        ("AUGUST_SQL_USERS_FILE", sql_users.display().to_string()),
        ("DRCHRONO_WEBHOOK_SECRET", drchrono_secret.clone()),
        ("DEEPCURA_SHARED_SECRET", deepcura_secret.clone()),
        ("AUGUST_CODA_MAPPING", mapping_file.display().to_string()),
        ("CODA_API_BASE", emulator.base_url()),
        ("CODA_API_TOKEN", token),
        ("CODA_WRITEBACK_TOKEN", writeback),
        ("AUGUST_SLOT", "august_demo".into()),
        ("AUGUST_HEARTBEAT_SECS", "1".into()),
    ];
    env.retain(|(k, _)| !settings.iter().any(|(s, _)| s == k) && k != "PORT");
    env.extend(settings.into_iter().map(|(k, v)| (k.to_string(), v)));
    if args.no_quota {
        env.push(("AUGUST_CODA_WRITES_PER_6S".into(), "6000".into()));
        env.push(("AUGUST_CODA_READS_PER_6S".into(), "60000".into()));
    }
    let sources = Sources::load(None, env).map_err(crate::ConfigError)?;
    backfill(&sources, &pg).await?;
    let serving = Serving::start(&sources, &ReplicateArgs::default()).await?;
    let base = format!("http://{}", serving.addr);
    emulator.point_automations_at(&base); // the port August got, when it asked for any
    let (metrics, status) =
        (format!("http://{}/metrics", serving.metrics_addr), format!("http://{}/status", serving.metrics_addr));
    eprintln!(
        "august demo: a synthetic clinic sends {} events/s to August; Ctrl-C stops everything.\n  \
         Coda emulator (the staff's tables):  {}/\n  \
         DrChrono emulator (the practice):    {}/api/patients\n  \
         August health:                       {base}/health\n  \
         August status page:                  {status}\n  \
         August metrics:                      {metrics}\n  \
         August SQL (the live views):         psql \"host={sql_host} port={sql_port} user=demo dbname=august\" \
         (password {sql_password})\n  \
         PostgreSQL:                          {database}",
        args.rate,
        emulator.base_url(),
        drchrono.base_url(),
        sql_host = serving.stats.sql_addr.map_or("-".into(), |a| a.ip().to_string()),
        sql_port = serving.stats.sql_addr.map_or(0, |a| a.port()),
    );

    let stop = CancellationToken::new();
    let clinic_stats = Arc::new(clinic::ClinicStats::default());
    let to = clinic::Endpoints { base, drchrono_secret, deepcura_secret };
    let staff = staff::Staff::new(&emulator.base_url(), &mapping)?;
    let clinic = clinic::Clinic::open(to, &pg, clinic_stats.clone(), staff).await?;
    let playing = tokio::spawn(clinic.play(args.rate, stop.clone()));
    let coda = serving.stats.coda.clone().context("the demo maps every view to Coda")?;
    let quota = (!args.no_quota).then_some(10);
    let writebacks = emulator.stats().automations.clone();
    let counters = status::Counters { coda, clinic: clinic_stats, writebacks, quota };
    let showing = tokio::spawn(status::show(counters, stop.clone()));

    let stop_after = args.stop_after.map(Duration::from_secs);
    let until = async move {
        match stop_after {
            Some(after) => tokio::select! { _ = crate::shutdown_signal() => {}, _ = tokio::time::sleep(after) => {} },
            None => crate::shutdown_signal().await,
        }
        stop.cancel();
        let _ = playing.await;
        let _ = showing.await;
        eprintln!("august demo: stopping: the clinic has stopped; August finishes its writes");
    };
    serving.run_until(until).await?;
    eprintln!("august demo: August stopped cleanly");
    Ok(())
}

/// Pulls the DrChrono emulator's practice into Postgres before going live, as a cut-over does.
async fn backfill(sources: &Sources, pg: &tokio_postgres::Config) -> anyhow::Result<()> {
    use august_ingest::drchrono::{budget::Priority, feeds::FEEDS, pull};
    let started = std::time::Instant::now();
    let pool = august_schema::connect_pool(&august_schema::PoolSettings::default(), pg.clone()).await?;
    let settings = sources.drchrono().map_err(crate::ConfigError)?;
    let syncer = crate::commands::sync::syncer(settings, &pool, pg).await?.context("the demo configures DrChrono")?;
    let options = pull::PullOptions { full: false, since: None, priority: Priority::Manual };
    let run = syncer.claim(FEEDS.iter().collect(), options, "demo_backfill").await?;
    let summary = run.run(tokio::sync::watch::channel(pull::Progress::default()).0).await;
    if let Some(error) = summary.error {
        anyhow::bail!("the backfill from the DrChrono emulator failed: {error}");
    }
    let c = summary.counts;
    eprintln!(
        "august demo: backfilled the practice from DrChrono in {:.1} s: {} pages, {} objects ({} new, {} unchanged)",
        started.elapsed().as_secs_f64(),
        c.pages,
        c.fetched,
        c.inserted,
        c.unchanged
    );
    Ok(())
}

/// `port` on loopback if it is free (or 0); a taken default moves to any free port.
fn free_or_any(port: u16, default: u16) -> SocketAddr {
    let wanted = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    if port == default && std::net::TcpListener::bind(wanted).is_err() {
        return SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    }
    wanted
}

/// Like [`free_or_any`], but with the port settled now (asked of the system, then released
/// for `serve` to bind), so the status page's URL can be printed before anything starts.
fn reserve(port: u16, default: u16) -> anyhow::Result<SocketAddr> {
    let wanted = free_or_any(port, default);
    if wanted.port() != 0 {
        return Ok(wanted);
    }
    let any = std::net::TcpListener::bind(wanted).context("find a free port for the metrics")?;
    Ok(any.local_addr()?)
}

fn hex(bytes: [u8; 16]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
