//! `deepcura_review`: Deep Cura notes no clinical note could be found for, or more than one
//! could, for a person to link by hand.
//!
//! Columns: `note_id` (key), `patient_id`, `patient_name`, `session_date`,
//! `drchrono_appt_id`, `provider_npi`, `reason` (`no_match` | `ambiguous`), `candidate_count`.

use august_cdc::{Row, Value};

use super::deepcura_links::{Link, Links};
use super::scheduling_ops::patient_contact;
use super::{get, Scratch, View, ViewRow, ViewSpec};
use crate::base::Base;
use crate::join::{left_join, Coll};

/// The view's name, key and columns.
pub const SPEC: ViewSpec = view_spec!("deepcura_review", key "note_id", [
    "note_id" Identifier,
    "patient_id" Identifier Int,
    "patient_name" Direct,
    "session_date" Operational Date,
    "drchrono_appt_id" Identifier,
    "provider_npi" Identifier,
    "reason" Operational,
    "candidate_count" Operational Int,
]);

/// One row of the view, for an unlinked note.
pub fn shape(link: &Link, patient: Option<&Row>) -> (Value, ViewRow) {
    let [name, ..] = patient_contact(patient);
    let row = vec![
        link.note_id.clone(),
        link.patient_id.clone(),
        name,
        link.session_date.clone(),
        link.appt_id.clone(),
        link.provider_npi.clone(),
        Value::Text(link.status.clone()),
        Value::Int(link.candidates),
    ];
    (link.note_id.clone(), row)
}

/// The view, registered in [`super::VIEWS`].
pub const VIEW: View = View { spec: SPEC, source: "deepcura_notes", build, reference };

fn reference(scratch: &Scratch<'_>) -> Vec<(Value, ViewRow)> {
    let patients = scratch.by("patients", "drchrono_id");
    scratch.links.iter().filter(|l| !l.is_linked()).map(|l| shape(l, get(&patients, &l.patient_id))).collect()
}

/// Builds the view.
pub fn build<'s>(base: &Base<'s>, links: &Links<'s>) -> Coll<'s, (Value, ViewRow)> {
    let unlinked = links.clone().flat_map(|(_, l)| (!l.is_linked()).then_some(l));
    left_join(unlinked, |l| l.patient_id.clone(), &base.dim("patients", "drchrono_id"))
        .map(|(link, patient)| shape(&link, patient.as_ref()))
}
