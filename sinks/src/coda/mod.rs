//! The Coda sink: view rows mirrored into Coda tables, as few and as full writes as the quota
//! allows, never losing or leaving a stale row.
//!
//! * [`mapping`]: the mapping file, checked against the views at load and against Coda at
//!   start-up ([`check_mapping`]);
//! * [`client`]: the API client, under one global write quota and one read quota;
//! * [`cells`]: a view row as Coda cells, and the content hash of them;
//! * [`ledger`]: what Coda holds, so unchanged rows are never written twice;
//! * [`settle`]: at start-up, what a killed run sent but never saw confirmed;
//! * [`writer`]: the write path (coalescing, batching, retries, dead letters, durable LSN, and
//!   the echo guard for rows staff edit in Coda);
//! * [`traced`]: the `coda.request` span of every request, linked to the changes it carries;
//! * [`dead_letters`]: refused rows, once each, for `august dead-letters`;
//! * [`compare`]: what Coda holds against the views computed from scratch (`august verify
//!   --coda`, the end-to-end tests).

pub mod cells;
pub mod client;
pub mod compare;
mod confirm;
pub mod dead_letters;
pub mod ledger;
pub mod mapping;
mod quota;
pub mod settle;
pub mod traced;
pub mod writer;

use client::CodaClient;
use mapping::{Mapping, MappingError};

/// Checks, before any row is sent, that every mapped Coda table and column exists. The error
/// names the first that does not.
pub async fn check_mapping(client: &CodaClient, mapping: &Mapping) -> Result<(), crate::SinkError> {
    for t in 0..mapping.tables.len() {
        // Each table's check is tried again on its own while Coda fails transiently, so a
        // flaky Coda delays the start instead of failing a check of many reads in a row.
        let mut backoff = std::time::Duration::from_millis(200);
        let mut attempts = 0;
        let problem = loop {
            attempts += 1;
            match check_table(client, mapping, t).await {
                Err(error) if error.kind() == august_schema::ErrorKind::Retryable && attempts < CHECK_ATTEMPTS => {
                    tracing::warn!(error = %error, table = t, "cannot check a mapped Coda table yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                }
                other => break other?,
            }
        };
        if let Some(problem) = problem {
            return Err(problem.into());
        }
    }
    Ok(())
}

/// Tries of one table's start-up check before a transient Coda failure stops the start.
const CHECK_ATTEMPTS: u32 = 8;

/// Whether mapped table `t` and each of its columns exist in Coda: `Some` names the mapping
/// entry at fault (its index, view and column) and what Coda lacks. One read per page of
/// columns.
pub async fn check_table(
    client: &CodaClient,
    mapping: &Mapping,
    t: usize,
) -> Result<Option<MappingError>, client::CodaError> {
    let table = &mapping.tables[t];
    let columns = match client.list_columns(&mapping.doc_id, &table.table_id).await {
        Err(client::CodaError::Fatal { status: 404, .. }) => {
            return Ok(Some(MappingError {
                origin: format!("tables[{t}], view {}, table_id {}", table.view, table.table_id),
                message: format!("Coda doc {} has no table {}", mapping.doc_id, table.table_id),
            }))
        }
        other => other?,
    };
    for (view_column, coda_column) in &table.columns {
        if !columns.iter().any(|c| c.id == *coda_column || c.name == *coda_column) {
            return Ok(Some(MappingError {
                origin: format!("tables[{t}], view {}, column {view_column}", table.view),
                message: format!("Coda table {} has no column {coda_column}", table.table_id),
            }));
        }
    }
    Ok(None)
}
