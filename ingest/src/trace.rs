//! Ingest's spans (names and attributes agreed for issue 14): `webhook` per delivery and
//! `writeback` per write-back request (both kind server, child of an incoming W3C
//! `traceparent` when the request carries one), `drchrono.sync`/`drchrono.page` for pull
//! sync, and `ingest.commit` per transaction.
//!
//! The context of `ingest.commit` is what the transaction carries into the WAL
//! ([`august_schema::trace::emit`]), so the change's trace continues in cdc. It is emitted
//! only when that span is sampled: with tracing off (no OpenTelemetry layer) the context is
//! empty and the transaction runs no extra statement. Attributes are ids, names, counts and
//! statuses only, never a payload's values.

use std::future::Future;

use august_schema::trace::TraceParent;
use august_schema::DbError;
use axum::http::HeaderMap;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt;
use tokio_postgres::GenericClient;
use tracing::field::Empty;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::IngestError;

/// A request's headers as an OpenTelemetry carrier.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` the child of the context the request's headers carry (`traceparent`), when
/// they carry one and tracing is on; otherwise `span` stays a root.
fn continue_remote(span: &Span, headers: &HeaderMap) {
    let remote = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    if remote.span().span_context().is_valid() {
        // Fails only without the OpenTelemetry layer, when there is nothing to continue.
        let _ = span.set_parent(remote);
    }
}

/// The `webhook` span of one delivery from `source` (`drchrono`, `deepcura`); `event` is a
/// bounded label (a known event name or `other`).
pub(crate) fn webhook(source: &'static str, event: &'static str, route: &'static str, headers: &HeaderMap) -> Span {
    let span = tracing::info_span!(
        "webhook",
        otel.kind = "server",
        august.source = source,
        august.event = event,
        http.route = route,
        http.response.status_code = Empty,
        august.outcome = Empty,
    );
    continue_remote(&span, headers);
    span
}

/// The `writeback` span of one Coda write-back request for `target`.
pub(crate) fn writeback(target: &'static str, headers: &HeaderMap) -> Span {
    let span = tracing::info_span!(
        "writeback",
        otel.kind = "server",
        august.target = target,
        http.response.status_code = Empty,
        august.outcome = Empty,
    );
    continue_remote(&span, headers);
    span
}

/// Records how a request ended on its span: the HTTP status and the outcome label.
pub(crate) fn answered(span: &Span, status: u16, outcome: &str) {
    span.record("http.response.status_code", status);
    span.record("august.outcome", outcome);
}

/// The outcome of a delivery as its span and its metrics name it: `accepted`, or the error's
/// code.
pub(crate) fn outcome<T>(result: &Result<T, IngestError>) -> (u16, &'static str) {
    match result {
        Ok(_) => (200, "accepted"),
        Err(e) => {
            let (status, code) = e.status_and_code();
            (status.as_u16(), code)
        }
    }
}

/// Runs a delivery's handling inside `span` and records its outcome there; a refused
/// delivery is logged (status and outcome only) inside the span.
pub(crate) async fn delivered<T>(
    span: Span,
    handling: impl Future<Output = Result<T, IngestError>>,
) -> Result<T, IngestError> {
    let result = handling.instrument(span.clone()).await;
    let (status, outcome) = outcome(&result);
    answered(&span, status, outcome);
    if result.is_err() {
        // Inside the span, so a JSON log line carries the delivery's trace id.
        span.in_scope(|| tracing::info!(status, outcome, "webhook delivery refused"));
    } else {
        span.in_scope(|| tracing::debug!(status, outcome, "webhook delivery answered"));
    }
    result
}

/// Runs `transaction` (begin to commit) inside a new `ingest.commit` span, timing it in
/// `august_ingest_commit_seconds{source}` (`drchrono`, `deepcura`, `drchrono_pull`,
/// `writeback`).
pub(crate) async fn commit<F: Future>(source: &'static str, transaction: F) -> F::Output {
    let started = std::time::Instant::now();
    let output = transaction.instrument(tracing::info_span!("ingest.commit")).await;
    let name = august_schema::metrics::INGEST_COMMIT_SECONDS.name;
    metrics::histogram!(name, "source" => source).record(started.elapsed().as_secs_f64());
    output
}

/// The current span's context as a `traceparent`, when tracing is on and it is sampled.
pub(crate) fn sampled_context() -> Option<TraceParent> {
    august_schema::trace::trace_parent(&Span::current()).filter(TraceParent::sampled)
}

/// Writes the current (`ingest.commit`) span's context into the WAL inside `tx`'s
/// transaction; nothing (no statement) when it is not sampled or tracing is off.
pub(crate) async fn emit(tx: &impl GenericClient) -> Result<(), DbError> {
    match sampled_context() {
        Some(parent) => august_schema::trace::emit(tx, &parent).await,
        None => Ok(()),
    }
}
