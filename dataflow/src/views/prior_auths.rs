//! `prior_auths`: each prior authorization with its patient and the insurance it is filed
//! against.
//!
//! Columns: `prior_auth_id` (key), `patient_id`, `patient_name`, `date_of_birth`,
//! `insurance_type`, `payer`, `member_id`, `item_type`, `item_name`, `item_code`,
//! `icd10_codes`, `status`, `auth_number`, `submitted_at`, `decided_at`, `valid_from`,
//! `valid_until`, `units_approved`, `assigned_to`.

use august_cdc::{Row, Value};

use super::scheduling_ops::patient_contact;
use std::collections::HashMap;

use super::deepcura_links::Links;
use super::{get, list_text, Cols, Scratch, View, ViewRow, ViewSpec};
use crate::base::Base;
use crate::join::{left_join, Coll, Keyed};

/// The view's name, key and columns.
pub const SPEC: ViewSpec = view_spec!("prior_auths", key "prior_auth_id", [
    "prior_auth_id" Identifier,
    "patient_id" Identifier Int,
    "patient_name" Direct,
    "date_of_birth" Direct Date,
    "insurance_type" Operational,
    "payer" Operational,
    "member_id" Direct,
    "item_type" Clinical,
    "item_name" Clinical,
    "item_code" Clinical,
    "icd10_codes" Clinical,
    "status" Operational,
    "auth_number" Identifier,
    "submitted_at" Operational TimestampTz,
    "decided_at" Operational TimestampTz,
    "valid_from" Operational Date,
    "valid_until" Operational Date,
    "units_approved" Clinical Int,
    "assigned_to" Operational,
]);

/// The key an insurance record is found by: `[patient_id, type]`.
pub fn insurance_key(patient_id: &Value, kind: &Value) -> Value {
    Value::Array(vec![patient_id.clone(), kind.clone()])
}

/// One row of the view.
pub fn shape(auth: &Row, patient: Option<&Row>, insurance: Option<&Row>) -> (Value, ViewRow) {
    let (pa, ins) = (Cols::of("prior_authorizations"), Cols::of("insurance_records"));
    let key = pa.get(auth, "id").clone();
    let [name, dob, _, _] = patient_contact(patient);
    let get = |c: &str| pa.get(auth, c).clone();
    let row = vec![
        key.clone(),
        get("patient_id"),
        name,
        dob,
        get("insurance_type"),
        insurance.map_or(Value::Null, |i| ins.get(i, "insurance_company").clone()),
        insurance.map_or(Value::Null, |i| ins.get(i, "insurance_id_number").clone()),
        get("item_type"),
        get("item_name"),
        get("item_code"),
        list_text(&get("icd10_codes")),
        get("status"),
        get("auth_number"),
        get("submitted_at"),
        get("decided_at"),
        get("valid_from"),
        get("valid_until"),
        get("units_approved"),
        get("assigned_to"),
    ];
    (key, row)
}

/// The view, registered in [`super::VIEWS`].
pub const VIEW: View = View { spec: SPEC, source: "prior_authorizations", build, reference };

fn reference(scratch: &Scratch<'_>) -> Vec<(Value, ViewRow)> {
    let (pa, ins) = (Cols::of("prior_authorizations"), Cols::of("insurance_records"));
    let patients = scratch.by("patients", "drchrono_id");
    let insurance: HashMap<Value, &Row> = scratch
        .rows("insurance_records")
        .map(|r| (insurance_key(ins.get(r, "patient_id"), ins.get(r, "type")), r))
        .collect();
    scratch
        .rows("prior_authorizations")
        .map(|auth| {
            let patient = get(&patients, pa.get(auth, "patient_id"));
            let coverage = get(&insurance, &insurance_key(pa.get(auth, "patient_id"), pa.get(auth, "insurance_type")));
            shape(auth, patient, coverage)
        })
        .collect()
}

/// Builds the view.
pub fn build<'s>(base: &Base<'s>, _links: &Links<'s>) -> Coll<'s, (Value, ViewRow)> {
    let (pa, ins) = (Cols::of("prior_authorizations"), Cols::of("insurance_records"));
    let insurance =
        base.rows("insurance_records").map(move |r| (insurance_key(ins.get(&r, "patient_id"), ins.get(&r, "type")), r));
    let rows = left_join(
        base.rows("prior_authorizations"),
        move |a| pa.get(a, "patient_id").clone(),
        &base.dim("patients", "drchrono_id"),
    );
    let rows = left_join(
        rows,
        move |(a, _)| insurance_key(pa.get(a, "patient_id"), pa.get(a, "insurance_type")),
        &Keyed::new(insurance),
    );
    rows.map(|((auth, patient), insurance)| shape(&auth, patient.as_ref(), insurance.as_ref()))
}
