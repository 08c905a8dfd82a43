//! `dataflow_incremental`: how long one change takes through the whole graph (every view),
//! with 10,000 and with 1,000,000 base rows, and what a base row costs in memory.
//!
//! Base rows: patients (20%), appointments (40%), clinical notes (20%), Deep Cura notes (20%),
//! 50 providers. Then 300 single-change transactions, in turn a patient's phone (which touches
//! their scheduling rows), an appointment's status, and a Deep Cura note that links; latency is
//! from sending the transaction to the output frontier passing it. Target: the 1M median within
//! 1.2x the 10k median.
//!
//! `cargo run --release -p august-bench --bin dataflow_incremental`

#![allow(clippy::unwrap_used)] // a benchmark stops at the first broken assumption

use std::sync::Arc;
use std::time::{Duration, Instant};

use august_cdc::relation::{Column, ReplicaIdentity};
use august_cdc::{Change, ChangeKind, Event, Lsn, Relation, Row, Value};
use august_dataflow::tables::{table, TableSpec};
use august_dataflow::{DataflowConfig, Output};
use chrono::NaiveDate;
use tokio::sync::mpsc;

const CHANGES: usize = 300;

fn relation(spec: &'static TableSpec) -> Arc<Relation> {
    let columns = spec.columns.iter().map(|c| Column {
        name: (*c).into(),
        type_oid: 25,
        type_modifier: -1,
        is_key: spec.key.contains(c),
    });
    Arc::new(Relation {
        oid: 0,
        schema: "public".into(),
        name: spec.name.into(),
        replica_identity: ReplicaIdentity::Full,
        columns: columns.collect(),
    })
}

fn row(spec: &TableSpec, values: &[(&str, Value)]) -> Row {
    let mut row = Row(vec![Value::Null; spec.columns.len()]);
    for (column, value) in values {
        row.0[spec.col(column)] = value.clone();
    }
    row
}

struct Base {
    patients: i64,
    appointments: i64,
}

fn text(s: String) -> Value {
    Value::Text(s)
}

fn day(i: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Days::new((i % 365) as u64)
}

fn patient(i: i64, phone: &str) -> Row {
    let spec = table("patients").unwrap();
    row(
        spec,
        &[
            ("drchrono_id", Value::Int(i)),
            ("first_name", text(format!("P{i}"))),
            ("last_name", text("Test".into())),
            ("cell_phone", text(phone.into())),
        ],
    )
}

fn appointment(i: i64, patients: i64, status: &str) -> Row {
    let spec = table("appointments").unwrap();
    row(
        spec,
        &[
            ("drchrono_id", text(format!("A{i}"))),
            ("patient_id", Value::Int(i % patients)),
            ("provider_id", Value::Int(i % 50)),
            ("scheduled_time", Value::Timestamp(day(i).and_hms_opt(9, 0, 0).unwrap())),
            ("status", text(status.into())),
        ],
    )
}

fn note(i: i64, appointments: i64, patients: i64) -> Row {
    let spec = table("deepcura_notes").unwrap();
    let appt = i % appointments;
    row(
        spec,
        &[
            ("id", text(format!("N{i}"))),
            ("drchrono_patient_id", Value::Int(appt % patients)),
            ("drchrono_appt_id", text(format!("A{appt}"))),
            ("session_date", Value::Date(day(appt))),
            ("soap_plan", text("plan".into())),
        ],
    )
}

async fn load(events: &mpsc::Sender<Event>, rows: usize) -> Base {
    let (patients, appointments) = ((rows / 5) as i64, (rows * 2 / 5) as i64);
    let (p, a, c, n, pr) = (
        relation(table("patients").unwrap()),
        relation(table("appointments").unwrap()),
        relation(table("clinical_notes").unwrap()),
        relation(table("deepcura_notes").unwrap()),
        relation(table("providers").unwrap()),
    );
    let send = |relation: &Arc<Relation>, row: Row| Event::SnapshotRow { relation: relation.clone(), row };
    for i in 0..50 {
        events
            .send(send(
                &pr,
                row(
                    table("providers").unwrap(),
                    &[("drchrono_id", Value::Int(i)), ("last_name", text(format!("Dr{i}")))],
                ),
            ))
            .await
            .unwrap();
    }
    for i in 0..patients {
        events.send(send(&p, patient(i, "555-0100"))).await.unwrap();
    }
    for i in 0..appointments {
        events.send(send(&a, appointment(i, patients, "Confirmed"))).await.unwrap();
    }
    for i in 0..(rows / 5) as i64 {
        let spec = table("clinical_notes").unwrap();
        events
            .send(send(&c, row(spec, &[("drchrono_id", text(format!("A{i}"))), ("locked", Value::Bool(true))])))
            .await
            .unwrap();
    }
    for i in 0..(rows / 5) as i64 - 50 {
        events.send(send(&n, note(i, appointments, patients))).await.unwrap();
    }
    Base { patients, appointments }
}

