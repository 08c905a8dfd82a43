//! `august replicate`: cdc → dataflow → sinks, durable LSNs flowing back to the slot.
//!
//! SIGTERM or Ctrl-C: the change stream stops taking changes; the dataflow drains what it
//! holds; the sinks finish their writes (the Coda sink for a bounded time); the slot is
//! confirmed up to what every sink made durable; exit 0. Whatever was not durable is read
//! again on the next start.
//!
//! Multi-process dataflow: run the same command on every host with `--process I --processes N
//! --hostfile F` (F: one `host:port` per line, process 0 first). Process 0 reads the change
//! stream and writes the sinks; the others only compute.
//!
//! Process 0 also runs the audit housekeeping, as `serve` does (the chain-head log, the daily
//! retention job: [`super::retention::spawn_housekeeping`]).

use std::path::PathBuf;

use august_dataflow::DataflowConfig;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::pipeline::Pipeline;
use crate::settings::Sources;
use crate::ConfigError;

/// How `august replicate` runs.
#[derive(Debug, clap::Args)]
pub struct ReplicateArgs {
    /// Dataflow worker threads in this process.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
    /// This process's index in a multi-process dataflow.
    #[arg(long, requires = "processes")]
    process: Option<usize>,
    /// How many processes the dataflow spans.
    #[arg(long, requires = "hostfile")]
    processes: Option<usize>,
    /// File with one `host:port` per process.
    #[arg(long, value_name = "FILE")]
    hostfile: Option<PathBuf>,
    /// Drop and recreate the replication slot (after it was lost), then copy every table again.
    #[arg(long)]
    pub resnapshot: bool,
}

impl Default for ReplicateArgs {
    /// One worker, one process, no resnapshot.
    fn default() -> Self {
        Self { workers: 1, process: None, processes: None, hostfile: None, resnapshot: false }
    }
}

impl ReplicateArgs {
    /// The dataflow configuration the flags describe.
    pub fn dataflow(&self) -> anyhow::Result<DataflowConfig> {
        let cluster = match (self.process, self.processes, &self.hostfile) {
            (Some(process), Some(processes), Some(file)) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| ConfigError(august_schema::SettingError::new("--hostfile", e.to_string())))?;
                let hosts: Vec<String> =
                    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
                if hosts.len() != processes || process >= processes {
                    return Err(ConfigError(august_schema::SettingError::new(
                        "--hostfile",
                        format!("lists {} hosts for {processes} processes", hosts.len()),
                    ))
                    .into());
                }
                Some((process, hosts))
            }
            (None, None, None) => None,
            _ => {
                return Err(ConfigError(august_schema::SettingError::new(
                    "--process",
                    "needs --processes and --hostfile",
                ))
                .into())
            }
        };
        Ok(DataflowConfig { workers: self.workers.into(), cluster, ..DataflowConfig::default() })
    }
}

/// Runs until SIGTERM or Ctrl-C (see [`crate::pipeline`] for the order of a stop); serves
/// `GET /metrics` on `AUGUST_METRICS_ADDR` meanwhile (bound once the settings are checked, so
/// it is up during the initial copy).
pub async fn run(sources: &Sources, args: ReplicateArgs) -> anyhow::Result<()> {
    let dataflow_config = args.dataflow()?;
    if dataflow_config.cluster.as_ref().is_some_and(|(process, _)| *process > 0) {
        return compute_only(dataflow_config).await;
    }
    sources.database().map_err(ConfigError)?;
    sources.cdc().map_err(ConfigError)?;
    sources.coda().map_err(ConfigError)?;
    let stop = CancellationToken::new();
    let recorder = crate::metrics::install()?;
    let (_, metrics) = crate::metrics::serve_from(sources, recorder.clone(), stop.clone().cancelled_owned()).await?;
    let started = Pipeline::start(sources, dataflow_config, args.resnapshot, recorder).await;
    let housekeeping = super::retention::spawn_housekeeping(sources)?;
    let result = match started {
        Ok(pipeline) => {
            tracing::info!("replicating; stop with SIGTERM or Ctrl-C");
            pipeline.run_until(crate::shutdown_signal()).await
        }
        Err(e) => Err(e),
    };
    housekeeping.iter().for_each(tokio::task::JoinHandle::abort);
    stop.cancel();
    let _ = metrics.await;
    result
}

/// A process other than 0 of a multi-process dataflow: computes its share until stopped.
async fn compute_only(config: DataflowConfig) -> anyhow::Result<()> {
    let (events, events_rx) = mpsc::channel(1);
    let (output_tx, _output) = mpsc::channel(1);
    let dataflow = tokio::task::spawn_blocking(move || august_dataflow::spawn(&config, events_rx, output_tx)).await??;
    crate::shutdown_signal().await;
    drop(events);
    tokio::task::spawn_blocking(move || dataflow.join()).await??;
    Ok(())
}
