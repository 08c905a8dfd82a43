//! Settling, at start-up, the writes a previous run sent but never saw confirmed (it was
//! killed, or Coda failed it): for each table with such rows, Coda's rows are read (reads, not
//! writes) and the ledger takes what Coda really holds. A write that did land is then not sent
//! again, and one that did not land is sent, because the ledger no longer claims it.
//!
//! The comparison uses the same cell shaping and hash as the writer. Should Coda return a value
//! in another form than it was sent (a real doc's column formats may convert some), the row
//! merely counts as different and is written once more: never a lost update.

use std::collections::HashMap;

use super::cells::{coda_key_text, hash, CellSources};
use super::client::CodaClient;
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
    for (t, table) in mapping.tables.iter().enumerate() {
        let keys: Vec<&String> = unsettled.iter().filter(|(v, _)| *v == table.view).map(|(_, k)| k).collect();
        if keys.is_empty() {
            continue;
        }
        let key_column = table.key_column();
        let in_coda: HashMap<String, Held> = client
            .list_rows(&mapping.doc_id, &table.table_id)
            .await?
            .into_iter()
            .filter_map(|(id, values)| {
                let key = coda_key_text(values.get(key_column)?);
                Some((key, Held { hash: hash(&sources[t].cells_of_coda_row(&values)), row_id: Some(id) }))
            })
            .collect();
        let found: Vec<(String, Option<Held>)> = keys.iter().map(|k| ((*k).clone(), in_coda.get(*k).cloned())).collect();
        ledger::settle(db, &table.view, &found).await?;
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