async fn wait_past(output: &mut mpsc::Receiver<Output>, lsn: Lsn) {
    while let Some(item) = output.recv().await {
        if let Output::Frontier(frontier) = item {
            if frontier > lsn {
                return;
            }
        }
    }
    panic!("the dataflow stopped");
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Median and p99 latency of single changes over `rows` base rows, and MiB per million rows.
async fn measure(rows: usize) -> (Duration, Duration, f64) {
    let before = rss_mib();
    let (events, rx) = mpsc::channel(8192);
    let (tx, mut output) = mpsc::channel(1024);
    let dataflow = august_dataflow::spawn(&DataflowConfig::default(), rx, tx).unwrap();
    let started = Instant::now();
    let base = load(&events, rows).await;
    events.send(Event::SnapshotEnd { lsn: Lsn(100) }).await.unwrap();
    wait_past(&mut output, Lsn(99)).await;
    let loaded = rss_mib();
    eprintln!("{rows:>9} base rows loaded in {:.1} s, RSS {:.0} MiB", started.elapsed().as_secs_f64(), loaded);

    let (p, a, n) = (
        relation(table("patients").unwrap()),
        relation(table("appointments").unwrap()),
        relation(table("deepcura_notes").unwrap()),
    );
    let mut latencies = Vec::with_capacity(CHANGES);
    for i in 0..CHANGES as i64 {
        let lsn = Lsn(1_000 + i as u64 * 10);
        let change = match i % 3 {
            0 => {
                let id = (i * 7919) % base.patients;
                Change {
                    relation: p.clone(),
                    kind: ChangeKind::Update { old: Some(patient(id, "555-0100")), new: patient(id, "555-0111") },
                }
            }
            1 => {
                let id = (i * 104_729) % base.appointments;
                Change {
                    relation: a.clone(),
                    kind: ChangeKind::Update {
                        old: Some(appointment(id, base.patients, "Confirmed")),
                        new: appointment(id, base.patients, "Arrived"),
                    },
                }
            }
            _ => Change {
                relation: n.clone(),
                kind: ChangeKind::Insert { new: note(1_000_000_000 + i, base.appointments, base.patients) },
            },
        };
        let sent = Instant::now();
        events.send(Event::Begin { commit_lsn: lsn, commit_time: Default::default(), xid: 1 }).await.unwrap();
        events.send(Event::Change(change)).await.unwrap();
        events
            .send(Event::Commit { commit_lsn: lsn, end_lsn: Lsn(lsn.0 + 1), commit_time: Default::default() })
            .await
            .unwrap();
        wait_past(&mut output, lsn).await;
        latencies.push(sent.elapsed());
    }
    drop(events);
    tokio::task::spawn_blocking(move || dataflow.join()).await.unwrap().unwrap();
    latencies.sort();
    (latencies[CHANGES / 2], latencies[CHANGES * 99 / 100], (loaded - before).max(0.0) * 1_000_000.0 / rows as f64)
}

#[tokio::main]
async fn main() {
    let small_rows: usize = std::env::var("AUGUST_BENCH_SMALL").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let large_rows: usize = std::env::var("AUGUST_BENCH_LARGE").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let (small_p50, small_p99, _) = measure(small_rows).await;
    let (large_p50, large_p99, large_mib_per_million) = measure(large_rows).await;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("dataflow_incremental: one change through every view ({CHANGES} changes each)");
    println!("  {small_rows:>9} base rows: p50 {:>7.3} ms  p99 {:>7.3} ms", ms(small_p50), ms(small_p99));
    println!("  {large_rows:>9} base rows: p50 {:>7.3} ms  p99 {:>7.3} ms", ms(large_p50), ms(large_p99));
    println!(
        "  ratio p50 large / small:  {:>7.3}   (target <= 1.2)",
        large_p50.as_secs_f64() / small_p50.as_secs_f64()
    );
    println!(
        "  memory per base row:      {:>7.0} bytes (RSS growth while loading {large_rows} rows)",
        large_mib_per_million * 1024.0 * 1024.0 / 1_000_000.0
    );
}
