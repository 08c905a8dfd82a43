//! Reading fields of a JSON object into column values: each value is checked against its
//! column's kind and passed to Postgres as text with a cast, so a wrong value is a 422 naming
//! the field, never a database error.

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::Value;

use crate::IngestError;

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `bigint` (JSON number or numeric string, as DrChrono sends ids both ways).
    Int,
    /// `integer`.
    Int4,
    /// `text` (numbers become their text).
    Text,
    /// `date`, `YYYY-MM-DD` (empty string: NULL).
    Date,
    /// `timestamp`, DrChrono's `YYYY-MM-DDTHH:MM:SS` (no zone).
    Timestamp,
    /// `timestamptz`, RFC 3339 with a zone (`2026-02-01T10:00:00Z`).
    Timestamptz,
    /// `boolean`.
    Bool,
    /// `numeric` (number or decimal string).
    Numeric,
    /// `text[]` from a JSON array of strings.
    TextArray,
    /// `jsonb`, the value as is.
    Json,
}

impl Kind {
    /// The SQL type the text is cast to.
    pub fn sql(self) -> &'static str {
        match self {
            Kind::Int => "bigint",
            Kind::Int4 => "integer",
            Kind::Text => "text",
            Kind::Date => "date",
            Kind::Timestamp => "timestamp",
            Kind::Timestamptz => "timestamptz",
            Kind::Bool => "boolean",
            Kind::Numeric => "numeric",
            Kind::TextArray => "text[]",
            Kind::Json => "jsonb",
        }
    }
}

/// The text of `value` for a column of `kind`; `None` for NULL. `field` names it in errors.
pub fn column_text(value: Option<&Value>, kind: Kind, field: &str) -> Result<Option<String>, IngestError> {
    let wrong = |problem| IngestError::Unprocessable { field: field.to_string(), problem };
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(None) };
    let blank = value.as_str().is_some_and(|s| s.trim().is_empty());
    Ok(Some(match kind {
        Kind::Json => value.to_string(),
        _ if blank && kind != Kind::Text => return Ok(None),
        Kind::Text => match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(wrong("must be text")),
        },
        Kind::Int | Kind::Int4 => {
            let n = match value {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| wrong("must be a whole number"))?;
            if kind == Kind::Int4 && i32::try_from(n).is_err() {
                return Err(wrong("is out of range"));
            }
            n.to_string()
        }
        Kind::Numeric => match value {
            Value::Number(n) => n.to_string(),
            Value::String(s) if s.trim().parse::<f64>().is_ok_and(f64::is_finite) => s.trim().to_string(),
            _ => return Err(wrong("must be a decimal number")),
        },
        Kind::Bool => match value {
            Value::Bool(b) => b.to_string(),
            _ => return Err(wrong("must be true or false")),
        },
        Kind::Date => {
            let text = value.as_str().ok_or_else(|| wrong("must be a date (YYYY-MM-DD)"))?;
            NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                .map_err(|_| wrong("must be a date (YYYY-MM-DD)"))?
                .to_string()
        }
        Kind::Timestamp => {
            let text = value.as_str().ok_or_else(|| wrong("must be a timestamp (YYYY-MM-DDTHH:MM:SS)"))?.trim();
            let parsed = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
                .map_err(|_| wrong("must be a timestamp (YYYY-MM-DDTHH:MM:SS)"))?;
            parsed.format("%Y-%m-%dT%H:%M:%S%.f").to_string()
        }
        Kind::Timestamptz => {
            let text = value.as_str().ok_or_else(|| wrong("must be an RFC 3339 timestamp with a zone"))?.trim();
            chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|_| wrong("must be an RFC 3339 timestamp with a zone"))?
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        }
        Kind::TextArray => {
            let items = value.as_array().ok_or_else(|| wrong("must be a list"))?;
            let quoted: Result<Vec<String>, IngestError> = items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))),
                    Value::Number(n) => Ok(format!("\"{n}\"")),
                    _ => Err(wrong("must be a list of text")),
                })
                .collect();
            format!("{{{}}}", quoted?.join(","))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_checked_and_normalised() {
        assert_eq!(column_text(Some(&json!("123")), Kind::Int, "f").unwrap(), Some("123".into()));
        assert_eq!(column_text(Some(&json!(7)), Kind::Text, "f").unwrap(), Some("7".into()));
        assert_eq!(column_text(Some(&json!("")), Kind::Date, "f").unwrap(), None);
        assert_eq!(
            column_text(Some(&json!("2021-02-14T13:40:39")), Kind::Timestamp, "f").unwrap(),
            Some("2021-02-14T13:40:39".into())
        );
        assert_eq!(
            column_text(Some(&json!(["F32.1", "a\"b"])), Kind::TextArray, "f").unwrap(),
            Some(r#"{"F32.1","a\"b"}"#.into())
        );
        assert_eq!(
            column_text(Some(&json!("2026-02-01T10:00:00+02:00")), Kind::Timestamptz, "f").unwrap(),
            Some("2026-02-01T10:00:00+02:00".into())
        );
        assert!(column_text(Some(&json!("2026-02-01T10:00:00")), Kind::Timestamptz, "f").is_err(), "a zone is needed");
        assert_eq!(column_text(None, Kind::Bool, "f").unwrap(), None);
    }

    #[test]
    fn wrong_values_name_the_field() {
        let err = column_text(Some(&json!("1990-13-45")), Kind::Date, "object.date_of_birth").unwrap_err().to_string();
        assert!(err.contains("object.date_of_birth") && !err.contains("1990"), "{err}");
        assert!(column_text(Some(&json!("abc")), Kind::Int, "f").is_err());
        assert!(column_text(Some(&json!("yes")), Kind::Bool, "f").is_err());
        assert!(column_text(Some(&json!(3_000_000_000i64)), Kind::Int4, "f").is_err());
    }
}
