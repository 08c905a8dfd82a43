//! A patient's chart lists: 0–2 problems (the intake's diagnoses), 0–2 medications and 0–1
//! allergy, all recorded at the anchor visit.

use chrono::NaiveDate;

use super::{days, Intake, Rng};
use crate::drchrono::clinic::vocabulary::{ALLERGENS, DRUGS};
use crate::drchrono::clinic::Clinic;
use crate::drchrono::records::{Allergy, Medication, Problem};

const MEDICATION_BASE: u64 = 43_000_000;
const PROBLEM_BASE: u64 = 27_000_000;
const ALLERGY_BASE: u64 = 12_000_000;

pub(super) fn add_chart(clinic: &mut Clinic, rng: &mut Rng, intake: &Intake, (appointment, day): (u64, NaiveDate)) {
    let yesterday = intake.yesterday();
    let first_drug = rng.below(DRUGS.len() as u64) as usize;
    for k in 0..rng.below(3) {
        let drug = DRUGS[(first_drug + 3 * k as usize) % DRUGS.len()];
        let active = rng.chance(80);
        clinic.medications.push(Medication {
            id: MEDICATION_BASE + intake.number * 4 + k,
            patient: intake.id,
            doctor: intake.doctor,
            appointment,
            name: drug.name,
            rxnorm: drug.rxnorm,
            ndc: drug.ndc,
            dosage_quantity: drug.dose,
            dosage_units: drug.units,
            frequency: drug.frequency,
            route: "oral",
            indication: drug.indication,
            signature_note: drug.sig,
            pharmacy_note: "",
            status: if active { "active" } else { "inactive" },
            order_status: "Electronic eRx Sent",
            prn: drug.frequency == "as needed",
            daw: false,
            number_refills: rng.below(6) as u32,
            dispense_quantity: rng.pick(&[3000, 6000, 9000]),
            date_prescribed: day,
            date_started_taking: day,
            date_stopped_taking: (!active).then(|| (day + days(rng.between(30, 180))).min(yesterday)),
            notes: "",
        });
    }
    for (k, &(code, name, snomed)) in intake.diagnoses.iter().enumerate() {
        let status = match rng.below(10) {
            0..8 => "active",
            8 => "inactive",
            _ => "resolved",
        };
        clinic.problems.push(Problem {
            id: PROBLEM_BASE + intake.number * 4 + k as u64,
            patient: intake.id,
            doctor: intake.doctor,
            appointment,
            name,
            description: name,
            icd_code: code,
            icd_version: "10",
            snomed_ct_code: snomed,
            status,
            verification_status: if rng.chance(85) { "confirmed" } else { "provisional" },
            category: "",
            problem_type: "",
            info_url: "",
            date_onset: day - days(rng.between(30, 2000)),
            date_diagnosis: day,
            date_changed: day,
            abatement_date: (status == "resolved").then(|| (day + days(rng.between(30, 300))).min(yesterday)),
            notes: "",
        });
    }
    if rng.chance(30) {
        let (description, rxnorm, reaction, snomed_reaction) = rng.pick(ALLERGENS);
        clinic.allergies.push(Allergy {
            id: ALLERGY_BASE + intake.number * 2,
            patient: intake.id,
            doctor: intake.doctor,
            description,
            reaction,
            status: "active",
            verification_status: "confirmed",
            rxnorm,
            snomed_code: "",
            snomed_reaction,
            notes: "",
        });
    }
}
