//! How each DrChrono object lands in its mirror table: which JSON field fills which column,
//! as what kind. Field names follow DrChrono's REST objects (`../shared/reference/drchrono/`);
//! the whole object is also kept in `drchrono_raw`.

use crate::fields::Kind::{self, *};

/// One column filled from one field of the object.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The object's field.
    pub json: &'static str,
    /// The column.
    pub column: &'static str,
    /// Its kind.
    pub kind: Kind,
}

const fn f(json: &'static str, column: &'static str, kind: Kind) -> Field {
    Field { json, column, kind }
}

/// A mirror table and the object fields it takes. The first field is the object's id.
#[derive(Debug)]
pub struct ObjectSpec {
    /// The table.
    pub table: &'static str,
    /// Its fields, id first.
    pub fields: &'static [Field],
}

/// Providers (`/api/doctors`; no webhook carries them).
pub const PROVIDERS: ObjectSpec = ObjectSpec {
    table: "providers",
    fields: &[
        f("id", "drchrono_id", Int),
        f("first_name", "first_name", Text),
        f("last_name", "last_name", Text),
        f("suffix", "suffix", Text),
        f("specialty", "specialty", Text),
        f("job_title", "job_title", Text),
        f("npi_number", "npi_number", Text),
        f("group_npi_number", "group_npi_number", Text),
        f("email", "email", Text),
        f("office_phone", "office_phone", Text),
        f("cell_phone", "cell_phone", Text),
        f("practice_group", "practice_group", Text),
        f("timezone", "timezone", Text),
        f("is_account_suspended", "is_account_suspended", Bool),
    ],
};

/// Patients (`PATIENT_CREATE`, `PATIENT_MODIFY`).
pub const PATIENTS: ObjectSpec = ObjectSpec {
    table: "patients",
    fields: &[
        f("id", "drchrono_id", Int),
        f("chart_id", "chart_id", Text),
        f("first_name", "first_name", Text),
        f("middle_name", "middle_name", Text),
        f("last_name", "last_name", Text),
        f("nick_name", "nick_name", Text),
        f("date_of_birth", "date_of_birth", Date),
        f("gender", "gender", Text),
        f("email", "email", Text),
        f("cell_phone", "cell_phone", Text),
        f("home_phone", "home_phone", Text),
        f("office_phone", "office_phone", Text),
        f("address", "address", Text),
        f("city", "city", Text),
        f("state", "state", Text),
        f("zip_code", "zip_code", Text),
        f("doctor", "provider_id", Int),
        f("patient_status", "patient_status", Text),
        f("preferred_language", "preferred_language", Text),
        f("patient_payment_profile", "patient_payment_profile", Text),
        f("primary_care_physician", "primary_care_physician", Text),
        f("referring_source", "referring_source", Text),
        f("default_pharmacy", "default_pharmacy", Text),
        f("emergency_contact_name", "emergency_contact_name", Text),
        f("emergency_contact_phone", "emergency_contact_phone", Text),
        f("emergency_contact_relation", "emergency_contact_relation", Text),
        f("date_of_first_appointment", "date_of_first_appointment", Date),
        f("date_of_last_appointment", "date_of_last_appointment", Date),
        f("created_at", "drchrono_created_at", Timestamp),
        f("updated_at", "drchrono_updated_at", Timestamp),
    ],
};

/// Appointments (`APPOINTMENT_CREATE`, `_MODIFY`, `_DELETE`). DrChrono's appointment id is a
/// string.
pub const APPOINTMENTS: ObjectSpec = ObjectSpec {
    table: "appointments",
    fields: &[
        f("id", "drchrono_id", Text),
        f("patient", "patient_id", Int),
        f("doctor", "provider_id", Int),
        f("office", "office_id", Int),
        f("exam_room", "exam_room", Int4),
        f("scheduled_time", "scheduled_time", Timestamp),
        f("duration", "duration", Int4),
        f("status", "status", Text),
        f("custom_status", "custom_status", Text),
        f("reason", "reason", Text),
        f("notes", "notes", Text),
        f("profile", "profile_id", Int),
        f("billing_status", "billing_status", Text),
        f("payment_profile", "payment_profile", Text),
        f("is_walk_in", "is_walk_in", Bool),
        f("appt_is_break", "appt_is_break", Bool),
        f("recurring_appointment", "recurring_appointment", Bool),
        f("base_recurring_appointment", "base_recurring_appointment", Text),
        f("icd10_codes", "icd10_codes", TextArray),
        f("primary_insurer_name", "primary_insurer_name", Text),
        f("primary_insurer_payer_id", "primary_insurer_payer_id", Text),
        f("created_at", "drchrono_created_at", Timestamp),
        f("updated_at", "drchrono_updated_at", Timestamp),
    ],
};

