//! The people: providers (`Doctor`) and patients (`Patient`, with their verbose-only insurance).

use chrono::{NaiveDate, NaiveDateTime};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{day, day_or_blank, money, object_or_empty, ts, Facets, Key, Listed};

/// A provider (`/api/doctors`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Doctor {
    pub id: u64,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub suffix: &'static str,
    pub specialty: &'static str,
    pub job_title: &'static str,
    pub email: String,
    pub office_phone: String,
    pub cell_phone: String,
    pub home_phone: String,
    pub npi_number: String,
    pub group_npi_number: String,
    pub practice_group: String,
    pub practice_group_name: &'static str,
    pub timezone: &'static str,
    pub country: &'static str,
    pub website: &'static str,
    pub profile_picture: &'static str,
    pub is_account_suspended: bool,
    #[serde(skip)]
    pub office: u64,
}

impl Listed for Doctor {
    fn key(&self) -> Key {
        (0, self.id)
    }
    fn facets(&self) -> Facets<'_> {
        Facets { doctor: Some(self.id), office: Some(self.office), ..Facets::default() }
    }
}

/// A patient's insurance (`primary_insurance`, … in verbose patients).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Insurance {
    pub insurance_company: &'static str,
    pub insurance_payer_id: &'static str,
    pub insurance_plan_name: &'static str,
    pub insurance_plan_type: &'static str,
    pub insurance_group_name: String,
    pub insurance_group_number: String,
    pub insurance_id_number: String,
    pub insurance_claim_office_number: String,
    pub is_subscriber_the_patient: bool,
    /// HCFA relationship code; the spec's enum has no "18" (self), so `""` when the patient is
    /// the subscriber.
    pub patient_relationship_to_subscriber: &'static str,
    pub subscriber_first_name: String,
    pub subscriber_middle_name: String,
    pub subscriber_last_name: String,
    #[serde(serialize_with = "day")]
    pub subscriber_date_of_birth: NaiveDate,
    pub subscriber_gender: &'static str,
    pub subscriber_address: String,
    pub subscriber_city: &'static str,
    pub subscriber_state: &'static str,
    pub subscriber_zip_code: String,
    pub subscriber_country: &'static str,
}

/// A patient (`/api/patients`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Patient {
    pub id: u64,
    pub chart_id: String,
    pub first_name: &'static str,
    pub middle_name: String,
    pub last_name: &'static str,
    pub nick_name: String,
    #[serde(serialize_with = "day")]
    pub date_of_birth: NaiveDate,
    pub gender: &'static str,
    pub race: &'static str,
    pub ethnicity: &'static str,
    pub email: String,
    pub cell_phone: String,
    pub home_phone: String,
    pub office_phone: String,
    pub address: String,
    pub city: &'static str,
    pub state: &'static str,
    pub zip_code: String,
    pub doctor: u64,
    pub offices: Vec<u64>,
    pub patient_status: &'static str,
    pub preferred_language: &'static str,
    pub patient_payment_profile: &'static str,
    pub primary_care_physician: String,
    pub referring_source: &'static str,
    pub default_pharmacy: String,
    pub emergency_contact_name: String,
    pub emergency_contact_phone: String,
    pub emergency_contact_relation: &'static str,
    pub disable_sms_messages: bool,
    #[serde(serialize_with = "money")]
    pub copay: i64,
    #[serde(serialize_with = "day_or_blank")]
    pub date_of_first_appointment: Option<NaiveDate>,
    #[serde(serialize_with = "day_or_blank")]
    pub date_of_last_appointment: Option<NaiveDate>,
    #[serde(serialize_with = "object_or_empty")]
    pub primary_insurance: Option<Insurance>,
    #[serde(serialize_with = "object_or_empty")]
    pub secondary_insurance: Option<Insurance>,
    #[serde(serialize_with = "object_or_empty")]
    pub tertiary_insurance: Option<Insurance>,
    #[serde(serialize_with = "ts")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "ts")]
    pub updated_at: NaiveDateTime,
}

impl Listed for Patient {
    const VERBOSE_ONLY: &'static [&'static str] = &["primary_insurance", "secondary_insurance", "tertiary_insurance"];
    fn key(&self) -> Key {
        (0, self.id)
    }
    fn facets(&self) -> Facets<'_> {
        Facets { doctor: Some(self.doctor), changed: Some(self.updated_at.date()), ..Facets::default() }
    }
    fn verbose_extras(&self, object: &mut Map<String, Value>) {
        for key in ["auto_accident_insurance", "workers_comp_insurance", "referring_doctor"] {
            object.insert(key.into(), json!({}));
        }
        for key in ["custom_demographics", "patient_flags", "patient_flags_attached"] {
            object.insert(key.into(), json!([]));
        }
    }
}
