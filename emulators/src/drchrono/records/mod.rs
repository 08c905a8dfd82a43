//! The objects the emulator serves, one struct per DrChrono resource, serialised in the shapes
//! of drchrono-openapi.yml's components (`Patient`, `Doctor`, `Appointment`, `ClinicalNote`,
//! `PatientDrug`, `PatientProblem`, `PatientAllergy`, `BillingLineItem`,
//! `BillingLineItemDeletion`), with the spec's types even where they surprise: a clinical note's
//! `patient` and a line item's `patient`/`doctor` are strings, `appointment` on medications,
//! problems and line items is an integer while `Appointment.id` is a string of digits.
//!
//! Values follow the prose's data types: timestamps `2021-02-14T13:40:39` (no zone), dates
//! `2021-02-14`, decimals as strings with two places. Empty optional dates are `""`, as the
//! spec marks almost nothing `nullable`. Each record also says where it sits in its list
//! ([`Listed::key`]) and what the list filters look at ([`Facets`]).

mod billing;
mod chart;
mod people;
mod visits;

use chrono::{NaiveDate, NaiveDateTime};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

pub(crate) use billing::{LineItem, LineItemDeletion};
pub(crate) use chart::{Allergy, Medication, Problem};
pub(crate) use people::{Doctor, Insurance, Patient};
pub(crate) use visits::{Appointment, ClinicalNote, NoteSection, NoteValue, Signee};

/// Where a record sits in its list: lists are ordered by it and cursors point at it.
pub(crate) type Key = (i64, u64);

/// What the list filters look at; `None` where the resource has no such field.
#[derive(Debug, Default)]
pub(crate) struct Facets<'a> {
    pub patient: Option<u64>,
    pub doctor: Option<u64>,
    pub office: Option<u64>,
    pub appointment: Option<u64>,
    /// The day `since` compares with (the date of `updated_at`, or `created_at` for deletions).
    pub changed: Option<NaiveDate>,
    /// The day `date`/`date_range` compare with (an appointment's scheduled day).
    pub scheduled: Option<NaiveDate>,
    pub archived: bool,
    pub status: Option<&'a str>,
    pub service_date: Option<NaiveDate>,
    pub posted_date: Option<NaiveDate>,
}

/// A record of one list resource.
pub(crate) trait Listed: Serialize {
    /// Keys held in the record that are sent only with `verbose=true`
    /// (the spec's `x-verbose-required`).
    const VERBOSE_ONLY: &'static [&'static str] = &[];
    /// Its place in the list.
    fn key(&self) -> Key;
    /// What the filters look at.
    fn facets(&self) -> Facets<'_>;
    /// Verbose-only keys built on demand rather than held.
    fn verbose_extras(&self, _object: &mut Map<String, Value>) {}
    /// The JSON object a list returns.
    fn render(&self, verbose: bool) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(object) = value.as_object_mut() {
            if verbose {
                self.verbose_extras(object);
            } else {
                for key in Self::VERBOSE_ONLY {
                    object.remove(*key);
                }
            }
        }
        value
    }
}

/// DrChrono's timestamp: whole seconds, no zone.
pub(crate) fn timestamp(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

fn ts<S: Serializer>(t: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&timestamp(t))
}

fn day<S: Serializer>(d: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&d.format("%Y-%m-%d"))
}

fn day_or_blank<S: Serializer>(d: &Option<NaiveDate>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => day(d, s),
        None => s.serialize_str(""),
    }
}

/// A decimal held in cents, sent as DrChrono's two-place string.
fn money<S: Serializer>(cents: &i64, s: S) -> Result<S::Ok, S::Error> {
    let sign = if *cents < 0 { "-" } else { "" };
    s.collect_str(&format_args!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100))
}

fn digits<S: Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

fn object_or_empty<S: Serializer, T: Serialize>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => v.serialize(s),
        None => Map::new().serialize(s),
    }
}
