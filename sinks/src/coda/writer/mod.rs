//! The write path: view updates become as few and as full Coda writes as the quota allows.
//!
//! Updates are coalesced per key (the latest wins) while waiting for a write slot; a row whose
//! content Coda already holds (per the ledger, or per a write in flight) is not written again,
//! and a row whose write is in flight waits for its confirmation (`send.rs`). When a slot
//! opens, the table with the oldest pending change sends a batch of up to `max_rows` rows and
//! `max_bytes` bytes. A write is durable when `mutationStatus` says completed and the ledger
//! records it. 429s, 5xx and time-outs are retried with backoff and jitter (honouring
//! `Retry-After`); any other 4xx splits the batch until the refused row stands alone, which
//! goes to `sink_dead_letters` while the rest goes on (`failures.rs`), unless the table itself
//! is at fault (a mapped column or the table gone): then that table stops (`health.rs`). A
//! mutation not completed within `confirm_deadline` is settled by reading Coda
//! ([`super::confirm`]); a table whose writes keep failing is reported stalled. The durable
//! LSN is the last frontier, held back by the oldest change not yet durable.
//!
//! Staff edits written back to Postgres come round again; a row a write-back notice names is
//! read back from Coda before it is written, and not written when Coda shows it already, while
//! a refused write-back's row is rewritten from Postgres (`echo.rs`: the rule and why).
//!
//! Before the first write, writes a previous run left unconfirmed are settled against Coda
//! ([`super::settle`]); each write records its intent first. Once the initial copy has been
//! seen, rows the ledger holds that the copy no longer has (deleted while August was down) are
//! deleted from Coda. A traced change's rows carry its `coda.write` span from pending to
//! durable (`trace.rs`). Each durable row records its commit-to-durable latency
//! (`august_e2e_latency_seconds{view}`, from the oldest change it carries).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use august_cdc::Lsn;
use august_dataflow::Output;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::cells::{self, cell, key_text, CellSources, Cells};
use super::client::CodaClient;
use super::ledger::{self, Held};
use super::mapping::{Mapping, OnDelete, TableMapping};
use crate::SinkError;

mod echo;
mod failures;
mod health;
mod meter;
mod send;
mod stats;
mod trace;

pub use health::STALLED_METRIC;
pub use stats::{WriterStats, ECHOES_METRIC, LATENCY_METRIC, RECENT};

/// Batch limits and pacing.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Rows per request (`max_rows_per_request`, default 500).
    pub max_rows: usize,
    /// Bytes per request body (`max_request_bytes`, default 1 MiB).
    pub max_bytes: usize,
    /// How often mutations in flight are checked.
    pub poll: Duration,
    /// First and longest wait before retrying a failed write.
    pub backoff: (Duration, Duration),
    /// After the output ends, how long to keep writing what is pending.
    pub drain: Duration,
    /// Open dead letters older than this many days are purged at start
    /// (`AUGUST_DEAD_LETTER_DAYS`, default 30), with every closed one.
    pub dead_letter_days: u32,
    /// How long a mutation may stay uncompleted before it is settled by reading Coda
    /// (`AUGUST_CODA_CONFIRM_DEADLINE_SECS`, default 5 min).
    pub confirm_deadline: Duration,
    /// Failed attempts in a row after which a table is reported stalled
    /// (`august_coda_stalled{view}`).
    pub stall_attempts: u32,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_rows: 500,
            max_bytes: 1 << 20,
            poll: Duration::from_millis(250),
            backoff: (Duration::from_millis(500), Duration::from_secs(30)),
            drain: Duration::from_secs(10),
            dead_letter_days: 30,
            confirm_deadline: Duration::from_secs(300),
            stall_attempts: 5,
        }
    }
}

#[derive(Debug, Clone)]
enum Change {
    Upsert { cells: Cells, hash: String },
    Delete,
}

