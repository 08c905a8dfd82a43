//! What Coda holds, compared row for row with what the views say it should hold: the check
//! behind `august verify --coda` and the end-to-end tests.
//!
//! The views are computed from scratch over one consistent copy of Postgres
//! ([`august_dataflow::reference`]); every mapped table is then read from Coda under the
//! client's read quota. Rows are matched by the mapping's key as the ledger writes it, and a
//! row is equal exactly when the sink would see Coda already holding its content: the same
//! cells ([`cells`](super::cells)) with the same content hash. A difference names the view, the
//! key and the columns, never a value (values are PHI).
//!
//! Coda is read after Postgres, so a pipeline that is running may show rows it has not yet
//! mirrored; compare again to tell lag from loss.

use std::collections::BTreeMap;
use std::time::Duration;

use august_cdc::CdcError;
use august_dataflow::reference::{self, Views};
use serde_json::Value;

use super::cells::{coda_key_text, hash, key_text, CellSources, Cells};
use super::client::{CodaClient, CodaError};
use super::mapping::{Mapping, OnDelete, TableMapping};
use crate::SinkError;

/// How one row of a view and its Coda row disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The view has the row; Coda does not.
    MissingInCoda,
    /// Coda has the row; the view does not (and the mapping says such rows are deleted).
    OnlyInCoda,
    /// Coda holds the key in more than one row.
    HeldTwice,
    /// Both have the row, with other values in these view columns.
    Differs(Vec<String>),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::MissingInCoda => f.write_str("missing in Coda"),
            Problem::OnlyInCoda => f.write_str("only in Coda"),
            Problem::HeldTwice => f.write_str("held by several Coda rows"),
            Problem::Differs(columns) => write!(f, "differs: {}", columns.join(", ")),
        }
    }
}

/// One row that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowDifference {
    /// The view.
    pub view: String,
    /// The row's key, as the ledger writes it.
    pub key: String,
    /// How they differ.
    pub problem: Problem,
}

/// The outcome of a comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Rows compared: every key found in a view or in its Coda table.
    pub rows: usize,
    /// The rows that differ, table by table in mapping order, by key within a table.
    pub differences: Vec<RowDifference>,
}

