//! What every view is built from: the live rows of each published table (whole, or narrowed to
//! the columns views read), and look-ups by a column arranged once and shared by every view
//! that needs them. Apart from [`crate::graph`], which makes it, so views and graph do not
//! import each other.

use std::cell::RefCell;
use std::collections::HashMap;

use august_cdc::{Row, Value};

use crate::join::{left_join, Coll, Keyed};
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

    /// The rows of `table`, each with the appointment its `appointment` column names (by
    /// DrChrono id), its patient ([`visit_patient`]: its own, else the appointment's) and the
    /// appointment's provider: the join every view that shows a record beside its visit needs.
    pub fn with_visit(&self, table: &'static str, appointment: &'static str) -> Coll<'s, WithVisit> {
        let (own, ap) = (Cols::of(table), Cols::of("appointments"));
        let rows = left_join(
            self.rows(table),
            move |r| own.get(r, appointment).clone(),
            &self.dim("appointments", "drchrono_id"),
        );
        let rows =
            left_join(rows, move |(r, a)| visit_patient(table, r, a.as_ref()), &self.dim("patients", "drchrono_id"));
        left_join(
            rows,
            move |((_, a), _)| a.as_ref().map_or(Value::Null, |a| ap.get(a, "provider_id").clone()),
            &self.dim("providers", "drchrono_id"),
        )
    }
}

/// The patient of a row of `table` that names an appointment: the row's own `patient_id`, else
/// its appointment's.
pub fn visit_patient(table: &'static str, row: &Row, appointment: Option<&Row>) -> Value {
    let own = Cols::of(table).get(row, "patient_id");
    if !own.is_null() {
        return own.clone();
    }
    appointment.map_or(Value::Null, |a| Cols::of("appointments").get(a, "patient_id").clone())
}

/// A row with its visit: ((row, appointment), patient), provider.
pub type WithVisit = (((Row, Option<Row>), Option<Row>), Option<Row>);
