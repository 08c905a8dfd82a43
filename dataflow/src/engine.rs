//! Running the graph: timely worker threads, in this process or across several.
//!
//! Worker 0 of process 0 owns the change stream: it applies events from a bounded channel
//! (backpressure reaches the replication consumer) and steps the dataflow until it has caught
//! up, then sleeps on the channel until the next event. Every other worker closes its inputs at once, so the frontier is
//! worker 0's, and only computes its share of the keyed exchange. Worker 0 also gathers the
//! output.
//!
//! Multi-process: run the same command on every host with `--process i --processes n
//! --hostfile F` (F lists `host:port` per process, one per line); process 0 reads the stream
//! and writes the sinks, the others only compute.

use std::sync::{Arc, Mutex};

use august_cdc::Event;
use timely::communication::WorkerGuards;
use tokio::sync::mpsc::error::TryRecvError;

use crate::graph::{self, TableInput};
use crate::input::{Driver, DriverStats};
use crate::output;
use crate::tables::TABLES;

/// How the dataflow runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataflowConfig {
    /// Worker threads in this process.
    pub workers: usize,
    /// This process's index and every process's `host:port`, for multi-process runs.
    pub cluster: Option<(usize, Vec<String>)>,
    /// The most changed rows of one transaction held before they are sent on as a chunk
    /// (see [`crate::input`]).
    pub transaction_chunk_rows: usize,
}

/// The default chunk: 50,000 rows is a few tens of MB held, and few enough chunks that a
/// big transaction costs little more than in one piece.
pub const DEFAULT_TRANSACTION_CHUNK_ROWS: usize = 50_000;

impl Default for DataflowConfig {
    fn default() -> Self {
        Self { workers: 1, cluster: None, transaction_chunk_rows: DEFAULT_TRANSACTION_CHUNK_ROWS }
    }
}

/// Why the dataflow could not start or ended badly.
#[derive(Debug, thiserror::Error)]
pub enum DataflowError {
    /// Timely refused the configuration (e.g. a peer could not be reached).
    #[error("cannot start the dataflow: {0}")]
    Start(String),
    /// A worker thread panicked.
    #[error("a dataflow worker failed: {0}")]
    Worker(String),
}

/// A running dataflow.
pub struct Dataflow {
    guards: WorkerGuards<()>,
    stats: Arc<DriverStats>,
    /// Keeps the lag gauges published while the dataflow runs.
    _lag: Arc<crate::metrics::Lag>,
}

impl std::fmt::Debug for Dataflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataflow").finish_non_exhaustive()
    }
}

impl Dataflow {
    /// What the input driver counts (on the process that reads the stream).
    pub fn stats(&self) -> &Arc<DriverStats> {
        &self.stats
    }

    /// Waits for every worker to finish (after the event channel closes).
    pub fn join(self) -> Result<(), DataflowError> {
        for result in self.guards.join() {
            result.map_err(DataflowError::Worker)?;
        }
        Ok(())
    }
}

/// Starts the workers. `events` feeds worker 0 (close it to stop the dataflow); `out` receives
/// the output, and a full `out` blocks the workers (backpressure): keep reading it.
pub fn spawn(
    config: &DataflowConfig,
    events: tokio::sync::mpsc::Receiver<Event>,
    out: output::Sender,
) -> Result<Dataflow, DataflowError> {
    let communication = match &config.cluster {
        None if config.workers <= 1 => timely::CommunicationConfig::Thread,
        None => timely::CommunicationConfig::Process(config.workers),
        Some((process, addresses)) => timely::CommunicationConfig::Cluster {
            threads: config.workers.max(1),
            process: *process,
            addresses: addresses.clone(),
            report: false,
            zerocopy: false,
        },
    };
    // No idle merge effort: measured, it made a single change wait behind merging (p50 from
    // 1.4 ms to 37 ms); arrangements merge as updates arrive instead.
    let timely_config = timely::Config { communication, worker: timely::WorkerConfig::default() };
    let events = Arc::new(Mutex::new(Some(events)));
    let out = Arc::new(Mutex::new(Some(out)));
    let stats = Arc::new(DriverStats::default());
    let (driver_stats, chunk_rows) = (stats.clone(), config.transaction_chunk_rows);
    let lag = Arc::new(crate::metrics::Lag::default());
    crate::metrics::publish_lag(&lag, std::time::Duration::from_secs(1));
    let worker_lag = lag.clone();
    let guards = timely::execute(timely_config, move |worker| {
        let lead = worker.index() == 0;
        let events = if lead { events.lock().ok().and_then(|mut e| e.take()) } else { None };
        let out = if lead { out.lock().ok().and_then(|mut o| o.take()) } else { None };
        let mut inputs: Vec<TableInput> = TABLES.iter().map(|_| TableInput::new()).collect();
        let clock = output::clock();
        clock.borrow_mut().lag = worker_lag.clone();
        crate::metrics::count_arrangements(worker);
        let probe = worker.dataflow::<u64, _, _>(|scope| graph::build(scope, &mut inputs, out, clock.clone()));
        match events {
            Some(events) => {
                let driver = Driver::new(inputs, clock, chunk_rows, driver_stats.clone());
                lead_worker(worker, driver, events, &probe)
            }
            None => {
                drop(inputs);
                while worker.step_or_park(None) {}
            }
        }
    })
    .map_err(DataflowError::Start)?;
    Ok(Dataflow { guards, stats, _lag: lag })
}

