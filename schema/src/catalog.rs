//! The tables of the system of record, by role. The migrations create them; these lists let
//! code and tests name them without repeating them, and tests check the lists against the
//! live database so the two cannot drift apart.

/// Tables mirrored from DrChrono.
pub const DRCHRONO_MIRRORS: &[&str] = &[
    "providers",
    "patients",
    "appointments",
    "clinical_notes",
    "medications",
    "problems",
    "allergies",
    "insurance_records",
    "line_items",
];

/// The clinic's own workflow tables.
pub const OPERATIONAL: &[&str] = &[
    "intake_checklists",
    "post_appointment_tasks",
    "prior_authorizations",
    "questionnaire_responses",
    "consent_records",
    "staff_roles",
];

/// The audit trail (`change_log`, `access_log` and `coda_disclosures` partitioned by month).
pub const AUDIT: &[&str] = &[
    "sync_log",
    "change_log",
    "access_log",
    "processed_messages",
    "audit_chain_heads",
    "audit_archives",
    "coda_disclosures",
];

/// Every table whose changes go through the audit trigger: the mirrors, `deepcura_notes` and
/// the operational tables.
pub fn tracked() -> impl Iterator<Item = &'static str> {
    DRCHRONO_MIRRORS.iter().chain(&["deepcura_notes"]).chain(OPERATIONAL).copied()
}

/// Tables in the `august_cdc` publication (all with `REPLICA IDENTITY FULL`): every tracked
/// table except `staff_roles`, which is access control, not clinic data.
pub fn published() -> impl Iterator<Item = &'static str> {
    tracked().filter(|table| *table != "staff_roles")
}
