//! The Coda write-back contract, shared by its writer (ingest's `PATCH /api/…` endpoints), its
//! readers (the Coda sink's echo guard, the mapping check) and the emulator wiring: the three
//! targets with the staff-owned fields each may set and the roles that may set them, and the
//! transactional logical messages a write-back leaves in the WAL.
//!
//! A write-back commits its change together with an *edit notice*
//! (`pg_logical_emit_message(true, 'august.coda_edit', …)`): target, key, Coda row id and the
//! fields set. The sink, seeing that notice before the change's view rows, reads the Coda row
//! instead of writing it blind, and writes only when Coda does not already hold the new row. A
//! refused write-back (403, 409, 422 on a known row) commits a *refresh notice* alone, so the
//! Coda row that shows the refused value is corrected from Postgres. Notices name ids and
//! column names only: no value, no PHI.

use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

use crate::DbError;

/// One write-back endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Its name in URLs, mappings and notices: `intake`, `tasks`, `prior-auth`.
    pub name: &'static str,
    /// Its route (axum syntax).
    pub route: &'static str,
    /// The table it writes.
    pub table: &'static str,
    /// The column the URL's id is matched against.
    pub key: &'static str,
    /// The view whose rows are keyed by that id and show the staff-owned fields.
    pub view: &'static str,
    /// The staff-owned fields a request may set; every other column is read-only.
    pub fields: &'static [&'static str],
    /// The `staff_roles.role`s whose active members may edit this table.
    pub editors: &'static [&'static str],
}

/// The three targets.
pub const TARGETS: [Target; 3] = [
    Target {
        name: "intake",
        route: "/api/intake/{appointment_id}",
        table: "intake_checklists",
        key: "appointment_id",
        view: "patient_intake",
        fields: &[
            "status",
            "demographics_complete",
            "insurance_verified",
            "consent_signed",
            "questionnaires_sent",
            "questionnaires_complete",
            "id_verified",
            "payment_method_on_file",
            "assigned_to",
            "notes",
        ],
        editors: &["admin", "operations"],
    },
    Target {
        name: "tasks",
        route: "/api/tasks/{task_id}",
        table: "post_appointment_tasks",
        key: "id",
        view: "post_appointment_tasks",
        fields: &["task_type", "title", "details", "status", "priority", "assigned_to", "due_date"],
        editors: &["admin", "operations", "clinician"],
    },
    Target {
        name: "prior-auth",
        route: "/api/prior-auth/{auth_id}",
        table: "prior_authorizations",
        key: "id",
        view: "prior_auths",
        fields: &[
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
            "notes",
        ],
        editors: &["admin", "billing"],
    },
];

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Prefix of the notice a write-back commits with its change.
pub const EDIT_PREFIX: &str = "august.coda_edit";
/// Prefix of the notice a refused write-back commits alone.
pub const REFRESH_PREFIX: &str = "august.coda_refresh";

/// What a notice says (as JSON in the message's content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The target's name.
    pub target: String,
    /// The row's key (the URL's id).
    pub key: String,
    /// The Coda row id, when the request named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coda_row_id: Option<String>,
    /// The fields the request set (an edit); empty for a refresh.
    #[serde(default)]
    pub fields: Vec<String>,
}

/// Writes `notice` into the WAL under `prefix`, as part of the current transaction.
pub async fn emit(tx: &impl GenericClient, prefix: &str, notice: &Notice) -> Result<(), DbError> {
    let content = serde_json::to_string(notice).unwrap_or_default();
    tx.execute("SELECT pg_logical_emit_message(true, $1, $2::text)", &[&prefix, &content])
        .await
        .map(|_| ())
        .map_err(|e| DbError::new("emit a write-back notice", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_unique_and_notices_round_trip() {
        for (i, t) in TARGETS.iter().enumerate() {
            assert_eq!(target(t.name), Some(&TARGETS[i]));
            assert!(t.route.starts_with("/api/"), "{}", t.route);
            assert!(!t.fields.contains(&t.key), "{}: the key is read-only", t.name);
            assert!(!t.editors.contains(&"auditor") && !t.editors.contains(&"read_only"));
        }
        let notice =
            Notice { target: "intake".into(), key: "A1".into(), coda_row_id: None, fields: vec!["status".into()] };
        let text = serde_json::to_string(&notice).unwrap();
        assert_eq!(serde_json::from_str::<Notice>(&text).unwrap(), notice);
        assert!(!text.contains("coda_row_id"));
    }
}
