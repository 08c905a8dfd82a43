//! Billing: line items (amounts held in cents) and the log of deleted ones.

use chrono::{NaiveDate, NaiveDateTime};
use serde::Serialize;

use super::{day, digits, money, ts, Facets, Key, Listed};

/// A billing line item (`/api/line_items`, the spec's `BillingLineItem`); amounts in cents.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LineItem {
    pub id: u64,
    pub appointment: u64,
    #[serde(serialize_with = "digits")]
    pub patient: u64,
    #[serde(serialize_with = "digits")]
    pub doctor: u64,
    pub code: &'static str,
    pub procedure_type: &'static str,
    pub description: &'static str,
    pub modifiers: Vec<&'static str>,
    pub diagnosis_pointers: Vec<&'static str>,
    #[serde(serialize_with = "money")]
    pub quantity: i64,
    pub units: &'static str,
    #[serde(serialize_with = "money")]
    pub price: i64,
    #[serde(serialize_with = "money")]
    pub billed: i64,
    #[serde(serialize_with = "money")]
    pub allowed: i64,
    #[serde(serialize_with = "money")]
    pub adjustment: i64,
    #[serde(serialize_with = "money")]
    pub expected_reimbursement: i64,
    #[serde(serialize_with = "money")]
    pub ins1_paid: i64,
    #[serde(serialize_with = "money")]
    pub ins2_paid: i64,
    #[serde(serialize_with = "money")]
    pub ins3_paid: i64,
    #[serde(serialize_with = "money")]
    pub ins_total: i64,
    #[serde(serialize_with = "money")]
    pub pt_paid: i64,
    #[serde(serialize_with = "money")]
    pub paid_total: i64,
    #[serde(serialize_with = "money")]
    pub balance_ins: i64,
    #[serde(serialize_with = "money")]
    pub balance_pt: i64,
    #[serde(serialize_with = "money")]
    pub balance_total: i64,
    pub billing_status: &'static str,
    pub insurance_status: &'static str,
    pub denied_flag: bool,
    #[serde(serialize_with = "day")]
    pub service_date: NaiveDate,
    #[serde(serialize_with = "day")]
    pub posted_date: NaiveDate,
    #[serde(serialize_with = "ts")]
    pub updated_at: NaiveDateTime,
    #[serde(skip)]
    pub office: u64,
}

impl Listed for LineItem {
    const VERBOSE_ONLY: &'static [&'static str] = &["description"];
    fn key(&self) -> Key {
        (0, self.id)
    }
    fn facets(&self) -> Facets<'_> {
        Facets {
            patient: Some(self.patient),
            doctor: Some(self.doctor),
            office: Some(self.office),
            appointment: Some(self.appointment),
            changed: Some(self.updated_at.date()),
            service_date: Some(self.service_date),
            posted_date: Some(self.posted_date),
            ..Facets::default()
        }
    }
}

/// The record of a deleted line item (`/api/line_item_deletions`), in the order they happened.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LineItemDeletion {
    pub billing_line_item_id: u64,
    pub appointment_id: u64,
    #[serde(serialize_with = "ts")]
    pub created_at: NaiveDateTime,
}

impl Listed for LineItemDeletion {
    fn key(&self) -> Key {
        (self.created_at.and_utc().timestamp(), self.billing_line_item_id)
    }
    fn facets(&self) -> Facets<'_> {
        Facets { appointment: Some(self.appointment_id), changed: Some(self.created_at.date()), ..Facets::default() }
    }
}
