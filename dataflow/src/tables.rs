//! The published tables as the dataflow sees them: a fixed list of columns per table and the
//! natural key rows are upserted by.
//!
//! Incoming rows are projected onto these columns by name, so a column added or dropped while
//! August runs never shifts positions under the views (a new column is simply not seen until
//! it is added here; a test compares these lists with the migrated schema). A soft-deleted row
//! (`deleted_at` set) enters as a delete.

use august_cdc::{Relation, Row, Value};

/// One published table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    /// Table name.
    pub name: &'static str,
    /// Columns of the natural key the table's rows are upserted by.
    pub key: &'static [&'static str],
    /// The single column that identifies a row in the table's pass-through view.
    pub view_key: &'static str,
    /// Every column, in table order.
    pub columns: &'static [&'static str],
}

impl TableSpec {
    /// Position of `column`. Panics on a name the spec lacks: views name columns statically
    /// and a test checks every name they use.
    pub fn col(&self, column: &str) -> usize {
        self.columns
            .iter()
            .position(|c| *c == column)
            .unwrap_or_else(|| panic!("{}.{column} is not in the table spec", self.name))
    }

    /// The row of `relation` projected onto this spec's columns, by name.
    pub fn project(&self, relation: &Relation, row: &Row) -> Row {
        Row(self.columns.iter().map(|name| row.get(relation, name).cloned().unwrap_or(Value::Null)).collect())
    }

    /// The natural key of a projected row.
    pub fn key_of(&self, row: &Row) -> Vec<Value> {
        self.key.iter().map(|k| row.0[self.col(k)].clone()).collect()
    }

    /// Whether the row is soft-deleted.
    pub fn is_soft_deleted(&self, row: &Row) -> bool {
        self.columns.iter().position(|c| *c == "deleted_at").is_some_and(|i| !row.0[i].is_null())
    }
}

macro_rules! table {
    ($name:literal, key [$($key:literal),+], view_key $view_key:literal, [$($column:literal),+ $(,)?]) => {
        TableSpec { name: $name, key: &[$($key),+], view_key: $view_key, columns: &[$($column),+] }
    };
}

/// Every published table, in the order of `migrations/0005_publication.sql`.
pub const TABLES: &[TableSpec] = &[
    table!("providers", key ["drchrono_id"], view_key "drchrono_id", [
        "id", "drchrono_id", "first_name", "last_name", "suffix", "specialty", "job_title", "npi_number", "group_npi_number",
        "email", "office_phone", "cell_phone", "practice_group", "timezone", "is_account_suspended",
        "drchrono_raw", "drchrono_updated_at", "created_at", "updated_at", "deleted_at"]),
    table!("patients", key ["drchrono_id"], view_key "drchrono_id", [
        "id", "drchrono_id", "chart_id", "first_name", "middle_name", "last_name", "nick_name", "date_of_birth", "gender",
        "email", "cell_phone", "home_phone", "office_phone", "address", "city", "state", "zip_code", "provider_id",
        "patient_status", "preferred_language", "patient_payment_profile", "primary_care_physician", "referring_source",
        "default_pharmacy", "emergency_contact_name", "emergency_contact_phone", "emergency_contact_relation",
        "date_of_first_appointment", "date_of_last_appointment", "drchrono_raw", "drchrono_created_at",
        "drchrono_updated_at", "created_at", "updated_at", "deleted_at"]),
    table!("appointments", key ["drchrono_id"], view_key "drchrono_id", [
        "id", "drchrono_id", "patient_id", "provider_id", "office_id", "exam_room", "scheduled_time", "duration", "status",
        "custom_status", "reason", "notes", "profile_id", "billing_status", "payment_profile", "is_walk_in", "appt_is_break",
        "recurring_appointment", "base_recurring_appointment", "icd10_codes", "primary_insurer_name",
        "primary_insurer_payer_id", "drchrono_raw", "drchrono_created_at", "drchrono_updated_at", "created_at",
        "updated_at", "deleted_at"]),
    table!("clinical_notes", key ["drchrono_id"], view_key "drchrono_id", [
        "id", "drchrono_id", "patient_id", "locked", "locked_at", "archived", "locked_by", "supervisor_locked_by", "sections",
        "drchrono_raw", "drchrono_updated_at", "created_at", "updated_at", "deleted_at"]),
    table!("medications", key ["drchrono_id"], view_key "drchrono_id", [
        "id", "drchrono_id", "patient_id", "provider_id", "appointment_id", "name", "rxnorm", "ndc", "dosage_quantity",
        "dosage_units", "frequency", "route", "indication", "status", "order_status", "prn", "daw", "number_refills",
        "dispense_quantity", "date_prescribed", "date_started_taking", "date_stopped_taking", "notes",
        "drchrono_raw", "drchrono_updated_at", "created_at", "updated_at", "deleted_at"]),
    table!("problems", key ["drchrono_id"], view_key "drchrono_id", [
        "id", "drchrono_id", "patient_id", "provider_id", "appointment_id", "name", "description", "icd_code", "icd_version",
        "snomed_ct_code", "status", "verification_status", "category", "date_onset", "date_diagnosis", "date_changed",
        "abatement_date", "notes", "drchrono_raw", "drchrono_updated_at", "created_at", "updated_at", "deleted_at"]),
    table!("allergies", key ["drchrono_id"], view_key "drchrono_id", [
        "id", "drchrono_id", "patient_id", "provider_id", "description", "reaction", "status", "verification_status",
        "rxnorm", "snomed_code", "snomed_reaction", "notes", "drchrono_raw", "drchrono_updated_at", "created_at",
        "updated_at", "deleted_at"]),
    table!("insurance_records", key ["patient_id", "type"], view_key "id", [
        "id", "patient_id", "type", "insurance_company", "insurance_payer_id", "insurance_plan_name", "insurance_plan_type",
        "insurance_group_name", "insurance_group_number", "insurance_id_number", "is_subscriber_the_patient",
        "patient_relationship_to_subscriber", "subscriber_first_name", "subscriber_last_name", "subscriber_date_of_birth",
        "drchrono_raw", "drchrono_updated_at", "created_at", "updated_at", "deleted_at"]),
    table!("line_items", key ["drchrono_id"], view_key "drchrono_id", [
        "id", "drchrono_id", "appointment_id", "patient_id", "provider_id", "code", "procedure_type", "description",
        "modifiers", "diagnosis_pointers", "quantity", "units", "price", "billed", "allowed", "adjustment",
        "expected_reimbursement", "ins1_paid", "ins2_paid", "ins3_paid", "ins_total", "pt_paid", "paid_total",
        "balance_ins", "balance_pt", "balance_total", "billing_status", "insurance_status", "denied_flag", "service_date",
        "posted_date", "drchrono_raw", "drchrono_updated_at", "created_at", "updated_at", "deleted_at"]),
    table!("deepcura_notes", key ["id"], view_key "id", [
        "id", "drchrono_patient_id", "drchrono_appt_id", "session_date", "provider_npi", "transcript", "soap_subjective",
        "soap_objective", "soap_assessment", "soap_plan", "icd10_suggestions", "cpt_suggestions", "medications_mentioned",
        "risk_assessment", "raw_payload", "clinical_note_id", "linked_at", "link_method", "needs_review", "created_at",
        "updated_at", "deleted_at", "deepcura_updated_at"]),
    table!("intake_checklists", key ["appointment_id"], view_key "appointment_id", [
        "id", "appointment_id", "patient_id", "status", "demographics_complete", "insurance_verified", "consent_signed",
        "questionnaires_sent", "questionnaires_complete", "id_verified", "payment_method_on_file", "assigned_to", "notes",
        "completed_at", "created_at", "updated_at", "deleted_at"]),
    table!("post_appointment_tasks", key ["id"], view_key "id", [
        "id", "appointment_id", "patient_id", "task_type", "title", "details", "status", "priority", "assigned_to",
        "due_date", "completed_at", "created_at", "updated_at", "deleted_at"]),
    table!("prior_authorizations", key ["id"], view_key "id", [
        "id", "patient_id", "appointment_id", "insurance_type", "item_type", "item_name", "item_code", "icd10_codes",
        "status", "auth_number", "submitted_at", "decided_at", "valid_from", "valid_until", "units_approved",
        "assigned_to", "notes", "created_at", "updated_at", "deleted_at"]),
    table!("questionnaire_responses", key ["id"], view_key "id", [
        "id", "patient_id", "appointment_id", "instrument", "total_score", "item_scores", "source", "administered_at",
        "created_at", "updated_at", "deleted_at"]),
    table!("consent_records", key ["id"], view_key "id", [
        "id", "patient_id", "consent_type", "version", "document_ref", "signed_at", "revoked_at", "created_at",
        "updated_at", "deleted_at"]),
];

