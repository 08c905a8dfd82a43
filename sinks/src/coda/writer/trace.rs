//! The Coda writer's spans in a change's own trace.
//!
//! ```text
//! dataflow.apply ─┬─ coda.write (view A) ─── coda.confirm (per request that carried it)
//!                 └─ coda.write (view B) ─── coda.confirm
//!                        ┆ links ┆
//!                   coda.request (the sink's own trace; links back to every change it carries)
//! ```
//!
//! The dataflow hands out a traced commit's context (`Output::Trace`) before its updates.
//! Each mapped view those updates put rows in for gets a `coda.write` span (`august.view`,
//! `august.rows`), shared by those rows: it opens when the first row enters the pending set
//! and ends when the last of them is durable (confirmed, settled, or found already in Coda) or
//! dead-lettered. Rows coalesced with later changes carry every change's write. Each request
//! that carries rows links to their writes (see [`crate::coda::traced`], at most 128), each
//! write links to those requests, and a `coda.confirm` span (child of the write, from the
//! request's acceptance to its confirmation; `august.outcome` completed, settled or lost,
//! linked to the `mutation_status` request that said completed) shows the wait for Coda to
//! apply it. Untraced changes carry nothing and build no span.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use august_cdc::trace::{set_parent, trace_parent, TraceParent};
use august_cdc::Lsn;
use opentelemetry::trace::SpanContext;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::Pending;

/// The `coda.write` span of one traced change in one view, shared by its rows.
#[derive(Debug)]
pub(super) struct ChangeWrite {
    span: tracing::Span,
    rows: AtomicU64,
}

impl Drop for ChangeWrite {
    fn drop(&mut self) {
        self.span.record("august.rows", self.rows.load(Ordering::Relaxed));
    }
}

/// The traced changes a pending row carries (none for an untraced one).
#[derive(Debug, Clone, Default)]
pub(super) struct Carried(Vec<Arc<ChangeWrite>>);

impl Carried {
    /// What a row carries once coalesced with `newer`: both changes' writes.
    pub(super) fn merge(mut self, newer: Carried) -> Carried {
        for write in newer.0 {
            if !self.0.iter().any(|w| Arc::ptr_eq(w, &write)) {
                self.0.push(write);
            }
        }
        self
    }
}

/// The writer's trace state.
#[derive(Debug, Default)]
pub(super) struct WriterTrace {
    /// Contexts of traced commits whose updates may still come, by LSN.
    contexts: BTreeMap<Lsn, TraceParent>,
    /// Per request in flight, the `coda.confirm` spans waiting for its confirmation.
    confirming: HashMap<String, Vec<tracing::Span>>,
}

impl WriterTrace {
    /// The commit at `lsn` is traced: its updates follow.
    pub(super) fn traced(&mut self, lsn: Lsn, context: TraceParent) {
        self.contexts.insert(lsn, context);
    }

    /// Every update below `frontier` has come.
    pub(super) fn passed(&mut self, frontier: Lsn) {
        self.contexts = self.contexts.split_off(&frontier);
    }

    /// The writes of one `Updates` output at `lsn`, one per view, opened as rows arrive.
    pub(super) fn updates(&self, lsn: Lsn) -> ChangeWrites {
        ChangeWrites { parent: self.contexts.get(&lsn).copied(), views: HashMap::new() }
    }

    /// A request carrying `items` was made (`request`: its span, when traced): each write links
    /// to it. `accepted` is Coda's request id when it took the write.
    pub(super) fn attempted(&mut self, request: Option<SpanContext>, items: &[Pending], accepted: Option<&str>) {
        let writes = distinct(items);
        if let Some(request) = &request {
            for write in &writes {
                write.span.add_link(request.clone());
            }
        }
        if let Some(id) = accepted {
            if writes.is_empty() {
                return;
            }
            let confirms = writes
                .iter()
                .map(|w| tracing::info_span!(parent: &w.span, "coda.confirm", august.outcome = tracing::field::Empty))
                .collect();
            self.confirming.insert(id.to_string(), confirms);
        }
    }

    /// Request `id` is confirmed (`completed`), `settled` by reading Coda, or `lost`; `by`
    /// is the span of the status request that confirmed it.
    pub(super) fn confirmed(&mut self, id: &str, outcome: &'static str, by: Option<SpanContext>) {
        for span in self.confirming.remove(id).unwrap_or_default() {
            span.record("august.outcome", outcome);
            if let Some(by) = &by {
                span.add_link(by.clone());
            }
        }
    }
}

/// The span contexts of the writes `items` carry, for the request that carries them.
pub(super) fn links(items: &[Pending]) -> Vec<SpanContext> {
    distinct(items)
        .iter()
        .filter_map(|w| trace_parent(&w.span))
        .map(|p| august_cdc::trace::span_context(&p, false))
        .collect()
}

fn distinct(items: &[Pending]) -> Vec<Arc<ChangeWrite>> {
    let mut writes: Vec<Arc<ChangeWrite>> = Vec::new();
    for write in items.iter().flat_map(|p| &p.traces.0) {
        if !writes.iter().any(|w| Arc::ptr_eq(w, write)) {
            writes.push(write.clone());
        }
    }
    writes
}

/// The `coda.write` spans of one traced output, by mapped table.
#[derive(Debug)]
pub(super) struct ChangeWrites {
    parent: Option<TraceParent>,
    views: HashMap<usize, Arc<ChangeWrite>>,
}

impl ChangeWrites {
    /// A row of table `t` (view `view`) enters the pending set: what it carries of this change.
    pub(super) fn row(&mut self, t: usize, view: &str) -> Carried {
        let Some(parent) = &self.parent else { return Carried::default() };
        let write = self.views.entry(t).or_insert_with(|| {
            let span = tracing::info_span!(
                parent: None,
                "coda.write",
                august.view = view,
                august.rows = tracing::field::Empty,
            );
            set_parent(&span, parent, false);
            Arc::new(ChangeWrite { span, rows: AtomicU64::new(0) })
        });
        write.rows.fetch_add(1, Ordering::Relaxed);
        Carried(vec![write.clone()])
    }
}
