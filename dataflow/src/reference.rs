//! The views computed from scratch, in plain Rust, from the live rows of every table. Tests
//! compare the incremental dataflow with it after every step, and the end-to-end checks and
//! `august verify --coda` compare what a sink holds with it. Each view's reference lives in the
//! view's own file beside its dataflow build and shares its row shaping ([`crate::views::View`]);
//! this runs them all. [`read_live_tables`] copies its input from Postgres.

use std::collections::BTreeMap;

use august_cdc::{CdcConfig, CdcError, Event, Lsn, Value};

use crate::input::upsert_of;
use crate::tables::table;
use crate::views::{self, deepcura_links, Scratch, ViewRow, VIEWS};

/// Live rows per table (projected onto the table spec, soft-deleted rows absent), keyed by
/// natural key.
pub type Tables = crate::tables::LiveRows;

/// Rows per view, keyed by the view's key.
pub type Views = BTreeMap<String, BTreeMap<Value, ViewRow>>;

/// Every published table's live rows, copied by `cdc` itself through one consistent snapshot
/// and shaped as the dataflow's input shapes them. It streams from a temporary slot of its own
/// session, so the pipeline's slot is never touched.
pub async fn read_live_tables(pg: &tokio_postgres::Config) -> Result<Tables, CdcError> {
    let config = CdcConfig { temporary_slot: true, heartbeat: None, ..CdcConfig::default() };
    let (_durable, durable_watch) = tokio::sync::watch::channel(Lsn::ZERO);
    let mut stream = august_cdc::start(pg.clone(), config, durable_watch);
    let mut tables = Tables::new();
    loop {
        match stream.next().await {
            Some(Event::SnapshotRow { relation, row }) => {
                if let Some((_, key, Some(row))) = upsert_of(&relation, &row) {
                    tables.entry(relation.name.clone()).or_default().insert(key, row);
                }
            }
            Some(Event::SnapshotEnd { .. }) => break,
            Some(_) => {}
            None => {
                // The consumer stopped before the copy ended; how it ended says why.
                stream.finish().await?;
                return Err(CdcError::Protocol("the change stream ended before its copy of the tables".into()));
            }
        }
    }
    // The copy is all that is wanted; the stream after it (whose temporary slot name other
    // readers in this process may race for) is not.
    let _ = stream.finish().await;
    Ok(tables)
}

/// Every view, from scratch.
pub fn compute(tables: &Tables) -> Views {
    // Named views read rows narrowed as the dataflow narrows them; pass-through views, whole.
    let narrow: Tables = tables
        .iter()
        .filter_map(|(name, rows)| {
            let spec = table(name)?;
            Some((name.clone(), rows.iter().map(|(key, row)| (key.clone(), spec.narrow(row))).collect()))
        })
        .collect();
    compute_in(tables, &narrow)
}

fn compute_in(whole: &Tables, tables: &Tables) -> Views {
    let mut scratch = Scratch { tables, links: Vec::new() };
    scratch.links = deepcura_links::from_scratch(&scratch);
    let mut out: Views = BTreeMap::new();
    for view in VIEWS {
        let rows = out.entry(view.spec.name.to_string()).or_default();
        rows.extend((view.reference)(&scratch));
    }
    let whole = Scratch { tables: whole, links: Vec::new() };
    for table in views::passthrough_tables() {
        let rows = out.entry(table.name.to_string()).or_default();
        rows.extend(whole.rows(table.name).map(|row| views::passthrough::shape(table, row)));
    }
    out.retain(|_, rows| !rows.is_empty());
    out
}
