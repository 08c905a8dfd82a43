//! `deepcura_links`: for every Deep Cura note, the clinical note it belongs to.
//!
//! Rules, in order: (1) the clinical note whose `drchrono_id` equals the note's
//! `drchrono_appt_id`; else (2) the one clinical note of the same patient whose appointment
//! falls on `session_date`; else unlinked, with the reason: `no_match` (none) or `ambiguous`
//! (several). Incremental both ways: a clinical note arriving later links the note; a clinical
//! note deleted or moved to another appointment unlinks or relinks it.
//!
//! Columns: `note_id` (key), `patient_id`, `drchrono_appt_id`, `session_date`, `provider_npi`,
//! `clinical_note_id`, `link_method` (`appointment_id` | `patient_date` | NULL), `link_status`
//! (`linked` | `no_match` | `ambiguous`), `candidate_count`, `needs_review`.

use august_cdc::Value;
use serde::{Deserialize, Serialize};

use super::{date_of, first_present, get, Cols, Scratch, View, ViewRow, ViewSpec};
use crate::base::Base;
use crate::join::{left_join, Coll};

/// The view's name, key and columns.
pub const SPEC: ViewSpec = view_spec!("deepcura_links", key "note_id", [
    "note_id" Identifier,
    "patient_id" Identifier Int,
    "drchrono_appt_id" Identifier,
    "session_date" Operational Date,
    "provider_npi" Identifier,
    "clinical_note_id" Identifier,
    "link_method" Operational,
    "link_status" Operational,
    "candidate_count" Operational Int,
    "needs_review" Operational Bool,
]);

/// A note's link.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Link {
    /// The Deep Cura note.
    pub note_id: Value,
    /// Its DrChrono patient.
    pub patient_id: Value,
    /// The appointment it names, if any.
    pub appt_id: Value,
    /// Its session date.
    pub session_date: Value,
    /// Its provider's NPI.
    pub provider_npi: Value,
    /// The linked clinical note (its `drchrono_id`), or NULL.
    pub clinical_note_id: Value,
    /// `appointment_id`, `patient_date`, or NULL.
    pub method: Value,
    /// `linked`, `no_match` or `ambiguous`.
    pub status: String,
    /// Clinical notes that matched.
    pub candidates: i64,
}

impl Link {
    /// Whether a clinical note was found.
    pub fn is_linked(&self) -> bool {
        self.status == "linked"
    }

    /// The view's row.
    pub fn row(&self) -> ViewRow {
        vec![
            self.note_id.clone(),
            self.patient_id.clone(),
            self.appt_id.clone(),
            self.session_date.clone(),
            self.provider_npi.clone(),
            self.clinical_note_id.clone(),
            self.method.clone(),
            Value::Text(self.status.clone()),
            Value::Int(self.candidates),
            Value::Bool(!self.is_linked()),
        ]
    }
}

/// What is known about one note: the note itself and the clinical notes that match it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Evidence {
    /// The note: patient, appointment, session date, provider NPI.
    Note(Value, Value, Value, Value),
    /// A clinical note for the note's appointment.
    ByAppointment(Value),
    /// A clinical note of the same patient on the session date.
    SameDay(Value),
}

/// Applies the rules to everything known about `note_id`; `None` when the note itself is not
/// (or no longer) there.
pub fn decide(note_id: &Value, evidence: &[&Evidence]) -> Option<Link> {
    let (patient_id, appt_id, session_date, provider_npi) = evidence.iter().find_map(|e| match e {
        Evidence::Note(p, a, d, n) => Some((p.clone(), a.clone(), d.clone(), n.clone())),
        _ => None,
    })?;
    let by_appointment =
        evidence.iter().find_map(|e| if let Evidence::ByAppointment(cn) = e { Some(cn.clone()) } else { None });
    let mut same_day: Vec<&Value> =
        evidence.iter().filter_map(|e| if let Evidence::SameDay(cn) = e { Some(cn) } else { None }).collect();
    same_day.sort();
    same_day.dedup();
    let (clinical_note_id, method, status, candidates) = match (by_appointment, same_day.as_slice()) {
        (Some(cn), _) => (cn, Value::Text("appointment_id".into()), "linked", 1),
        (None, [only]) => ((*only).clone(), Value::Text("patient_date".into()), "linked", 1),
        (None, []) => (Value::Null, Value::Null, "no_match", 0),
        (None, many) => (Value::Null, Value::Null, "ambiguous", many.len() as i64),
    };
    Some(Link {
        note_id: note_id.clone(),
        patient_id,
        appt_id,
        session_date,
        provider_npi,
        clinical_note_id,
        method,
        status: status.into(),
        candidates,
    })
}

