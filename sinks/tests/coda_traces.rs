//! The Coda sink's spans, against the emulator: a traced change's `coda.write` per view below
//! the dataflow's context, linked to the `coda.request` that carried it (which links back to
//! every change it carries), and `coda.confirm` once Coda applied it; links bounded per request.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use august_cdc::trace::TraceParent;
use august_cdc::Lsn;
use august_dataflow::{Output, ViewUpdate};
use august_emulators::coda::EmulatorConfig;
use august_sinks::coda::traced::MAX_LINKS;
use august_testkit::spans::{assert_no_text, attribute, named, spans};
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;

use crate::coda_sink::{emulator, fast, start, upsert, Harness};

/// Sends a traced commit at `lsn` as the dataflow does: its context, then its updates.
fn send_traced(h: &Harness, lsn: u64, context: TraceParent, updates: Vec<ViewUpdate>) {
    let lsn = Lsn(lsn);
    h.output.try_send(Output::Trace { lsn, context }).expect("room in the test channel");
    h.output.try_send(Output::Updates { lsn, commit_time: None, updates }).expect("room in the test channel");
}

fn linked_to(span: &SpanData, other: &SpanData) -> bool {
    span.links.links.iter().any(|l| l.span_context.span_id() == other.span_context.span_id())
}

#[tokio::test]
async fn a_traced_change_is_written_below_its_context_linked_to_its_request_and_confirmed_after() {
    let recorder = spans();
    let db = august_testkit::fresh_db("coda_traces").await;
    let mut h = start(&db, emulator(EmulatorConfig::default()).await, fast());
    let (first, second) = (recorder.new_trace(), recorder.new_trace());
    // Both before the first write slot opens: one request carries rows of both changes.
    send_traced(&h, 10, first, vec![upsert(1, "Hopper-Murray"), upsert(2, "Lovelace-Byron")]);
    send_traced(&h, 12, second, vec![upsert(3, "Hamilton-Green")]);
    h.output
        .try_send(Output::Updates { lsn: Lsn(14), commit_time: None, updates: vec![upsert(4, "Untraced")] })
        .unwrap();
    h.output.try_send(Output::Frontier(Lsn(15))).unwrap();
    h.durable_past(14).await;
    let landed = SystemTime::now();
    assert_eq!(h.coda_rows().len(), 4);

    let complete = |s: &[SpanData]| !named(s, "coda.confirm").is_empty() && !named(s, "coda.write").is_empty();
    let spans = recorder.wait_for(first.trace_id, Duration::from_secs(10), complete).await;
    let [write] = named(&spans, "coda.write")[..] else { panic!("one coda.write for one view: {spans:?}") };
    assert_eq!(write.parent_span_id.to_bytes(), first.span_id, "coda.write is a child of dataflow.apply");
    assert_eq!(attribute(write, "august.view").as_deref(), Some("providers"));
    assert_eq!(attribute(write, "august.rows").as_deref(), Some("2"), "the change's rows in that view");
    let [confirm] = named(&spans, "coda.confirm")[..] else { panic!("one coda.confirm: {spans:?}") };
    assert_eq!(confirm.parent_span_id, write.span_context.span_id(), "coda.confirm is a child of coda.write");
    assert_eq!(attribute(confirm, "august.outcome").as_deref(), Some("completed"));
    assert!(confirm.end_time <= write.end_time && write.end_time <= landed, "durable when confirmed");

    let requests: Vec<&SpanData> = named(&spans, "coda.request").into_iter().filter(|r| linked_to(write, r)).collect();
    let [request] = requests[..] else { panic!("coda.write links to the one request that carried it: {spans:?}") };
    assert_eq!(request.span_kind, SpanKind::Client);
    assert_ne!(request.span_context.trace_id(), write.span_context.trace_id(), "the request is in the sink's trace");
    assert_eq!(attribute(request, "august.kind").as_deref(), Some("upsert"));
    assert_eq!(attribute(request, "august.view").as_deref(), Some("providers"));
    assert_eq!(attribute(request, "http.request.method").as_deref(), Some("POST"));
    assert_eq!(attribute(request, "http.response.status_code").as_deref(), Some("202"));
    assert_eq!(attribute(request, "august.rows").as_deref(), Some("4"));
    assert!(request.end_time <= confirm.end_time, "confirmed after the write");
    assert!(linked_to(request, write), "the request links to the change it carries");
    let other = recorder.of_trace(second.trace_id);
    let [other_write] = named(&other, "coda.write")[..] else { panic!("the second change's write: {other:?}") };
    assert!(linked_to(request, other_write), "and to every other change it carries");
    assert_eq!(request.links.links.len(), 2, "the untraced row carries no link");

    let everything = recorder.all(); // the status request links to no change: found by the confirm's link
    let statuses: Vec<&SpanData> =
        named(&everything, "coda.request").into_iter().filter(|r| linked_to(confirm, r)).collect();
    let [status] = statuses[..] else {
        panic!("coda.confirm links to the status request that confirmed it: {spans:?}")
    };
    assert_eq!(attribute(status, "august.kind").as_deref(), Some("mutation_status"));
    assert_eq!(attribute(status, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(attribute(status, "august.view").as_deref(), Some("providers"));

    let mut all = spans.clone();
    all.extend(other);
    assert_no_text(&all, &["Hopper", "Lovelace", "Hamilton"]);
}

#[tokio::test]
async fn a_request_carrying_more_changes_than_the_bound_links_to_the_first_128() {
    let recorder = spans();
    let db = august_testkit::fresh_db("coda_trace_links").await;
    let mut h = start(&db, emulator(EmulatorConfig::default()).await, fast());
    let changes: Vec<TraceParent> = (0..200).map(|_| recorder.new_trace()).collect();
    for (i, context) in changes.iter().enumerate() {
        send_traced(&h, 10 + i as u64, *context, vec![upsert(i as i64, "Row")]);
    }
    h.output.try_send(Output::Frontier(Lsn(300))).unwrap();
    h.durable_past(250).await;

    let ours: HashSet<[u8; 16]> = changes.iter().map(|c| c.trace_id).collect();
    let spans =
        recorder.wait_for(changes[0].trace_id, Duration::from_secs(10), |s| !named(s, "coda.request").is_empty()).await;
    let [request] = named(&spans, "coda.request")[..] else { panic!("one request: {spans:?}") };
    assert_eq!(attribute(request, "august.rows").as_deref(), Some("200"), "one request for all rows");
    assert_eq!(request.links.links.len(), MAX_LINKS, "links are bounded");
    assert!(request.links.links.iter().all(|l| ours.contains(&l.span_context.trace_id().to_bytes())));
    // Every change's write still links to the request that carried it.
    let last =
        recorder.wait_for(changes[199].trace_id, Duration::from_secs(10), |s| !named(s, "coda.write").is_empty()).await;
    let [write] = named(&last, "coda.write")[..] else { panic!("the last change's write: {last:?}") };
    assert!(linked_to(write, request));
}
