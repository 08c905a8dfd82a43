//! Making the clinic from a seed. Each patient draws from its own random stream (seed and
//! patient number), so the first 200 patients of a 20 000-patient clinic are those of a
//! 200-patient one, and generation is one pass with no lookups.
//!
//! Per patient: an intake (identity, provider, payer, diagnoses), then 2–4 appointments within
//! a year of `today` with a clinical note and a line item for each completed past one
//! (`visits.rs`, `billing.rs`), then 0–2 problems, 0–2 medications and 0–1 allergy
//! (`chart.rs`). Ids grow with the patient number, so every list but the appointments (by
//! scheduled time) and the deletions (by time) comes out in order.
//!
//! Everything generated as changed lies before `today`, so `since=<today>` returns only what
//! the tests change.

mod billing;
mod chart;
mod visits;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};

use super::vocabulary::{AREA_CODES, CITIES, DIAGNOSES, FIRST_NAMES, INSURERS, LAST_NAMES, STREETS};
use super::Clinic;
use crate::drchrono::records::{Doctor, Insurance, Listed, Patient};

const DOCTOR_BASE: u64 = 301_000;
const OFFICE_BASE: u64 = 210_001;
const PATIENT_BASE: u64 = 71_000_000;

/// SplitMix64: small, fast, and the same sequence on every platform and `rand` version.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        let mut rng = Rng(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        rng.next();
        rng
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below(hi.abs_diff(lo) + 1) as i64
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n).map(|_| char::from(b'0' + self.below(10) as u8)).collect()
    }
    /// A number in the `555-01xx` range kept for fiction.
    fn phone(&mut self) -> String {
        format!("({}) 555-01{:02}", self.pick(AREA_CODES), self.below(100))
    }
    /// A moment in `from..until`.
    fn moment(&mut self, from: NaiveDateTime, until: NaiveDateTime) -> NaiveDateTime {
        from + secs(self.below((until - from).num_seconds().max(1) as u64) as i64)
    }
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

/// The whole clinic; see the module header.
pub(super) fn clinic(seed: u64, patients: usize, today: NaiveDate) -> Clinic {
    let start = today.and_time(NaiveTime::MIN);
    let mut rng = Rng::new(seed, 0);
    let mut clinic = Clinic {
        doctors: doctors(&mut rng),
        patients: Vec::with_capacity(patients),
        appointments: Vec::with_capacity(patients * 3),
        clinical_notes: Vec::with_capacity(patients * 2),
        medications: Vec::with_capacity(patients),
        problems: Vec::with_capacity(patients),
        allergies: Vec::with_capacity(patients / 3),
        line_items: Vec::with_capacity(patients * 2),
        line_item_deletions: Vec::new(),
        edits: 0,
    };
    for i in 0..patients as u64 {
        add_patient(&mut clinic, &mut Rng::new(seed, i + 1), i, start);
    }
    clinic.appointments.sort_by_key(Listed::key);
    billing::add_deletions(&mut clinic, &mut rng, patients);
    clinic
}

fn doctors(rng: &mut Rng) -> Vec<Doctor> {
    let npi_group = format!("1{}", rng.digits(9));
    (0..3 + rng.below(4))
        .map(|k| {
            let (first, _) = rng.pick(FIRST_NAMES);
            let last = rng.pick(LAST_NAMES);
            Doctor {
                id: DOCTOR_BASE + k * 17 + rng.below(10),
                first_name: first,
                last_name: last,
                suffix: if k % 3 == 2 { "PMHNP" } else { "MD" },
                specialty: "Psychiatry",
                job_title: "Provider/Staff (Private Practice)",
                email: format!("{}.{}@lakeside-psychiatry.example", first.to_lowercase(), last.to_lowercase()),
                office_phone: rng.phone(),
                cell_phone: rng.phone(),
                home_phone: String::new(),
                npi_number: format!("1{}", rng.digits(9)),
                group_npi_number: npi_group.clone(),
                practice_group: "87654".into(),
                practice_group_name: "Lakeside Psychiatry Associates",
                timezone: "America/New_York",
                country: "US",
                website: "",
                profile_picture: "",
                is_account_suspended: false,
                office: OFFICE_BASE + k % 2,
            }
        })
        .collect()
}

