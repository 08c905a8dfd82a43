//! `august replicate`: cdc → dataflow → sinks, durable LSNs flowing back to the slot.
//!
//! SIGTERM or Ctrl-C: the change stream stops taking changes and confirms what is durable;
//! the dataflow drains what it holds; the sinks finish their writes; exit 0. Whatever was not
//! durable at the last confirmation is read again on the next start.
//!
//! Multi-process dataflow: run the same command on every host with `--process I --processes N
//! --hostfile F` (F: one `host:port` per line, process 0 first). Process 0 reads the change
//! stream and writes the sinks; the others only compute.

use std::path::PathBuf;

use anyhow::Context;
use august_cdc::{CdcConfig, Lsn};
use august_dataflow::DataflowConfig;
use std::sync::Arc;

use august_sinks::coda::access_log::AccessLog;
use august_sinks::coda::check_mapping;
use august_sinks::coda::client::CodaClient;
use august_sinks::coda::writer::{write_to_coda, WriterStats};
use august_sinks::durability::{fan_out, min_durable};
use august_sinks::link_writeback::{write_links, LinkStats};
use tokio::sync::{mpsc, watch};

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
    resnapshot: bool,
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
        Ok(DataflowConfig { workers: self.workers.into(), cluster })
    }
}

/// Runs until SIGTERM or Ctrl-C.
pub async fn run(sources: &Sources, args: ReplicateArgs) -> anyhow::Result<()> {
    let dataflow_config = args.dataflow()?;
    if dataflow_config.cluster.as_ref().is_some_and(|(process, _)| *process > 0) {
        return compute_only(dataflow_config).await;
    }
    let (_, pg) = sources.database().map_err(ConfigError)?;
    let cdc = CdcConfig { resnapshot: args.resnapshot, ..sources.cdc().map_err(ConfigError)? };
    let coda = match sources.coda().map_err(ConfigError)? {
        Some((mapping, settings, writer)) => {
            let client = CodaClient::new(settings, AccessLog::start("coda", pg.clone()))?;
            check_mapping(&client, &mapping).await.map_err(|e| match e {
                august_sinks::SinkError::Mapping(m) => anyhow::Error::from(ConfigError(
                    august_schema::SettingError::new("AUGUST_CODA_MAPPING", m.to_string()),
                )),
                other => other.into(),
            })?;
            Some((mapping, client, writer))
        }
        None => {
            tracing::warn!("AUGUST_CODA_MAPPING is not set: no Coda table will be written");
            None
        }
    };

    let (link_durable, link_watch) = watch::channel(Lsn::ZERO);
    let mut durables = vec![link_watch];
    let mut sink_outputs = Vec::new();
    let mut coda_task = None;
    if let Some((mapping, client, writer)) = coda {
        let (coda_durable, coda_watch) = watch::channel(Lsn::ZERO);
        let (coda_tx, coda_output) = mpsc::unbounded_channel();
        durables.push(coda_watch);
        sink_outputs.push(coda_tx);
        coda_task = Some(tokio::spawn(write_to_coda(
            pg.clone(),
            client,
            mapping,
            writer,
            coda_output,
            coda_durable,
            Arc::new(WriterStats::default()),
        )));
    }
    let durable = min_durable(durables);
    let stream = august_cdc::start(pg.clone(), cdc, durable);
    let (events, events_rx) = mpsc::channel(4096);
    let (output_tx, output) = mpsc::unbounded_channel();
    let dataflow =
        tokio::task::spawn_blocking(move || august_dataflow::spawn(&dataflow_config, events_rx, output_tx)).await??;
    let (link_tx, link_output) = mpsc::unbounded_channel();
    sink_outputs.push(link_tx);
    tokio::spawn(fan_out(output, sink_outputs));
    let links = tokio::spawn(write_links(pg, link_output, link_durable, std::sync::Arc::new(LinkStats::default())));
    tracing::info!("replicating; stop with SIGTERM or Ctrl-C");

    let streamed = august_dataflow::feed(stream, events, crate::shutdown_signal()).await;
    tokio::task::spawn_blocking(move || dataflow.join()).await?.context("the dataflow failed")?;
    links.await?.context("the link write-back failed")?;
    if let Some(task) = coda_task {
        task.await?.context("the Coda sink failed")?;
    }
    streamed.context("the replication stream failed")?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// A process other than 0 of a multi-process dataflow: computes its share until stopped.
async fn compute_only(config: DataflowConfig) -> anyhow::Result<()> {
    let (events, events_rx) = mpsc::channel(1);
    let (output_tx, _output) = mpsc::unbounded_channel();
    let dataflow = tokio::task::spawn_blocking(move || august_dataflow::spawn(&config, events_rx, output_tx)).await??;
    crate::shutdown_signal().await;
    drop(events);
    tokio::task::spawn_blocking(move || dataflow.join()).await??;
    Ok(())
}
