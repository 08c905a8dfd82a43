//! The replication pipeline as `replicate`, `serve` and `demo` run it: cdc → dataflow → sinks
//! (the Coda sink per the mapping file, and the link write-back), with durable LSNs flowing
//! back to the slot.
//!
//! Stopping (SIGTERM, Ctrl-C, or a sink that failed) happens in this order, so nothing is lost
//! and the slot moves as far as is safe:
//! 1. stop taking changes from the stream (the replication session stays open);
//! 2. close the dataflow's input: it emits what it holds for the transactions it has whole;
//! 3. let each sink finish: the link write-back commits, the Coda sink drains its pending
//!    writes for a bounded time; whatever is not durable by then is simply not confirmed;
//! 4. confirm the smallest durable LSN of the sinks to the slot, and end the session.
//!
//! Whatever was not durable is read again at the next start, whose copy and ledger make the
//! rows Coda already holds cost nothing.
//!
//! Memory is bounded end to end: every channel is bounded (events, the dataflow's output, each
//! sink's copy), so a slow sink stops the dataflow, which stops reading the stream, and the
//! slot's lag grows instead of memory; a big transaction goes through the dataflow in chunks
//! of `AUGUST_TRANSACTION_CHUNK_ROWS` (see `august_dataflow::input`).

use std::sync::Arc;

use anyhow::Context;
use august_cdc::{ChangeStream, Event, Lsn, StreamStats};
use august_dataflow::{Dataflow, DataflowConfig};
use august_schema::access_log::AccessLog;
use august_sinks::coda::check_mapping;
use august_sinks::coda::client::CodaClient;
use august_sinks::coda::writer::{write_to_coda, WriterStats};
use august_sinks::durability::{fan_out, min_durable};
use august_sinks::link_writeback::{write_links, LinkStats};
use august_sinks::SinkError;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::settings::Sources;
use crate::ConfigError;

/// The slot to stream from ([`august_cdc::slot::choose_slot`]), before anything is copied; a
/// slot of another database is a config error naming `AUGUST_SLOT`.
async fn choose_slot(pg: &tokio_postgres::Config, configured: Option<&str>) -> anyhow::Result<String> {
    let client = august_schema::connect(pg).await?;
    let slot = august_cdc::slot::choose_slot(&client, configured).await.map_err(|e| match e {
        august_cdc::CdcError::SlotOfAnotherDatabase { .. } => {
            anyhow::Error::from(ConfigError(august_schema::SettingError::new("AUGUST_SLOT", e.to_string())))
        }
        other => other.into(),
    })?;
    tracing::info!(slot, "replication slot");
    Ok(slot)
}

/// What a running pipeline counts, for status lines and tests.
#[derive(Debug, Clone)]
pub struct PipelineStats {
    /// The change stream's counters.
    pub cdc: Arc<StreamStats>,
    /// The Coda sink's, when a mapping is configured.
    pub coda: Option<Arc<WriterStats>>,
    /// The LSN every sink has made durable.
    pub durable: watch::Receiver<Lsn>,
    /// Where the SQL endpoint listens, when it is on.
    pub sql_addr: Option<std::net::SocketAddr>,
}

type SinkTask = JoinHandle<Result<(), SinkError>>;

/// Outputs in flight on each channel between the dataflow and a sink. Each is at most one
/// chunk of a transaction (or one small transaction), and the sinks collapse what they take
/// per key, so a short buffer costs no throughput while it bounds memory to a few chunks.
pub const OUTPUT_BUFFER: usize = 16;

/// Events in flight between the stream and the dataflow.
const EVENT_BUFFER: usize = 4096;

/// A started pipeline; [`Pipeline::run_until`] runs it to a clean stop.
pub struct Pipeline {
    /// Its counters.
    pub stats: PipelineStats,
    stream: ChangeStream,
    events: mpsc::Sender<Event>,
    dataflow: Dataflow,
    links: SinkTask,
    coda: Option<SinkTask>,
    /// Cancelled when a sink ends on its own, which only a failure makes it do.
    sink_ended: CancellationToken,
    sql: Option<crate::commands::sql::Running>,
}

