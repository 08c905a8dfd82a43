//! A traced commit through cdc and the dataflow: `dataflow.apply` below `cdc.transaction`, and
//! its context handed out once, right before that LSN's first updates; none for an untraced one.

use std::time::Duration;

use august_cdc::Lsn;
use august_dataflow::Output;
use august_schema::trace::emit;
use august_testkit::spans::{assert_no_text, attribute, named, spans};

use crate::end_to_end::Live;

#[tokio::test]
async fn the_output_for_a_traced_commit_carries_its_context_below_cdc() {
    let recorder = spans();
    let db = august_testkit::fresh_db("dataflow_traced").await;
    let mut client = db.client().await;
    let mut live = Live::start(&db);
    live.catch_up(&client).await;

    let writer = recorder.new_trace();
    let tx = client.transaction().await.unwrap();
    emit(&tx, &writer).await.unwrap();
    tx.batch_execute(
        "INSERT INTO patients (drchrono_id, first_name, last_name, cell_phone, drchrono_raw)
             VALUES (41, 'Grace', 'Hopper-Murray', '555-0141', '{}');
         INSERT INTO appointments (drchrono_id, patient_id, scheduled_time, drchrono_raw)
             VALUES ('T-41', 41, '2026-03-02 10:00', '{}');",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    client.execute("UPDATE patients SET cell_phone = '555-0142' WHERE drchrono_id = 41", &[]).await.unwrap();
    live.catch_up(&client).await;

    let traced: Vec<(usize, Lsn, august_cdc::trace::TraceParent)> = live
        .log
        .iter()
        .enumerate()
        .filter_map(|(i, o)| if let Output::Trace { lsn, context } = o { Some((i, *lsn, *context)) } else { None })
        .collect();
    let [(at, lsn, context)] = traced[..] else { panic!("one traced commit: {traced:?}") };
    let first_updates = live.log.iter().position(|o| matches!(o, Output::Updates { lsn: l, .. } if *l == lsn));
    assert_eq!(first_updates, Some(at + 1), "the context comes right before its LSN's first updates");
    let untraced = live.log.iter().any(|o| matches!(o, Output::Updates { lsn: l, .. } if *l > lsn));
    assert!(untraced, "the untraced update came out too, with no context of its own");
    assert_eq!(context.trace_id, writer.trace_id);

    let spans =
        recorder.wait_for(writer.trace_id, Duration::from_secs(10), |s| !named(s, "dataflow.apply").is_empty()).await;
    let [cdc] = named(&spans, "cdc.transaction")[..] else { panic!("one cdc.transaction: {spans:?}") };
    let [apply] = named(&spans, "dataflow.apply")[..] else { panic!("one dataflow.apply: {spans:?}") };
    assert_eq!(apply.parent_span_id, cdc.span_context.span_id(), "dataflow.apply is a child of cdc.transaction");
    assert_eq!(apply.span_context.span_id().to_bytes(), context.span_id, "the output carries dataflow.apply");
    assert_eq!(attribute(apply, "august.lsn"), Some(lsn.to_string()));
    let updates: usize = attribute(apply, "august.updates").unwrap().parse().unwrap();
    let emitted: usize = live
        .log
        .iter()
        .filter_map(|o| {
            if let Output::Updates { lsn: l, updates, .. } = o {
                (*l == lsn).then_some(updates.len())
            } else {
                None
            }
        })
        .sum();
    assert!(updates > 0 && updates == emitted, "august.updates counts what went out: {updates} vs {emitted}");
    assert_no_text(&spans, &["Grace", "Hopper", "555-01"]);
}
