//! The write path: view updates become as few and as full Coda writes as the quota allows.
//!
//! Updates are coalesced per key (the latest wins) while waiting for a write slot; a row whose
//! content Coda already holds (per the ledger, or per a write in flight) is not written again.
//! When a slot opens, the table with the oldest pending change sends a batch of up to
//! `max_rows` rows and `max_bytes` bytes. A write is durable when `mutationStatus` says
//! completed and the ledger records it. 429s, 5xx and time-outs are retried with backoff and
//! jitter (honouring `Retry-After`); any other 4xx splits the batch until the refused row
//! stands alone, which goes to `sink_dead_letters` while the rest goes on. The durable LSN is
//! the last frontier, held back by the oldest change not yet durable.
//!
//! Before the first write, writes a previous run left unconfirmed are settled against Coda
//! ([`super::settle`]); each write records its intent first. Once the initial copy has been
//! seen, rows the ledger holds that the copy no longer has (deleted while August was down) are
//! deleted from Coda. Each durable row records its commit-to-durable latency
//! (`august_e2e_latency_seconds{view}`, from the oldest change it carries).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use august_cdc::Lsn;
use august_dataflow::Output;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::cells::{self, cell, key_text, CellSources, Cells};
use super::client::{CodaClient, CodaError};
use super::ledger::{self, Confirmed, Held};
use super::mapping::{Mapping, OnDelete, TableMapping};
use crate::SinkError;

/// The histogram of commit-to-durable latency, per view.
pub const LATENCY_METRIC: &str = "august_e2e_latency_seconds";

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
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_rows: 500,
            max_bytes: 1 << 20,
            poll: Duration::from_millis(250),
            backoff: (Duration::from_millis(500), Duration::from_secs(30)),
            drain: Duration::from_secs(10),
        }
    }
}

/// What the writer did, for tests and the status line.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Write requests accepted by Coda.
    pub writes: AtomicU64,
    /// Rows sent in accepted upserts.
    pub rows_written: AtomicU64,
    /// Rows dead-lettered.
    pub dead_letters: AtomicU64,
    /// Retries after 429, 5xx or time-outs.
    pub retries: AtomicU64,
    /// Updates skipped because Coda already held them.
    pub skipped: AtomicU64,
    /// Rows confirmed durable in Coda (written or deleted).
    pub rows_durable: AtomicU64,
    /// Rows settled at start-up from a previous run's unconfirmed writes.
    pub settled: AtomicU64,
    /// The latest commit-to-durable latencies, in milliseconds (at most [`RECENT`]).
    pub recent_latency_ms: Mutex<VecDeque<u64>>,
}

/// How many latencies [`WriterStats::recent_latency_ms`] keeps.
pub const RECENT: usize = 512;

