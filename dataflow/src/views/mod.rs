//! The views: what the staff's Coda docs show, each a collection of rows keyed by one column.
//!
//! Every named view is one self-describing unit in its own file, a [`View`]: its spec (name,
//! key, columns with their PHI classes), its row shaping, how the dataflow builds it from the
//! [`Base`] tables (and the Deep Cura links), and its from-scratch reference computation
//! ([`crate::reference`]) next to it; it is registered once, in [`VIEWS`]. Every published table
//! is also a view of its own name, passed through (soft-deleted rows are absent), unless a named
//! view has that name (`clinical_notes`). Values are scalars: lists become comma-separated text.

use std::collections::HashMap;

use august_cdc::{Row, Value};
use chrono::NaiveDateTime;
use serde_json::value::RawValue;

use crate::base::Base;
use crate::column_type::ColumnType;
use crate::join::Coll;
use crate::phi::PhiClass;
use crate::tables::{LiveRows, TableSpec, TABLES};
use deepcura_links::{Link, Links};

/// A named view's spec: its name, key column and every column with its PHI class and, unless
/// it is text, its SQL type (`"name" Class [Type]`), key first.
macro_rules! view_spec {
    (@type) => { $crate::column_type::ColumnType::Text };
    (@type $ty:ident) => { $crate::column_type::ColumnType::$ty };
    ($name:literal, key $key:literal, [$($column:literal $class:ident $($ty:ident)?),+ $(,)?]) => {
        $crate::views::ViewSpec {
            name: $name,
            key: $key,
            columns: &[$($column),+],
            classes: &[$($crate::phi::PhiClass::$class),+],
            types: Some(&[$(view_spec!(@type $($ty)?)),+]),
        }
    };
}

pub mod clinical_notes;
pub mod deepcura_links;
pub mod deepcura_review;
pub mod passthrough;
pub mod patient_intake;
pub mod post_appointment_tasks;
pub mod prior_auths;
pub mod scheduling_ops;

/// A view's row: values in the order of its columns.
pub type ViewRow = Vec<Value>;

/// A view: name, key column and columns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ViewSpec {
    /// Its name (what the Coda mapping's `view` names).
    pub name: &'static str,
    /// The column that identifies a row (the Coda table's key column).
    pub key: &'static str,
    /// Every column, key first.
    pub columns: &'static [&'static str],
    /// The PHI class of each column, in the same order (see [`crate::phi`]).
    pub classes: &'static [PhiClass],
    /// The SQL type of each column, in the same order; `None` for a pass-through view, whose
    /// columns are typed as its table's (see [`crate::column_type`]).
    #[serde(skip)]
    pub types: Option<&'static [ColumnType]>,
}

impl ViewSpec {
    /// The PHI class of `column` (`None` for a name the view lacks).
    pub fn class(&self, column: &str) -> Option<PhiClass> {
        self.columns.iter().position(|c| *c == column).map(|i| self.classes[i])
    }
}

/// A named view, whole, as its own file declares it: its spec, how the dataflow builds it (from
/// the base tables and the Deep Cura links, which several views read), and how the reference
/// computes its rows from scratch.
pub struct View {
    /// Name, key, columns and their PHI classes.
    pub spec: ViewSpec,
    /// The published table whose rows the view's rows are (its key is that table's audited
    /// key), which the auditor's reports follow from a patient to the rows of theirs Coda got.
    pub source: &'static str,
    /// The incremental rows.
    pub build: for<'s> fn(&Base<'s>, &Links<'s>) -> Coll<'s, (Value, ViewRow)>,
    /// The same rows from scratch ([`crate::reference`]).
    pub reference: fn(&Scratch<'_>) -> Vec<(Value, ViewRow)>,
}

/// Every named view, in output order: a new view is one file and one line here.
pub const VIEWS: &[View] = &[
    deepcura_links::VIEW,
    clinical_notes::VIEW,
    scheduling_ops::VIEW,
    patient_intake::VIEW,
    prior_auths::VIEW,
    post_appointment_tasks::VIEW,
    deepcura_review::VIEW,
];

/// The named views' specs, in output order.
pub fn named() -> impl Iterator<Item = &'static ViewSpec> {
    VIEWS.iter().map(|v| &v.spec)
}

/// What a view's reference computes from: every table's live rows, narrowed as the dataflow
/// narrows them, and the Deep Cura links computed from scratch.
pub struct Scratch<'a> {
    /// The narrowed live rows.
    pub tables: &'a LiveRows,
    /// Every note's link ([`deepcura_links::from_scratch`]).
    pub links: Vec<Link>,
}

