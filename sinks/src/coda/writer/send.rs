//! Sending writes and taking their confirmations. At most one write per row is in flight
//! (sent, or waiting to be sent again) at a time: Coda applies mutations asynchronously, so a
//! second write could overtake the first, and a delete could look for a row whose insert has
//! not landed yet and leave it behind. A row that changes while its write flies waits, and
//! goes with the next batch after the confirmation.

use std::sync::atomic::Ordering;
use std::time::Instant;

use august_cdc::Lsn;
use chrono::Utc;

use super::{Batch, Change, Pending, Writer};
use crate::coda::cells::Cells;
use crate::coda::client::CodaError;
use crate::coda::confirm::Confirmation;
use crate::coda::ledger::{self, Confirmed, Held};
use crate::coda::mapping::TableMapping;
use crate::SinkError;

impl Writer {
    /// Sends one write: a batch due for retry, or the next batch of the table whose oldest
    /// change is oldest. The caller has waited for a write slot to open; the request takes it
    /// as it leaves, after the intent is recorded (and a delete's row ids looked up).
    pub(super) async fn send_next(&mut self) -> Result<(), SinkError> {
        // A stalled table's retry yields to a healthy table's waiting rows.
        let healthy_waiting = self.waiting_table().is_some_and(|t| !self.health[t].stalled());
        let batch = match self.retry.front() {
            Some((at, b)) if *at <= Instant::now() && !(self.health[b.table].stalled() && healthy_waiting) => {
                self.retry.pop_front().map(|(_, b)| b)
            }
            _ => self.next_batch(),
        };
        let Some(batch) = batch else { return Ok(()) };
        let table = self.mapping.tables[batch.table].clone();
        if let Err(error) = self.intend(&table.view, &batch.items).await {
            tracing::warn!(error = %error, "cannot record a Coda write intent; retrying");
            return self.failed(batch, CodaError::Unavailable("the ledger is unavailable".into())).await;
        }
        let links = super::trace::links(&batch.items);
        let call = async {
            match &batch.items[0].change {
                Change::Upsert { .. } => {
                    self.count_write(batch.table, "upsert");
                    let rows: Vec<Cells> = batch
                        .items
                        .iter()
                        .filter_map(|p| {
                            if let Change::Upsert { cells, .. } = &p.change {
                                Some(cells.clone())
                            } else {
                                None
                            }
                        })
                        .collect();
                    self.client
                        .upsert_rows(&self.mapping.doc_id, &table.table_id, &rows, &[table.key_column().to_string()])
                        .await
                }
                Change::Delete => self.delete(batch.table, &table, &batch.items).await,
            }
        };
        let (result, request_span) = crate::coda::traced::carrying(&table.view, links, call).await;
        self.count_request(batch.table, result.as_ref().map_or_else(CodaError::outcome, |_| "ok"));
        self.trace.attempted(request_span, &batch.items, result.as_ref().ok().map(String::as_str));
        match result {
            Ok(request) => {
                self.stats.writes.fetch_add(1, Ordering::Relaxed);
                self.stats.wrote(&table.view);
                let keys: Vec<&str> = batch.items.iter().map(|p| p.key.as_str()).collect();
                if let Err(e) = ledger::sent(&self.db, &table.view, &keys, &request).await {
                    tracing::warn!(error = %e, "cannot record a Coda request id (a restart would wait a grace period)");
                }
                if matches!(batch.items[0].change, Change::Upsert { .. }) {
                    self.stats.rows_written.fetch_add(batch.items.len() as u64, Ordering::Relaxed);
                    metrics::counter!(august_schema::metrics::CODA_ROWS_WRITTEN.name, "view" => table.view.clone())
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
                    let _ = confirm.send((request.clone(), confirmed, Instant::now()));
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

    /// The table to write next: of those not stopped with a row waiting (not in flight), the
    /// one whose oldest waiting change is oldest, a stalled one only when no healthy one waits.
    pub(super) fn waiting_table(&self) -> Option<usize> {
        (0..self.pending.len())
            .filter(|t| !self.health[*t].stopped())
            .filter_map(|t| {
                let oldest = self.pending[t]
                    .iter()
                    .filter(|(k, p)| !self.flying[t].contains_key(*k) && p.verify.is_none())
                    .map(|(_, p)| p.since)
                    .min();
                oldest.map(|since| ((self.health[t].stalled(), since), t))
            })
            .min()
            .map(|(_, t)| t)
    }

    /// The next batch: of the [`Writer::waiting_table`], its rows in change order, one kind
    /// (upserts or deletes, as the oldest is), none already in flight.
    fn next_batch(&mut self) -> Option<Batch> {
        let t = self.waiting_table()?;
        let (pending, flying) = (&self.pending, &self.flying);
        let waiting =
            |t: usize| pending[t].iter().filter(move |(k, p)| !flying[t].contains_key(*k) && p.verify.is_none());
        let mut order: Vec<(Lsn, &String, bool)> =
            waiting(t).map(|(k, p)| (p.since, k, matches!(p.change, Change::Delete))).collect();
        order.sort_unstable();
        let deleting = order[0].2;
        let keys: Vec<String> = order
            .iter()
            .filter(|(_, _, d)| *d == deleting)
            .take(self.config.max_rows)
            .map(|(_, k, _)| (*k).clone())
            .collect();
        let mut batch = Vec::new();
        let mut bytes = 64;
        for key in keys {
            let Some(item) = self.pending[t].get(&key) else { continue };
            let size = match &item.change {
                Change::Upsert { cells, .. } => serde_json::to_vec(cells).map_or(0, |v| v.len()) + 16,
                Change::Delete => item.key.len() + 16,
            };
            if batch.len() == self.config.max_rows || (!batch.is_empty() && bytes + size > self.config.max_bytes) {
                break;
            }
            bytes += size;
            let item = self.pending[t].remove(&key).expect("looked up above");
            self.flying[t].insert(key, item.change.hash().map(String::from));
            batch.push(item);
        }
        Some(Batch { table: t, items: batch, attempts: 0 })
    }

    /// Deletes by row id: the ledger's when known, else found by a keyed look-up (on the read
    /// quota; a row id found once is kept, so a delete tried again looks up only the rest). The
    /// write slot is taken after the look-ups, as the DELETE leaves.
    async fn delete(&mut self, t: usize, table: &TableMapping, items: &[Pending]) -> Result<String, CodaError> {
        let mut ids = Vec::new();
        for item in items {
            let entry = (table.view.clone(), item.key.clone());
            match self.held.get(&entry).and_then(|h| h.row_id.clone()) {
                Some(id) => ids.push(id),
                None => {
                    let found = self
                        .client
                        .find_rows(&self.mapping.doc_id, &table.table_id, table.key_column(), &item.key_value)
                        .await?;
                    for id in &found {
                        let _ = ledger::remember_row_id(&self.db, &table.view, &item.key, id).await;
                    }
                    if let (Some(held), [id]) = (self.held.get_mut(&entry), found.as_slice()) {
                        held.row_id = Some(id.clone());
                    }
                    ids.extend(found);
                }
            }
        }
        self.count_write(t, "delete");
        self.client.delete_rows(&self.mapping.doc_id, &table.table_id, &ids).await
    }

    /// A write was confirmed (and recorded in the ledger), settled after the deadline, or lost.
    pub(super) async fn confirmed(&mut self, answer: Confirmation) -> Result<(), SinkError> {
        match answer {
            Confirmation::Done(request, by) => {
                self.trace.confirmed(&request, "completed", by);
                if let Some(batch) = self.in_flight.remove(&request) {
                    self.landed(batch.table, batch.items);
                }
            }
            Confirmation::Settled { request, found, missing } => {
                self.trace.confirmed(&request, "settled", None);
                let Some(batch) = self.in_flight.remove(&request) else { return Ok(()) };
                let t = batch.table;
                let (again, landed): (Vec<Pending>, Vec<Pending>) =
                    batch.items.into_iter().partition(|p| missing.contains(&p.key));
                if !landed.is_empty() {
                    self.landed(t, landed);
                }
                let view = self.mapping.tables[t].view.clone();
                for (key, state) in found {
                    match state {
                        Some(h) => drop(self.held.insert((view.clone(), key), h)),
                        None => drop(self.held.remove(&(view.clone(), key))),
                    }
                }
                if !again.is_empty() {
                    let overdue = CodaError::Unavailable("the write did not complete within the deadline".into());
                    return self.failed(Batch { table: t, items: again, attempts: batch.attempts }, overdue).await;
                }
            }
            Confirmation::Lost(request) => {
                self.trace.confirmed(&request, "lost", None);
                if let Some(batch) = self.in_flight.remove(&request) {
                    if self.health[batch.table].stopped() {
                        self.requeue(batch);
                    } else {
                        self.retry.push_back((Instant::now(), Batch { attempts: 0, ..batch }));
                    }
                }
            }
        }
        Ok(())
    }

    /// Rows of table `t` Coda now holds: the ledger in memory follows, and the latency of each
    /// is observed.
    fn landed(&mut self, t: usize, items: Vec<Pending>) {
        self.write_landed(t);
        self.count_landed(t);
        let view = self.mapping.tables[t].view.clone();
        self.stats.rows_durable.fetch_add(items.len() as u64, Ordering::Relaxed);
        let now = Utc::now();
        for item in items {
            self.flying[t].remove(&item.key);
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
}
