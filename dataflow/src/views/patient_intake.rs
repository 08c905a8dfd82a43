//! `patient_intake`: each intake checklist with its appointment and patient.
//!
//! Columns: `appointment_id` (key), `scheduled_time`, `patient_id`, `patient_name`,
//! `date_of_birth`, `phone`, `email`, `provider_name`, `intake_status`,
//! `demographics_complete`, `insurance_verified`, `consent_signed`, `questionnaires_sent`,
//! `questionnaires_complete`, `id_verified`, `payment_method_on_file`, `assigned_to`,
//! `completed_at`.

use august_cdc::{Row, Value};

use super::deepcura_links::Links;
use super::scheduling_ops::{patient_contact, provider_name};
use super::{visit_patient, Cols, Scratch, View, ViewRow, ViewSpec};
use crate::base::Base;
use crate::join::Coll;

/// The view's name, key and columns.
pub const SPEC: ViewSpec = view_spec!("patient_intake", key "appointment_id", [
    "appointment_id" Identifier,
    "scheduled_time" Operational Timestamp,
    "patient_id" Identifier Int,
    "patient_name" Direct,
    "date_of_birth" Direct Date,
    "phone" Direct,
    "email" Direct,
    "provider_name" Direct,
    "intake_status" Operational,
    "demographics_complete" Operational Bool,
    "insurance_verified" Operational Bool,
    "consent_signed" Operational Bool,
    "questionnaires_sent" Operational Bool,
    "questionnaires_complete" Operational Bool,
    "id_verified" Operational Bool,
    "payment_method_on_file" Operational Bool,
    "assigned_to" Operational,
    "completed_at" Operational TimestampTz,
]);

/// One row of the view.
pub fn shape(
    intake: &Row,
    appointment: Option<&Row>,
    patient: Option<&Row>,
    provider: Option<&Row>,
) -> (Value, ViewRow) {
    let (ic, ap) = (Cols::of("intake_checklists"), Cols::of("appointments"));
    let key = ic.get(intake, "appointment_id").clone();
    let [name, dob, phone, email] = patient_contact(patient);
    let mut row = vec![
        key.clone(),
        appointment.map_or(Value::Null, |a| ap.get(a, "scheduled_time").clone()),
        visit_patient("intake_checklists", intake, appointment),
        name,
        dob,
        phone,
        email,
        provider_name(provider),
    ];
    for column in [
        "status",
        "demographics_complete",
        "insurance_verified",
        "consent_signed",
        "questionnaires_sent",
        "questionnaires_complete",
        "id_verified",
        "payment_method_on_file",
        "assigned_to",
        "completed_at",
    ] {
        row.push(ic.get(intake, column).clone());
    }
    (key, row)
}

/// The view, registered in [`super::VIEWS`].
pub const VIEW: View = View { spec: SPEC, source: "intake_checklists", build, reference };

fn reference(scratch: &Scratch<'_>) -> Vec<(Value, ViewRow)> {
    scratch
        .with_visit("intake_checklists", "appointment_id")
        .into_iter()
        .map(|(intake, a, patient, provider)| shape(intake, a, patient, provider))
        .collect()
}

/// Builds the view.
pub fn build<'s>(base: &Base<'s>, _links: &Links<'s>) -> Coll<'s, (Value, ViewRow)> {
    base.with_visit("intake_checklists", "appointment_id").map(|(((intake, appointment), patient), provider)| {
        shape(&intake, appointment.as_ref(), patient.as_ref(), provider.as_ref())
    })
}