/// The spec of table `name`.
pub fn table(name: &str) -> Option<&'static TableSpec> {
    TABLES.iter().find(|t| t.name == name)
}

/// Index of table `name` in [`TABLES`].
pub fn table_index(name: &str) -> Option<usize> {
    TABLES.iter().position(|t| t.name == name)
}

/// The columns the named views read, per table: rows are narrowed to these before they enter
/// any join, so large columns (transcripts, raw payloads) and unused ones cost nothing there.
pub const VIEW_COLUMNS: &[(&str, &[&str])] = &[
    ("providers", &["drchrono_id", "first_name", "last_name"]),
    ("patients", &["drchrono_id", "first_name", "last_name", "date_of_birth", "cell_phone", "home_phone", "email"]),
    ("appointments", &["drchrono_id", "patient_id", "provider_id", "scheduled_time", "duration", "status", "reason"]),
    ("clinical_notes", &["drchrono_id", "patient_id", "locked", "archived"]),
    ("insurance_records", &["patient_id", "type", "insurance_company", "insurance_id_number"]),
    (
        "deepcura_notes",
        &[
            "id",
            "drchrono_patient_id",
            "drchrono_appt_id",
            "session_date",
            "provider_npi",
            "soap_subjective",
            "soap_objective",
            "soap_assessment",
            "soap_plan",
            "icd10_suggestions",
            "cpt_suggestions",
            "risk_assessment",
        ],
    ),
    (
        "intake_checklists",
        &[
            "appointment_id",
            "patient_id",
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
        ],
    ),
    (
        "prior_authorizations",
        &[
            "id",
            "patient_id",
            "insurance_type",
            "item_type",
            "item_name",
            "item_code",
            "icd10_codes",
            "status",
            "auth_number",
            "submitted_at",
            "decided_at",
            "valid_from",
            "valid_until",
            "units_approved",
            "assigned_to",
        ],
    ),
    (
        "post_appointment_tasks",
        &[
            "id",
            "appointment_id",
            "patient_id",
            "task_type",
            "title",
            "status",
            "priority",
            "assigned_to",
            "due_date",
            "completed_at",
        ],
    ),
];

/// The columns named views read of `table` (none for tables only passed through).
pub fn view_columns(table: &str) -> &'static [&'static str] {
    VIEW_COLUMNS.iter().find(|(name, _)| *name == table).map_or(&[], |(_, columns)| columns)
}

impl TableSpec {
    /// A full row narrowed to [`view_columns`].
    pub fn narrow(&self, row: &Row) -> Row {
        Row(view_columns(self.name).iter().map(|c| row.0[self.col(c)].clone()).collect())
    }
}