/// The Deep Cura note's own evidence, from its row.
pub fn note_evidence(note: &august_cdc::Row) -> (Value, Evidence) {
    let c = Cols::of("deepcura_notes");
    let get = |name| c.get(note, name).clone();
    (
        get("id"),
        Evidence::Note(get("drchrono_patient_id"), get("drchrono_appt_id"), get("session_date"), get("provider_npi")),
    )
}

/// A clinical note's patient and appointment day, as rule 2 matches them: the note's own
/// patient (else its appointment's) and the appointment's date.
pub fn clinical_note_day(
    clinical_note: &august_cdc::Row,
    appointment: Option<&august_cdc::Row>,
) -> Option<(Value, Value)> {
    let (cn, ap) = (Cols::of("clinical_notes"), Cols::of("appointments"));
    let patient = first_present(&[
        cn.get(clinical_note, "patient_id"),
        appointment.map_or(&Value::Null, |a| ap.get(a, "patient_id")),
    ]);
    let day = appointment.map_or(Value::Null, |a| date_of(ap.get(a, "scheduled_time")));
    (!patient.is_null() && !day.is_null()).then_some((patient, day))
}

/// Every note's link, keyed by note id, as a collection.
pub type Links<'s> = Coll<'s, (Value, Link)>;

/// The view, registered in [`super::VIEWS`].
pub const VIEW: View = View { spec: SPEC, source: "deepcura_notes", build, reference };

/// Builds the view from the links.
pub fn build<'s>(_base: &Base<'s>, links: &Links<'s>) -> Coll<'s, (Value, ViewRow)> {
    links.clone().map(|(key, link)| (key, link.row()))
}

fn reference(scratch: &Scratch<'_>) -> Vec<(Value, ViewRow)> {
    scratch.links.iter().map(|l| (l.note_id.clone(), l.row())).collect()
}

/// Every note's link from scratch (`scratch.links` unused).
pub fn from_scratch(scratch: &Scratch<'_>) -> Vec<Link> {
    let cn = Cols::of("clinical_notes");
    let (appointments, clinical_notes) =
        (scratch.by("appointments", "drchrono_id"), scratch.by("clinical_notes", "drchrono_id"));
    let days: Vec<((Value, Value), Value)> = scratch
        .rows("clinical_notes")
        .filter_map(|n| {
            clinical_note_day(n, get(&appointments, cn.get(n, "drchrono_id")))
                .map(|d| (d, cn.get(n, "drchrono_id").clone()))
        })
        .collect();
    scratch
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
        .collect()
}

/// Builds the links, keyed by note id.
pub fn links<'s>(base: &Base<'s>) -> Links<'s> {
    let cn = Cols::of("clinical_notes");
    let notes = base.rows("deepcura_notes").map(|row| note_evidence(&row));
    let clinical_notes = base.rows("clinical_notes");
    let cn_ids = clinical_notes.clone().map(move |row| (cn.get(&row, "drchrono_id").clone(), ()));
    let days = left_join(
        clinical_notes,
        move |row| cn.get(row, "drchrono_id").clone(),
        &base.dim("appointments", "drchrono_id"),
    )
    .flat_map(move |(row, appointment)| {
        clinical_note_day(&row, appointment.as_ref()).map(|day| (day, cn.get(&row, "drchrono_id").clone()))
    });

    let by_appointment = notes
        .clone()
        .flat_map(|(id, e)| match e {
            Evidence::Note(_, appt, ..) if !appt.is_null() => Some((appt, id)),
            _ => None,
        })
        .join(cn_ids)
        .map(|(cn_id, (note_id, ()))| (note_id, Evidence::ByAppointment(cn_id)));
    let same_day = notes
        .clone()
        .flat_map(|(id, e)| match e {
            Evidence::Note(patient, _, date, _) if !patient.is_null() && !date.is_null() => Some(((patient, date), id)),
            _ => None,
        })
        .join(days)
        .map(|(_, (note_id, cn_id))| (note_id, Evidence::SameDay(cn_id)));

    notes.concat(by_appointment).concat(same_day).reduce(|note_id, evidence, output| {
        let evidence: Vec<&Evidence> = evidence.iter().map(|(e, _)| *e).collect();
        if let Some(link) = decide(note_id, &evidence) {
            output.push((link, 1));
        }
    })
}
