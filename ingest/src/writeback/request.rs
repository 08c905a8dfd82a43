//! A write-back request's body, checked against its target's [`TargetSchema`] before any
//! database work: `edited_by` (required, an email, lower-cased), `expected_updated_at`
//! (optional, RFC 3339), `coda_row_id` (optional string) and the changed fields, each a
//! staff-owned column of the table with a value of its type, enum, length and range. Errors
//! name the field, never the value.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use super::error::WritebackError;
use super::fields::{FieldSchema, Kind, TargetSchema};
use crate::IngestError;

/// The body's members that are not fields of the table.
pub const META: [&str; 3] = ["edited_by", "expected_updated_at", "coda_row_id"];

/// Longest accepted `edited_by` (an email address's limit) and `coda_row_id`.
const MAX_META_LENGTH: usize = 320;

/// A checked request.
#[derive(Debug, Clone)]
pub struct Patch {
    /// The editor's email, lower-cased.
    pub edited_by: String,
    /// The `updated_at` the editor last saw.
    pub expected_updated_at: Option<DateTime<Utc>>,
    /// The Coda row the edit was made in.
    pub coda_row_id: Option<String>,
    /// The fields to set and their values (JSON, checked).
    pub fields: Map<String, Value>,
}

impl Patch {
    /// The names of the fields set, in order.
    pub fn field_names(&self) -> Vec<String> {
        self.fields.keys().cloned().collect()
    }
}

/// The body's `edited_by`, when it has a usable one (for the audit rows of a refusal).
pub fn editor_of(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    editor(value.get("edited_by")).ok()
}

/// Parses and checks `body` for `schema`'s target.
pub fn parse(schema: &TargetSchema, body: &[u8]) -> Result<Patch, WritebackError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| IngestError::BadRequest("the body is not JSON".into()))?;
    let Value::Object(mut members) = value else {
        return Err(IngestError::BadRequest("the body must be a JSON object".into()).into());
    };
    let table = schema.target.table;
    for name in members.keys().filter(|k| !META.contains(&k.as_str())) {
        if schema.column(name).is_none() {
            return Err(WritebackError::UnknownField(shown_name(name), table));
        }
        if !schema.target.fields.contains(&name.as_str()) {
            return Err(WritebackError::ReadOnlyField(name.clone(), table));
        }
    }
    let edited_by = editor(members.get("edited_by"))?;
    let expected_updated_at = match members.get("expected_updated_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            DateTime::parse_from_rfc3339(s)
                .map_err(|_| WritebackError::invalid("expected_updated_at", "must be an RFC 3339 time with a zone"))?
                .with_timezone(&Utc),
        ),
        Some(_) => return Err(WritebackError::invalid("expected_updated_at", "must be an RFC 3339 time with a zone")),
    };
    let coda_row_id = match members.get("coda_row_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_META_LENGTH && !s.contains('\0') => Some(s.clone()),
        Some(_) => {
            return Err(WritebackError::invalid("coda_row_id", "must be a non-empty string of at most 320 bytes"))
        }
    };
    for name in META {
        members.remove(name);
    }
    if members.is_empty() {
        return Err(WritebackError::NoFields(table));
    }
    for (name, value) in &members {
        let field = schema.column(name).ok_or_else(|| WritebackError::UnknownField(shown_name(name), table))?;
        check_value(field, value)?;
    }
    Ok(Patch { edited_by, expected_updated_at, coda_row_id, fields: members })
}

fn editor(value: Option<&Value>) -> Result<String, WritebackError> {
    match value {
        None | Some(Value::Null) => Err(WritebackError::invalid("edited_by", "is required (the editor's email)")),
        Some(Value::String(s)) => {
            let email = s.trim().to_lowercase();
            let (local, domain) = email.split_once('@').unwrap_or(("", ""));
            if local.is_empty()
                || domain.is_empty()
                || email.len() > MAX_META_LENGTH
                || email.contains(char::is_whitespace)
            {
                Err(WritebackError::invalid("edited_by", "must be an email address"))
            } else {
                Ok(email)
            }
        }
        Some(_) => Err(WritebackError::invalid("edited_by", "must be an email address")),
    }
}

/// An unknown member's name as an error shows it: at most 64 characters.
fn shown_name(name: &str) -> String {
    name.chars().take(64).collect()
}

/// Checks one value against its column.
pub fn check_value(field: &FieldSchema, value: &Value) -> Result<(), WritebackError> {
    let name = field.name.as_str();
    let fail = |problem: String| Err(WritebackError::invalid(name, problem));
    match (field.kind, value) {
        (_, Value::Null) if field.nullable => Ok(()),
        (_, Value::Null) => fail("may not be null".into()),
        (Kind::Text, Value::String(s)) => check_text(field, s),
        (Kind::Bool, Value::Bool(_)) => Ok(()),
        (Kind::Int { min, max }, Value::Number(n)) => match n.as_i64() {
            Some(v) if v < field.minimum.unwrap_or(min).max(min) => {
                fail(format!("must be at least {}", field.minimum.unwrap_or(min).max(min)))
            }
            Some(v) if v > field.maximum.unwrap_or(max).min(max) => {
                fail(format!("must be at most {}", field.maximum.unwrap_or(max).min(max)))
            }
            Some(_) => Ok(()),
            None => fail("must be a whole number".into()),
        },
        (Kind::Date, Value::String(s)) if NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() => Ok(()),
        (Kind::Timestamptz, Value::String(s)) if DateTime::parse_from_rfc3339(s).is_ok() => Ok(()),
        (Kind::Uuid, Value::String(s)) if uuid::Uuid::parse_str(s).is_ok() => Ok(()),
        (Kind::TextList, Value::Array(items)) => {
            if items.iter().all(|item| item.as_str().is_some_and(|s| !s.contains('\0'))) {
                Ok(())
            } else {
                fail("must be a list of strings".into())
            }
        }
        (kind, _) => fail(expected(kind).into()),
    }
}

fn check_text(field: &FieldSchema, s: &str) -> Result<(), WritebackError> {
    let name = field.name.as_str();
    if s.contains('\0') {
        return Err(WritebackError::invalid(name, "must not contain a NUL character"));
    }
    if let Some(allowed) = &field.allowed {
        if !allowed.iter().any(|a| a == s) {
            return Err(WritebackError::invalid(name, format!("must be one of {}", allowed.join(", "))));
        }
    }
    let length = i64::try_from(s.chars().count()).unwrap_or(i64::MAX);
    match (field.min_length, field.max_length) {
        (Some(min), _) if length < min => {
            Err(WritebackError::invalid(name, format!("must be at least {min} characters")))
        }
        (_, Some(max)) if length > max => {
            Err(WritebackError::invalid(name, format!("must be at most {max} characters")))
        }
        _ => Ok(()),
    }
}

fn expected(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "must be a string",
        Kind::Bool => "must be true or false",
        Kind::Int { .. } => "must be a whole number",
        Kind::Date => "must be a date (YYYY-MM-DD)",
        Kind::Timestamptz => "must be an RFC 3339 time with a zone",
        Kind::Uuid => "must be a UUID",
        Kind::TextList => "must be a list of strings",
        Kind::Other => "cannot be set through the write-back",
    }
}