fn lead_worker(
    worker: &mut timely::worker::Worker,
    mut driver: Driver,
    mut events: tokio::sync::mpsc::Receiver<Event>,
    probe: &timely::dataflow::ProbeHandle<u64>,
) {
    loop {
        let mut next = match events.try_recv() {
            Ok(event) => Some(event),
            Err(TryRecvError::Disconnected) => None,
            Err(TryRecvError::Empty) if probe.less_than(&driver.time()) => {
                worker.step();
                continue;
            }
            Err(TryRecvError::Empty) if has_pending_work(worker) => {
                // Caught up but operators asked to run (the output operator emitting, idle
                // merging): keep stepping, watching for events.
                worker.step();
                continue;
            }
            Err(TryRecvError::Empty) => {
                // Nothing left to do: sleep until the next event (no polling, no idle CPU).
                worker.step();
                events.blocking_recv()
            }
        };
        let mut applied = 0;
        while let Some(event) = next.take() {
            driver.apply(event);
            applied += 1;
            if driver.chunk_sent() {
                // A chunk of a big transaction (or of the copy) went in: work through it
                // before taking more, so at most about one chunk waits inside the dataflow.
                while probe.less_than(&driver.time()) {
                    worker.step();
                }
                break;
            }
            if applied >= 1024 {
                break; // let the dataflow work between batches
            }
            next = match events.try_recv() {
                Ok(event) => Some(event),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => {
                    drop(driver);
                    while worker.step() {}
                    return;
                }
            };
        }
        if applied == 0 {
            drop(driver);
            while worker.step() {}
            return;
        }
        worker.step();
    }
}

/// Whether an operator of this worker is scheduled to run now.
fn has_pending_work(worker: &timely::worker::Worker) -> bool {
    worker.activations().borrow().empty_for() == Some(std::time::Duration::ZERO)
}

/// Forwards a change stream into the dataflow's event channel until either ends or `stop`
/// resolves; then stops the stream (which confirms what is durable) and returns how it ended.
/// Backpressure flows through: a full channel stops the stream's reads.
pub async fn feed(
    mut stream: august_cdc::ChangeStream,
    events: tokio::sync::mpsc::Sender<Event>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), august_cdc::CdcError> {
    forward(&mut stream, &events, stop).await;
    stream.finish().await
}

/// Forwards events from `stream` into the dataflow's event channel until the stream ends, the
/// dataflow has gone, or `stop` resolves (returns `true` then). The stream stays open, so the
/// caller can let the sinks finish before it confirms their durable position and stops it.
pub async fn forward(
    stream: &mut august_cdc::ChangeStream,
    events: &tokio::sync::mpsc::Sender<Event>,
    stop: impl std::future::Future<Output = ()>,
) -> bool {
    tokio::pin!(stop);
    loop {
        let event = tokio::select! {
            _ = &mut stop => return true,
            event = stream.next() => event,
        };
        let Some(event) = event else { return false };
        tokio::select! {
            _ = &mut stop => return true,
            sent = events.send(event) => if sent.is_err() {
                return false;
            },
        }
    }
}
