//! The `coda.request` span: one per HTTP request to Coda (upserts, deletes, lists, mutation
//! statuses, read-backs), kind client, a root of the Coda sink's own traces.
//!
//! A request carries rows of many changes, each with a trace of its own, so the request is not
//! a child of any: it LINKS to the `coda.write` span of every change whose rows it carries, at
//! most [`MAX_LINKS`] (a batch of 500 rows merged from many commits would otherwise carry 500),
//! and the writer links each `coda.write` back to the requests that carried it. The writer
//! says what a request carries by running the client call inside [`carrying`]; the client opens
//! the span ([`request_span`]) and reports its status ([`answered`]).
//!
//! Attributes: `august.view`, `august.kind`, `http.request.method`,
//! `http.response.status_code`, `august.rows`. Never cells, keys or tokens.

use std::future::Future;
use std::sync::{Arc, Mutex};

use opentelemetry::trace::{SpanContext, TraceContextExt};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The most changes one request span links to.
pub const MAX_LINKS: usize = 128;

/// What the requests made inside [`carrying`] carry, and the span of the last one.
#[derive(Debug, Default)]
struct Carrying {
    view: String,
    links: Vec<SpanContext>,
    last: Option<SpanContext>,
}

tokio::task_local! {
    static CARRYING: Arc<Mutex<Carrying>>;
}

/// Runs `call` (client calls for rows of `view`) so that each request it makes links to
/// `links` (the first [`MAX_LINKS`]); returns its output and the span context of the last
/// request it made (`None` without a tracing layer, or when it made none).
pub async fn carrying<T>(
    view: &str,
    mut links: Vec<SpanContext>,
    call: impl Future<Output = T>,
) -> (T, Option<SpanContext>) {
    links.truncate(MAX_LINKS);
    let shared = Arc::new(Mutex::new(Carrying { view: view.to_string(), links, last: None }));
    let output = CARRYING.scope(shared.clone(), call).await;
    let last = shared.lock().ok().and_then(|mut c| c.last.take());
    (output, last)
}

/// What kind of request this is, from its method and path template.
fn kind(method: &reqwest::Method, template: &str) -> &'static str {
    match (method.as_str(), template) {
        ("POST", _) => "upsert",
        ("DELETE", _) => "delete",
        (_, t) if t.starts_with("/mutationStatus") => "mutation_status",
        (_, t) if t.ends_with("/columns") => "list_columns",
        (_, t) if t.ends_with("/rows") => "list_rows",
        _ => "read",
    }
}

/// Opens the span of a request about to leave (after its quota wait): a root span, linked to
/// what the caller's [`carrying`] says it carries. It ends when dropped.
pub(crate) fn request_span(method: &reqwest::Method, template: &'static str, rows: Option<usize>) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "coda.request",
        otel.kind = "client",
        august.view = tracing::field::Empty,
        august.kind = kind(method, template),
        http.request.method = method.as_str(),
        http.response.status_code = tracing::field::Empty,
        august.rows = tracing::field::Empty,
    );
    if let Some(rows) = rows {
        span.record("august.rows", rows as u64);
    }
    let _ = CARRYING.try_with(|carrying| {
        let Ok(mut carrying) = carrying.lock() else { return };
        span.record("august.view", carrying.view.as_str());
        for link in &carrying.links {
            span.add_link(link.clone()); // before the span starts, so the links are at its creation
        }
        let own = span.context().span().span_context().clone();
        carrying.last = own.is_valid().then_some(own);
    });
    span
}

/// The request was answered with `status` (`None`: no answer, the connection failed).
pub(crate) fn answered(span: &tracing::Span, status: Option<u16>) {
    if let Some(status) = status {
        span.record("http.response.status_code", status);
    }
}
