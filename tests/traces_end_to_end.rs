//! One trace per clinical change, end to end: `august serve` with the Coda emulator and an
//! in-repo OTLP/HTTP receiver. One webhook gives one trace holding `webhook` →
//! `ingest.commit` → `cdc.transaction` → `dataflow.apply` → `coda.write` → `coda.confirm`,
//! and the `coda.write` links to the `coda.request` that carried its rows (which links back).

use std::time::Duration;

use august_testkit::otlp::{describe, OtlpReceiver};
use serde_json::json;

use crate::support::{drchrono_webhook, emulator, free_port, serve_env, wait_streaming, August, DRCHRONO_SECRET};

const TOKEN: &str = "traces-token";
const WITHIN: Duration = Duration::from_secs(60);

#[tokio::test]
async fn one_webhook_is_one_trace_from_delivery_to_the_confirmed_coda_write() {
    let db = august_testkit::fresh_db("traces_e2e").await;
    let receiver = OtlpReceiver::start().await.unwrap();
    let (_coda_process, coda) = emulator(TOKEN, &[]).await;
    let (port, metrics_port) = (free_port(), free_port());
    let extra = [
        ("AUGUST_HTTP_ADDR", "127.0.0.1:0".to_string()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint().to_string()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
    ];
    // A transaction open elsewhere holds back the slots' consistent points, as a busy suite's
    // do: the wait below must last until the copy is done, not just until a slot is active.
    let holder = db.client().await;
    holder.batch_execute("BEGIN; SELECT txid_current();").await.unwrap();
    let held = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        holder.batch_execute("COMMIT").await.unwrap();
    });
    let serve = August::spawn(&["serve"], &serve_env(&db, port, metrics_port, &coda, TOKEN, &extra));
    serve.line_with("serving webhooks and replicating", WITHIN).await;
    // A commit before the copy's snapshot would reach the views through the copy, which
    // carries no trace context.
    wait_streaming(&db).await;
    held.await.unwrap();
    let patient = json!({
        "id": 801, "first_name": "Ada", "last_name": "Lovelace", "date_of_birth": "1990-04-01",
        "cell_phone": "555-0100", "doctor": 9, "updated_at": "2026-11-30T10:00:00"
    });
    drchrono_webhook(&format!("http://127.0.0.1:{port}"), DRCHRONO_SECRET, "PATIENT_CREATE", "e2e-trace-1", patient)
        .await;

    let webhook = receiver.named("webhook", WITHIN).await;
    let commit = receiver.child(&webhook, "ingest.commit", WITHIN).await;
    let cdc = receiver.child(&commit, "cdc.transaction", WITHIN).await;
    assert_eq!(cdc.kind, "consumer");
    assert!(cdc.attr("august.lsn").is_some_and(|lsn| lsn.contains('/')), "{cdc:?}");
    let apply = receiver.child(&cdc, "dataflow.apply", WITHIN).await;
    let write = receiver.child(&apply, "coda.write", WITHIN).await;
    assert!(write.attr("august.view").is_some(), "{write:?}");
    receiver.child(&write, "coda.confirm", WITHIN).await;

    let spans = receiver.spans();
    let request = spans
        .iter()
        .find(|s| s.name == "coda.request" && write.links_to(s))
        .unwrap_or_else(|| panic!("coda.write links to no coda.request:\n{}", describe(&spans)));
    assert_eq!(request.kind, "client");
    assert!(request.links_to(&write) || request.links_to(&apply), "the request links back to its change");
    for span in receiver.trace(&webhook.trace_id) {
        for text in span.texts() {
            assert!(!["Ada", "Lovelace", "1990-04-01", "555-0100"].iter().any(|p| text.contains(p)), "{text:?}");
        }
    }
}
