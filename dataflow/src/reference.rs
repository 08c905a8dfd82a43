//! The views computed from scratch, in plain Rust, from the live rows of every table. Tests
//! compare the incremental dataflow with it after every step, and the end-to-end checks and
//! `august verify --coda` compare what a sink holds with it. It shares each view's row shaping
//! with the dataflow; only the joins differ. [`read_live_tables`] copies its input from
//! Postgres.

use std::collections::{BTreeMap, HashMap};

use august_cdc::{CdcConfig, CdcError, Event, Lsn, Row, Value};

use crate::input::upsert_of;
use crate::tables::table;
use crate::views::deepcura_links::{clinical_note_day, decide, note_evidence, Evidence, Link};
use crate::views::{self, Cols, ViewRow};

/// Live rows per table (projected onto the table spec, soft-deleted rows absent), keyed by
/// natural key.
pub type Tables = BTreeMap<String, BTreeMap<Vec<Value>, Row>>;

/// Rows per view, keyed by the view's key.
pub type Views = BTreeMap<String, BTreeMap<Value, ViewRow>>;

struct Lookup<'a> {
    tables: &'a Tables,
}

impl<'a> Lookup<'a> {
    fn rows(&self, table: &str) -> impl Iterator<Item = &'a Row> {
        self.tables.get(table).into_iter().flat_map(|rows| rows.values())
    }

    fn by(&self, table: &'static str, column: &str) -> HashMap<Value, &'a Row> {
        let cols = Cols::of(table);
        self.rows(table).filter(|r| !cols.get(r, column).is_null()).map(|r| (cols.get(r, column).clone(), r)).collect()
    }
}

/// Every published table's live rows, copied by `cdc` itself through one consistent snapshot
/// and shaped as the dataflow's input shapes them. It streams from a temporary slot of its own
/// session, so the pipeline's slot is never touched.
pub async fn read_live_tables(pg: &tokio_postgres::Config) -> Result<Tables, CdcError> {
    let config = CdcConfig { temporary_slot: true, heartbeat: None, ..CdcConfig::default() };
    let (_durable, durable_watch) = tokio::sync::watch::channel(Lsn::ZERO);
    let mut stream = august_cdc::start(pg.clone(), config, durable_watch);
    let mut tables = Tables::new();
    loop {
        match stream.next().await {
            Some(Event::SnapshotRow { relation, row }) => {
                if let Some((_, key, Some(row))) = upsert_of(&relation, &row) {
                    tables.entry(relation.name.clone()).or_default().insert(key, row);
                }
            }
            Some(Event::SnapshotEnd { .. }) => break,
            Some(_) => {}
            None => {
                // The consumer stopped before the copy ended; how it ended says why.
                stream.finish().await?;
                return Err(CdcError::Protocol("the change stream ended before its copy of the tables".into()));
            }
        }
    }
    // The copy is all that is wanted; the stream after it (whose temporary slot name other
    // readers in this process may race for) is not.
    let _ = stream.finish().await;
    Ok(tables)
}

/// Every view, from scratch.
pub fn compute(tables: &Tables) -> Views {
    // Named views read rows narrowed as the dataflow narrows them; pass-through views, whole.
    let narrow: Tables = tables
        .iter()
        .filter_map(|(name, rows)| {
            let spec = table(name)?;
            Some((name.clone(), rows.iter().map(|(key, row)| (key.clone(), spec.narrow(row))).collect()))
        })
        .collect();
    compute_in(tables, &narrow)
}

