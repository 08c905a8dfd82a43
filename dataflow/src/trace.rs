//! A traced commit through the dataflow: its `dataflow.apply` span, and its context handed
//! out with its output.
//!
//! cdc delivers a traced transaction's context as `Event::Trace` inside it (the
//! `cdc.transaction` span's, see `august_cdc::trace`). The input driver opens `dataflow.apply`
//! below it, keyed by the transaction's commit LSN in the [`Timeline`]; the output, when that
//! LSN's time closes with view updates, sends `Output::Trace { lsn, context }` (this span's
//! context) right before its first `Output::Updates`, so a sink can hang its own spans below.
//! The span ends when the frontier passes the LSN: the dataflow has closed that timestamp and
//! emitted all of it. Attributes: `august.lsn`, `august.updates` (view updates emitted).
//!
//! An untraced transaction costs nothing here: nothing is kept, no span is built.

use std::collections::BTreeMap;

use august_cdc::trace::{open_below, TraceParent};
use august_cdc::Lsn;

use crate::output::Timeline;

/// A traced commit inside the dataflow.
#[derive(Debug)]
pub struct Applied {
    span: tracing::Span,
    /// What the sinks take as the parent of their spans.
    context: TraceParent,
    updates: usize,
    handed_out: bool,
}

/// Traced commits by commit LSN, until the frontier passes them.
pub type Traces = BTreeMap<Lsn, Applied>;

/// The transaction at `lsn` carries trace context `parent`: its `dataflow.apply` span opens.
/// A second context for the same LSN is ignored.
pub(crate) fn begin(timeline: &mut Timeline, lsn: Lsn, parent: TraceParent) {
    timeline.traces.entry(lsn).or_insert_with(|| {
        let span = tracing::info_span!(
            parent: None,
            "dataflow.apply",
            august.lsn = %lsn,
            august.updates = tracing::field::Empty,
        );
        let context = open_below(&span, &parent, false);
        Applied { span, context, updates: 0, handed_out: false }
    });
}

/// `updates` view updates at `lsn` go out: the context to send before them, the first time
/// a traced LSN has any.
pub(crate) fn hand_out(timeline: &mut Timeline, lsn: Lsn, updates: usize) -> Option<TraceParent> {
    let applied = timeline.traces.get_mut(&lsn)?;
    applied.updates += updates;
    if updates == 0 || applied.handed_out {
        return None;
    }
    applied.handed_out = true;
    Some(applied.context)
}

/// Everything below `frontier` has been emitted: the spans of those LSNs end.
pub(crate) fn passed(timeline: &mut Timeline, frontier: Lsn) {
    let open = timeline.traces.split_off(&frontier);
    for (_, applied) in std::mem::replace(&mut timeline.traces, open) {
        applied.span.record("august.updates", applied.updates as u64);
    }
}
