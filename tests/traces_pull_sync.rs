//! `august sync` traced: one `drchrono.sync` per feed, a `drchrono.page` per page pulled, each
//! page's transaction its own `ingest.commit` whose context that transaction carries into the
//! WAL; the spans reach the receiver through the flush at exit (the batch delay is an hour).

use std::collections::BTreeSet;
use std::time::Duration;

use august_emulators::drchrono::{self, DrChronoConfig};
use august_testkit::otlp::{describe, OtlpReceiver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_sync_is_a_sync_span_of_page_spans_each_with_its_commit_in_the_wal() {
    let db = august_testkit::fresh_db("traces_sync").await;
    let receiver = OtlpReceiver::start().await.unwrap();
    let emulator =
        drchrono::serve("127.0.0.1:0".parse().unwrap(), DrChronoConfig { patients: 30, ..Default::default() })
            .await
            .unwrap();
    let slot = db.client().await;
    slot.execute("SELECT pg_create_logical_replication_slot($1, 'test_decoding')", &[&db.name]).await.unwrap();
    let mut env = crate::support::drchrono_env(&db, &emulator);
    env.extend([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint().to_string()),
        ("OTEL_BSP_SCHEDULE_DELAY", "3600000".into()),
    ]);
    let synced = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        crate::august(&["sync", "appointments", "--quiet"], &env)
    })
    .await
    .unwrap();
    assert!(synced.status.success(), "{}", crate::stderr(&synced));

    let sync = receiver.named("drchrono.sync", Duration::from_secs(10)).await;
    assert_eq!(sync.attr("august.feed"), Some("appointments"));
    let spans = receiver.spans();
    let pages: Vec<_> = spans.iter().filter(|s| s.name == "drchrono.page").collect();
    assert!(!pages.is_empty() && pages.iter().all(|p| p.is_child_of(&sync)), "{}", describe(&spans));
    let numbers: BTreeSet<String> = pages.iter().filter_map(|p| p.attr("august.page").map(str::to_string)).collect();
    let expected: BTreeSet<String> = (1..=pages.len()).map(|n| n.to_string()).collect();
    assert_eq!(numbers, expected, "pages numbered from 1");
    let objects: i64 = pages.iter().map(|p| p.attr("august.objects").unwrap().parse::<i64>().unwrap()).sum();
    let stored = db.count("SELECT count(*) FROM appointments").await;
    assert_eq!(objects, stored, "every pulled object counted on its page");
    if stored > 20 {
        assert!(pages.len() > 1, "appointments come 20 to a page");
    }
    let commits: BTreeSet<String> = pages
        .iter()
        .map(|page| {
            let commit = spans.iter().find(|s| s.name == "ingest.commit" && s.is_child_of(page));
            commit.unwrap_or_else(|| panic!("page without its commit:\n{}", describe(&spans))).traceparent()
        })
        .collect();

    let wal: Vec<String> = slot
        .query("SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL)", &[&db.name])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .filter(|line: &String| line.starts_with("message: transactional: 1 prefix: august.trace,"))
        .map(|line| line.rsplit("content:").next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(wal.len(), pages.len(), "one trace context per page transaction: {wal:?}");
    assert_eq!(wal.into_iter().collect::<BTreeSet<_>>(), commits);
    slot.execute("SELECT pg_drop_replication_slot($1)", &[&db.name]).await.unwrap();
}
