//! `scheduling_ops`: one row per appointment, with what the front desk needs at a glance.
//! A patient's phone changing updates every one of their rows, and nothing else.
//!
//! Columns: `appointment_id` (key), `scheduled_time`, `duration`, `status`, `reason`,
//! `patient_id`, `patient_name`, `date_of_birth`, `phone` (cell, else home), `email`,
//! `provider_id`, `provider_name`, `primary_insurance_payer`, `intake_status`,
//! `clinical_note_locked`, `deepcura_linked`.

use august_cdc::{Row, Value};

use std::collections::HashMap;

use super::deepcura_links::Links;
use super::{first_present, get, person_name, Cols, Scratch, View, ViewRow, ViewSpec};
use crate::base::Base;
use crate::join::{left_join, Coll, Keyed};

/// The view's name, key and columns.
pub const SPEC: ViewSpec = view_spec!("scheduling_ops", key "appointment_id", [
    "appointment_id" Identifier,
    "scheduled_time" Operational Timestamp,
    "duration" Operational Int,
    "status" Operational,
    "reason" Direct,
    "patient_id" Identifier Int,
    "patient_name" Direct,
    "date_of_birth" Direct Date,
    "phone" Direct,
    "email" Direct,
    "provider_id" Identifier Int,
    "provider_name" Direct,
    "primary_insurance_payer" Operational,
    "intake_status" Operational,
    "clinical_note_locked" Operational Bool,
    "deepcura_linked" Operational Bool,
]);

/// What one appointment's row is made of.
#[derive(Debug, Default)]
pub struct Parts<'a> {
    /// Its patient.
    pub patient: Option<&'a Row>,
    /// Its provider.
    pub provider: Option<&'a Row>,
    /// The patient's primary insurance.
    pub insurance: Option<&'a Row>,
    /// Its intake checklist.
    pub intake: Option<&'a Row>,
    /// Its clinical note.
    pub clinical_note: Option<&'a Row>,
    /// Whether a Deep Cura note is linked to that clinical note.
    pub linked: bool,
}

/// A patient's name, birth date, phone and email (NULLs without a patient).
pub fn patient_contact(patient: Option<&Row>) -> [Value; 4] {
    let pa = Cols::of("patients");
    match patient {
        None => [Value::Null, Value::Null, Value::Null, Value::Null],
        Some(p) => [
            person_name(pa.get(p, "first_name"), pa.get(p, "last_name")),
            pa.get(p, "date_of_birth").clone(),
            first_present(&[pa.get(p, "cell_phone"), pa.get(p, "home_phone")]),
            pa.get(p, "email").clone(),
        ],
    }
}

/// A provider's name.
pub fn provider_name(provider: Option<&Row>) -> Value {
    let pr = Cols::of("providers");
    provider.map_or(Value::Null, |p| person_name(pr.get(p, "first_name"), pr.get(p, "last_name")))
}

/// One row of the view.
pub fn shape(appointment: &Row, parts: Parts<'_>) -> (Value, ViewRow) {
    let (ap, ins, ic, cn) = (
        Cols::of("appointments"),
        Cols::of("insurance_records"),
        Cols::of("intake_checklists"),
        Cols::of("clinical_notes"),
    );
    let key = ap.get(appointment, "drchrono_id").clone();
    let [name, dob, phone, email] = patient_contact(parts.patient);
    let row = vec![
        key.clone(),
        ap.get(appointment, "scheduled_time").clone(),
        ap.get(appointment, "duration").clone(),
        ap.get(appointment, "status").clone(),
        ap.get(appointment, "reason").clone(),
        ap.get(appointment, "patient_id").clone(),
        name,
        dob,
        phone,
        email,
        ap.get(appointment, "provider_id").clone(),
        provider_name(parts.provider),
        parts.insurance.map_or(Value::Null, |i| ins.get(i, "insurance_company").clone()),
        parts.intake.map_or(Value::Null, |i| ic.get(i, "status").clone()),
        Value::Bool(parts.clinical_note.is_some_and(|n| cn.get(n, "locked") == &Value::Bool(true))),
        Value::Bool(parts.linked),
    ];
    (key, row)
}

/// The view, registered in [`super::VIEWS`].
pub const VIEW: View = View { spec: SPEC, source: "appointments", build, reference };

fn reference(scratch: &Scratch<'_>) -> Vec<(Value, ViewRow)> {
    let (ap, ins) = (Cols::of("appointments"), Cols::of("insurance_records"));
    let (patients, providers) = (scratch.by("patients", "drchrono_id"), scratch.by("providers", "drchrono_id"));
    let (intakes, clinical_notes) =
        (scratch.by("intake_checklists", "appointment_id"), scratch.by("clinical_notes", "drchrono_id"));
    let primary: HashMap<Value, &Row> = scratch
        .rows("insurance_records")
        .filter(|r| ins.get(r, "type") == &Value::Text("primary".into()))
        .map(|r| (ins.get(r, "patient_id").clone(), r))
        .collect();
    scratch
        .rows("appointments")
        .map(|appointment| {
            let id = ap.get(appointment, "drchrono_id");
            let parts = Parts {
                patient: get(&patients, ap.get(appointment, "patient_id")),
                provider: get(&providers, ap.get(appointment, "provider_id")),
                insurance: get(&primary, ap.get(appointment, "patient_id")),
                intake: get(&intakes, id),
                clinical_note: get(&clinical_notes, id),
                linked: scratch.linked_to(id).next().is_some(),
            };
            shape(appointment, parts)
        })
        .collect()
}

/// Builds the view.
pub fn build<'s>(base: &Base<'s>, links: &Links<'s>) -> Coll<'s, (Value, ViewRow)> {
    let (ap, ins) = (Cols::of("appointments"), Cols::of("insurance_records"));
    let id = move |a: &Row| ap.get(a, "drchrono_id").clone();
    let primary = base
        .rows("insurance_records")
        .filter(move |r| ins.get(r, "type") == &Value::Text("primary".into()))
        .map(move |r| (ins.get(&r, "patient_id").clone(), r));
    let linked = links.clone().flat_map(|(_, l)| l.is_linked().then(|| (l.clinical_note_id.clone(), ()))).distinct();

    let rows = left_join(
        base.rows("appointments"),
        move |a| ap.get(a, "patient_id").clone(),
        &base.dim("patients", "drchrono_id"),
    );
    let rows = left_join(rows, move |(a, _)| ap.get(a, "provider_id").clone(), &base.dim("providers", "drchrono_id"));
    let rows = left_join(rows, move |((a, _), _)| ap.get(a, "patient_id").clone(), &Keyed::new(primary));
    let rows = left_join(rows, move |(((a, _), _), _)| id(a), &base.dim("intake_checklists", "appointment_id"));
    let rows = left_join(rows, move |((((a, _), _), _), _)| id(a), &base.dim("clinical_notes", "drchrono_id"));
    let rows = left_join(rows, move |(((((a, _), _), _), _), _)| id(a), &Keyed::new(linked));
    rows.map(|((((((appointment, patient), provider), insurance), intake), clinical_note), linked)| {
        let parts = Parts {
            patient: patient.as_ref(),
            provider: provider.as_ref(),
            insurance: insurance.as_ref(),
            intake: intake.as_ref(),
            clinical_note: clinical_note.as_ref(),
            linked: linked.is_some(),
        };
        shape(&appointment, parts)
    })
}
