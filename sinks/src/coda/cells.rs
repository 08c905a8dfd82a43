//! A view row as Coda cells, and the content hash the ledger keeps of them. One shaping serves
//! the writer (what to send), the start-up check of what Coda holds (the same hash computed
//! from Coda's own rows), and the end-to-end tests (what Coda should hold).

use std::collections::BTreeMap;

use august_cdc::Value as CdcValue;
use august_dataflow::views::{to_scalar_json, ViewRow};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::mapping::TableMapping;

/// One row's cells: Coda column id and value, in the mapping's column order.
pub type Cells = Vec<(String, Value)>;

/// How one mapped table takes its cells from a view row: each Coda column id and the position
/// of the view column it shows.
#[derive(Debug, Clone)]
pub struct CellSources(Vec<(String, usize)>);

impl CellSources {
    /// The sources of `table`'s cells.
    pub fn of(table: &TableMapping) -> Self {
        let spec = table.view_spec();
        Self(
            table
                .columns
                .iter()
                .filter_map(|(column, coda)| spec.columns.iter().position(|c| c == column).map(|i| (coda.clone(), i)))
                .collect(),
        )
    }

    /// The cells of a view row.
    pub fn cells(&self, row: &ViewRow) -> Cells {
        self.0.iter().map(|(coda, i)| (coda.clone(), cell(&row[*i]))).collect()
    }

    /// The cells of a row as Coda returns it (values by column id); a missing column counts as
    /// empty, as Coda shows it.
    pub fn cells_of_coda_row(&self, values: &BTreeMap<String, Value>) -> Cells {
        self.0
            .iter()
            .map(|(coda, _)| (coda.clone(), values.get(coda).cloned().unwrap_or(Value::String(String::new()))))
            .collect()
    }
}

/// The hash the ledger records for cells.
pub fn hash(cells: &Cells) -> String {
    hex::encode(&Sha256::digest(serde_json::to_vec(cells).unwrap_or_default())[..16])
}

/// The text a key is recorded under in the ledger.
pub fn key_text(value: &CdcValue) -> String {
    coda_key_text(&to_scalar_json(value))
}

/// The ledger text of a key as a Coda cell holds it.
pub fn coda_key_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A cell value as Coda takes it: a scalar; NULL becomes an empty string (no null in Coda).
pub fn cell(value: &CdcValue) -> Value {
    match to_scalar_json(value) {
        Value::Null => Value::String(String::new()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coda::mapping::Mapping;

    #[test]
    fn a_row_read_back_from_coda_hashes_like_the_row_sent() {
        let mapping = Mapping::parse(
            "doc_id = \"d\"\n[[tables]]\nallow = [\"direct\", \"clinical\", \"identifier\", \"operational\"]\nview = \"providers\"\ntable_id = \"t\"\nkey = \"drchrono_id\"\non_delete = \"delete\"\n[tables.columns]\ndrchrono_id = \"c-id\"\nlast_name = \"c-last\"\nspecialty = \"c-spec\"\n",
            "test",
        )
        .unwrap();
        let sources = CellSources::of(&mapping.tables[0]);
        let spec = august_dataflow::tables::table("providers").unwrap();
        let mut row = vec![CdcValue::Null; spec.columns.len()];
        row[spec.col("drchrono_id")] = CdcValue::Int(7);
        row[spec.col("last_name")] = CdcValue::Text("Freud".into());
        let sent = sources.cells(&row);
        // Coda returns the values by column id, in its own order.
        let stored: BTreeMap<String, Value> = serde_json::from_str(&serde_json::to_string(&sent).unwrap())
            .map(|pairs: Vec<(String, Value)>| pairs.into_iter().rev().collect())
            .unwrap();
        assert_eq!(hash(&sources.cells_of_coda_row(&stored)), hash(&sent));
        assert_eq!(coda_key_text(&stored["c-id"]), key_text(&CdcValue::Int(7)));
        let mut edited = stored.clone();
        edited.insert("c-last".into(), Value::String("Jung".into()));
        assert_ne!(hash(&sources.cells_of_coda_row(&edited)), hash(&sent), "a different value, a different hash");
    }
}
