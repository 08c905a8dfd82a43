//! `post_appointment_tasks`: each follow-up task with its patient and appointment.
//!
//! Columns: `task_id` (key), `appointment_id`, `scheduled_time`, `patient_id`,
//! `patient_name`, `provider_name`, `task_type`, `title`, `status`, `priority`,
//! `assigned_to`, `due_date`, `completed_at`.

use august_cdc::{Row, Value};

use super::deepcura_links::Links;
use super::scheduling_ops::{patient_contact, provider_name};
use super::{visit_patient, Cols, Scratch, View, ViewRow, ViewSpec};
use crate::base::Base;
use crate::join::Coll;

/// The view's name, key and columns.
pub const SPEC: ViewSpec = view_spec!("post_appointment_tasks", key "task_id", [
    "task_id" Identifier,
    "appointment_id" Identifier,
    "scheduled_time" Operational Timestamp,
    "patient_id" Identifier Int,
    "patient_name" Direct,
    "provider_name" Direct,
    "task_type" Operational,
    "title" Direct,
    "status" Operational,
    "priority" Operational,
    "assigned_to" Operational,
    "due_date" Operational Date,
    "completed_at" Operational TimestampTz,
]);

/// One row of the view.
pub fn shape(task: &Row, appointment: Option<&Row>, patient: Option<&Row>, provider: Option<&Row>) -> (Value, ViewRow) {
    let (t, ap) = (Cols::of("post_appointment_tasks"), Cols::of("appointments"));
    let key = t.get(task, "id").clone();
    let [name, ..] = patient_contact(patient);
    let mut row = vec![
        key.clone(),
        t.get(task, "appointment_id").clone(),
        appointment.map_or(Value::Null, |a| ap.get(a, "scheduled_time").clone()),
        visit_patient("post_appointment_tasks", task, appointment),
        name,
        provider_name(provider),
    ];
    for column in ["task_type", "title", "status", "priority", "assigned_to", "due_date", "completed_at"] {
        row.push(t.get(task, column).clone());
    }
    (key, row)
}

/// The view, registered in [`super::VIEWS`].
pub const VIEW: View = View { spec: SPEC, source: "post_appointment_tasks", build, reference };

fn reference(scratch: &Scratch<'_>) -> Vec<(Value, ViewRow)> {
    scratch
        .with_visit("post_appointment_tasks", "appointment_id")
        .into_iter()
        .map(|(task, a, patient, provider)| shape(task, a, patient, provider))
        .collect()
}

/// Builds the view.
pub fn build<'s>(base: &Base<'s>, _links: &Links<'s>) -> Coll<'s, (Value, ViewRow)> {
    base.with_visit("post_appointment_tasks", "appointment_id").map(|(((task, appointment), patient), provider)| {
        shape(&task, appointment.as_ref(), patient.as_ref(), provider.as_ref())
    })
}
