//! Trace contexts on the stream: a transaction whose WAL carries a traceparent yields
//! `Event::Trace` and a `cdc.transaction` span below it; one without, or rolled back, neither.

use august_cdc::{Event, Lsn};
use august_schema::trace::emit;
use august_testkit::spans::{assert_no_text, attribute, named, spans};
use opentelemetry::trace::SpanKind;

use crate::mirror::test_config;
use crate::Consumer;

/// A client's name, as PHI would look; it must never reach a span.
const PHI: &str = "Ada Lovelace-Byron";

async fn traced_table(db: &august_testkit::TestDb) -> tokio_postgres::Client {
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE traced (id int PRIMARY KEY, name text); ALTER TABLE traced REPLICA IDENTITY FULL;
             ALTER PUBLICATION august_cdc ADD TABLE traced;",
        )
        .await
        .unwrap();
    client
}

/// The transactions of the stream, each as its commit LSN and the trace events inside it.
fn traces_by_transaction(events: &[Event]) -> Vec<(Lsn, Vec<august_cdc::trace::TraceParent>)> {
    let mut out: Vec<(Lsn, Vec<_>)> = Vec::new();
    for event in events {
        match event {
            Event::Begin { commit_lsn, .. } => out.push((*commit_lsn, Vec::new())),
            Event::Trace(parent) => out.last_mut().expect("a trace inside a transaction").1.push(*parent),
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn a_traced_transaction_yields_its_context_and_a_consumer_span_below_the_writer() {
    let recorder = spans();
    let db = august_testkit::fresh_db("cdc_traced").await;
    let mut client = traced_table(&db).await;
    let mut consumer = Consumer::start(&db, test_config(&db.name));
    consumer.mirror.keep_events = true;
    consumer.pump_until(std::time::Duration::from_secs(30), |m| m.snapshot_lsn.is_some()).await;

    let writer = recorder.new_trace();
    let tx = client.transaction().await.unwrap();
    tx.execute("INSERT INTO traced VALUES (1, $1)", &[&PHI]).await.unwrap();
    emit(&tx, &writer).await.unwrap();
    tx.execute("INSERT INTO traced VALUES (2, $1)", &[&PHI]).await.unwrap();
    tx.commit().await.unwrap();
    consumer.catch_up(&client).await;

    let transactions = traces_by_transaction(&consumer.mirror.events);
    let [(commit_lsn, delivered)] = transactions.as_slice() else { panic!("one transaction: {transactions:?}") };
    let [context] = delivered.as_slice() else { panic!("one trace event: {delivered:?}") };
    assert_eq!(context.trace_id, writer.trace_id, "the writer's trace goes on");
    assert_ne!(context.span_id, writer.span_id, "the event carries cdc's own span, below the writer's");

    let spans = recorder.wait_for(writer.trace_id, std::time::Duration::from_secs(10), |s| !s.is_empty()).await;
    let [span] = named(&spans, "cdc.transaction")[..] else { panic!("one cdc.transaction span: {spans:?}") };
    assert_eq!(span.span_kind, SpanKind::Consumer);
    assert_eq!(span.parent_span_id.to_bytes(), writer.span_id, "the parent is the writer's span");
    assert!(span.parent_span_is_remote, "a remote parent, read from the WAL");
    assert_eq!(span.span_context.span_id().to_bytes(), context.span_id, "the event carries this span");
    assert_eq!(attribute(span, "august.lsn"), Some(commit_lsn.to_string()), "the commit LSN as text");
    assert_eq!(attribute(span, "august.changes").as_deref(), Some("2"));
    assert_no_text(&spans, &[PHI, "Lovelace"]);
}

#[tokio::test]
async fn a_transaction_without_a_context_or_rolled_back_yields_no_trace() {
    let recorder = spans();
    let db = august_testkit::fresh_db("cdc_untraced").await;
    let mut client = traced_table(&db).await;
    let mut consumer = Consumer::start(&db, test_config(&db.name));
    consumer.mirror.keep_events = true;
    consumer.pump_until(std::time::Duration::from_secs(30), |m| m.snapshot_lsn.is_some()).await;

    let rolled_back = recorder.new_trace();
    let tx = client.transaction().await.unwrap();
    tx.execute("INSERT INTO traced VALUES (1, 'a')", &[]).await.unwrap();
    emit(&tx, &rolled_back).await.unwrap();
    tx.rollback().await.unwrap();
    client.execute("INSERT INTO traced VALUES (2, 'b')", &[]).await.unwrap();
    consumer.catch_up(&client).await;

    let transactions = traces_by_transaction(&consumer.mirror.events);
    let [(commit_lsn, delivered)] = transactions.as_slice() else { panic!("one transaction: {transactions:?}") };
    assert!(delivered.is_empty(), "no trace event for an untraced transaction: {delivered:?}");
    assert!(recorder.of_trace(rolled_back.trace_id).is_empty(), "nothing of a rolled-back transaction");
    // LSNs are unique across the test cluster, so no other test's span has this one.
    let text = commit_lsn.to_string();
    let spanned = recorder.all().iter().any(|s| attribute(s, "august.lsn").as_deref() == Some(text.as_str()));
    assert!(!spanned, "no cdc.transaction span without a trace context");
}