fn compute_in<'a>(whole: &'a Tables, tables: &'a Tables) -> Views {
    let db = Lookup { tables };
    let (cn, ap, ins, pa, t) = (
        Cols::of("clinical_notes"),
        Cols::of("appointments"),
        Cols::of("insurance_records"),
        Cols::of("prior_authorizations"),
        Cols::of("post_appointment_tasks"),
    );
    let patients = db.by("patients", "drchrono_id");
    let providers = db.by("providers", "drchrono_id");
    let appointments = db.by("appointments", "drchrono_id");
    let clinical_notes = db.by("clinical_notes", "drchrono_id");
    let notes = db.by("deepcura_notes", "id");
    let intakes = db.by("intake_checklists", "appointment_id");
    let get = |map: &HashMap<Value, &'a Row>, key: &Value| -> Option<&'a Row> {
        if key.is_null() {
            None
        } else {
            map.get(key).copied()
        }
    };

    // deepcura_links
    let days: Vec<((Value, Value), Value)> = db
        .rows("clinical_notes")
        .filter_map(|n| {
            clinical_note_day(n, get(&appointments, cn.get(n, "drchrono_id")))
                .map(|d| (d, cn.get(n, "drchrono_id").clone()))
        })
        .collect();
    let links: Vec<Link> = db
        .rows("deepcura_notes")
        .filter_map(|note| {
            let (id, facts) = note_evidence(note);
            let Evidence::Note(patient, appt, date, _) = &facts else { unreachable!() };
            let mut evidence = vec![facts.clone()];
            if get(&clinical_notes, appt).is_some() {
                evidence.push(Evidence::ByAppointment(appt.clone()));
            }
            for ((p, d), cn_id) in &days {
                if p == patient && d == date {
                    evidence.push(Evidence::SameDay(cn_id.clone()));
                }
            }
            decide(&id, &evidence.iter().collect::<Vec<_>>())
        })
        .collect();
    let linked_to = |cn_id: Value| links.iter().filter(move |l| l.is_linked() && l.clinical_note_id == cn_id);

    let mut out: Views = BTreeMap::new();
    let mut put = |view: &str, (key, row): (Value, ViewRow)| {
        out.entry(view.to_string()).or_default().insert(key, row);
    };
    for link in &links {
        put("deepcura_links", (link.note_id.clone(), link.row()));
        if !link.is_linked() {
            put("deepcura_review", views::deepcura_review::shape(link, get(&patients, &link.patient_id)));
        }
    }
    for note in db.rows("clinical_notes") {
        let appointment = get(&appointments, cn.get(note, "drchrono_id"));
        let patient = get(&patients, &views::visit_patient("clinical_notes", note, appointment));
        let provider = appointment.and_then(|a| get(&providers, ap.get(a, "provider_id")));
        let enrichment = views::clinical_notes::pick(linked_to(cn.get(note, "drchrono_id").clone()))
            .and_then(|l| get(&notes, &l.note_id));
        put("clinical_notes", views::clinical_notes::shape(note, appointment, patient, provider, enrichment));
    }
    let primary: HashMap<Value, &Row> = db
        .rows("insurance_records")
        .filter(|r| ins.get(r, "type") == &Value::Text("primary".into()))
        .map(|r| (ins.get(r, "patient_id").clone(), r))
        .collect();
    for appointment in db.rows("appointments") {
        let id = ap.get(appointment, "drchrono_id");
        let parts = views::scheduling_ops::Parts {
            patient: get(&patients, ap.get(appointment, "patient_id")),
            provider: get(&providers, ap.get(appointment, "provider_id")),
            insurance: get(&primary, ap.get(appointment, "patient_id")),
            intake: get(&intakes, id),
            clinical_note: get(&clinical_notes, id),
            linked: linked_to(id.clone()).next().is_some(),
        };
        put("scheduling_ops", views::scheduling_ops::shape(appointment, parts));
    }
    for intake in db.rows("intake_checklists") {
        let appointment = get(&appointments, Cols::of("intake_checklists").get(intake, "appointment_id"));
        let patient = get(&patients, &views::visit_patient("intake_checklists", intake, appointment));
        let provider = appointment.and_then(|a| get(&providers, ap.get(a, "provider_id")));
        put("patient_intake", views::patient_intake::shape(intake, appointment, patient, provider));
    }
    let insurance: HashMap<Value, &Row> = db
        .rows("insurance_records")
        .map(|r| (views::prior_auths::insurance_key(ins.get(r, "patient_id"), ins.get(r, "type")), r))
        .collect();
    for auth in db.rows("prior_authorizations") {
        let patient = get(&patients, pa.get(auth, "patient_id"));
        let coverage = get(
            &insurance,
            &views::prior_auths::insurance_key(pa.get(auth, "patient_id"), pa.get(auth, "insurance_type")),
        );
        put("prior_auths", views::prior_auths::shape(auth, patient, coverage));
    }
    for task in db.rows("post_appointment_tasks") {
        let appointment = get(&appointments, t.get(task, "appointment_id"));
        let patient = get(&patients, &views::visit_patient("post_appointment_tasks", task, appointment));
        let provider = appointment.and_then(|a| get(&providers, ap.get(a, "provider_id")));
        put("post_appointment_tasks", views::post_appointment_tasks::shape(task, appointment, patient, provider));
    }
    let whole = Lookup { tables: whole };
    for table in views::passthrough_tables() {
        for row in whole.rows(table.name) {
            put(table.name, views::passthrough::shape(table, row));
        }
    }
    out
}