/// Why a comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// Postgres could not be copied.
    #[error("cannot read the tables from Postgres: {0}")]
    Postgres(#[from] CdcError),
    /// Coda could not be read, or the mapping does not match its tables.
    #[error(transparent)]
    Coda(#[from] SinkError),
}

/// Compares every table of `mapping` with its view, computed from scratch over the database
/// `pg`. The mapping is first checked against Coda, so a missing column is an error rather
/// than a difference in every row.
pub async fn compare_with(
    client: &CodaClient,
    mapping: &Mapping,
    pg: &tokio_postgres::Config,
) -> Result<Comparison, CompareError> {
    super::check_mapping(client, mapping).await?;
    let views = reference::compute(&reference::read_live_tables(pg).await?);
    let mut comparison = Comparison::default();
    for table in &mapping.tables {
        let listed = read_rows(client, &mapping.doc_id, &table.table_id).await.map_err(SinkError::from)?;
        let (rows, differences) = compare_table(table, &expected_rows(table, &views), &listed);
        comparison.rows += rows;
        comparison.differences.extend(differences);
    }
    Ok(comparison)
}

/// The rows `table` should hold: ledger key → cells, as the sink would send them.
pub fn expected_rows(table: &TableMapping, views: &Views) -> BTreeMap<String, Cells> {
    let sources = CellSources::of(table);
    views.get(&table.view).into_iter().flatten().map(|(key, row)| (key_text(key), sources.cells(row))).collect()
}

/// Compares one table's expected rows with the rows Coda listed for it (row id and values by
/// column id); returns how many keys were compared and what differs.
pub fn compare_table(
    table: &TableMapping,
    expected: &BTreeMap<String, Cells>,
    listed: &[(String, BTreeMap<String, Value>)],
) -> (usize, Vec<RowDifference>) {
    let sources = CellSources::of(table);
    let mut held: BTreeMap<String, Vec<Cells>> = BTreeMap::new();
    for (_, values) in listed {
        let key = values.get(table.key_column()).map(coda_key_text).unwrap_or_default();
        held.entry(key).or_default().push(sources.cells_of_coda_row(values));
    }
    let difference = |key: &String, problem| RowDifference { view: table.view.clone(), key: key.clone(), problem };
    let mut differences = Vec::new();
    for (key, cells) in expected {
        match held.get(key).map(Vec::as_slice) {
            None => differences.push(difference(key, Problem::MissingInCoda)),
            Some([coda]) if hash(coda) == hash(cells) => {}
            Some([coda]) => differences.push(difference(key, Problem::Differs(differing_columns(table, cells, coda)))),
            Some(_) => differences.push(difference(key, Problem::HeldTwice)),
        }
    }
    for (key, rows) in &held {
        if expected.contains_key(key) {
            continue;
        }
        if rows.len() > 1 {
            differences.push(difference(key, Problem::HeldTwice));
        } else if table.on_delete == OnDelete::Delete {
            // With `on_delete = "keep"` Coda is meant to keep rows the view no longer has.
            differences.push(difference(key, Problem::OnlyInCoda));
        }
    }
    differences.sort_by(|a, b| a.key.cmp(&b.key));
    let rows = expected.len() + held.keys().filter(|k| !expected.contains_key(*k)).count();
    (rows, differences)
}

/// The view columns whose cells differ (both lists are in the mapping's column order).
fn differing_columns(table: &TableMapping, expected: &Cells, coda: &Cells) -> Vec<String> {
    expected
        .iter()
        .zip(coda)
        .filter(|((_, sent), (_, held))| sent != held)
        .flat_map(|((coda_column, _), _)| {
            table.columns.iter().filter(move |(_, id)| *id == coda_column).map(|(view_column, _)| view_column.clone())
        })
        .collect()
}

/// How often a read refused for a passing reason (429, 5xx, time-out) is tried again.
const READ_ATTEMPTS: u32 = 5;

/// Every row of a Coda table, trying again (after `Retry-After`, or a doubling wait) when
/// Coda is busy.
async fn read_rows(
    client: &CodaClient,
    doc: &str,
    table: &str,
) -> Result<Vec<(String, BTreeMap<String, Value>)>, CodaError> {
    let mut wait = Duration::from_secs(1);
    for _ in 1..READ_ATTEMPTS {
        match client.list_rows(doc, table).await {
            Err(e) if e.kind() == august_schema::ErrorKind::Retryable => {
                let after = match e {
                    CodaError::RateLimited { retry_after: Some(after) } => after.max(wait),
                    _ => wait,
                };
                tracing::warn!(error = %e, retry_in_ms = after.as_millis() as u64, "Coda read failed; retrying");
                tokio::time::sleep(after).await;
                wait *= 2;
            }
            other => return other,
        }
    }
    client.list_rows(doc, table).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use august_cdc::Value as CdcValue;

    const MAPPING: &str = "doc_id = \"d\"\n[[tables]]\nallow = [\"direct\", \"clinical\", \"identifier\", \"operational\"]\nview = \"providers\"\ntable_id = \"t\"\nkey = \"drchrono_id\"\non_delete = \"delete\"\n[tables.columns]\ndrchrono_id = \"c-id\"\nlast_name = \"c-last\"\nspecialty = \"c-spec\"\n";

    fn provider(id: i64, last_name: &str) -> Vec<CdcValue> {
        let spec = august_dataflow::tables::table("providers").unwrap();
        let mut row = vec![CdcValue::Null; spec.columns.len()];
        row[spec.col("drchrono_id")] = CdcValue::Int(id);
        row[spec.col("last_name")] = CdcValue::Text(last_name.into());
        row
    }

    /// What Coda lists after the sink sent these rows.
    fn listed(table: &TableMapping, rows: &[Vec<CdcValue>]) -> Vec<(String, BTreeMap<String, Value>)> {
        let sources = CellSources::of(table);
        rows.iter().enumerate().map(|(i, row)| (format!("i-{i}"), sources.cells(row).into_iter().collect())).collect()
    }

    #[test]
    fn rows_are_matched_by_key_and_differences_name_columns_only() {
        let mapping = Mapping::parse(MAPPING, "test").unwrap();
        let table = &mapping.tables[0];
        let mut views = Views::new();
        let view = views.entry("providers".into()).or_default();
        for (id, name) in [(1, "Freud"), (2, "Jung"), (3, "Adler")] {
            view.insert(CdcValue::Int(id), provider(id, name));
        }
        let expected = expected_rows(table, &views);
        let coda = listed(table, &[provider(1, "Freud"), provider(2, "Horney"), provider(4, "Klein")]);
        let (rows, differences) = compare_table(table, &expected, &coda);
        assert_eq!(rows, 4);
        let found: Vec<(String, String)> = differences.iter().map(|d| (d.key.clone(), d.problem.to_string())).collect();
        assert_eq!(
            found,
            [
                ("2".to_string(), "differs: last_name".to_string()),
                ("3".into(), "missing in Coda".into()),
                ("4".into(), "only in Coda".into())
            ]
        );
        assert!(differences.iter().all(|d| !d.problem.to_string().contains("Horney")), "never a value");
        assert_eq!(
            compare_table(
                table,
                &expected,
                &listed(table, &[provider(1, "Freud"), provider(2, "Jung"), provider(3, "Adler")])
            )
            .1,
            []
        );
    }
}