/// What is known of a patient before any visit: what the visits and the chart copy from.
struct Intake {
    /// The patient's number in the clinic (0, 1, …): the other ids derive from it.
    number: u64,
    id: u64,
    /// Today at midnight: generated changes lie before it.
    start: NaiveDateTime,
    doctor: u64,
    office: u64,
    /// How the provider signs a locked note.
    signer: String,
    first: &'static str,
    last: &'static str,
    gender: &'static str,
    date_of_birth: NaiveDate,
    address: String,
    city: (&'static str, &'static str, &'static str),
    zip_code: String,
    payment: &'static str,
    primary: Option<Insurance>,
    secondary: Option<Insurance>,
    copay: i64,
    /// ICD-10 code, name, SNOMED code: the problem list.
    diagnoses: Vec<(&'static str, &'static str, &'static str)>,
    /// What visits are billed for: the problem list's codes, or one code if it is empty.
    billed: Vec<&'static str>,
}

impl Intake {
    fn yesterday(&self) -> NaiveDate {
        self.start.date() - days(1)
    }
    /// `t`, or a moment of yesterday if `t` is not before today.
    fn before_today(&self, t: NaiveDateTime, rng: &mut Rng) -> NaiveDateTime {
        if t < self.start {
            t
        } else {
            self.start - secs(rng.between(60, 86_399))
        }
    }
}

fn intake(clinic: &Clinic, rng: &mut Rng, number: u64, start: NaiveDateTime) -> Intake {
    let doctor = &clinic.doctors[rng.below(clinic.doctors.len() as u64) as usize];
    let (first, gender) = rng.pick(FIRST_NAMES);
    let city = rng.pick(CITIES);
    let mut intake = Intake {
        number,
        id: PATIENT_BASE + number * 4 + rng.below(4),
        start,
        doctor: doctor.id,
        office: doctor.office,
        signer: format!("{} {}", doctor.first_name, doctor.last_name),
        first,
        last: rng.pick(LAST_NAMES),
        gender,
        date_of_birth: start.date() - days(rng.between(18 * 365, 80 * 365)),
        address: format!("{} {}", rng.between(10, 9999), rng.pick(STREETS)),
        city,
        zip_code: format!("{}{:02}", city.2, rng.below(100)),
        payment: match rng.below(100) {
            0..75 => "Insurance",
            75..80 => "Insurance Out of Network",
            _ => "Cash",
        },
        primary: None,
        secondary: None,
        copay: 0,
        diagnoses: Vec::new(),
        billed: Vec::new(),
    };
    if intake.payment != "Cash" {
        let (at, primary) = insurance(rng, &intake, None);
        intake.secondary = rng.chance(15).then(|| insurance(rng, &intake, Some(at)).1);
        intake.primary = Some(primary);
        intake.copay = rng.pick(&[2000, 3000, 4000]);
    }
    let first_dx = rng.below(DIAGNOSES.len() as u64) as usize;
    intake.diagnoses = (0..rng.below(3) as usize).map(|k| DIAGNOSES[(first_dx + 3 * k) % DIAGNOSES.len()]).collect();
    intake.billed = match intake.diagnoses.is_empty() {
        true => vec![DIAGNOSES[first_dx].0],
        false => intake.diagnoses.iter().map(|d| d.0).collect(),
    };
    intake
}

/// A policy from one of the payers (not `skip`, the primary's): with its index.
fn insurance(rng: &mut Rng, who: &Intake, skip: Option<usize>) -> (usize, Insurance) {
    let mut at = rng.below(INSURERS.len() as u64) as usize;
    if Some(at) == skip {
        at = (at + 1) % INSURERS.len();
    }
    let (company, payer, plan, plan_type) = INSURERS[at];
    let own = rng.chance(85);
    let (first, gender, dob) = match own {
        true => (who.first, who.gender, who.date_of_birth),
        false => {
            let (first, gender) = rng.pick(FIRST_NAMES);
            (first, gender, who.date_of_birth - days(rng.between(-3000, 3000)))
        }
    };
    let groups =
        ["State Employees", "Teachers Union", "Regional Hospital Staff", "Individual Market", "Riverside Co-op"];
    let insurance = Insurance {
        insurance_company: company,
        insurance_payer_id: payer,
        insurance_plan_name: plan,
        insurance_plan_type: plan_type,
        insurance_group_name: rng.pick(&groups).into(),
        insurance_group_number: format!("G{}", rng.digits(6)),
        insurance_id_number: format!("{}{}", &payer[..3], rng.digits(9)),
        insurance_claim_office_number: rng.phone(),
        is_subscriber_the_patient: own,
        patient_relationship_to_subscriber: if own { "" } else { "01" },
        subscriber_first_name: first.into(),
        subscriber_middle_name: String::new(),
        subscriber_last_name: who.last.into(),
        subscriber_date_of_birth: dob,
        subscriber_gender: gender,
        subscriber_address: who.address.clone(),
        subscriber_city: who.city.0,
        subscriber_state: who.city.1,
        subscriber_zip_code: who.zip_code.clone(),
        subscriber_country: "US",
    };
    (at, insurance)
}

fn add_patient(clinic: &mut Clinic, rng: &mut Rng, number: u64, start: NaiveDateTime) {
    let intake = intake(clinic, rng, number, start);
    let visits = visits::add_visits(clinic, rng, &intake);
    chart::add_chart(clinic, rng, &intake, visits.anchor);
    let created = (visits.earliest_change - days(rng.between(0, 30))).min(start - days(rng.between(30, 730)))
        - secs(rng.between(60, 86_399));
    let (first, last) = (intake.first, intake.last);
    clinic.patients.push(Patient {
        id: intake.id,
        chart_id: format!("{}{}{:06}", last[..2].to_uppercase(), first[..2].to_uppercase(), number + 1),
        first_name: first,
        middle_name: rng.pick(&["", "A", "J", "M", "L", "R", "E"]).to_string(),
        last_name: last,
        nick_name: String::new(),
        date_of_birth: intake.date_of_birth,
        gender: intake.gender,
        race: rng.pick(&["white", "black", "asian", "other", "declined", "blank"]),
        ethnicity: rng.pick(&["not_hispanic", "hispanic", "declined", "blank"]),
        email: format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), intake.id % 1000),
        cell_phone: rng.phone(),
        home_phone: if rng.chance(40) { rng.phone() } else { String::new() },
        office_phone: String::new(),
        address: intake.address,
        city: intake.city.0,
        state: intake.city.1,
        zip_code: intake.zip_code,
        doctor: intake.doctor,
        offices: vec![intake.office],
        patient_status: if rng.chance(92) { "A" } else { "I" },
        preferred_language: match rng.below(100) {
            0..80 => "eng",
            80..92 => "spa",
            _ => rng.pick(&["zho", "fra", "por", "rus"]),
        },
        patient_payment_profile: intake.payment,
        primary_care_physician: match rng.chance(60) {
            true => format!("Dr. {} {}", rng.pick(FIRST_NAMES).0, rng.pick(LAST_NAMES)),
            false => String::new(),
        },
        referring_source: rng.pick(&[
            "Self",
            "Primary care physician",
            "Therapist",
            "Insurance directory",
            "Website",
            "",
        ]),
        default_pharmacy: format!("0{}", rng.digits(6)),
        emergency_contact_name: format!("{} {}", rng.pick(FIRST_NAMES).0, last),
        emergency_contact_phone: rng.phone(),
        emergency_contact_relation: rng.pick(&["Spouse", "Parent", "Sibling", "Friend", "Partner"]),
        disable_sms_messages: rng.chance(10),
        copay: intake.copay,
        date_of_first_appointment: visits.first,
        date_of_last_appointment: visits.last,
        primary_insurance: intake.primary,
        secondary_insurance: intake.secondary,
        tertiary_insurance: None,
        created_at: created,
        updated_at: rng.moment(created, start),
    });
}
