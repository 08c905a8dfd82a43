//! A write that failed: 429s, 5xx and time-outs wait and go again (with backoff and jitter,
//! honouring `Retry-After`); another 4xx splits the batch until the refused row stands alone,
//! which goes to `sink_dead_letters` once (with Coda's message, which may quote a value, and
//! nowhere else; see [`crate::coda::dead_letters`]) while the rest goes on. Before a refused
//! write is split, the table is checked against Coda: when a mapped column or the table itself
//! is gone, the request was refused as a whole, and the table stops (`health.rs`) instead of
//! every row being dead-lettered. 401/403 (and a 404 with the table there) stop the sink.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{Batch, Change, Writer};
use crate::coda::client::CodaError;
use crate::coda::dead_letters;
use crate::SinkError;

impl Writer {
    /// Handles a failed write of `batch`.
    pub(super) async fn failed(&mut self, mut batch: Batch, error: CodaError) -> Result<(), SinkError> {
        if self.health[batch.table].stopped() {
            self.requeue(batch); // a write that was in flight when its table stopped
            return Ok(());
        }
        if matches!(error, CodaError::Rejected { .. } | CodaError::Fatal { status: 404, .. }) {
            match self.table_at_fault(batch.table).await {
                Ok(Some(problem)) => {
                    self.stop_table(batch, &problem);
                    return Ok(());
                }
                Ok(None) => {}
                Err(e) if e.kind() == august_schema::ErrorKind::Retryable => {
                    // Cannot tell yet whether the table is at fault: try the write again later.
                    return Box::pin(self.failed(batch, e)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        match error {
            CodaError::RateLimited { .. } | CodaError::Unavailable(_) | CodaError::ServerError { .. } => {
                self.write_failed(batch.table);
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
                self.flying[batch.table].remove(&item.key);
                let table = &self.mapping.tables[batch.table];
                let payload = match &item.change {
                    Change::Upsert { cells, .. } => serde_json::json!({"cells": cells}),
                    Change::Delete => serde_json::json!({"delete": item.key_value}),
                };
                let hash = item.change.hash().unwrap_or(dead_letters::DELETE);
                let target = format!("{}/{}", self.mapping.doc_id, table.table_id);
                let refusal = dead_letters::Refusal {
                    view: &table.view,
                    key: &item.key,
                    hash,
                    target: &target,
                    status,
                    message: &message,
                    payload: &payload,
                    lsn: &item.lsn.to_string(),
                };
                if dead_letters::record(&self.db, &refusal).await? {
                    self.stats.dead_letters.fetch_add(1, Ordering::Relaxed);
                    let view = table.view.clone();
                    metrics::counter!(august_schema::metrics::CODA_DEAD_LETTERS.name, "view" => view).increment(1);
                }
                self.refused.insert((table.view.clone(), item.key.clone(), hash.to_string()));
                tracing::error!(view = %table.view, key = %item.key, status, "Coda refused a row; it is in sink_dead_letters");
                Ok(())
            }
            fatal @ CodaError::Fatal { .. } => Err(SinkError::Coda(fatal)),
        }
    }
}