/// Medications (`PATIENT_MEDICATION_*`).
pub const MEDICATIONS: ObjectSpec = ObjectSpec {
    table: "medications",
    fields: &[
        f("id", "drchrono_id", Int),
        f("patient", "patient_id", Int),
        f("doctor", "provider_id", Int),
        f("appointment", "appointment_id", Text),
        f("name", "name", Text),
        f("rxnorm", "rxnorm", Text),
        f("ndc", "ndc", Text),
        f("dosage_quantity", "dosage_quantity", Text),
        f("dosage_units", "dosage_units", Text),
        f("frequency", "frequency", Text),
        f("route", "route", Text),
        f("indication", "indication", Text),
        f("status", "status", Text),
        f("order_status", "order_status", Text),
        f("prn", "prn", Bool),
        f("daw", "daw", Bool),
        f("number_refills", "number_refills", Int4),
        f("dispense_quantity", "dispense_quantity", Numeric),
        f("date_prescribed", "date_prescribed", Date),
        f("date_started_taking", "date_started_taking", Date),
        f("date_stopped_taking", "date_stopped_taking", Date),
        f("notes", "notes", Text),
    ],
};

/// Problems (`PATIENT_PROBLEM_*`).
pub const PROBLEMS: ObjectSpec = ObjectSpec {
    table: "problems",
    fields: &[
        f("id", "drchrono_id", Int),
        f("patient", "patient_id", Int),
        f("doctor", "provider_id", Int),
        f("appointment", "appointment_id", Text),
        f("name", "name", Text),
        f("description", "description", Text),
        f("icd_code", "icd_code", Text),
        f("icd_version", "icd_version", Text),
        f("snomed_ct_code", "snomed_ct_code", Text),
        f("status", "status", Text),
        f("verification_status", "verification_status", Text),
        f("category", "category", Text),
        f("date_onset", "date_onset", Date),
        f("date_diagnosis", "date_diagnosis", Date),
        f("date_changed", "date_changed", Date),
        f("abatement_date", "abatement_date", Date),
        f("notes", "notes", Text),
    ],
};

/// Allergies (`PATIENT_ALLERGY_*`).
pub const ALLERGIES: ObjectSpec = ObjectSpec {
    table: "allergies",
    fields: &[
        f("id", "drchrono_id", Int),
        f("patient", "patient_id", Int),
        f("doctor", "provider_id", Int),
        f("description", "description", Text),
        f("reaction", "reaction", Text),
        f("status", "status", Text),
        f("verification_status", "verification_status", Text),
        f("rxnorm", "rxnorm", Text),
        f("snomed_code", "snomed_code", Text),
        f("snomed_reaction", "snomed_reaction", Text),
        f("notes", "notes", Text),
    ],
};

/// Billing line items (`LINE_ITEM_*`).
pub const LINE_ITEMS: ObjectSpec = ObjectSpec {
    table: "line_items",
    fields: &[
        f("id", "drchrono_id", Int),
        f("appointment", "appointment_id", Text),
        f("patient", "patient_id", Int),
        f("doctor", "provider_id", Int),
        f("code", "code", Text),
        f("procedure_type", "procedure_type", Text),
        f("description", "description", Text),
        f("modifiers", "modifiers", TextArray),
        f("diagnosis_pointers", "diagnosis_pointers", TextArray),
        f("quantity", "quantity", Numeric),
        f("units", "units", Text),
        f("price", "price", Numeric),
        f("billed", "billed", Numeric),
        f("allowed", "allowed", Numeric),
        f("adjustment", "adjustment", Numeric),
        f("expected_reimbursement", "expected_reimbursement", Numeric),
        f("ins1_paid", "ins1_paid", Numeric),
        f("ins2_paid", "ins2_paid", Numeric),
        f("ins3_paid", "ins3_paid", Numeric),
        f("ins_total", "ins_total", Numeric),
        f("pt_paid", "pt_paid", Numeric),
        f("paid_total", "paid_total", Numeric),
        f("balance_ins", "balance_ins", Numeric),
        f("balance_pt", "balance_pt", Numeric),
        f("balance_total", "balance_total", Numeric),
        f("billing_status", "billing_status", Text),
        f("insurance_status", "insurance_status", Text),
        f("denied_flag", "denied_flag", Bool),
        f("service_date", "service_date", Date),
        f("posted_date", "posted_date", Date),
        f("updated_at", "drchrono_updated_at", Timestamp),
    ],
};

/// A patient's nested insurance objects (`primary_insurance`, …), into `insurance_records`.
pub const INSURANCE: &[Field] = &[
    f("insurance_company", "insurance_company", Text),
    f("insurance_payer_id", "insurance_payer_id", Text),
    f("insurance_plan_name", "insurance_plan_name", Text),
    f("insurance_plan_type", "insurance_plan_type", Text),
    f("insurance_group_name", "insurance_group_name", Text),
    f("insurance_group_number", "insurance_group_number", Text),
    f("insurance_id_number", "insurance_id_number", Text),
    f("is_subscriber_the_patient", "is_subscriber_the_patient", Bool),
    f("patient_relationship_to_subscriber", "patient_relationship_to_subscriber", Text),
    f("subscriber_first_name", "subscriber_first_name", Text),
    f("subscriber_last_name", "subscriber_last_name", Text),
    f("subscriber_date_of_birth", "subscriber_date_of_birth", Date),
];
