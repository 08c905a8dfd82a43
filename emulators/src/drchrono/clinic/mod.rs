//! The synthetic clinic the emulator serves: every object of every list, generated from a seed
//! ([`generate`]) and then changed only by the test mutations (a patient or appointment edited
//! in DrChrono, a line item deleted). Each list is kept in its API order ([`Listed::key`]), so
//! a page is a binary search and a scan.

mod generate;
mod vocabulary;

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::Value;

use super::records::{
    Allergy, Appointment, ClinicalNote, Doctor, LineItem, LineItemDeletion, Listed, Medication, Patient, Problem,
};

/// The list resources, named as in their paths (`/api/{name}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    Patients,
    Doctors,
    Appointments,
    ClinicalNotes,
    Medications,
    Problems,
    Allergies,
    LineItems,
    LineItemDeletions,
}

impl Resource {
    /// Every list, in the order `counts` reports them.
    pub const ALL: [Resource; 9] = [
        Resource::Patients,
        Resource::Doctors,
        Resource::Appointments,
        Resource::ClinicalNotes,
        Resource::Medications,
        Resource::Problems,
        Resource::Allergies,
        Resource::LineItems,
        Resource::LineItemDeletions,
    ];

    /// Its path segment.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Patients => "patients",
            Resource::Doctors => "doctors",
            Resource::Appointments => "appointments",
            Resource::ClinicalNotes => "clinical_notes",
            Resource::Medications => "medications",
            Resource::Problems => "problems",
            Resource::Allergies => "allergies",
            Resource::LineItems => "line_items",
            Resource::LineItemDeletions => "line_item_deletions",
        }
    }

    /// The resource a path segment names.
    pub fn from_name(name: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// Something done to one list, whatever its record type.
pub(crate) trait Visit {
    /// What it gives back.
    type Out;
    /// Does it to `items`, which are in list order.
    fn visit<T: Listed>(self, items: &[T]) -> Self::Out;
}

/// Every object of the clinic, each list in API order.
#[derive(Debug)]
pub(crate) struct Clinic {
    pub doctors: Vec<Doctor>,
    pub patients: Vec<Patient>,
    pub appointments: Vec<Appointment>,
    pub clinical_notes: Vec<ClinicalNote>,
    pub medications: Vec<Medication>,
    pub problems: Vec<Problem>,
    pub allergies: Vec<Allergy>,
    pub line_items: Vec<LineItem>,
    pub line_item_deletions: Vec<LineItemDeletion>,
    /// How many mutations so far, to make each one's new values differ.
    edits: u64,
}

/// The clinic for `seed`: `patients` patients and their records, dated around `today` (every
/// generated change lies before it, appointments within a year either side of it).
pub(crate) fn generate(seed: u64, patients: usize, today: NaiveDate) -> Clinic {
    generate::clinic(seed, patients, today)
}

impl Clinic {
    /// Runs `visitor` on one list.
    pub fn visit<V: Visit>(&self, resource: Resource, visitor: V) -> V::Out {
        match resource {
            Resource::Patients => visitor.visit(&self.patients),
            Resource::Doctors => visitor.visit(&self.doctors),
            Resource::Appointments => visitor.visit(&self.appointments),
            Resource::ClinicalNotes => visitor.visit(&self.clinical_notes),
            Resource::Medications => visitor.visit(&self.medications),
            Resource::Problems => visitor.visit(&self.problems),
            Resource::Allergies => visitor.visit(&self.allergies),
            Resource::LineItems => visitor.visit(&self.line_items),
            Resource::LineItemDeletions => visitor.visit(&self.line_item_deletions),
        }
    }

    /// Objects per list.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        struct Len;
        impl Visit for Len {
            type Out = usize;
            fn visit<T: Listed>(self, items: &[T]) -> usize {
                items.len()
            }
        }
        Resource::ALL.into_iter().map(|r| (r.name(), self.visit(r, Len))).collect()
    }

    /// Every object of a list as the API renders it, in list order.
    pub fn render_all(&self, resource: Resource, verbose: bool) -> Vec<Value> {
        struct Render(bool);
        impl Visit for Render {
            type Out = Vec<Value>;
            fn visit<T: Listed>(self, items: &[T]) -> Vec<Value> {
                items.iter().map(|item| item.render(self.0)).collect()
            }
        }
        self.visit(resource, Render(verbose))
    }

    /// A patient edited in DrChrono: a new cell phone and preferred language, `updated_at` now.
    /// False if there is no such patient.
    pub fn modify_patient(&mut self, id: u64, now: NaiveDateTime) -> bool {
        let Ok(at) = self.patients.binary_search_by_key(&id, |p| p.id) else { return false };
        self.edits += 1;
        const LANGUAGES: [&str; 6] = ["eng", "spa", "fra", "por", "zho", "rus"];
        let patient = &mut self.patients[at];
        let next = LANGUAGES.iter().position(|l| *l == patient.preferred_language).map_or(0, |i| i + 1);
        patient.preferred_language = LANGUAGES[next % LANGUAGES.len()];
        patient.cell_phone = format!("(802) 555-{:04}", 100 + self.edits % 100);
        patient.updated_at = now;
        true
    }

    /// An appointment edited in DrChrono: its status moves on, `updated_at` now. False if there
    /// is no such appointment. Its place in the list (by scheduled time) does not change.
    pub fn modify_appointment(&mut self, id: u64, now: NaiveDateTime) -> bool {
        let Some(appointment) = self.appointments.iter_mut().find(|a| a.id == id) else { return false };
        self.edits += 1;
        const STATUSES: [&str; 5] = ["Confirmed", "Arrived", "Checked In", "In Session", "Complete"];
        let next = STATUSES.iter().position(|s| *s == appointment.status).map_or(0, |i| i + 1);
        appointment.status = STATUSES[next % STATUSES.len()];
        appointment.updated_at = now;
        true
    }

    /// A line item deleted in DrChrono: gone from its list, logged in `line_item_deletions`
    /// with `created_at` now. False if there is no such line item.
    pub fn delete_line_item(&mut self, id: u64, now: NaiveDateTime) -> bool {
        let Ok(at) = self.line_items.binary_search_by_key(&id, |l| l.id) else { return false };
        let item = self.line_items.remove(at);
        let deletion =
            LineItemDeletion { billing_line_item_id: item.id, appointment_id: item.appointment, created_at: now };
        let place = self.line_item_deletions.partition_point(|d| d.key() <= deletion.key());
        self.line_item_deletions.insert(place, deletion);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveTime;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 3, 10).expect("a date")
    }

    #[test]
    fn every_list_is_in_strict_key_order() {
        struct Ordered;
        impl Visit for Ordered {
            type Out = bool;
            fn visit<T: Listed>(self, items: &[T]) -> bool {
                items.windows(2).all(|pair| pair[0].key() < pair[1].key())
            }
        }
        let clinic = generate(3, 500, day());
        for resource in Resource::ALL {
            assert!(clinic.visit(resource, Ordered), "{}", resource.name());
        }
    }

    #[test]
    fn generated_changes_lie_before_the_clinics_day() {
        let clinic = generate(3, 500, day());
        let start = day().and_time(NaiveTime::MIN);
        assert!(clinic.patients.iter().all(|p| p.created_at <= p.updated_at && p.updated_at < start));
        assert!(clinic.appointments.iter().all(|a| a.created_at < a.scheduled_time && a.updated_at < start));
        assert!(clinic.line_items.iter().all(|l| l.updated_at < start && l.posted_date >= l.service_date));
        assert!(clinic.line_item_deletions.iter().all(|d| d.created_at < start));
        assert!(clinic.clinical_notes.iter().all(|n| n.updated < start && n.scheduled < day()));
        let first = clinic.appointments.first().expect("appointments").scheduled_time.date();
        let last = clinic.appointments.last().expect("appointments").scheduled_time.date();
        assert!(first >= day() - chrono::TimeDelta::days(366) && last <= day() + chrono::TimeDelta::days(366));
        assert!(first < day() && last > day(), "appointments on both sides of the day");
    }

    #[test]
    fn each_completed_visit_has_one_note_and_one_line_item() {
        let clinic = generate(5, 300, day());
        let completed: Vec<u64> = clinic
            .appointments
            .iter()
            .filter(|a| a.status == "Complete" && !a.deleted_flag && a.scheduled_time.date() < day())
            .map(|a| a.id)
            .collect();
        let mut notes: Vec<u64> = clinic.clinical_notes.iter().map(|n| n.appointment).collect();
        let mut items: Vec<u64> = clinic.line_items.iter().map(|l| l.appointment).collect();
        let mut expected = completed.clone();
        expected.sort_unstable();
        notes.sort_unstable();
        items.sort_unstable();
        assert_eq!((&notes, &items), (&expected, &expected));
        let deleted: Vec<u64> = clinic.line_item_deletions.iter().map(|d| d.billing_line_item_id).collect();
        assert!(
            deleted.len() >= 3
                && deleted.iter().all(|id| clinic.line_items.binary_search_by_key(id, |l| l.id).is_err())
        );
    }

    #[test]
    fn mutations_stamp_now_and_keep_list_order() {
        let mut clinic = generate(1, 50, day());
        let now = day().and_hms_opt(12, 0, 0).expect("a time");
        let patient = clinic.patients[7].clone();
        assert!(clinic.modify_patient(patient.id, now));
        let changed = &clinic.patients[7];
        assert_eq!(changed.updated_at, now);
        assert!(changed.cell_phone != patient.cell_phone && changed.preferred_language != patient.preferred_language);
        let appointment = clinic.appointments[4].id;
        assert!(clinic.modify_appointment(appointment, now));
        assert_eq!((clinic.appointments[4].id, clinic.appointments[4].updated_at), (appointment, now));
        let item = clinic.line_items[0].id;
        let before = clinic.counts();
        assert!(clinic.delete_line_item(item, now));
        assert!(!clinic.delete_line_item(item, now), "already gone");
        let after = clinic.counts();
        assert_eq!(after["line_items"] + 1, before["line_items"]);
        let last = clinic.line_item_deletions.last().expect("a deletion");
        assert_eq!((last.billing_line_item_id, last.created_at), (item, now));
    }

    #[test]
    fn twenty_thousand_patients_generate_quickly() {
        let started = std::time::Instant::now();
        let clinic = generate(9, 20_000, day());
        let took = started.elapsed();
        assert_eq!(clinic.patients.len(), 20_000);
        // Release builds take a small fraction of this; debug builds are several times slower.
        let budget = if cfg!(debug_assertions) { 15.0 } else { 1.0 };
        assert!(took.as_secs_f64() < budget, "{took:?}");
    }
}
