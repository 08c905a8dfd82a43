//! The published tables as the dataflow sees them: a fixed list of columns per table and the
//! natural key rows are upserted by.
//!
//! Incoming rows are projected onto these columns by name, so a column added or dropped while
//! August runs never shifts positions under the views (a new column is simply not seen until
//! it is added here; a test compares these lists with the migrated schema). A soft-deleted row
//! (`deleted_at` set) enters as a delete.

use august_cdc::{Relation, Row, Value};

use crate::phi::PhiClass;

/// Live rows per table (projected onto the table spec, soft-deleted rows absent), keyed by
/// natural key: the reference computation's input.
pub type LiveRows = std::collections::BTreeMap<String, std::collections::BTreeMap<Vec<Value>, Row>>;

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
    /// The PHI class of each column, in the same order (see [`crate::phi`]).
    pub classes: &'static [PhiClass],
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

    /// The PHI class of `column` (`None` for a name the spec lacks).
    pub fn class(&self, column: &str) -> Option<PhiClass> {
        self.columns.iter().position(|c| *c == column).map(|i| self.classes[i])
    }

    /// Whether the row is soft-deleted.
    pub fn is_soft_deleted(&self, row: &Row) -> bool {
        self.columns.iter().position(|c| *c == "deleted_at").is_some_and(|i| !row.0[i].is_null())
    }
}

/// A table: its key, its view key and every column with its PHI class (`"name" Class`).
macro_rules! table {
    ($name:literal, key [$($key:literal),+], view_key $view_key:literal, [$($column:literal $class:ident),+ $(,)?]) => {
        TableSpec {
            name: $name,
            key: &[$($key),+],
            view_key: $view_key,
            columns: &[$($column),+],
            classes: &[$(PhiClass::$class),+],
        }
    };
}