impl<'a> Scratch<'a> {
    /// The live rows of `table`.
    pub fn rows(&self, table: &str) -> impl Iterator<Item = &'a Row> {
        self.tables.get(table).into_iter().flat_map(|rows| rows.values())
    }

    /// The live rows of `table` by `column` (rows where it is NULL left out).
    pub fn by(&self, table: &'static str, column: &str) -> HashMap<Value, &'a Row> {
        let cols = Cols::of(table);
        self.rows(table).filter(|r| !cols.get(r, column).is_null()).map(|r| (cols.get(r, column).clone(), r)).collect()
    }

    /// The live rows of `table`, each with its visit as [`Base::with_visit`] joins it: the
    /// appointment its `appointment` column names, its patient ([`visit_patient`]) and the
    /// appointment's provider.
    pub fn with_visit(&self, table: &'static str, appointment: &'static str) -> Vec<Visit<'a>> {
        let (own, ap) = (Cols::of(table), Cols::of("appointments"));
        let (patients, providers) = (self.by("patients", "drchrono_id"), self.by("providers", "drchrono_id"));
        let appointments = self.by("appointments", "drchrono_id");
        self.rows(table)
            .map(|row| {
                let appt = get(&appointments, own.get(row, appointment));
                let patient = get(&patients, &visit_patient(table, row, appt));
                (row, appt, patient, appt.and_then(|a| get(&providers, ap.get(a, "provider_id"))))
            })
            .collect()
    }

    /// The links that link a note to clinical note `id`.
    pub fn linked_to<'l>(&'l self, id: &'l Value) -> impl Iterator<Item = &'l Link> {
        self.links.iter().filter(move |l| l.is_linked() && l.clinical_note_id == *id)
    }
}

/// A row with its appointment, patient and provider ([`Scratch::with_visit`]).
pub type Visit<'a> = (&'a Row, Option<&'a Row>, Option<&'a Row>, Option<&'a Row>);

/// The row of `map` at `key`; none for a NULL key.
pub fn get<'a>(map: &HashMap<Value, &'a Row>, key: &Value) -> Option<&'a Row> {
    if key.is_null() {
        None
    } else {
        map.get(key).copied()
    }
}

/// The published tables passed through as views of their own name: all but those whose name a
/// named view already has (`clinical_notes`: the named view shows everything staff need of it).
pub fn passthrough_tables() -> impl Iterator<Item = &'static TableSpec> {
    TABLES.iter().filter(|t| !named().any(|v| v.name == t.name))
}

/// Every view: the named ones, then the pass-through tables.
pub fn all() -> Vec<ViewSpec> {
    named()
        .cloned()
        .chain(passthrough_tables().map(|t| ViewSpec {
            name: t.name,
            key: t.view_key,
            columns: t.columns,
            classes: t.classes,
            types: None,
        }))
        .collect()
}

/// The published table a view's rows come from: a named view's [`View::source`], a
/// pass-through table's own name.
pub fn source_of(name: &str) -> Option<&'static str> {
    VIEWS.iter().find(|v| v.spec.name == name).map(|v| v.source).or_else(|| crate::tables::table(name).map(|t| t.name))
}

/// The view called `name`.
pub fn find(name: &str) -> Option<ViewSpec> {
    all().into_iter().find(|v| v.name == name)
}

pub use crate::tables::Cols;

pub use crate::base::visit_patient;

/// `first last`, or NULL when both are missing.
pub fn person_name(first: &Value, last: &Value) -> Value {
    let parts: Vec<&str> = [first, last].into_iter().filter_map(text).filter(|s| !s.trim().is_empty()).collect();
    if parts.is_empty() {
        Value::Null
    } else {
        Value::Text(parts.join(" "))
    }
}

/// The text of a text value.
pub fn text(value: &Value) -> Option<&str> {
    match value {
        Value::Text(s) => Some(s),
        _ => None,
    }
}

/// The first value that is not NULL.
pub fn first_present(values: &[&Value]) -> Value {
    values.iter().find(|v| !v.is_null()).map_or(Value::Null, |v| (*v).clone())
}

/// The calendar date of a timestamp (DrChrono times are practice-local, so no zone shift).
pub fn date_of(value: &Value) -> Value {
    match value {
        Value::Timestamp(t) => Value::Date(t.date()),
        Value::TimestampTz(t) => Value::Date(t.date_naive()),
        Value::Date(d) => Value::Date(*d),
        _ => Value::Null,
    }
}

