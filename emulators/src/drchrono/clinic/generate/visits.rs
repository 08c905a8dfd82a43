//! A patient's appointments: 2–4 within a year either side of today (about 3 % archived), the
//! first an initial evaluation. Each completed past one gets its clinical note (locked, most
//! of them, once three days old) and its line item.

use chrono::{NaiveDate, NaiveDateTime};

use super::billing::add_line_item;
use super::{days, secs, Intake, Rng};
use crate::drchrono::clinic::vocabulary::{NOTE_TEXT, VISITS};
use crate::drchrono::clinic::Clinic;
use crate::drchrono::records::{Appointment, ClinicalNote, Insurance, NoteSection, NoteValue, Signee};

const APPOINTMENT_BASE: u64 = 190_000_000;
const PROFILE_BASE: u64 = 420_000;
const NOTE_TEMPLATE: u64 = 880_001;

/// What the patient record and the chart take from the visits.
pub(super) struct Visits {
    /// The first and last scheduled days of appointments not archived.
    pub first: Option<NaiveDate>,
    pub last: Option<NaiveDate>,
    /// The visit medications and problems date from: the first completed one, or (with none)
    /// the first appointment, dated the day it was booked.
    pub anchor: (u64, NaiveDate),
    /// The earliest appointment's creation: the patient was created before it.
    pub earliest_change: NaiveDateTime,
}

pub(super) fn add_visits(clinic: &mut Clinic, rng: &mut Rng, intake: &Intake) -> Visits {
    let start = intake.start;
    let mut times: Vec<NaiveDateTime> = (0..2 + rng.below(3))
        .map(|_| start + days(rng.between(-365, 365)) + secs(8 * 3600 + 1800 * rng.between(0, 17)))
        .collect();
    times.sort();
    let mut visits = Visits {
        first: None,
        last: None,
        anchor: (APPOINTMENT_BASE + intake.number * 4, start.date()),
        earliest_change: start,
    };
    let mut anchored = false;
    for (j, &when) in times.iter().enumerate() {
        let id = APPOINTMENT_BASE + intake.number * 4 + j as u64;
        let past = when < start;
        let visit = if j == 0 { VISITS[0] } else { rng.pick(&VISITS[1..]) };
        let (reason, code) = (visit.0, visit.1);
        let duration: u32 = match code {
            "90792" | "90837" => 60,
            "90834" => 45,
            _ => 30,
        };
        let archived = rng.chance(3);
        let status = match (past, rng.below(100)) {
            (true, 0..85) => "Complete",
            (true, 85..92) => "No Show",
            (true, _) => "Cancelled",
            (false, 0..50) => "Confirmed",
            (false, 50..90) => "Not Confirmed",
            (false, _) => "",
        };
        let created = match past {
            true => when - days(rng.between(1, 60)) - secs(rng.between(0, 86_399)),
            false => rng.moment(start - days(60), start),
        };
        visits.earliest_change = visits.earliest_change.min(created);
        if j == 0 {
            // With no completed visit, the chart dates from when the first one was booked.
            visits.anchor.1 = created.date();
        }
        let ended = when + secs(60 * i64::from(duration));
        let updated = match past {
            true => intake.before_today(ended + secs(rng.between(0, 72 * 3600)), rng),
            false => rng.moment(created, start),
        };
        if !archived {
            visits.first = visits.first.or(Some(when.date()));
            visits.last = Some(when.date());
        }
        let completed = past && status == "Complete" && !archived;
        let mut note = None;
        if completed {
            if !anchored {
                (visits.anchor, anchored) = ((id, when.date()), true);
            }
            let locked = when.date() < start.date() - days(3) && rng.chance(90);
            let note_updated = intake.before_today(ended + secs(rng.between(600, 48 * 3600)), rng);
            note = Some((locked, note_updated));
            clinic.clinical_notes.push(clinical_note(rng, intake, id, when.date(), note_updated, locked));
            add_line_item(clinic, rng, intake, (id, j as u64, when.date()), visit);
        }
        let (primary, secondary) = (intake.primary.as_ref(), intake.secondary.as_ref());
        let name = |i: Option<&Insurance>| i.map_or("", |i| i.insurance_company);
        let payer = |i: Option<&Insurance>| i.map_or("", |i| i.insurance_payer_id);
        let member = |i: Option<&Insurance>| i.map(|i| i.insurance_id_number.clone()).unwrap_or_default();
        clinic.appointments.push(Appointment {
            id,
            patient: intake.id,
            doctor: intake.doctor,
            office: intake.office,
            exam_room: 1 + rng.below(4) as u32,
            scheduled_time: when,
            duration,
            status,
            custom_status: "",
            reason,
            notes: "",
            profile: PROFILE_BASE + rng.below(4),
            color: "",
            billing_status: match (completed, primary.is_some()) {
                (false, _) => "",
                (true, true) => "Bill Insurance",
                (true, false) => "Bill Patient",
            },
            payment_profile: intake.payment,
            is_walk_in: rng.chance(2),
            appt_is_break: false,
            allow_overlapping: false,
            recurring_appointment: false,
            base_recurring_appointment: "",
            recurrence_instance_key: None,
            is_virtual_base: false,
            icd9_codes: Vec::new(),
            icd10_codes: if past { intake.billed.clone() } else { Vec::new() },
            primary_insurer_name: name(primary),
            primary_insurer_payer_id: payer(primary),
            primary_insurance_id_number: member(primary),
            secondary_insurer_name: name(secondary),
            secondary_insurer_payer_id: payer(secondary),
            secondary_insurance_id_number: member(secondary),
            deleted_flag: archived,
            created_at: created,
            updated_at: updated,
            note,
        });
    }
    visits
}

fn clinical_note(
    rng: &mut Rng,
    intake: &Intake,
    appointment: u64,
    scheduled: NaiveDate,
    updated: NaiveDateTime,
    locked: bool,
) -> ClinicalNote {
    let values = (0..2 + rng.below(2))
        .map(|k| NoteValue { id: appointment * 4 + k, clinical_note_field: 990_001 + k, value: rng.pick(NOTE_TEXT) })
        .collect();
    ClinicalNote {
        appointment,
        patient: intake.id,
        archived: false,
        clinical_note_sections: vec![NoteSection {
            clinical_note_template: NOTE_TEMPLATE,
            name: "Psychiatric Progress Note",
            values,
        }],
        signee: Signee {
            locked_by: if locked { intake.signer.clone() } else { String::new() },
            supervisor_locked_by: String::new(),
        },
        doctor: intake.doctor,
        office: intake.office,
        scheduled,
        updated,
    }
}
