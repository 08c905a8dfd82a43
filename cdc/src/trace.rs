//! A transaction's trace context, from the WAL to downstream.
//!
//! The writer puts the W3C `traceparent` of its commit span into the transaction as a
//! transactional logical message with prefix `august.trace` (see `august_schema::trace`). The
//! delivery state machine ([`crate::delivery`]) keeps it with the open transaction and, once
//! the transaction is delivered (its `Begin` sent), opens the `cdc.transaction` span (kind
//! consumer) with that context as its remote parent and delivers `Event::Trace` carrying the
//! span's own context, so the dataflow's spans hang below it. The span ends at `Commit`. A
//! transaction without a trace context builds no span at all, and one that delivers nothing
//! (skipped, or only unpublished tables) delivers no trace either.
//!
//! When no OpenTelemetry layer is installed the span has no context of its own; the event then
//! carries the WAL's context unchanged, so a process that does trace further down still links
//! to the writer's trace. Span attributes are ids, LSNs and counts only, never row data.
//!
//! The conversions between [`TraceParent`] and OpenTelemetry's span contexts (from
//! `august_schema::trace`, which ingest uses too) are re-exported here for the crates
//! downstream (`august_dataflow`, `august_sinks`).

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use august_schema::trace::{parse, span_context, trace_parent, TraceParent, PREFIX};

use crate::Lsn;

/// Makes `parent` (a span of another process, `remote`, or of an earlier stage) the parent
/// of `span`, which must not have started yet (no context asked of it, never entered).
/// Without a layer it does nothing.
pub fn set_parent(span: &tracing::Span, parent: &TraceParent, remote: bool) {
    let context = opentelemetry::Context::new().with_remote_span_context(span_context(parent, remote));
    let _ = span.set_parent(context); // only fails without a layer, when there is nothing to do
}

/// Opens `span` below `parent` (see [`set_parent`]) and returns the context the stages after
/// it should take: its own, or `parent` itself when nothing traces here.
pub fn open_below(span: &tracing::Span, parent: &TraceParent, remote: bool) -> TraceParent {
    set_parent(span, parent, remote);
    trace_parent(span).unwrap_or(*parent)
}

/// The trace state of one open transaction (see the module header).
#[derive(Debug, Default)]
pub(crate) struct TransactionTrace {
    /// Read from the WAL, not yet delivered.
    waiting: Option<TraceParent>,
    /// The `cdc.transaction` span, once delivered.
    span: Option<tracing::Span>,
    /// Row changes delivered in this transaction.
    changes: u64,
}

impl TransactionTrace {
    /// The transaction's `august.trace` message: `content` is its traceparent. A malformed or
    /// second one is ignored (the first wins).
    pub(crate) fn read(&mut self, content: &[u8]) {
        if self.waiting.is_some() || self.span.is_some() {
            return;
        }
        match std::str::from_utf8(content).ok().and_then(parse) {
            Some(parent) => self.waiting = Some(parent),
            None => tracing::debug!("a trace context that is not a traceparent; ignored"),
        }
    }

    /// A row change was delivered.
    pub(crate) fn changed(&mut self) {
        self.changes += 1;
    }

    /// The transaction at `commit_lsn` is being delivered: the trace context to deliver with
    /// it, once, opening the `cdc.transaction` span.
    pub(crate) fn deliver(&mut self, commit_lsn: Lsn) -> Option<TraceParent> {
        let parent = self.waiting.take()?;
        let span = tracing::info_span!(
            parent: None,
            "cdc.transaction",
            otel.kind = "consumer",
            august.lsn = %commit_lsn,
            august.changes = tracing::field::Empty,
        );
        let context = open_below(&span, &parent, true);
        self.span = Some(span);
        Some(context)
    }

    /// The transaction committed: its span ends.
    pub(crate) fn committed(&mut self) {
        if let Some(span) = self.span.take() {
            span.record("august.changes", self.changes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_parent_becomes_a_remote_span_context_with_the_same_ids() {
        let parent = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("valid");
        let context = span_context(&parent, true);
        assert!(context.is_valid() && context.is_remote() && context.is_sampled());
        assert!(!span_context(&parent, false).is_remote());
        assert_eq!(context.trace_id().to_bytes(), parent.trace_id);
        assert_eq!(context.span_id().to_bytes(), parent.span_id);
    }

    #[test]
    fn without_a_layer_the_wal_context_goes_on_unchanged() {
        let parent = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("valid");
        let mut trace = TransactionTrace::default();
        trace.read(parent.to_string().as_bytes());
        trace.read(b"00-11111111111111111111111111111111-2222222222222222-01");
        assert_eq!(trace.deliver(Lsn(7)), Some(parent), "the first context wins");
        assert_eq!(trace.deliver(Lsn(7)), None, "delivered once");
    }
}
