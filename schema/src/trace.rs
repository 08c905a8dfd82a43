//! The trace context a transaction carries into the WAL, so one trace follows a clinical
//! change from its webhook through commit, cdc and the dataflow to the Coda write that
//! carries it.
//!
//! The writer (ingest: webhooks, pull-sync pages, write-backs) emits, inside its transaction,
//! a transactional logical message with prefix [`PREFIX`] whose content is the W3C
//! `traceparent` of the span that wrote it (`00-<32 hex trace id>-<16 hex span id>-<2 hex
//! flags>`). Being transactional, the message reaches the replication stream with the
//! transaction's changes, at its commit, or not at all. cdc reads it back with [`parse`].
//! It carries ids only: never PHI.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tokio_postgres::GenericClient;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::DbError;

/// The logical-message prefix of a transaction's trace context.
pub const PREFIX: &str = "august.trace";

/// A W3C trace context as carried in the WAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace id (16 bytes, not all zero).
    pub trace_id: [u8; 16],
    /// The id of the span that wrote the transaction (8 bytes, not all zero).
    pub span_id: [u8; 8],
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "00-{}-{}-{:02x}", hex::encode(self.trace_id), hex::encode(self.span_id), self.flags)
    }
}

impl TraceParent {
    /// Whether the trace is sampled (flag bit 0).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// `parent` as an OpenTelemetry span context; `remote` when it comes from another process
/// (read from the WAL), not when it only crossed a channel of this one.
pub fn span_context(parent: &TraceParent, remote: bool) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(parent.trace_id),
        SpanId::from_bytes(parent.span_id),
        TraceFlags::new(parent.flags),
        remote,
        TraceState::default(),
    )
}

/// The context of `span`, when a layer traces it (`None` without an OpenTelemetry layer).
pub fn trace_parent(span: &tracing::Span) -> Option<TraceParent> {
    let context = span.context();
    let own = context.span();
    let own = own.span_context();
    own.is_valid().then(|| TraceParent {
        trace_id: own.trace_id().to_bytes(),
        span_id: own.span_id().to_bytes(),
        flags: own.trace_flags().to_u8(),
    })
}

/// Reads a `traceparent` (version `00`); `None` for anything else, all-zero ids included.
pub fn parse(text: &str) -> Option<TraceParent> {
    let mut parts = text.trim().split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || parts.next().is_some() || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let mut parent = TraceParent { trace_id: [0; 16], span_id: [0; 8], flags: 0 };
    hex::decode_to_slice(trace, &mut parent.trace_id).ok()?;
    hex::decode_to_slice(span, &mut parent.span_id).ok()?;
    let mut flag = [0u8; 1];
    hex::decode_to_slice(flags, &mut flag).ok()?;
    parent.flags = flag[0];
    let zero = parent.trace_id == [0; 16] || parent.span_id == [0; 8];
    (!zero).then_some(parent)
}

/// Emits `parent` into the WAL inside the transaction `tx` is in.
pub async fn emit(tx: &impl GenericClient, parent: &TraceParent) -> Result<(), DbError> {
    tx.execute("SELECT pg_logical_emit_message(true, $1, $2::text)", &[&PREFIX, &parent.to_string()])
        .await
        .map(|_| ())
        .map_err(|e| DbError::new("emit a trace context", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips_and_malformed_ones_are_refused() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parent = parse(text).unwrap();
        assert_eq!(parent.flags, 1);
        assert_eq!(parent.to_string(), text);
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
