//! A stand-in for Postgres and the change stream: tables of rows, random transactions, the
//! events `cdc` would deliver for them, and a pipeline that applies the dataflow's output.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use august_cdc::relation::{Column, ReplicaIdentity};
use august_cdc::{Change, ChangeKind, Event, Lsn, Relation, Row, Value};
use august_dataflow::reference::{Tables, Views};
use august_dataflow::tables::{table, TableSpec, TABLES};
use august_dataflow::{DataflowConfig, Output};
use chrono::NaiveDate;

/// xorshift: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

pub fn relation(spec: &TableSpec) -> Arc<Relation> {
    Arc::new(Relation {
        oid: TABLES.iter().position(|t| t.name == spec.name).unwrap() as u32,
        schema: "public".into(),
        name: spec.name.into(),
        replica_identity: ReplicaIdentity::Full,
        columns: spec
            .columns
            .iter()
            .map(|c| Column { name: (*c).into(), type_oid: 25, type_modifier: -1, is_key: spec.key.contains(c) })
            .collect(),
    })
}

/// A row of `table` with the given columns set and NULL elsewhere.
pub fn row(table_name: &str, values: &[(&str, Value)]) -> Row {
    let spec = table(table_name).unwrap();
    let mut row = Row(vec![Value::Null; spec.columns.len()]);
    for (column, value) in values {
        row.0[spec.col(column)] = value.clone();
    }
    row
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
}

/// The database: every row by (table, natural key), soft-deleted ones included.
#[derive(Default)]
pub struct Db {
    pub rows: BTreeMap<(String, Vec<Value>), Row>,
    lsn: u64,
}

impl Db {
    /// Live rows, as the reference wants them.
    pub fn live(&self) -> Tables {
        let mut tables = Tables::new();
        for ((name, key), row) in &self.rows {
            let spec = table(name).unwrap();
            if !spec.is_soft_deleted(row) {
                tables.entry(name.clone()).or_default().insert(key.clone(), row.clone());
            }
        }
        tables
    }

