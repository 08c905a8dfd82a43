//! Every published table as a view of its own name: its live rows (soft-deleted ones are
//! absent), all columns, keyed by the table's `view_key` (see [`crate::tables::TABLES`]).

use august_cdc::{Row, Value};

use super::ViewRow;
use crate::base::Base;
use crate::join::Coll;
use crate::tables::TableSpec;

/// One row of a table's view.
pub fn shape(table: &TableSpec, row: &Row) -> (Value, ViewRow) {
    (row.0[table.col(table.view_key)].clone(), row.0.clone())
}

/// Builds the view of `table`.
pub fn build<'s>(base: &Base<'s>, table: &'static TableSpec) -> Coll<'s, (Value, ViewRow)> {
    base.full(table.name).map(move |row| shape(table, &row))
}