/// A list as comma-separated text: the `code` of each object in a JSON array, or each element
/// of an array. NULL when empty.
pub fn list_text(value: &Value) -> Value {
    let items: Vec<String> = match value {
        // Read without interpreting numbers, so every digit Postgres stored is kept.
        Value::Json(text) => match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(items) => items
                .iter()
                .filter_map(|item| match first_byte(item) {
                    b'{' => serde_json::from_str::<HashMap<&str, &RawValue>>(item.get())
                        .ok()
                        .and_then(|o| o.get("code").and_then(|c| serde_json::from_str::<String>(c.get()).ok())),
                    b'"' => serde_json::from_str::<String>(item.get()).ok(),
                    _ => Some(item.get().to_string()),
                })
                .collect(),
            _ => vec![],
        },
        Value::Array(items) => items.iter().filter(|v| !v.is_null()).map(scalar_text).collect(),
        _ => vec![],
    };
    if items.is_empty() {
        Value::Null
    } else {
        Value::Text(items.join(", "))
    }
}

fn first_byte(raw: &RawValue) -> u8 {
    raw.get().bytes().next().unwrap_or(b'n')
}

/// A JSON field of a JSON value, as a scalar value.
pub fn json_field(value: &Value, field: &str) -> Value {
    let Value::Json(text) = value else { return Value::Null };
    let Ok(object) = serde_json::from_str::<HashMap<&str, &RawValue>>(text) else { return Value::Null };
    let Some(raw) = object.get(field) else { return Value::Null };
    match first_byte(raw) {
        b'"' => serde_json::from_str::<String>(raw.get()).map_or(Value::Null, Value::Text),
        b't' => Value::Bool(true),
        b'f' => Value::Bool(false),
        b'n' => Value::Null,
        b'-' | b'0'..=b'9' => Value::Numeric(raw.get().to_string()), // exact, as stored
        _ => Value::Text(raw.get().to_string()),
    }
}

/// A value as the JSON scalar a sink sends: lists and documents become text.
pub fn to_scalar_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Array(_) => match list_text(value) {
            Value::Text(t) => serde_json::Value::String(t),
            _ => serde_json::Value::Null,
        },
        Value::Json(text) => serde_json::Value::String(text.clone()),
        other => other.to_json(),
    }
}

fn scalar_text(value: &Value) -> String {
    match value.to_json() {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// A timestamp value's time, for ordering.
pub fn timestamp(value: &Value) -> Option<NaiveDateTime> {
    match value {
        Value::Timestamp(t) => Some(*t),
        _ => None,
    }
}

#[cfg(test)]
mod json_tests {
    use super::*;

    #[test]
    fn json_fields_and_lists_keep_every_digit_postgres_stored() {
        let doc = Value::Json(
            r#"{"level": "low", "score": 123456789012345678901234567890.5, "big": 1e400, "ok": true}"#.into(),
        );
        assert_eq!(json_field(&doc, "score"), Value::Numeric("123456789012345678901234567890.5".into()));
        assert_eq!(json_field(&doc, "big"), Value::Numeric("1e400".into()), "a number no f64 holds is kept");
        assert_eq!(json_field(&doc, "level"), Value::Text("low".into()));
        assert_eq!(json_field(&doc, "ok"), Value::Bool(true));
        assert_eq!(json_field(&doc, "missing"), Value::Null);
        let list = Value::Json(r#"[{"code": "F41.1", "confidence": 1e400}, "F32.1", 12345678901234567890123]"#.into());
        assert_eq!(list_text(&list), Value::Text("F41.1, F32.1, 12345678901234567890123".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_names_are_unique_and_keys_are_columns() {
        let views = all();
        let mut names: Vec<&str> = views.iter().map(|v| v.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), views.len());
        for view in &views {
            assert_eq!(
                view.columns.first(),
                Some(&view.key).filter(|_| named().any(|n| n == view)).or(view.columns.first()),
                "{}",
                view.name
            );
            assert!(view.columns.contains(&view.key), "{} key {}", view.name, view.key);
        }
    }

    #[test]
    fn every_view_comes_from_a_published_table() {
        for view in all() {
            let source = source_of(view.name).unwrap_or_else(|| panic!("{} has no source", view.name));
            assert!(crate::tables::table(source).is_some(), "{}: {source}", view.name);
        }
        assert_eq!(source_of("scheduling_ops"), Some("appointments"));
        assert_eq!(source_of("no_such_view"), None);
    }

    #[test]
    fn lists_and_json_become_scalars() {
        assert_eq!(
            list_text(&Value::Json(r#"[{"code": "F32.1"}, {"code": "F41.1"}]"#.into())),
            Value::Text("F32.1, F41.1".into())
        );
        assert_eq!(
            list_text(&Value::Array(vec![Value::Text("a".into()), Value::Null, Value::Int(2)])),
            Value::Text("a, 2".into())
        );
        assert_eq!(json_field(&Value::Json(r#"{"level": "high"}"#.into()), "level"), Value::Text("high".into()));
        assert_eq!(person_name(&Value::Null, &Value::Text("Freud".into())), Value::Text("Freud".into()));
        assert_eq!(to_scalar_json(&Value::Json("{\"a\":1}".into())), serde_json::json!("{\"a\":1}"));
    }
}
