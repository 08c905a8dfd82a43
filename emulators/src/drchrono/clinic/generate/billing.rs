//! Line items: one per completed visit, billed at the visit's CPT price; insured visits pay
//! the copay at once and the payer after 30 days (a few are denied), cash visits are paid in
//! full after 30 days. Also the handful of line items deleted before today (a corrected
//! charge each), whose ids lie between the live ones and are never listed.

use std::collections::BTreeSet;

use chrono::{NaiveDate, NaiveTime};

use super::{days, secs, Intake, Rng};
use crate::drchrono::clinic::Clinic;
use crate::drchrono::records::{LineItem, LineItemDeletion, Listed};

const LINE_ITEM_BASE: u64 = 560_000_000;

/// Bills the `j`th visit (`appointment`, on `service`) of the patient.
pub(super) fn add_line_item(
    clinic: &mut Clinic,
    rng: &mut Rng,
    intake: &Intake,
    (appointment, j, service): (u64, u64, NaiveDate),
    (_, code, description, price): (&'static str, &'static str, &'static str, i64),
) {
    let posted = (service + days(rng.between(0, 3))).min(intake.yesterday());
    let updated = intake.before_today(posted.and_time(NaiveTime::MIN) + secs(rng.between(3600, 45 * 86_400)), rng);
    let mut item = LineItem {
        id: LINE_ITEM_BASE + (intake.number * 4 + j) * 2,
        appointment,
        patient: intake.id,
        doctor: intake.doctor,
        code,
        procedure_type: "C",
        description,
        modifiers: if rng.chance(10) { vec!["95"] } else { Vec::new() },
        diagnosis_pointers: intake.billed.clone(),
        quantity: 100,
        units: "UN",
        price,
        billed: price,
        allowed: price,
        adjustment: 0,
        expected_reimbursement: 0,
        ins1_paid: 0,
        ins2_paid: 0,
        ins3_paid: 0,
        ins_total: 0,
        pt_paid: 0,
        paid_total: 0,
        balance_ins: 0,
        balance_pt: price,
        balance_total: price,
        billing_status: "",
        insurance_status: "",
        denied_flag: false,
        service_date: service,
        posted_date: posted,
        updated_at: updated,
        office: intake.office,
    };
    let settled = service < intake.start.date() - days(30);
    if intake.primary.is_some() {
        let copay = intake.copay;
        item.allowed = item.price * rng.between(70, 90) / 100 / 100 * 100;
        item.adjustment = item.billed - item.allowed;
        item.expected_reimbursement = item.allowed - copay;
        item.pt_paid = copay;
        item.denied_flag = settled && rng.chance(3);
        (item.ins1_paid, item.balance_ins, item.balance_pt) = match (settled, item.denied_flag) {
            (_, true) => (0, 0, item.allowed - copay),
            (true, false) => (item.allowed - copay, 0, 0),
            (false, false) => (0, item.allowed - copay, 0),
        };
        (item.billing_status, item.insurance_status) = match (settled, item.denied_flag) {
            (_, true) => ("ERA Denied", "Denied"),
            (true, false) => ("Paid in Full", "Paid"),
            (false, false) => ("In Process Payer", "Submitted"),
        };
    } else {
        item.pt_paid = if settled { item.allowed } else { 0 };
        item.balance_pt = item.allowed - item.pt_paid;
    }
    item.ins_total = item.ins1_paid + item.ins2_paid + item.ins3_paid;
    item.paid_total = item.ins_total + item.pt_paid;
    item.balance_total = item.balance_ins + item.balance_pt;
    clinic.line_items.push(item);
}

/// About one deletion per 40 patients (at least 3), each of a charge replaced by a live one.
pub(super) fn add_deletions(clinic: &mut Clinic, rng: &mut Rng, patients: usize) {
    let wanted = (patients / 40).max(3).min(clinic.line_items.len());
    let mut chosen = BTreeSet::new();
    for _ in 0..wanted * 4 {
        if chosen.len() == wanted {
            break;
        }
        chosen.insert(rng.below(clinic.line_items.len() as u64) as usize);
    }
    for at in chosen {
        let item = &clinic.line_items[at];
        let posted = item.posted_date.and_time(NaiveTime::MIN);
        let created_at = rng.moment(posted, item.updated_at.max(posted + secs(1)));
        let deletion =
            LineItemDeletion { billing_line_item_id: item.id + 1, appointment_id: item.appointment, created_at };
        clinic.line_item_deletions.push(deletion);
    }
    clinic.line_item_deletions.sort_by_key(Listed::key);
}
