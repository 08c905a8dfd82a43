//! Visits: appointments and the clinical note written for each past one.

use chrono::{NaiveDate, NaiveDateTime};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{digits, timestamp, ts, Facets, Key, Listed};

/// An appointment (`/api/appointments`); archived ones carry `deleted_flag: true`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Appointment {
    #[serde(serialize_with = "digits")]
    pub id: u64,
    pub patient: u64,
    pub doctor: u64,
    pub office: u64,
    pub exam_room: u32,
    #[serde(serialize_with = "ts")]
    pub scheduled_time: NaiveDateTime,
    pub duration: u32,
    pub status: &'static str,
    pub custom_status: &'static str,
    pub reason: &'static str,
    pub notes: &'static str,
    pub profile: u64,
    pub color: &'static str,
    pub billing_status: &'static str,
    pub payment_profile: &'static str,
    pub is_walk_in: bool,
    pub appt_is_break: bool,
    pub allow_overlapping: bool,
    pub recurring_appointment: bool,
    pub base_recurring_appointment: &'static str,
    pub recurrence_instance_key: Option<String>,
    pub is_virtual_base: bool,
    pub icd9_codes: Vec<&'static str>,
    pub icd10_codes: Vec<&'static str>,
    pub primary_insurer_name: &'static str,
    pub primary_insurer_payer_id: &'static str,
    pub primary_insurance_id_number: String,
    pub secondary_insurer_name: &'static str,
    pub secondary_insurer_payer_id: &'static str,
    pub secondary_insurance_id_number: String,
    pub deleted_flag: bool,
    #[serde(serialize_with = "ts")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "ts")]
    pub updated_at: NaiveDateTime,
    /// Its clinical note's lock and last change, for the verbose `clinical_note`.
    #[serde(skip)]
    pub note: Option<(bool, NaiveDateTime)>,
}

impl Listed for Appointment {
    fn key(&self) -> Key {
        (self.scheduled_time.and_utc().timestamp(), self.id)
    }
    fn facets(&self) -> Facets<'_> {
        Facets {
            patient: Some(self.patient),
            doctor: Some(self.doctor),
            office: Some(self.office),
            changed: Some(self.updated_at.date()),
            scheduled: Some(self.scheduled_time.date()),
            archived: self.deleted_flag,
            status: Some(self.status),
            ..Facets::default()
        }
    }
    fn verbose_extras(&self, object: &mut Map<String, Value>) {
        let note = match self.note {
            Some((locked, updated)) => json!({"locked": locked, "updated_at": timestamp(&updated), "pdf": ""}),
            None => json!({}),
        };
        object.insert("clinical_note".into(), note);
        object.insert("extended_updated_at".into(), json!(timestamp(&self.updated_at)));
        for key in ["custom_fields", "custom_vitals", "reminders", "status_transitions"] {
            object.insert(key.into(), json!([]));
        }
        object.insert("vitals".into(), json!({}));
    }
}

/// One value of a clinical note section.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NoteValue {
    pub id: u64,
    pub clinical_note_field: u64,
    pub value: &'static str,
}

/// A section of a clinical note, filled from a template.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NoteSection {
    pub clinical_note_template: u64,
    pub name: &'static str,
    pub values: Vec<NoteValue>,
}

/// Who locked a clinical note.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Signee {
    pub locked_by: String,
    pub supervisor_locked_by: String,
}

/// A clinical note (`/api/clinical_notes`), one per past appointment and keyed by it. The spec
/// gives it no id and no `updated_at`; the emulator keeps the latter only for `since`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ClinicalNote {
    #[serde(serialize_with = "digits")]
    pub appointment: u64,
    #[serde(serialize_with = "digits")]
    pub patient: u64,
    pub archived: bool,
    pub clinical_note_sections: Vec<NoteSection>,
    pub signee: Signee,
    #[serde(skip)]
    pub doctor: u64,
    #[serde(skip)]
    pub office: u64,
    #[serde(skip)]
    pub scheduled: NaiveDate,
    #[serde(skip)]
    pub updated: NaiveDateTime,
}

impl Listed for ClinicalNote {
    fn key(&self) -> Key {
        (0, self.appointment)
    }
    fn facets(&self) -> Facets<'_> {
        Facets {
            patient: Some(self.patient),
            doctor: Some(self.doctor),
            office: Some(self.office),
            appointment: Some(self.appointment),
            changed: Some(self.updated.date()),
            scheduled: Some(self.scheduled),
            archived: self.archived,
            ..Facets::default()
        }
    }
}
