//! The delivery rules, message by message.

use std::sync::Arc;

use super::*;
use crate::relation::{Column, ReplicaIdentity};

fn relation() -> Arc<Relation> {
    let column = |name: &str, type_oid, is_key| Column { name: name.into(), type_oid, type_modifier: -1, is_key };
    Arc::new(Relation {
        oid: 1,
        schema: "public".into(),
        name: "notes".into(),
        replica_identity: ReplicaIdentity::Full,
        columns: vec![column("id", 23, true), column("body", 25, false)],
    })
}

fn begin(lsn: u64) -> Message<'static> {
    Message::Begin { final_lsn: Lsn(lsn), commit_time: 0, xid: 7 }
}

fn commit(lsn: u64) -> Message<'static> {
    Message::Commit { commit_lsn: Lsn(lsn), end_lsn: Lsn(lsn + 8), commit_time: 0 }
}

fn insert(id: &'static str) -> Message<'static> {
    Message::Insert { relation: 1, new: vec![Datum::Text(id), Datum::Text("x")] }
}

fn feed(delivery: &mut Delivery, messages: Vec<Message<'static>>) -> Vec<Event> {
    let mut out = Vec::new();
    for message in messages {
        delivery.on_message(message, &mut out).unwrap();
    }
    out
}

fn inserted_ids(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Change(c) => Some(c.key()[0].clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn transactions_before_the_snapshot_are_dropped() {
    let mut delivery = Delivery::new(Lsn(100), &[relation()], None);
    let out = feed(&mut delivery, vec![begin(90), insert("1"), commit(90), begin(100), insert("2"), commit(100)]);
    assert_eq!(inserted_ids(&out), [Value::Int(2)], "commit below the snapshot LSN is in the copy; at it is not");
    assert!(matches!(out[0], Event::Begin { commit_lsn: Lsn(100), .. }));
    assert!(matches!(out.last(), Some(Event::Commit { commit_lsn: Lsn(100), .. })));
    assert_eq!(delivery.progress(), Lsn(101));
}

#[test]
fn after_a_reconnect_resent_transactions_are_dropped_and_the_open_one_resumes() {
    let mut delivery = Delivery::new(Lsn(0), &[relation()], None);
    let mut out = feed(&mut delivery, vec![begin(10), insert("1"), commit(10), begin(20), insert("2"), insert("3")]);
    delivery.on_reconnect();
    // The server resends from before both transactions.
    out.extend(feed(
        &mut delivery,
        vec![begin(10), insert("1"), commit(10), begin(20), insert("2"), insert("3"), insert("4"), commit(20)],
    ));
    assert_eq!(inserted_ids(&out), [Value::Int(1), Value::Int(2), Value::Int(3), Value::Int(4)]);
    let begins = out.iter().filter(|e| matches!(e, Event::Begin { .. })).count();
    let commits = out.iter().filter(|e| matches!(e, Event::Commit { .. })).count();
    assert_eq!((begins, commits), (2, 2), "each transaction framed once");
}

#[test]
fn no_progress_while_an_interrupted_transaction_waits_to_be_resent() {
    let mut delivery = Delivery::new(Lsn(0), &[relation()], None);
    let mut out = feed(&mut delivery, vec![begin(50), insert("1")]);
    delivery.on_reconnect();
    delivery.on_keepalive(Lsn(40), &mut out);
    assert!(!out.iter().any(|e| matches!(e, Event::Progress(_))), "progress would close the open transaction's time");
    out.extend(feed(&mut delivery, vec![begin(50), insert("1"), commit(50)]));
    delivery.on_keepalive(Lsn(80), &mut out);
    assert_eq!(out.last(), Some(&Event::Progress(Lsn(80))));
}

#[test]
fn an_empty_transaction_is_progress_only() {
    let mut delivery = Delivery::new(Lsn(0), &[relation()], None);
    let heartbeat = Message::LogicalMessage { transactional: true, prefix: "august.heartbeat", content: b"now" };
    let out = feed(&mut delivery, vec![begin(30), heartbeat, commit(30)]);
    assert_eq!(out, [Event::Progress(Lsn(31))]);
}

#[test]
fn an_unchanged_toast_value_comes_from_the_old_row() {
    let mut delivery = Delivery::new(Lsn(0), &[relation()], None);
    let update = Message::Update {
        relation: 1,
        old: Some((OldTuple::Full, vec![Datum::Text("1"), Datum::Text("long body")])),
        new: vec![Datum::Text("1"), Datum::UnchangedToast],
    };
    let out = feed(&mut delivery, vec![begin(5), update, commit(5)]);
    let Event::Change(Change { kind: ChangeKind::Update { new, .. }, .. }) = &out[1] else { panic!("{out:?}") };
    assert_eq!(new.0[1], Value::Text("long body".into()));

    let orphan = Message::Update { relation: 1, old: None, new: vec![Datum::Text("1"), Datum::UnchangedToast] };
    let mut sink = Vec::new();
    delivery.on_message(begin(6), &mut sink).unwrap();
    assert!(delivery.on_message(orphan, &mut sink).is_err(), "never NULL, never dropped: an error");
}

#[test]
fn full_identity_relations_keep_their_catalog_keys() {
    let mut delivery = Delivery::new(Lsn(0), &[relation()], None);
    let mut resent = (*relation()).clone();
    resent.columns.iter_mut().for_each(|c| c.is_key = true); // as pgoutput flags FULL tables
    resent.columns.push(Column { name: "added".into(), type_oid: 25, type_modifier: -1, is_key: true });
    delivery.on_relation(resent, None);
    let out = feed(
        &mut delivery,
        vec![
            begin(5),
            Message::Insert { relation: 1, new: vec![Datum::Text("9"), Datum::Null, Datum::Null] },
            commit(5),
        ],
    );
    let Event::Change(change) = &out[1] else { panic!() };
    assert_eq!(change.key(), [Value::Int(9)]);
}

const EDIT: &[u8] = br#"{"target":"intake","key":"A1","fields":["status"]}"#;

fn edit_notice() -> Message<'static> {
    Message::LogicalMessage { transactional: true, prefix: august_schema::writeback::EDIT_PREFIX, content: EDIT }
}

fn notices(events: &[Event]) -> Vec<&WalNotice> {
    events.iter().filter_map(|e| if let Event::Notice(n) = e { Some(n) } else { None }).collect()
}

#[test]
fn a_transaction_holding_only_a_refresh_notice_is_delivered_whole() {
    let mut delivery = Delivery::new(Lsn(0), &[relation()], None);
    let refresh = Message::LogicalMessage {
        transactional: true,
        prefix: august_schema::writeback::REFRESH_PREFIX,
        content: br#"{"target":"tasks","key":"7"}"#,
    };
    let out = feed(&mut delivery, vec![begin(30), refresh, commit(30)]);
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(matches!(out[0], Event::Begin { commit_lsn: Lsn(30), .. }));
    let Event::Notice(notice) = &out[1] else { panic!("{out:?}") };
    assert_eq!((notice.kind, notice.notice.key.as_str()), (NoticeKind::Refresh, "7"));
    assert!(matches!(out[2], Event::Commit { commit_lsn: Lsn(30), .. }));
}

#[test]
fn a_notice_counts_as_a_position_when_a_transaction_is_resent() {
    let mut delivery = Delivery::new(Lsn(0), &[relation()], None);
    let mut out = feed(&mut delivery, vec![begin(20), insert("1"), edit_notice()]);
    delivery.on_reconnect();
    out.extend(feed(&mut delivery, vec![begin(20), insert("1"), edit_notice(), insert("2"), commit(20)]));
    assert_eq!(inserted_ids(&out), [Value::Int(1), Value::Int(2)]);
    assert_eq!(notices(&out).len(), 1, "the notice delivered once: {out:?}");
    assert_eq!(notices(&out)[0].kind, NoticeKind::Edit);
    let begins = out.iter().filter(|e| matches!(e, Event::Begin { .. })).count();
    assert_eq!(begins, 1);
}

#[test]
fn a_malformed_notice_is_dropped_but_still_counted() {
    let mut delivery = Delivery::new(Lsn(0), &[relation()], None);
    let bad =
        Message::LogicalMessage { transactional: true, prefix: august_schema::writeback::EDIT_PREFIX, content: b"{" };
    let mut out = feed(&mut delivery, vec![begin(20), bad.clone()]);
    delivery.on_reconnect();
    out.extend(feed(&mut delivery, vec![begin(20), bad, insert("2"), commit(20)]));
    assert_eq!(inserted_ids(&out), [Value::Int(2)], "the change after it is not taken for delivered");
    assert!(notices(&out).is_empty());
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn trace_message() -> Message<'static> {
    Message::LogicalMessage { transactional: true, prefix: crate::trace::PREFIX, content: TRACEPARENT.as_bytes() }
}

fn traces(events: &[Event]) -> Vec<usize> {
    events.iter().enumerate().filter_map(|(i, e)| matches!(e, Event::Trace(_)).then_some(i)).collect()
}

#[test]
fn a_trace_context_follows_begin_once_even_when_the_transaction_is_resent() {
    let mut delivery = Delivery::new(Lsn(10), &[relation()], None);
    let mut out = feed(&mut delivery, vec![begin(50), trace_message(), insert("1")]);
    assert_eq!(traces(&out), [1], "the context goes right after the Begin its first change brings");
    delivery.on_reconnect();
    out.extend(feed(&mut delivery, vec![begin(50), trace_message(), insert("1"), insert("2"), commit(50)]));
    assert_eq!(traces(&out), [1], "not again when the transaction is resent");
    assert_eq!(inserted_ids(&out), [Value::Int(1), Value::Int(2)], "the trace is no position: nothing else skipped");
}

#[test]
fn a_trace_context_after_the_changes_is_delivered_where_it_stands_and_alone_it_delivers_nothing() {
    let mut delivery = Delivery::new(Lsn(10), &[relation()], None);
    let out = feed(&mut delivery, vec![begin(50), insert("1"), trace_message(), commit(50)]);
    assert_eq!(traces(&out), [2]);
    let alone = feed(&mut delivery, vec![begin(60), trace_message(), commit(60)]);
    assert_eq!(alone, [Event::Progress(Lsn(61))], "a transaction holding only a trace changes nothing");
    let skipped = feed(&mut delivery, vec![begin(5), trace_message(), insert("3"), commit(5)]);
    assert!(traces(&skipped).is_empty(), "a transaction already in the copy carries no trace");
}
