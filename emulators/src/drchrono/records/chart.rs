//! A patient's chart lists: medications, problems (diagnoses) and allergies. None has an
//! `updated_at`, so their lists have no change filter.

use chrono::NaiveDate;
use serde::Serialize;

use super::{day, day_or_blank, money, Facets, Key, Listed};

/// A medication (`/api/medications`, the spec's `PatientDrug`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Medication {
    pub id: u64,
    pub patient: u64,
    pub doctor: u64,
    pub appointment: u64,
    pub name: &'static str,
    pub rxnorm: &'static str,
    pub ndc: &'static str,
    pub dosage_quantity: &'static str,
    pub dosage_units: &'static str,
    pub frequency: &'static str,
    pub route: &'static str,
    pub indication: &'static str,
    pub signature_note: &'static str,
    pub pharmacy_note: &'static str,
    pub status: &'static str,
    pub order_status: &'static str,
    pub prn: bool,
    pub daw: bool,
    pub number_refills: u32,
    #[serde(serialize_with = "money")]
    pub dispense_quantity: i64,
    #[serde(serialize_with = "day")]
    pub date_prescribed: NaiveDate,
    #[serde(serialize_with = "day")]
    pub date_started_taking: NaiveDate,
    #[serde(serialize_with = "day_or_blank")]
    pub date_stopped_taking: Option<NaiveDate>,
    pub notes: &'static str,
}

impl Listed for Medication {
    fn key(&self) -> Key {
        (0, self.id)
    }
    fn facets(&self) -> Facets<'_> {
        Facets { patient: Some(self.patient), doctor: Some(self.doctor), ..Facets::default() }
    }
}

/// A problem, i.e. a diagnosis (`/api/problems`, the spec's `PatientProblem`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Problem {
    pub id: u64,
    pub patient: u64,
    pub doctor: u64,
    pub appointment: u64,
    pub name: &'static str,
    pub description: &'static str,
    pub icd_code: &'static str,
    pub icd_version: &'static str,
    pub snomed_ct_code: &'static str,
    pub status: &'static str,
    pub verification_status: &'static str,
    pub category: &'static str,
    pub problem_type: &'static str,
    pub info_url: &'static str,
    #[serde(serialize_with = "day")]
    pub date_onset: NaiveDate,
    #[serde(serialize_with = "day")]
    pub date_diagnosis: NaiveDate,
    #[serde(serialize_with = "day")]
    pub date_changed: NaiveDate,
    /// Only resolved problems have one; the key is left out otherwise because the spec's
    /// `format: date` admits neither `""` nor `null`.
    #[serde(serialize_with = "day_or_blank", skip_serializing_if = "Option::is_none")]
    pub abatement_date: Option<NaiveDate>,
    pub notes: &'static str,
}

impl Listed for Problem {
    fn key(&self) -> Key {
        (0, self.id)
    }
    fn facets(&self) -> Facets<'_> {
        Facets { patient: Some(self.patient), doctor: Some(self.doctor), ..Facets::default() }
    }
}

/// An allergy (`/api/allergies`, the spec's `PatientAllergy`); `description` is verbose-only.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Allergy {
    pub id: u64,
    pub patient: u64,
    pub doctor: u64,
    pub description: &'static str,
    pub reaction: &'static str,
    pub status: &'static str,
    pub verification_status: &'static str,
    pub rxnorm: &'static str,
    pub snomed_code: &'static str,
    pub snomed_reaction: &'static str,
    pub notes: &'static str,
}

impl Listed for Allergy {
    const VERBOSE_ONLY: &'static [&'static str] = &["description"];
    fn key(&self) -> Key {
        (0, self.id)
    }
    fn facets(&self) -> Facets<'_> {
        Facets { patient: Some(self.patient), doctor: Some(self.doctor), ..Facets::default() }
    }
}