impl Pipeline {
    /// Checks the settings (and the mapping against Coda), then starts every stage, and the SQL
    /// endpoint over the views (its system tables read `metrics`).
    pub async fn start(
        sources: &Sources,
        dataflow_config: DataflowConfig,
        resnapshot: bool,
        metrics: metrics_exporter_prometheus::PrometheusHandle,
    ) -> anyhow::Result<Self> {
        let (_, pg) = sources.database().map_err(ConfigError)?;
        let transaction_chunk_rows = sources.transaction_chunk_rows().map_err(ConfigError)?;
        let dataflow_config = DataflowConfig { transaction_chunk_rows, ..dataflow_config };
        let mut cdc = august_cdc::CdcConfig { resnapshot, ..sources.cdc().map_err(ConfigError)? };
        cdc.slot = choose_slot(&pg, sources.slot().map_err(ConfigError)?.as_deref()).await?;
        let coda = match sources.coda().map_err(ConfigError)? {
            Some((mapping, settings, writer)) => {
                let client =
                    CodaClient::new(settings, AccessLog::start("coda", august_schema::Actor::CodaSink, pg.clone()))?;
                check_mapping(&client, &mapping).await.map_err(|e| match e {
                    SinkError::Mapping(m) => anyhow::Error::from(ConfigError(august_schema::SettingError::new(
                        "AUGUST_CODA_MAPPING",
                        m.to_string(),
                    ))),
                    other => other.into(),
                })?;
                Some((mapping, client, writer))
            }
            None => {
                tracing::warn!("AUGUST_CODA_MAPPING is not set: no Coda table will be written");
                None
            }
        };
        let sql = crate::commands::sql::start(sources, &pg, metrics, Some(cdc.slot.clone())).await?;
        let sink_ended = CancellationToken::new();
        let watched = |task: JoinHandle<Result<(), SinkError>>| {
            let ended = sink_ended.clone();
            tokio::spawn(async move {
                let result =
                    task.await.unwrap_or_else(|e| Err(SinkError::Shape { view: "sink", message: e.to_string() }));
                ended.cancel();
                result
            })
        };

        let (link_durable, link_watch) = watch::channel(Lsn::ZERO);
        let mut durables = vec![link_watch];
        let (mut sink_outputs, mut coda_task, mut coda_stats) = (Vec::new(), None, None);
        // The SQL endpoint's copy: not a sink, it confirms nothing (see `august_sql::live`).
        let (sql, sql_addr) = match sql {
            Some((running, output)) => {
                sink_outputs.push(output);
                let addr = running.addr;
                (Some(running), Some(addr))
            }
            None => (None, None),
        };
        if let Some((mapping, client, writer)) = coda {
            let (coda_durable, coda_watch) = watch::channel(Lsn::ZERO);
            let (coda_tx, coda_output) = mpsc::channel(OUTPUT_BUFFER);
            let stats = Arc::new(WriterStats::default());
            durables.push(coda_watch);
            sink_outputs.push(coda_tx);
            coda_stats = Some(stats.clone());
            coda_task = Some(watched(tokio::spawn(write_to_coda(
                pg.clone(),
                client,
                mapping,
                writer,
                coda_output,
                coda_durable,
                stats,
            ))));
        }
        let durable = min_durable(durables);
        let stream = august_cdc::start(pg.clone(), cdc, durable.clone());
        let (events, events_rx) = mpsc::channel(EVENT_BUFFER);
        let (output_tx, output) = mpsc::channel(OUTPUT_BUFFER);
        let dataflow =
            tokio::task::spawn_blocking(move || august_dataflow::spawn(&dataflow_config, events_rx, output_tx))
                .await??;
        let (link_tx, link_output) = mpsc::channel(OUTPUT_BUFFER);
        sink_outputs.push(link_tx);
        tokio::spawn(fan_out(output, sink_outputs));
        let links = watched(tokio::spawn(write_links(pg, link_output, link_durable, Arc::new(LinkStats::default()))));
        let stats = PipelineStats { cdc: stream.stats().clone(), coda: coda_stats, durable, sql_addr };
        Ok(Self { stats, stream, events, dataflow, links, coda: coda_task, sink_ended, sql })
    }

    /// Runs until `stop` resolves (or a stage fails), then stops in the order the module
    /// describes. The first failure, if any, is the result.
    pub async fn run_until(self, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let Pipeline { stats, mut stream, events, dataflow, links, coda, sink_ended, sql } = self;
        let stop = async {
            tokio::select! {
                _ = stop => {}
                _ = sink_ended.cancelled() => {}
            }
        };
        august_dataflow::forward(&mut stream, &events, stop).await;
        tracing::info!("stopping: draining the dataflow and the sinks");
        drop(events);
        let flowed = tokio::task::spawn_blocking(move || dataflow.join()).await;
        let linked = links.await;
        let mirrored = match coda {
            Some(task) => Some(task.await),
            None => None,
        };
        // The durable watch closes after the sinks' final positions: confirm those.
        let mut durable = stats.durable.clone();
        while durable.changed().await.is_ok() {}
        let streamed = stream.finish().await;
        if let Some(sql) = sql {
            sql.stop().await;
        }
        flowed?.context("the dataflow failed")?;
        linked?.context("the link write-back failed")?;
        if let Some(mirrored) = mirrored {
            mirrored?.context("the Coda sink failed")?;
        }
        streamed.context("the replication stream failed")?;
        tracing::info!(confirmed_lsn = %Lsn(stats.cdc.confirmed.load(std::sync::atomic::Ordering::Relaxed)), "stopped cleanly");
        Ok(())
    }
}