/// Every published table, in the order of `migrations/0005_publication.sql`.
pub const TABLES: &[TableSpec] = &[
    table!("providers", key ["drchrono_id"], view_key "drchrono_id", [
        "id" Identifier, "drchrono_id" Identifier, "first_name" Direct, "last_name" Direct, "suffix" Direct,
        "specialty" Operational, "job_title" Operational, "npi_number" Identifier, "group_npi_number" Identifier,
        "email" Direct, "office_phone" Direct, "cell_phone" Direct, "practice_group" Operational,
        "timezone" Operational, "is_account_suspended" Operational, "drchrono_raw" Direct,
        "drchrono_updated_at" Operational, "created_at" Operational, "updated_at" Operational,
        "deleted_at" Operational,
    ]),
    table!("patients", key ["drchrono_id"], view_key "drchrono_id", [
        "id" Identifier, "drchrono_id" Identifier, "chart_id" Direct, "first_name" Direct, "middle_name" Direct,
        "last_name" Direct, "nick_name" Direct, "date_of_birth" Direct, "gender" Direct, "email" Direct,
        "cell_phone" Direct, "home_phone" Direct, "office_phone" Direct, "address" Direct, "city" Direct,
        "state" Direct, "zip_code" Direct, "provider_id" Identifier, "patient_status" Operational,
        "preferred_language" Direct, "patient_payment_profile" Operational, "primary_care_physician" Direct,
        "referring_source" Direct, "default_pharmacy" Direct, "emergency_contact_name" Direct,
        "emergency_contact_phone" Direct, "emergency_contact_relation" Direct,
        "date_of_first_appointment" Operational, "date_of_last_appointment" Operational, "drchrono_raw" Direct,
        "drchrono_created_at" Operational, "drchrono_updated_at" Operational, "created_at" Operational,
        "updated_at" Operational, "deleted_at" Operational,
    ]),
    table!("appointments", key ["drchrono_id"], view_key "drchrono_id", [
        "id" Identifier, "drchrono_id" Identifier, "patient_id" Identifier, "provider_id" Identifier,
        "office_id" Identifier, "exam_room" Operational, "scheduled_time" Operational, "duration" Operational,
        "status" Operational, "custom_status" Operational, "reason" Direct, "notes" Direct, "profile_id" Identifier,
        "billing_status" Operational, "payment_profile" Operational, "is_walk_in" Operational,
        "appt_is_break" Operational, "recurring_appointment" Identifier, "base_recurring_appointment" Identifier,
        "icd10_codes" Clinical, "primary_insurer_name" Operational, "primary_insurer_payer_id" Identifier,
        "drchrono_raw" Direct, "drchrono_created_at" Operational, "drchrono_updated_at" Operational,
        "created_at" Operational, "updated_at" Operational, "deleted_at" Operational,
    ]),
    table!("clinical_notes", key ["drchrono_id"], view_key "drchrono_id", [
        "id" Identifier, "drchrono_id" Identifier, "patient_id" Identifier, "locked" Operational,
        "locked_at" Operational, "archived" Operational, "locked_by" Identifier, "supervisor_locked_by" Identifier,
        "sections" Clinical, "drchrono_raw" Direct, "drchrono_updated_at" Operational, "created_at" Operational,
        "updated_at" Operational, "deleted_at" Operational,
    ]),
    table!("medications", key ["drchrono_id"], view_key "drchrono_id", [
        "id" Identifier, "drchrono_id" Identifier, "patient_id" Identifier, "provider_id" Identifier,
        "appointment_id" Identifier, "name" Clinical, "rxnorm" Clinical, "ndc" Clinical, "dosage_quantity" Clinical,
        "dosage_units" Clinical, "frequency" Clinical, "route" Clinical, "indication" Clinical, "status" Clinical,
        "order_status" Operational, "prn" Clinical, "daw" Clinical, "number_refills" Clinical,
        "dispense_quantity" Clinical, "date_prescribed" Clinical, "date_started_taking" Clinical,
        "date_stopped_taking" Clinical, "notes" Direct, "drchrono_raw" Direct, "drchrono_updated_at" Operational,
        "created_at" Operational, "updated_at" Operational, "deleted_at" Operational,
    ]),
    table!("problems", key ["drchrono_id"], view_key "drchrono_id", [
        "id" Identifier, "drchrono_id" Identifier, "patient_id" Identifier, "provider_id" Identifier,
        "appointment_id" Identifier, "name" Clinical, "description" Clinical, "icd_code" Clinical,
        "icd_version" Clinical, "snomed_ct_code" Clinical, "status" Clinical, "verification_status" Clinical,
        "category" Clinical, "date_onset" Clinical, "date_diagnosis" Clinical, "date_changed" Clinical,
        "abatement_date" Clinical, "notes" Direct, "drchrono_raw" Direct, "drchrono_updated_at" Operational,
        "created_at" Operational, "updated_at" Operational, "deleted_at" Operational,
    ]),
    table!("allergies", key ["drchrono_id"], view_key "drchrono_id", [
        "id" Identifier, "drchrono_id" Identifier, "patient_id" Identifier, "provider_id" Identifier,
        "description" Clinical, "reaction" Clinical, "status" Clinical, "verification_status" Clinical,
        "rxnorm" Clinical, "snomed_code" Clinical, "snomed_reaction" Clinical, "notes" Direct, "drchrono_raw" Direct,
        "drchrono_updated_at" Operational, "created_at" Operational, "updated_at" Operational,
        "deleted_at" Operational,
    ]),
    table!("insurance_records", key ["patient_id", "type"], view_key "id", [
        "id" Identifier, "patient_id" Identifier, "type" Operational, "insurance_company" Operational,
        "insurance_payer_id" Identifier, "insurance_plan_name" Operational, "insurance_plan_type" Operational,
        "insurance_group_name" Operational, "insurance_group_number" Direct, "insurance_id_number" Direct,
        "is_subscriber_the_patient" Operational, "patient_relationship_to_subscriber" Operational,
        "subscriber_first_name" Direct, "subscriber_last_name" Direct, "subscriber_date_of_birth" Direct,
        "drchrono_raw" Direct, "drchrono_updated_at" Operational, "created_at" Operational, "updated_at" Operational,
        "deleted_at" Operational,
    ]),
    table!("line_items", key ["drchrono_id"], view_key "drchrono_id", [
        "id" Identifier, "drchrono_id" Identifier, "appointment_id" Identifier, "patient_id" Identifier,
        "provider_id" Identifier, "code" Clinical, "procedure_type" Clinical, "description" Clinical,
        "modifiers" Clinical, "diagnosis_pointers" Clinical, "quantity" Clinical, "units" Clinical,
        "price" Operational, "billed" Operational, "allowed" Operational, "adjustment" Operational,
        "expected_reimbursement" Operational, "ins1_paid" Operational, "ins2_paid" Operational,
        "ins3_paid" Operational, "ins_total" Operational, "pt_paid" Operational, "paid_total" Operational,
        "balance_ins" Operational, "balance_pt" Operational, "balance_total" Operational,
        "billing_status" Operational, "insurance_status" Operational, "denied_flag" Operational,
        "service_date" Operational, "posted_date" Operational, "drchrono_raw" Direct,
        "drchrono_updated_at" Operational, "created_at" Operational, "updated_at" Operational,
        "deleted_at" Operational,
    ]),
    table!("deepcura_notes", key ["id"], view_key "id", [
        "id" Identifier, "drchrono_patient_id" Identifier, "drchrono_appt_id" Identifier, "session_date" Operational,
        "provider_npi" Identifier, "transcript" Clinical, "soap_subjective" Clinical, "soap_objective" Clinical,
        "soap_assessment" Clinical, "soap_plan" Clinical, "icd10_suggestions" Clinical, "cpt_suggestions" Clinical,
        "medications_mentioned" Clinical, "risk_assessment" Clinical, "raw_payload" Direct,
        "clinical_note_id" Identifier, "linked_at" Operational, "link_method" Operational, "needs_review" Operational,
        "created_at" Operational, "updated_at" Operational, "deleted_at" Operational,
        "deepcura_updated_at" Operational,
    ]),
    table!("intake_checklists", key ["appointment_id"], view_key "appointment_id", [
        "id" Identifier, "appointment_id" Identifier, "patient_id" Identifier, "status" Operational,
        "demographics_complete" Operational, "insurance_verified" Operational, "consent_signed" Operational,
        "questionnaires_sent" Operational, "questionnaires_complete" Operational, "id_verified" Operational,
        "payment_method_on_file" Operational, "assigned_to" Operational, "notes" Direct, "completed_at" Operational,
        "created_at" Operational, "updated_at" Operational, "deleted_at" Operational,
    ]),
    table!("post_appointment_tasks", key ["id"], view_key "id", [
        "id" Identifier, "appointment_id" Identifier, "patient_id" Identifier, "task_type" Operational,
        "title" Direct, "details" Direct, "status" Operational, "priority" Operational, "assigned_to" Operational,
        "due_date" Operational, "completed_at" Operational, "created_at" Operational, "updated_at" Operational,
        "deleted_at" Operational,
    ]),
    table!("prior_authorizations", key ["id"], view_key "id", [
        "id" Identifier, "patient_id" Identifier, "appointment_id" Identifier, "insurance_type" Operational,
        "item_type" Clinical, "item_name" Clinical, "item_code" Clinical, "icd10_codes" Clinical,
        "status" Operational, "auth_number" Identifier, "submitted_at" Operational, "decided_at" Operational,
        "valid_from" Operational, "valid_until" Operational, "units_approved" Clinical, "assigned_to" Operational,
        "notes" Direct, "created_at" Operational, "updated_at" Operational, "deleted_at" Operational,
    ]),
    table!("questionnaire_responses", key ["id"], view_key "id", [
        "id" Identifier, "patient_id" Identifier, "appointment_id" Identifier, "instrument" Clinical,
        "total_score" Clinical, "item_scores" Clinical, "source" Operational, "administered_at" Operational,
        "created_at" Operational, "updated_at" Operational, "deleted_at" Operational,
    ]),
    table!("consent_records", key ["id"], view_key "id", [
        "id" Identifier, "patient_id" Identifier, "consent_type" Clinical, "version" Operational,
        "document_ref" Identifier, "signed_at" Operational, "revoked_at" Operational, "created_at" Operational,
        "updated_at" Operational, "deleted_at" Operational,
    ]),
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

/// Reads columns of a table's narrowed rows (see [`crate::tables::VIEW_COLUMNS`]) by name.
#[derive(Debug, Clone, Copy)]
pub struct Cols(&'static str, &'static [&'static str]);

impl Cols {
    /// Column reader for the narrowed rows of the table called `name`.
    pub fn of(name: &'static str) -> Self {
        Cols(name, view_columns(name))
    }

    /// The value of `column` in `row`. Panics on a column the narrowed rows lack: view code
    /// names columns statically and the property tests read every one.
    pub fn get<'r>(&self, row: &'r Row, column: &str) -> &'r Value {
        let index = self
            .1
            .iter()
            .position(|c| *c == column)
            .unwrap_or_else(|| panic!("{}.{column} is not in VIEW_COLUMNS", self.0));
        &row.0[index]
    }
}
