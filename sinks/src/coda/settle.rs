//! Settling, at start-up, the writes a previous run sent but never saw confirmed (it was
//! killed, or Coda failed it). Coda applies writes asynchronously, so first every such write's
//! mutation is awaited (by its request id; a write killed before Coda's answer was recorded
//! gets a grace period instead). Then, for each table with such rows, Coda's rows are read
//! (reads, not writes) and the ledger takes what Coda really holds. A write that did land is
//! then not sent again, and one that did not land is sent, because the ledger no longer
//! claims it.
//!
//! A write found to have landed is recorded as a disclosure then (see [`ledger::settle`]).
//!
//! The comparison uses the same cell shaping and hash as the writer. Should Coda return a value
//! in another form than it was sent (a real doc's column formats may convert some), the row
//! merely counts as different and is written once more: never a lost update.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::cells::{coda_key_text, hash, CellSources};
use super::client::{CodaClient, CodaError};
use super::ledger::{self, Held};
use super::mapping::Mapping;
use crate::SinkError;

/// Settles every unconfirmed write of the mapped views, updating `held` (the loaded ledger) to
/// match. Returns how many rows were settled.
pub async fn settle_unconfirmed(
    db: &mut tokio_postgres::Client,
    client: &CodaClient,
    mapping: &Mapping,
    sources: &[CellSources],
    held: &mut HashMap<(String, String), Held>,
) -> Result<usize, SinkError> {
    let views: Vec<String> = mapping.tables.iter().map(|t| t.view.clone()).collect();
    let unsettled = ledger::unsettled(db, &views).await?;
    if unsettled.is_empty() {
        return Ok(0);
    }
    let requests: BTreeSet<&String> = unsettled.iter().filter_map(|u| u.request.as_ref()).collect();
    let deadline = Instant::now() + MUTATION_WAIT; // for all of them, not each
    for request in requests {
        await_mutation(client, request, deadline).await?;
    }
    if unsettled.iter().any(|u| u.request.is_none()) {
        // Killed between sending and recording Coda's answer: the write may still land.
        tokio::time::sleep(UNANSWERED_GRACE).await;
    }
    for (t, table) in mapping.tables.iter().enumerate() {
        let mine: Vec<&ledger::Unsettled> = unsettled.iter().filter(|u| u.view == table.view).collect();
        if mine.is_empty() {
            continue;
        }
        let in_coda = coda_state_retrying(client, mapping, &sources[t], t).await?;
        let found: Vec<(String, Option<Held>)> =
            mine.iter().map(|u| (u.key.clone(), in_coda.get(&u.key).cloned())).collect();
        let landed: Vec<ledger::Disclosure> = mine
            .iter()
            .filter(|u| in_coda.get(&u.key).map(|h| h.hash.as_str()) == u.hash.as_deref())
            .map(|u| ledger::Disclosure {
                view: &u.view,
                key: &u.key,
                hash: u.hash.as_deref(),
                request: u.request.as_deref(),
                lsn: None,
            })
            .collect();
        ledger::settle(db, &table.view, &found, (mapping, &landed)).await?;
        for (key, state) in &found {
            let entry = (table.view.clone(), key.clone());
            match state {
                Some(h) => drop(held.insert(entry, h.clone())),
                None => drop(held.remove(&entry)),
            }
        }
        tracing::info!(view = %table.view, rows = found.len(), "settled Coda writes left unconfirmed by the last run");
    }
    Ok(unsettled.len())
}

/// What Coda holds for each row of mapped table `t`, by view key (a read of every page).
pub(super) async fn coda_state(
    client: &CodaClient,
    mapping: &Mapping,
    sources: &CellSources,
    t: usize,
) -> Result<HashMap<String, Held>, CodaError> {
    let table = &mapping.tables[t];
    let key_column = table.key_column();
    Ok(client
        .list_rows(&mapping.doc_id, &table.table_id)
        .await?
        .into_iter()
        .filter_map(|(id, values)| {
            let key = coda_key_text(values.get(key_column)?);
            Some((key, Held { hash: hash(&sources.cells_of_coda_row(&values)), row_id: Some(id) }))
        })
        .collect())
}

/// [`coda_state`], tried again (for up to [`MUTATION_WAIT`]) while Coda is unavailable: a
/// start-up does not fail on one 503.
async fn coda_state_retrying(
    client: &CodaClient,
    mapping: &Mapping,
    sources: &CellSources,
    t: usize,
) -> Result<HashMap<String, Held>, CodaError> {
    let deadline = Instant::now() + MUTATION_WAIT;
    loop {
        match coda_state(client, mapping, sources, t).await {
            Err(e) if e.kind() == august_schema::ErrorKind::Retryable && Instant::now() < deadline => {
                tracing::warn!(error = %e, "cannot read a Coda table to settle writes yet; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

/// How long a write whose answer was never recorded is given to land before its row is read.
pub const UNANSWERED_GRACE: Duration = Duration::from_secs(2);

/// The longest a previous run's mutations are awaited, all together.
const MUTATION_WAIT: Duration = Duration::from_secs(60);

/// Waits until Coda has applied (or forgotten) a mutation.
async fn await_mutation(client: &CodaClient, request: &str, deadline: Instant) -> Result<(), SinkError> {
    loop {
        match client.mutation_completed(request).await {
            Ok(true) | Err(CodaError::Fatal { status: 404, .. }) => return Ok(()),
            Ok(false) if Instant::now() < deadline => {}
            Ok(false) => {
                tracing::warn!(
                    "a previous run's Coda writes have not completed within a minute; reading the rows anyway"
                );
                return Ok(());
            }
            Err(e) if e.kind() == august_schema::ErrorKind::Retryable && Instant::now() < deadline => {}
            Err(e) => return Err(e.into()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
