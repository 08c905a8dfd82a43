//! A transaction bigger than the chunk setting goes through the dataflow in chunks: the driver
//! never holds more than a chunk, the views end as they would unchunked, and the frontier (the
//! durable position) does not pass the transaction's commit before its last chunk is out.

use std::sync::atomic::Ordering;

use august_cdc::{Event, Lsn, Value};
use august_dataflow::{reference, DataflowConfig, Output};

use crate::model::{random_write, row, Db, Pipeline, Rng};

const CHUNK: usize = 100;

fn chunked() -> Pipeline {
    Pipeline::start_with(DataflowConfig { transaction_chunk_rows: CHUNK, ..DataflowConfig::default() })
}

/// Some providers and linked rows, committed in small transactions.
fn base(db: &mut Db) -> Vec<Event> {
    let mut rng = Rng::new(7);
    let mut events = Vec::new();
    for batch in 0..6 {
        let mut writes: Vec<_> = (batch * 100..batch * 100 + 100)
            .map(|i| {
                (
                    "providers",
                    row("providers", &[("drchrono_id", Value::Int(i)), ("last_name", Value::Text("Before".into()))]),
                )
            })
            .collect();
        writes.extend((0..20).map(|_| random_write(&mut rng)));
        events.extend(db.transaction(writes, vec![]));
    }
    events
}

/// One transaction of 1,000 changes: every provider rewritten (some twice, chunks apart),
/// writes to the joined tables, and a delete.
fn big_transaction(db: &mut Db) -> Vec<Event> {
    let mut rng = Rng::new(11);
    let writes = (0..1000i64)
        .map(|i| match i % 5 {
            0 => random_write(&mut rng),
            _ => (
                "providers",
                row(
                    "providers",
                    &[("drchrono_id", Value::Int(i % 600)), ("last_name", Value::Text(format!("After {i}")))],
                ),
            ),
        })
        .collect();
    db.transaction(writes, vec![("providers", vec![Value::Int(3)])])
}

/// The frontiers emitted before the last update at `commit`, and whether one passed it after.
fn frontiers_around(outputs: &[Output], commit: Lsn) -> (Vec<Lsn>, bool) {
    let last = outputs.iter().rposition(|o| matches!(o, Output::Updates { lsn, .. } if *lsn == commit));
    let last = last.expect("the transaction has output");
    let frontier = |o: &Output| match o {
        Output::Frontier(lsn) => Some(*lsn),
        Output::Updates { .. } | Output::Notices { .. } | Output::Trace { .. } => None,
    };
    let before = outputs[..last].iter().filter_map(frontier).collect();
    let passed = outputs[last..].iter().filter_map(frontier).any(|f| f > commit);
    (before, passed)
}

#[tokio::test]
async fn a_transaction_bigger_than_the_chunk_goes_through_in_chunks_with_the_same_views() {
    let mut db = Db::default();
    let mut events = base(&mut db);
    events.extend(big_transaction(&mut db));
    let commit = db.lsn();

    let mut whole = Pipeline::start(1);
    whole.apply(events.clone(), commit).await;
    let mut pieces = chunked();
    pieces.apply(events, commit).await;

    let (whole_stats, stats) = (whole.stats(), pieces.stats());
    assert!(whole_stats.most_pending.load(Ordering::Relaxed) > CHUNK as u64, "unchunked, the driver holds it whole");
    assert_eq!(whole_stats.chunks.load(Ordering::Relaxed), 0);
    assert!(stats.most_pending.load(Ordering::Relaxed) <= CHUNK as u64, "never more than a chunk held");
    assert!(stats.chunks.load(Ordering::Relaxed) >= 5, "sent in chunks: {stats:?}");
    let expected = reference::compute(&db.live());
    assert_eq!(whole.views, expected);
    assert_eq!(pieces.views, expected, "chunked, the views end the same");

    let updates_at_commit =
        pieces.outputs.iter().filter(|o| matches!(o, Output::Updates { lsn, .. } if *lsn == commit)).count();
    assert!(updates_at_commit > 1, "the transaction's output came in several pieces");
    let (before, passed) = frontiers_around(&pieces.outputs, commit);
    assert!(before.iter().all(|f| *f <= commit), "no frontier past the commit before its last chunk: {before:?}");
    assert!(passed, "the frontier passes the commit after the last chunk");
    whole.stop();
    pieces.stop();
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_big_transaction_replays_it_whole() {
    let mut db = Db::default();
    let base_events = base(&mut db);
    let copy = db.snapshot();
    let big = big_transaction(&mut db);
    let commit = db.lsn();

    // The first run stops with 600 of the changes read: chunks went out, the commit did not.
    let mut first = chunked();
    first.apply(base_events, Lsn(commit.0 - 1)).await;
    first.send(big[..600].to_vec()).await;
    let stats = first.stats();
    let rest = first.stop();
    assert!(stats.chunks.load(Ordering::Relaxed) >= 3, "chunks were sent before the stop: {stats:?}");
    assert!(rest.iter().any(|o| matches!(o, Output::Updates { lsn, .. } if *lsn == commit)), "chunk output went out");
    let durable = rest.iter().filter_map(|o| if let Output::Frontier(f) = o { Some(*f) } else { None }).max();
    assert!(durable.is_none_or(|f| f <= commit), "nothing of the transaction is durable: {durable:?}");

    // The next run copies the tables as the slot left them and reads the transaction again.
    let mut second = chunked();
    let mut events = copy;
    events.extend(big);
    second.apply(events, commit).await;
    assert_eq!(second.views, reference::compute(&db.live()));
    let copy_pieces = second.outputs.iter().filter(|o| matches!(o, Output::Updates { lsn, .. } if *lsn == Lsn::ZERO));
    assert!(copy_pieces.count() > 1, "the copy went out in chunks too");
    second.stop();
}
