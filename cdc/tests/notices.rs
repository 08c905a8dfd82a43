//! Write-back notices on the stream: inside their transaction, once, also in a transaction
//! that changes no row.

use std::time::Duration;

use august_cdc::{Event, Lsn, NoticeKind};
use august_schema::writeback::{emit, Notice, EDIT_PREFIX, REFRESH_PREFIX};

use crate::mirror::test_config;
use crate::Consumer;

fn notice(key: &str) -> Notice {
    Notice { target: "intake".into(), key: key.into(), coda_row_id: None, fields: vec!["status".into()] }
}

#[tokio::test]
async fn write_back_notices_arrive_inside_their_transactions() {
    let db = august_testkit::fresh_db("cdc_notices").await;
    let mut client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE noted (id int PRIMARY KEY, v text); ALTER TABLE noted REPLICA IDENTITY FULL;
             ALTER PUBLICATION august_cdc ADD TABLE noted;",
        )
        .await
        .unwrap();
    let mut consumer = Consumer::start(&db, test_config(&db.name));
    consumer.mirror.keep_events = true;
    consumer.pump_until(Duration::from_secs(30), |m| m.snapshot_lsn.is_some()).await;

    let tx = client.transaction().await.unwrap();
    tx.execute("INSERT INTO noted VALUES (1, 'a')", &[]).await.unwrap();
    emit(&tx, EDIT_PREFIX, &notice("1")).await.unwrap();
    tx.commit().await.unwrap();
    let tx = client.transaction().await.unwrap();
    emit(&tx, REFRESH_PREFIX, &notice("2")).await.unwrap();
    tx.commit().await.unwrap();
    consumer.catch_up(&client).await;

    let events = &consumer.mirror.events;
    let framed: Vec<(Lsn, &Event)> = {
        let mut at = Lsn::ZERO;
        events
            .iter()
            .filter_map(|e| match e {
                Event::Begin { commit_lsn, .. } => {
                    at = *commit_lsn;
                    None
                }
                Event::Notice(_) | Event::Change(_) => Some((at, e)),
                _ => None,
            })
            .collect()
    };
    let kinds: Vec<(NoticeKind, &str)> = framed
        .iter()
        .filter_map(|(_, e)| if let Event::Notice(n) = e { Some((n.kind, n.notice.key.as_str())) } else { None })
        .collect();
    assert_eq!(kinds, [(NoticeKind::Edit, "1"), (NoticeKind::Refresh, "2")], "each notice once, in order");
    assert_eq!(framed[0].0, framed[1].0, "the edit notice shares its transaction's commit LSN");
    assert_eq!(consumer.mirror.transactions.len(), 2, "the notice-only transaction is a transaction too");
    assert!(consumer.mirror.faults.is_empty(), "{:?}", consumer.mirror.faults);
}
