//! What every view is built from: the live rows of each published table (whole, or narrowed to
//! the columns views read), and look-ups by a column arranged once and shared by every view
//! that needs them. Apart from [`crate::graph`], which makes it, so views and graph do not
//! import each other.

use std::cell::RefCell;
use std::collections::HashMap;

use august_cdc::Row;

use crate::join::{Coll, Keyed};
use crate::tables::{table, table_index, Cols};

/// The live rows of every published table.
pub struct Base<'s> {
    tables: Vec<Coll<'s, Row>>,
    dims: RefCell<HashMap<(&'static str, &'static str), Keyed<'s, Row>>>,
}

impl<'s> Base<'s> {
    /// The base over each published table's live rows, in [`TABLES`](crate::tables::TABLES) order.
    pub fn new(tables: Vec<Coll<'s, Row>>) -> Self {
        Base { tables, dims: RefCell::new(HashMap::new()) }
    }

    /// The live rows of table `name`, whole (for pass-through views).
    pub fn full(&self, name: &str) -> Coll<'s, Row> {
        self.tables[table_index(name).unwrap_or_else(|| panic!("{name} is not a published table"))].clone()
    }

    /// The live rows of table `name`, narrowed to the columns views read.
    pub fn rows(&self, name: &'static str) -> Coll<'s, Row> {
        let spec = table(name).unwrap_or_else(|| panic!("{name} is not a published table"));
        self.full(name).map(move |row| spec.narrow(&row))
    }

    /// The narrowed rows of table `name` looked up by `column`, arranged once for every view.
    pub fn dim(&self, name: &'static str, column: &'static str) -> Keyed<'s, Row> {
        self.dims
            .borrow_mut()
            .entry((name, column))
            .or_insert_with(|| {
                let cols = Cols::of(name);
                let keyed = Keyed::new(self.rows(name).map(move |row| (cols.get(&row, column).clone(), row)));
                keyed.name(&format!("{name}.{column}"));
                keyed
            })
            .clone()
    }
}
