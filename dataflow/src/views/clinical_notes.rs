//! `clinical_notes`: each clinical note with its patient, provider and appointment time, and
//! the enrichment of the Deep Cura note linked to it (when several are, the one with the latest
//! session, then the greatest id).
//!
//! Columns: `clinical_note_id` (key: the appointment id), `appointment_time`, `patient_id`,
//! `patient_name`, `provider_id`, `provider_name`, `locked`, `archived`, `deepcura_note_id`,
//! `soap_subjective`, `soap_objective`, `soap_assessment`, `soap_plan`, `icd10_suggestions`,
//! `cpt_suggestions`, `risk_level`.

use august_cdc::{Row, Value};

use super::deepcura_links::{Link, Links};
use super::{get, json_field, list_text, person_name, visit_patient, Cols, Scratch, View, ViewRow, ViewSpec};
use crate::base::Base;
use crate::join::{left_join, Coll, Keyed};

/// The view's name, key and columns.
pub const SPEC: ViewSpec = view_spec!("clinical_notes", key "clinical_note_id", [
    "clinical_note_id" Identifier,
    "appointment_time" Operational Timestamp,
    "patient_id" Identifier Int,
    "patient_name" Direct,
    "provider_id" Identifier Int,
    "provider_name" Direct,
    "locked" Operational Bool,
    "archived" Operational Bool,
    "deepcura_note_id" Identifier,
    "soap_subjective" Clinical,
    "soap_objective" Clinical,
    "soap_assessment" Clinical,
    "soap_plan" Clinical,
    "icd10_suggestions" Clinical,
    "cpt_suggestions" Clinical,
    "risk_level" Clinical,
]);

/// Of the links to one clinical note, the one whose note enriches it.
pub fn pick<'a>(links: impl IntoIterator<Item = &'a Link>) -> Option<&'a Link> {
    links
        .into_iter()
        .filter(|l| l.is_linked())
        .max_by(|a, b| (&a.session_date, &a.note_id).cmp(&(&b.session_date, &b.note_id)))
}

/// One row of the view.
pub fn shape(
    note: &Row,
    appointment: Option<&Row>,
    patient: Option<&Row>,
    provider: Option<&Row>,
    enrichment: Option<&Row>,
) -> (Value, ViewRow) {
    let (cn, ap, pa, pr, dc) = (
        Cols::of("clinical_notes"),
        Cols::of("appointments"),
        Cols::of("patients"),
        Cols::of("providers"),
        Cols::of("deepcura_notes"),
    );
    let key = cn.get(note, "drchrono_id").clone();
    let appt = |c: &str| appointment.map_or(Value::Null, |a| ap.get(a, c).clone());
    let enriched = |c: &str| enrichment.map_or(Value::Null, |d| dc.get(d, c).clone());
    let row = vec![
        key.clone(),
        appt("scheduled_time"),
        visit_patient("clinical_notes", note, appointment),
        patient.map_or(Value::Null, |p| person_name(pa.get(p, "first_name"), pa.get(p, "last_name"))),
        appt("provider_id"),
        provider.map_or(Value::Null, |p| person_name(pr.get(p, "first_name"), pr.get(p, "last_name"))),
        cn.get(note, "locked").clone(),
        cn.get(note, "archived").clone(),
        enriched("id"),
        enriched("soap_subjective"),
        enriched("soap_objective"),
        enriched("soap_assessment"),
        enriched("soap_plan"),
        list_text(&enriched("icd10_suggestions")),
        list_text(&enriched("cpt_suggestions")),
        json_field(&enriched("risk_assessment"), "level"),
    ];
    (key, row)
}

/// The view, registered in [`super::VIEWS`].
pub const VIEW: View = View { spec: SPEC, source: "clinical_notes", build, reference };

fn reference(scratch: &Scratch<'_>) -> Vec<(Value, ViewRow)> {
    let (cn, notes) = (Cols::of("clinical_notes"), scratch.by("deepcura_notes", "id"));
    let visits = scratch.with_visit("clinical_notes", "drchrono_id").into_iter();
    visits
        .map(|(note, appointment, patient, provider)| {
            let enrichment = pick(scratch.linked_to(cn.get(note, "drchrono_id"))).and_then(|l| get(&notes, &l.note_id));
            shape(note, appointment, patient, provider, enrichment)
        })
        .collect()
}

/// Builds the view.
pub fn build<'s>(base: &Base<'s>, links: &Links<'s>) -> Coll<'s, (Value, ViewRow)> {
    let (cn, dc) = (Cols::of("clinical_notes"), Cols::of("deepcura_notes"));
    let enrichment = links
        .clone()
        .flat_map(|(_, link)| link.is_linked().then(|| (link.clinical_note_id.clone(), link)))
        .reduce(|_cn, links, output| {
            if let Some(link) = pick(links.iter().map(|(l, _)| *l)) {
                output.push((link.note_id.clone(), 1));
            }
        })
        .map(|(cn_id, note_id)| (note_id, cn_id))
        .join(base.rows("deepcura_notes").map(move |row| (dc.get(&row, "id").clone(), row)))
        .map(|(_, (cn_id, note))| (cn_id, note));

    let with_provider = base.with_visit("clinical_notes", "drchrono_id");
    left_join(with_provider, move |(((n, _), _), _)| cn.get(n, "drchrono_id").clone(), &Keyed::new(enrichment)).map(
        |((((note, appt), patient), provider), enriched)| {
            shape(&note, appt.as_ref(), patient.as_ref(), provider.as_ref(), enriched.as_ref())
        },
    )
}
