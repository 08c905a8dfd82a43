//! The graph: one upsert input per published table, arranged by natural key; the views built
//! on them; every view's rows gathered into one stream for the output.

use august_cdc::{Row, Value};
use differential_dataflow::operators::arrange::upsert::arrange_from_upsert;
use differential_dataflow::trace::implementations::{ValBuilder, ValSpine};
use timely::dataflow::operators::Input;
use timely::dataflow::{InputHandle, ProbeHandle};

use crate::base::Base;
use crate::join::Coll;
use crate::output::{self, Output};
use crate::tables::TABLES;
use crate::views::{self, VIEWS};

/// One upsert: a row's natural key, its new value (`None`: gone), and the LSN it took effect.
pub type Upsert = (Vec<Value>, Option<Row>, u64);

/// The input of one table.
pub type TableInput = InputHandle<u64, timely::container::CapacityContainerBuilder<Vec<Upsert>>>;

/// Builds the graph in `scope` from the table inputs; the view output goes to `out` (on the
/// worker that has it), mapping times to LSNs by the marks the input driver records in `clock`.
/// Returns a probe on the output.
pub fn build<'s>(
    scope: timely::dataflow::Scope<'s, u64>,
    inputs: &mut [TableInput],
    out: Option<output::Sender>,
    clock: output::Clock,
) -> ProbeHandle<u64> {
    let tables = TABLES
        .iter()
        .zip(inputs.iter_mut())
        .map(|(table, input)| {
            let stream = scope.input_from(input);
            let arranged = arrange_from_upsert::<
                ValBuilder<Vec<Value>, Row, u64, isize>,
                ValSpine<Vec<Value>, Row, u64, isize>,
                _,
                _,
            >(stream, table.name);
            crate::metrics::name_arrangement(arranged.trace.operator().global_id, table.name.to_string());
            arranged.as_collection(|_key, row| row.clone())
        })
        .collect();
    let base = Base::new(tables);

    let links = views::deepcura_links::links(&base);
    let mut all: Vec<Coll<'s, (Value, views::ViewRow)>> =
        VIEWS.iter().map(|view| (view.build)(&base, &links)).collect();
    all.extend(views::passthrough_tables().map(|table| views::passthrough::build(&base, table)));

    let tagged = all
        .into_iter()
        .enumerate()
        .map(|(index, view)| view.map(move |(key, row)| (index as u16, key, row)))
        .reduce(|a, b| a.concat(b))
        .expect("there are views");
    output::sink(tagged, out, clock)
}

/// What the graph emits.
pub type GraphOutput = Output;