    /// Writes `rows` (upserts) and `deletes` in one transaction; returns its events.
    pub fn transaction(
        &mut self,
        writes: Vec<(&'static str, Row)>,
        deletes: Vec<(&'static str, Vec<Value>)>,
    ) -> Vec<Event> {
        self.lsn += 100;
        let lsn = Lsn(self.lsn);
        let mut events = vec![Event::Begin { commit_lsn: lsn, commit_time: Default::default(), xid: 1 }];
        for (name, new) in writes {
            let spec = table(name).unwrap();
            let key = spec.key_of(&new);
            let old = self.rows.insert((name.into(), key), new.clone());
            let kind = match old {
                Some(old) => ChangeKind::Update { old: Some(old), new },
                None => ChangeKind::Insert { new },
            };
            events.push(Event::Change(Change { relation: relation(spec), kind }));
        }
        for (name, key) in deletes {
            if let Some(old) = self.rows.remove(&(name.to_string(), key)) {
                events.push(Event::Change(Change {
                    relation: relation(table(name).unwrap()),
                    kind: ChangeKind::Delete { old },
                }));
            }
        }
        events.push(Event::Commit { commit_lsn: lsn, end_lsn: Lsn(lsn.0 + 8), commit_time: Default::default() });
        events
    }

    /// Renames an appointment (a key-changing update): one UPDATE whose old row has the old key.
    pub fn rename_appointment(&mut self, from: &str, to: &str) -> Vec<Event> {
        let Some(old) = self.rows.remove(&("appointments".to_string(), vec![text(from)])) else { return vec![] };
        if self.rows.contains_key(&("appointments".to_string(), vec![text(to)])) {
            self.rows.insert(("appointments".into(), vec![text(from)]), old);
            return vec![];
        }
        let mut new = old.clone();
        new.0[table("appointments").unwrap().col("drchrono_id")] = text(to);
        self.lsn += 100;
        let lsn = Lsn(self.lsn);
        self.rows.insert(("appointments".into(), vec![text(to)]), new.clone());
        let change = Change {
            relation: relation(table("appointments").unwrap()),
            kind: ChangeKind::Update { old: Some(old), new },
        };
        vec![
            Event::Begin { commit_lsn: lsn, commit_time: Default::default(), xid: 1 },
            Event::Change(change),
            Event::Commit { commit_lsn: lsn, end_lsn: Lsn(lsn.0 + 8), commit_time: Default::default() },
        ]
    }

    pub fn lsn(&self) -> Lsn {
        Lsn(self.lsn)
    }

    /// The initial copy of every row as `cdc` would deliver it, ending at the current LSN.
    pub fn snapshot(&self) -> Vec<Event> {
        let mut events: Vec<Event> = self
            .rows
            .iter()
            .map(|((name, _), row)| Event::SnapshotRow { relation: relation(table(name).unwrap()), row: row.clone() })
            .collect();
        events.push(Event::SnapshotEnd { lsn: Lsn(self.lsn + 1) });
        events
    }
}

/// A random write to one of the tables the views join.
pub fn random_write(rng: &mut Rng) -> (&'static str, Row) {
    let deleted =
        |rng: &mut Rng| if rng.chance(10) { Value::Text("2026-03-09 00:00:00+00".into()) } else { Value::Null };
    let p = Value::Int(1 + rng.below(4) as i64);
    let appt = text(rng.pick(&["A1", "A2", "A3", "A4", "A5", "A6"]));
    match rng.below(9) {
        0 => (
            "patients",
            row(
                "patients",
                &[
                    ("drchrono_id", p),
                    ("first_name", text(rng.pick(&["Ada", "Grace", "Alan"]))),
                    ("last_name", text("Test")),
                    (
                        "cell_phone",
                        if rng.chance(70) {
                            text(rng.pick(&["555-0100", "555-0101", "555-0102"]))
                        } else {
                            Value::Null
                        },
                    ),
                    ("home_phone", text("555-0199")),
                    ("date_of_birth", Value::Date(day(1 + rng.below(3) as u32))),
                    ("deleted_at", deleted(rng)),
                ],
            ),
        ),
        1 => (
            "providers",
            row(
                "providers",
                &[
                    ("drchrono_id", Value::Int(1 + rng.below(2) as i64)),
                    ("last_name", text(rng.pick(&["Freud", "Jung"]))),
                    ("first_name", text("Dr")),
                ],
            ),
        ),
        2 => (
            "appointments",
            row(
                "appointments",
                &[
                    ("drchrono_id", appt),
                    ("patient_id", if rng.chance(90) { p } else { Value::Null }),
                    ("provider_id", Value::Int(1 + rng.below(3) as i64)),
                    (
                        "scheduled_time",
                        Value::Timestamp(
                            day(1 + rng.below(3) as u32).and_hms_opt(9 + rng.below(3) as u32, 0, 0).unwrap(),
                        ),
                    ),
                    ("status", text(rng.pick(&["Confirmed", "Arrived", "Complete"]))),
                    ("deleted_at", deleted(rng)),
                ],
            ),
        ),
        3 => (
            "clinical_notes",
            row(
                "clinical_notes",
                &[
                    ("drchrono_id", appt),
                    ("patient_id", if rng.chance(50) { p } else { Value::Null }),
                    ("locked", Value::Bool(rng.chance(50))),
                    ("archived", Value::Bool(false)),
                    ("deleted_at", deleted(rng)),
                ],
            ),
        ),
        4 => (
            "deepcura_notes",
            row(
                "deepcura_notes",
                &[
                    ("id", text(rng.pick(&["n1", "n2", "n3", "n4", "n5"]))),
                    ("drchrono_patient_id", p),
                    ("drchrono_appt_id", if rng.chance(40) { appt } else { Value::Null }),
                    ("session_date", Value::Date(day(1 + rng.below(3) as u32))),
                    ("soap_assessment", text(rng.pick(&["stable", "improving"]))),
                    ("icd10_suggestions", Value::Json(r#"[{"code": "F32.1"}, {"code": "F41.1"}]"#.into())),
                    (
                        "risk_assessment",
                        Value::Json(format!(r#"{{"level": "{}"}}"#, rng.pick(&["low", "moderate", "high"]))),
                    ),
                ],
            ),
        ),
        5 => {
            // One id per (patient, type), as the identity column gives in Postgres.
            let kind = rng.pick(&["primary", "secondary"]);
            let Value::Int(patient) = p else { unreachable!() };
            let id = Value::Int(patient * 10 + i64::from(kind == "secondary"));
            (
                "insurance_records",
                row(
                    "insurance_records",
                    &[
                        ("id", id),
                        ("patient_id", p),
                        ("type", text(kind)),
                        ("insurance_company", text(rng.pick(&["Aetna", "Cigna", "Medicare"]))),
                        ("insurance_id_number", text("M-1")),
                    ],
                ),
            )
        }
        6 => (
            "intake_checklists",
            row(
                "intake_checklists",
                &[
                    ("appointment_id", appt),
                    ("patient_id", if rng.chance(50) { p } else { Value::Null }),
                    ("status", text(rng.pick(&["not_started", "in_progress"]))),
                    ("consent_signed", Value::Bool(rng.chance(50))),
                ],
            ),
        ),
        7 => (
            "prior_authorizations",
            row(
                "prior_authorizations",
                &[
                    ("id", text(rng.pick(&["pa1", "pa2", "pa3"]))),
                    ("patient_id", p),
                    ("insurance_type", text(rng.pick(&["primary", "secondary"]))),
                    ("item_type", text("medication")),
                    ("item_name", text("Spravato")),
                    ("icd10_codes", Value::Array(vec![text("F33.2")])),
                    ("status", text(rng.pick(&["draft", "submitted"]))),
                ],
            ),
        ),
        _ => (
            "post_appointment_tasks",
            row(
                "post_appointment_tasks",
                &[
                    ("id", text(rng.pick(&["t1", "t2", "t3"]))),
                    ("appointment_id", appt),
                    ("patient_id", if rng.chance(50) { p } else { Value::Null }),
                    ("task_type", text("schedule_follow_up")),
                    ("title", text("Book follow-up")),
                    ("status", text(rng.pick(&["open", "done"]))),
                ],
            ),
        ),
    }
}

/// The dataflow, fed events and read back into a view state.
pub struct Pipeline {
    events: tokio::sync::mpsc::Sender<Event>,
    output: tokio::sync::mpsc::Receiver<Output>,
    pub views: Views,
    pub frontier: Lsn,
    pub log: Vec<Output>,
    /// Every output, frontiers included, in order.
    pub outputs: Vec<Output>,
    dataflow: Option<august_dataflow::Dataflow>,
}

impl Pipeline {
    pub fn start(workers: usize) -> Self {
        Self::start_with(DataflowConfig { workers, ..DataflowConfig::default() })
    }

    pub fn start_with(config: DataflowConfig) -> Self {
        let (events, rx) = tokio::sync::mpsc::channel(1024);
        let (tx, output) = tokio::sync::mpsc::channel(1 << 16);
        let dataflow = august_dataflow::spawn(&config, rx, tx).unwrap();
        Self {
            events,
            output,
            views: Views::new(),
            frontier: Lsn::ZERO,
            log: Vec::new(),
            outputs: Vec::new(),
            dataflow: Some(dataflow),
        }
    }

    /// What the input driver counts.
    pub fn stats(&self) -> Arc<august_dataflow::DriverStats> {
        self.dataflow.as_ref().unwrap().stats().clone()
    }

    /// Sends the events without waiting for their output.
    pub async fn send(&mut self, events: Vec<Event>) {
        for event in events {
            self.events.send(event).await.unwrap();
        }
    }

    /// Sends the events and waits until the output frontier passes `through`.
    pub async fn apply(&mut self, events: Vec<Event>, through: Lsn) {
        self.send(events).await;
        self.events.send(Event::Progress(through.next())).await.unwrap();
        while self.frontier <= through {
            let output = tokio::time::timeout(Duration::from_secs(30), self.output.recv())
                .await
                .expect("the dataflow answers")
                .unwrap();
            self.outputs.push(output.clone());
            match &output {
                Output::Updates { updates, .. } => {
                    for update in updates {
                        let view = self.views.entry(update.view.to_string()).or_default();
                        match &update.row {
                            Some(row) => view.insert(update.key.clone(), row.clone()),
                            None => view.remove(&update.key),
                        };
                    }
                    self.log.push(output);
                }
                Output::Frontier(lsn) => self.frontier = *lsn,
                Output::Notices { .. } | Output::Trace { .. } => {}
            }
        }
        self.views.retain(|_, rows| !rows.is_empty());
    }

    /// Closes the input and returns what the dataflow emits after that.
    pub fn stop(mut self) -> Vec<Output> {
        drop(self.events);
        // The output is bounded: keep reading it while the dataflow emits what it holds.
        let mut output = self.output;
        let drained = std::thread::spawn(move || {
            let mut rest = Vec::new();
            while let Some(item) = output.blocking_recv() {
                rest.push(item);
            }
            rest
        });
        self.dataflow.take().unwrap().join().unwrap();
        drained.join().unwrap()
    }
}