impl WriterStats {
    /// The `q` quantile (0..=1) of the recent latencies, in milliseconds.
    pub fn recent_latency(&self, q: f64) -> Option<u64> {
        let mut recent: Vec<u64> = self.recent_latency_ms.lock().ok()?.iter().copied().collect();
        if recent.is_empty() {
            return None;
        }
        recent.sort_unstable();
        Some(recent[((recent.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize])
    }

    fn observe_latency(&self, view: &str, latency: Duration) {
        metrics::histogram!(LATENCY_METRIC, "view" => view.to_string()).record(latency.as_secs_f64());
        if let Ok(mut recent) = self.recent_latency_ms.lock() {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(latency.as_millis() as u64);
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
    mut output: mpsc::UnboundedReceiver<Output>,
    durable: watch::Sender<Lsn>,
    stats: Arc<WriterStats>,
) -> Result<(), SinkError> {
    let mut db = august_schema::connect(&pg).await?;
    let views: Vec<String> = mapping.tables.iter().map(|t| t.view.clone()).collect();
    let sources: Vec<CellSources> = mapping.tables.iter().map(CellSources::of).collect();
    let mut held = ledger::load(&db, &views).await?;
    let settled = super::settle::settle_unconfirmed(&mut db, &client, &mapping, &sources, &mut held).await?;
    stats.settled.fetch_add(settled as u64, Ordering::Relaxed);
    let mut w = Writer {
        sources,
        held,
        pending: vec![BTreeMap::new(); mapping.tables.len()],
        in_flight: HashMap::new(),
        confirm: None,
        retry: VecDeque::new(),
        frontier: Lsn::ZERO,
        snapshot_keys: Some(vec![HashSet::new(); mapping.tables.len()]),
        pg: pg.clone(),
        db,
        client,
        mapping,
        config,
        stats,
    };
    let (confirm, mut confirmations) = super::confirm::start(pg.clone(), w.client.clone(), w.config.poll);
    w.confirm = Some(confirm);
    let mut drain_until: Option<Instant> = None;
    loop {
        let next_retry =
            w.retry.front().map(|(at, _)| *at).unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let ready = w.has_ready_work();
        tokio::select! {
            biased;
            item = output.recv(), if drain_until.is_none() => match item {
                Some(item) => w.take(item),
                None => drain_until = Some(Instant::now() + w.config.drain),
            },
            answer = confirmations.recv() => match answer {
                Some(answer) => w.confirmed(answer?),
                None => return Err(SinkError::Shape { view: "coda", message: "the confirmer stopped".into() }),
            },
            _ = w.client.write_slot(), if ready => w.send_next().await?,
            _ = tokio::time::sleep_until(next_retry.into()), if !w.retry.is_empty() && !ready => {}
            _ = tokio::time::sleep(Duration::from_millis(100)), if drain_until.is_some() => {}
        }
        durable.send_if_modified(|d| {
            let now = w.durable();
            (now > *d).then(|| *d = now).is_some()
        });
        metrics::gauge!("august_coda_pending_rows").set(w.pending.iter().map(BTreeMap::len).sum::<usize>() as f64);
        if let Some(until) = drain_until {
            if w.idle() || Instant::now() >= until {
                return Ok(());
            }
        }
    }
}

struct Writer {
    /// Per mapped table: each Coda column and the view column it takes.
    sources: Vec<CellSources>,
    pg: tokio_postgres::Config,
    db: tokio_postgres::Client,
    client: CodaClient,
    mapping: Mapping,
    config: WriterConfig,
    stats: Arc<WriterStats>,
    held: HashMap<(String, String), Held>,
    pending: Vec<BTreeMap<String, Pending>>,
    in_flight: HashMap<String, Batch>,
    confirm: Option<mpsc::UnboundedSender<(String, Vec<Confirmed>)>>,
    retry: VecDeque<(Instant, Batch)>,
    frontier: Lsn,
    /// Per mapped table, the keys of the initial copy (everything before the first frontier
    /// past 0), until the copy is complete.
    snapshot_keys: Option<Vec<HashSet<String>>>,
}

impl Writer {
    fn idle(&self) -> bool {
        self.in_flight.is_empty() && self.retry.is_empty() && self.pending.iter().all(BTreeMap::is_empty)
    }

    fn has_ready_work(&self) -> bool {
        self.pending.iter().any(|p| !p.is_empty()) || self.retry.front().is_some_and(|(at, _)| *at <= Instant::now())
    }

    /// Everything below this LSN is in Coda (or dead-lettered).
    fn durable(&self) -> Lsn {
        let oldest = self
            .pending
            .iter()
            .flat_map(|p| p.values())
            .chain(self.in_flight.values().flat_map(|b| &b.items))
            .chain(self.retry.iter().flat_map(|(_, b)| &b.items))
            .map(|p| p.since)
            .min();
        oldest.map_or(self.frontier, |lsn| lsn.min(self.frontier))
    }

    /// The hash Coda will hold for a key once what is in flight lands.
    fn expected(&self, view: &str, key: &str) -> Option<String> {
        let flying = self
            .in_flight
            .values()
            .chain(self.retry.iter().map(|(_, b)| b))
            .filter(|b| self.mapping.tables[b.table].view == view);
        for batch in flying {
            if let Some(p) = batch.items.iter().find(|p| p.key == key) {
                return match &p.change {
                    Change::Upsert { hash, .. } => Some(hash.clone()),
                    Change::Delete => None,
                };
            }
        }
        self.held.get(&(view.to_string(), key.to_string())).map(|h| h.hash.clone())
    }

    fn take(&mut self, item: Output) {
        let (lsn, commit_time, updates) = match item {
            Output::Frontier(lsn) => {
                self.frontier = self.frontier.max(lsn);
                if lsn > Lsn::ZERO {
                    self.copy_complete();
                }
                return;
            }
            Output::Updates { updates, lsn, commit_time } => (lsn, commit_time, updates),
        };
        for update in updates {
            let Some(t) = self.mapping.tables.iter().position(|m| m.view == update.view) else { continue };
            let table: &TableMapping = &self.mapping.tables[t];
            let key = key_text(&update.key);
            if let Some(copy) = &mut self.snapshot_keys {
                copy[t].insert(key.clone()); // before the first frontier: the initial copy
            }
            let change = match &update.row {
                Some(row) => {
                    let cells = self.sources[t].cells(row);
                    let hash = cells::hash(&cells);
                    Change::Upsert { cells, hash }
                }
                None if table.on_delete == OnDelete::Keep => {
                    self.pending[t].remove(&key);
                    continue;
                }
                None => Change::Delete,
            };
            let older = self.pending[t].remove(&key);
            let expected = self.expected(&table.view, &key);
            if expected.as_deref() == change.hash() {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let (since, committed) = older.map_or((lsn, commit_time), |o| (o.since, o.committed.or(commit_time)));
            let key_value = cell(&update.key);
            self.pending[t].insert(key.clone(), Pending { key, key_value, lsn, since, committed, change });
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
                .filter(|(view, key)| *view == table.view && !copy[t].contains(key) && !self.pending[t].contains_key(key))
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
                };
                self.pending[t].insert(key, pending);
            }
        }
    }

    /// Sends one write: a batch due for retry, or the next batch of the table whose oldest
    /// change is oldest. The caller has taken the write slot. Its intent is recorded first.
    async fn send_next(&mut self) -> Result<(), SinkError> {
        let batch = match self.retry.front() {
            Some((at, _)) if *at <= Instant::now() => self.retry.pop_front().map(|(_, b)| b),
            _ => self.next_batch(),
        };
        let Some(batch) = batch else { return Ok(()) };
        let table = self.mapping.tables[batch.table].clone();
        if let Err(error) = self.intend(&table.view, &batch.items).await {
            tracing::warn!(error = %error, "cannot record a Coda write intent; retrying");
            return self.failed(batch, CodaError::Unavailable("the ledger is unavailable".into())).await;
        }
        let result = match &batch.items[0].change {
            Change::Upsert { .. } => {
                let rows: Vec<Cells> = batch
                    .items
                    .iter()
                    .filter_map(
                        |p| if let Change::Upsert { cells, .. } = &p.change { Some(cells.clone()) } else { None },
                    )
                    .collect();
                self.client
                    .upsert_rows(&self.mapping.doc_id, &table.table_id, &rows, &[table.key_column().to_string()])
                    .await
            }
            Change::Delete => self.delete(&table, &batch.items).await,
        };
        match result {
            Ok(request) => {
                self.stats.writes.fetch_add(1, Ordering::Relaxed);
                if matches!(batch.items[0].change, Change::Upsert { .. }) {
                    self.stats.rows_written.fetch_add(batch.items.len() as u64, Ordering::Relaxed);
                    metrics::counter!("august_coda_rows_written_total", "view" => table.view.clone())
                        .increment(batch.items.len() as u64);
                }
                let view = &self.mapping.tables[batch.table].view;
                let confirmed = batch
                    .items
                    .iter()
                    .map(|p| match &p.change {
                        Change::Upsert { hash, .. } => Confirmed::Written {
                            view: view.clone(),
                            key: p.key.clone(),
                            hash: hash.clone(),
                            lsn: p.lsn,
                        },
                        Change::Delete => Confirmed::Deleted { view: view.clone(), key: p.key.clone() },
                    })
                    .collect();
                if let Some(confirm) = &self.confirm {
                    let _ = confirm.send((request.clone(), confirmed));
                }
                self.in_flight.insert(request, batch);
                Ok(())
            }
            Err(error) => self.failed(batch, error).await,
        }
    }

    /// Records what a write is about to make Coda hold, on a connection restored if it broke.
    async fn intend(&mut self, view: &str, items: &[Pending]) -> Result<(), august_schema::DbError> {
        if self.db.is_closed() {
            self.db = august_schema::connect(&self.pg).await?;
        }
        let rows: Vec<(&str, Option<&str>)> = items.iter().map(|p| (p.key.as_str(), p.change.hash())).collect();
        ledger::intend(&self.db, view, &rows).await
    }

    fn next_batch(&mut self) -> Option<Batch> {
        let t = (0..self.pending.len())
            .filter(|t| !self.pending[*t].is_empty())
            .min_by_key(|t| self.pending[*t].values().map(|p| p.lsn).min())?;
        let mut order: Vec<(Lsn, &String, bool)> =
            self.pending[t].iter().map(|(k, p)| (p.lsn, k, matches!(p.change, Change::Delete))).collect();
        order.sort_unstable();
        // One kind per request: upserts, or deletes, whichever the oldest change is.
        let deleting = order[0].2;
        let keys: Vec<String> = order
            .iter()
            .filter(|(_, _, d)| *d == deleting)
            .take(self.config.max_rows)
            .map(|(_, k, _)| (*k).clone())
            .collect();
        let mut batch = Vec::new();
        let mut bytes = 64;
        let candidates: Vec<Pending> = keys.iter().filter_map(|k| self.pending[t].get(k).cloned()).collect();
        for item in candidates {
            let size = match &item.change {
                Change::Upsert { cells, .. } => serde_json::to_vec(cells).map_or(0, |v| v.len()) + 16,
                Change::Delete => item.key.len() + 16,
            };
            if batch.len() == self.config.max_rows || (!batch.is_empty() && bytes + size > self.config.max_bytes) {
                break;
            }
            bytes += size;
            self.pending[t].remove(&item.key);
            batch.push(item);
        }
        Some(Batch { table: t, items: batch, attempts: 0 })
    }

    /// Deletes by row id: the ledger's when known, else found by a keyed look-up.
    async fn delete(&mut self, table: &TableMapping, items: &[Pending]) -> Result<String, CodaError> {
        let mut ids = Vec::new();
        for item in items {
            let held = self.held.get(&(table.view.clone(), item.key.clone())).and_then(|h| h.row_id.clone());
            match held {
                Some(id) => ids.push(id),
                None => {
                    let found = self
                        .client
                        .find_rows(&self.mapping.doc_id, &table.table_id, table.key_column(), &item.key_value)
                        .await?;
                    for id in &found {
                        let _ = ledger::remember_row_id(&self.db, &table.view, &item.key, id).await;
                    }
                    ids.extend(found);
                }
            }
        }
        self.client.delete_rows(&self.mapping.doc_id, &table.table_id, &ids).await
    }

    async fn failed(&mut self, mut batch: Batch, error: CodaError) -> Result<(), SinkError> {
        match error {
            CodaError::RateLimited { .. } | CodaError::Unavailable(_) => {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                batch.attempts += 1;
                let (min, max) = self.config.backoff;
                let backoff = (min * 2u32.saturating_pow(batch.attempts.min(16) - 1)).min(max);
                let jittered = backoff.mul_f64(0.5 + rand::random::<f64>() / 2.0);
                let wait = match error {
                    CodaError::RateLimited { retry_after: Some(after) } => after.max(jittered),
                    _ => jittered,
                };
                tracing::warn!(error = %error, retry_in_ms = wait.as_millis() as u64, "Coda write failed; retrying");
                self.retry.push_back((Instant::now() + wait, batch));
                Ok(())
            }
            CodaError::Rejected { status, message } if batch.items.len() > 1 => {
                // Split until the refused row stands alone; the others go on.
                tracing::warn!(
                    status,
                    rows = batch.items.len(),
                    "Coda refused a batch; splitting it to find the refused row"
                );
                let half = batch.items.split_off(batch.items.len() / 2);
                let now = Instant::now();
                self.retry.push_front((now, Batch { table: batch.table, items: half, attempts: 0 }));
                self.retry.push_front((now, Batch { table: batch.table, items: batch.items, attempts: 0 }));
                drop(message); // Coda's message may quote a value: it goes to the dead letter only
                Ok(())
            }
            CodaError::Rejected { status, message } => {
                let item = &batch.items[0];
                let table = &self.mapping.tables[batch.table];
                let payload = match &item.change {
                    Change::Upsert { cells, .. } => serde_json::json!({"cells": cells}),
                    Change::Delete => serde_json::json!({"delete": item.key_value}),
                };
                self.db
                    .execute(
                    "INSERT INTO sink_dead_letters (sink, view, row_key, target, status_code, message, payload, lsn)
                     VALUES ('coda', $1, $2, $3, $4, $5, $6, $7::text::pg_lsn)",
                    &[
                        &table.view,
                        &item.key,
                        &format!("{}/{}", self.mapping.doc_id, table.table_id),
                        &i32::from(status),
                        &message,
                        &payload,
                        &item.lsn.to_string(),
                    ],
                )
                .await
                .map_err(|e| august_schema::DbError::new("record a dead letter", e))?;
                self.stats.dead_letters.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("august_coda_dead_letters_total", "view" => table.view.clone()).increment(1);
                tracing::error!(view = %table.view, key = %item.key, status, "Coda refused a row; it is in sink_dead_letters");
                Ok(())
            }
            fatal @ CodaError::Fatal { .. } => Err(SinkError::Coda(fatal)),
        }
    }

    /// A write was confirmed (and recorded in the ledger), or lost.
    fn confirmed(&mut self, answer: super::confirm::Confirmation) {
        match answer {
            super::confirm::Confirmation::Done(request) => {
                let Some(batch) = self.in_flight.remove(&request) else { return };
                let view = self.mapping.tables[batch.table].view.clone();
                self.stats.rows_durable.fetch_add(batch.items.len() as u64, Ordering::Relaxed);
                let now = Utc::now();
                for item in batch.items {
                    if let Some(committed) = item.committed {
                        self.stats.observe_latency(&view, (now - committed).to_std().unwrap_or_default());
                    }
                    let key = (view.clone(), item.key);
                    match item.change {
                        Change::Upsert { hash, .. } => {
                            let row_id = self.held.get(&key).and_then(|h| h.row_id.clone());
                            self.held.insert(key, Held { hash, row_id });
                        }
                        Change::Delete => {
                            self.held.remove(&key);
                        }
                    }
                }
            }
            super::confirm::Confirmation::Lost(request) => {
                if let Some(batch) = self.in_flight.remove(&request) {
                    self.retry.push_back((Instant::now(), Batch { attempts: 0, ..batch }));
                }
            }
        }
    }
}