impl Change {
    fn hash(&self) -> Option<&str> {
        match self {
            Change::Upsert { hash, .. } => Some(hash),
            Change::Delete => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Pending {
    key: String,
    key_value: Value,
    /// The latest change this carries.
    lsn: Lsn,
    /// The oldest change this carries (coalescing keeps it): durability waits for it.
    since: Lsn,
    /// When the oldest change committed (`None` for the initial copy).
    committed: Option<DateTime<Utc>>,
    change: Change,
    /// Read the Coda row before writing: a staff edit may have put this content there.
    verify: Option<echo::Verify>,
    /// The traced changes it carries.
    traces: trace::Carried,
    /// When the oldest change it carries reached the writer (coalescing keeps it).
    queued: Instant,
}

#[derive(Debug)]
struct Batch {
    table: usize,
    items: Vec<Pending>,
    attempts: u32,
}

/// Mirrors the dataflow output into Coda until the output ends (then drains for a while).
pub async fn write_to_coda(
    pg: tokio_postgres::Config,
    client: CodaClient,
    mapping: Mapping,
    config: WriterConfig,
    mut output: mpsc::Receiver<Output>,
    durable: watch::Sender<Lsn>,
    stats: Arc<WriterStats>,
) -> Result<(), SinkError> {
    let mut db = august_schema::connect(&pg).await?;
    let views: Vec<String> = mapping.tables.iter().map(|t| t.view.clone()).collect();
    let sources: Vec<CellSources> = mapping.tables.iter().map(CellSources::of).collect();
    for view in &views {
        metrics::gauge!(STALLED_METRIC, "view" => view.clone()).set(0.0);
    }
    let mut held = ledger::load(&db, &views).await?;
    let purged = super::dead_letters::purge(&db, config.dead_letter_days).await?;
    let refused = super::dead_letters::open(&db, &views).await?;
    if purged > 0 || !refused.is_empty() {
        tracing::info!(purged, open = refused.len(), "dead letters: see `august dead-letters list`");
    }
    let settled = super::settle::settle_unconfirmed(&mut db, &client, &mapping, &sources, &mut held).await?;
    stats.settled.fetch_add(settled as u64, Ordering::Relaxed);
    let (echo, mut verdicts) = echo::EchoGuard::new(&mapping);
    let mut w = Writer {
        echo,
        sources,
        held,
        refused,
        pending: vec![BTreeMap::new(); mapping.tables.len()],
        flying: vec![HashMap::new(); mapping.tables.len()],
        in_flight: HashMap::new(),
        confirm: None,
        retry: VecDeque::new(),
        frontier: Lsn::ZERO,
        snapshot_keys: Some(vec![HashSet::new(); mapping.tables.len()]),
        health: vec![health::Health::default(); mapping.tables.len()],
        trace: trace::WriterTrace::default(),
        pg: pg.clone(),
        db,
        client,
        mapping,
        config,
        stats,
    };
    let settling = super::confirm::Settling {
        mapping: Arc::new(w.mapping.clone()),
        sources: Arc::new(w.sources.clone()),
        deadline: w.config.confirm_deadline,
    };
    let (confirm, mut confirmations) = super::confirm::start(pg.clone(), w.client.clone(), w.config.poll, settling);
    w.confirm = Some(confirm);
    w.register();
    let mut drain_until: Option<Instant> = None;
    let mut publish = tokio::time::interval(Duration::from_secs(1));
    loop {
        w.start_verifies();
        let next_retry =
            w.retry.front().map(|(at, _)| *at).unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let ready = w.has_ready_work();
        tokio::select! {
            biased;
            item = output.recv(), if drain_until.is_none() => match item {
                Some(item) => w.take(item),
                None => drain_until = Some(Instant::now() + w.config.drain),
            },
            Some(verdict) = verdicts.recv() => w.verified(verdict).await?,
            answer = confirmations.recv() => match answer {
                Some(answer) => w.confirmed(answer?).await?,
                None => return Err(SinkError::Shape { view: "coda", message: "the confirmer stopped".into() }),
            },
            _ = w.client.write_slot(), if ready => w.send_next().await?,
            _ = tokio::time::sleep_until(next_retry.into()), if !w.retry.is_empty() && !ready => {}
            _ = tokio::time::sleep(Duration::from_millis(100)), if drain_until.is_some() => {}
            _ = publish.tick() => w.publish(),
        }
        durable.send_if_modified(|d| {
            let now = w.durable();
            (now > *d).then(|| *d = now).is_some()
        });
        if let Some(until) = drain_until {
            if w.idle() || Instant::now() >= until {
                return Ok(());
            }
        }
    }
}

struct Writer {
    /// Staff edits: rows to read back before writing (see `echo.rs`).
    echo: echo::EchoGuard,
    /// Per mapped table: each Coda column and the view column it takes.
    sources: Vec<CellSources>,
    pg: tokio_postgres::Config,
    db: tokio_postgres::Client,
    client: CodaClient,
    mapping: Mapping,
    config: WriterConfig,
    stats: Arc<WriterStats>,
    held: HashMap<(String, String), Held>,
    /// Open dead letters as (view, key, hash): content Coda refused is not sent again.
    refused: HashSet<(String, String, String)>,
    pending: Vec<BTreeMap<String, Pending>>,
    /// Per mapped table, the rows a write is in flight for (sent, or to be sent again), with
    /// the hash it will leave (`None`: a delete). At most one write per row flies.
    flying: Vec<HashMap<String, Option<String>>>,
    in_flight: HashMap<String, Batch>,
    confirm: Option<super::confirm::Requests>,
    retry: VecDeque<(Instant, Batch)>,
    frontier: Lsn,
    /// Per mapped table, the keys of the initial copy (everything before the first frontier
    /// past 0), until the copy is complete.
    snapshot_keys: Option<Vec<HashSet<String>>>,
    /// Per mapped table: stalled (writes keep failing) or stopped (the mapping is at fault).
    health: Vec<health::Health>,
    /// Spans of traced changes.
    trace: trace::WriterTrace,
}

impl Writer {
    fn idle(&self) -> bool {
        self.in_flight.is_empty()
            && self.retry.is_empty()
            && self.pending.iter().all(BTreeMap::is_empty)
            && self.echo.verifying().next().is_none()
    }

    fn has_ready_work(&self) -> bool {
        self.retry.front().is_some_and(|(at, _)| *at <= Instant::now()) || self.waiting_table().is_some()
    }

    /// Everything below this LSN is in Coda (or dead-lettered).
    fn durable(&self) -> Lsn {
        let oldest = self
            .pending
            .iter()
            .flat_map(|p| p.values())
            .chain(self.in_flight.values().flat_map(|b| &b.items))
            .chain(self.retry.iter().flat_map(|(_, b)| &b.items))
            .chain(self.echo.verifying())
            .map(|p| p.since)
            .min();
        oldest.map_or(self.frontier, |lsn| lsn.min(self.frontier))
    }

    /// The hash Coda will hold for a key of table `t` once what is in flight lands.
    fn expected(&self, t: usize, key: &str) -> Option<String> {
        match self.flying[t].get(key) {
            Some(flying) => flying.clone(),
            None => self.held.get(&(self.mapping.tables[t].view.clone(), key.to_string())).map(|h| h.hash.clone()),
        }
    }

    fn take(&mut self, item: Output) {
        let (lsn, commit_time, updates) = match item {
            Output::Notices { lsn, notices } => return self.noticed(lsn, notices),
            Output::Trace { lsn, context } => return self.trace.traced(lsn, context),
            Output::Frontier(lsn) => {
                self.trace.passed(lsn);
                self.frontier = self.frontier.max(lsn);
                self.echo.passed(lsn);
                if lsn > Lsn::ZERO {
                    self.copy_complete();
                }
                return;
            }
            Output::Updates { updates, lsn, commit_time } => (lsn, commit_time, updates),
        };
        let mut writes = self.trace.updates(lsn);
        for update in updates {
            let Some(t) = self.mapping.tables.iter().position(|m| m.view == update.view) else { continue };
            let table: &TableMapping = &self.mapping.tables[t];
            let key = key_text(&update.key);
            if let Some(copy) = &mut self.snapshot_keys {
                copy[t].insert(key.clone()); // before the first frontier: the initial copy
            }
            let key_value = cell(&update.key);
            let change = match &update.row {
                Some(row) => {
                    let cells = self.sources[t].cells(row);
                    self.echo.track(t, &key, Some((&key_value, &cells)));
                    let hash = cells::hash(&cells);
                    Change::Upsert { cells, hash }
                }
                None if table.on_delete == OnDelete::Keep => {
                    self.echo.track(t, &key, None);
                    self.pending[t].remove(&key);
                    continue;
                }
                None => {
                    self.echo.track(t, &key, None);
                    Change::Delete
                }
            };
            let marked = self.echo.take_mark(t, &key, lsn);
            let older = self.pending[t].remove(&key);
            let expected = self.expected(t, &key);
            let refused =
                (table.view.clone(), key.clone(), change.hash().unwrap_or(super::dead_letters::DELETE).to_string());
            // A row queued for a read-back (a refresh) stays queued even when the ledger says
            // Coda holds the new content: the Coda row may show something else.
            let verifying = older.as_ref().is_some_and(|o| o.verify.is_some());
            if !verifying && (expected.as_deref() == change.hash() || self.refused.contains(&refused)) {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let traces = writes.row(t, &table.view);
            let (since, committed, verify, traces, queued) = match older {
                Some(o) => {
                    (o.since, o.committed.or(commit_time), marked.or(o.verify), o.traces.merge(traces), o.queued)
                }
                None => (lsn, commit_time, marked, traces, Instant::now()),
            };
            let verify = verify.filter(|_| matches!(change, Change::Upsert { .. }));
            let item = Pending { key: key.clone(), key_value, lsn, since, committed, change, verify, traces, queued };
            self.pending[t].insert(key, item);
        }
    }

    /// The initial copy is complete: a row the ledger holds that the copy lacks was deleted
    /// while August was not running, so it is deleted from Coda too (per `on_delete`).
    fn copy_complete(&mut self) {
        let Some(copy) = self.snapshot_keys.take() else { return };
        for (t, table) in self.mapping.tables.iter().enumerate() {
            if table.on_delete == OnDelete::Keep {
                continue;
            }
            let gone: Vec<String> = self
                .held
                .keys()
                .filter(|(view, key)| {
                    *view == table.view && !copy[t].contains(key) && !self.pending[t].contains_key(key)
                })
                .map(|(_, key)| key.clone())
                .collect();
            for key in gone {
                let key_value = Value::String(key.clone());
                let pending = Pending {
                    key: key.clone(),
                    key_value,
                    lsn: Lsn::ZERO,
                    since: Lsn::ZERO,
                    committed: None,
                    change: Change::Delete,
                    verify: None,
                    traces: trace::Carried::default(),
                    queued: Instant::now(),
                };
                self.pending[t].insert(key, pending);
            }
        }
    }
}
