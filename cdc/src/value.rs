//! Column values, decoded from Postgres' text output into typed values.
//!
//! pgoutput (text mode) and the snapshot copy both hand us each value as the type's text
//! output, in a session pinned to `DateStyle=ISO`, `TimeZone=UTC` and `extra_float_digits=3`,
//! so one decoder serves both. Numbers that must not lose precision (`numeric`, floats) stay
//! decimal text; JSON stays its canonical text (so values are totally ordered and hashable,
//! as the dataflow needs). A value of a type we do not model, or one a typed parser rejects
//! (`infinity`, BC dates), is kept as its exact text rather than failing or guessing.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Postgres type OIDs August decodes.
pub mod oid {
    /// `bool`
    pub const BOOL: u32 = 16;
    /// `bytea`
    pub const BYTEA: u32 = 17;
    /// `int8`
    pub const INT8: u32 = 20;
    /// `int2`
    pub const INT2: u32 = 21;
    /// `int4`
    pub const INT4: u32 = 23;
    /// `text`
    pub const TEXT: u32 = 25;
    /// `oid`
    pub const OID: u32 = 26;
    /// `json`
    pub const JSON: u32 = 114;
    /// `float4`
    pub const FLOAT4: u32 = 700;
    /// `float8`
    pub const FLOAT8: u32 = 701;
    /// `bpchar`
    pub const BPCHAR: u32 = 1042;
    /// `varchar`
    pub const VARCHAR: u32 = 1043;
    /// `date`
    pub const DATE: u32 = 1082;
    /// `time`
    pub const TIME: u32 = 1083;
    /// `timestamp`
    pub const TIMESTAMP: u32 = 1114;
    /// `timestamptz`
    pub const TIMESTAMPTZ: u32 = 1184;
    /// `numeric`
    pub const NUMERIC: u32 = 1700;
    /// `uuid`
    pub const UUID: u32 = 2950;
    /// `jsonb`
    pub const JSONB: u32 = 3802;
}

/// One column's value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// `bool`.
    Bool(bool),
    /// `int2`, `int4`, `int8`, `oid`.
    Int(i64),
    /// `numeric`, `float4`, `float8`: the exact decimal text.
    Numeric(String),
    /// `text`, `varchar`, `bpchar`, and any type August does not model (its text output).
    Text(String),
    /// `bytea`.
    Bytes(Vec<u8>),
    /// `uuid`.
    Uuid(Uuid),
    /// `date`.
    Date(NaiveDate),
    /// `time`.
    Time(NaiveTime),
    /// `timestamp` (no zone).
    Timestamp(NaiveDateTime),
    /// `timestamptz`, in UTC.
    TimestampTz(DateTime<Utc>),
    /// `json`/`jsonb`: the canonical text.
    Json(String),
    /// Any array, elements decoded by the element type (nested for multi-dimensional arrays).
    Array(Vec<Value>),
}

/// The element type of an array type, if `type_oid` is one August decodes.
pub fn array_element(type_oid: u32) -> Option<u32> {
    Some(match type_oid {
        1000 => oid::BOOL,
        1001 => oid::BYTEA,
        1005 => oid::INT2,
        1007 => oid::INT4,
        1009 => oid::TEXT,
        1014 => oid::BPCHAR,
        1015 => oid::VARCHAR,
        1016 => oid::INT8,
        1021 => oid::FLOAT4,
        1022 => oid::FLOAT8,
        1028 => oid::OID,
        1115 => oid::TIMESTAMP,
        1182 => oid::DATE,
        1183 => oid::TIME,
        1185 => oid::TIMESTAMPTZ,
        1231 => oid::NUMERIC,
        2951 => oid::UUID,
        199 => oid::JSON,
        3807 => oid::JSONB,
        _ => return None,
    })
}

impl Value {
    /// Decodes the text output of a value of type `type_oid`. Never fails: what cannot be
    /// typed is kept as text.
    pub fn decode(type_oid: u32, text: &str) -> Value {
        if let Some(element) = array_element(type_oid) {
            return match parse_array(text, element) {
                Some(value) => value,
                None => Value::Text(text.to_string()),
            };
        }
        let typed = match type_oid {
            oid::BOOL => match text {
                "t" => Some(Value::Bool(true)),
                "f" => Some(Value::Bool(false)),
                _ => None,
            },
            oid::INT2 | oid::INT4 | oid::INT8 | oid::OID => text.parse().ok().map(Value::Int),
            oid::NUMERIC | oid::FLOAT4 | oid::FLOAT8 => Some(Value::Numeric(text.to_string())),
            oid::BYTEA => text.strip_prefix("\\x").and_then(|h| hex::decode(h).ok()).map(Value::Bytes),
            oid::UUID => Uuid::parse_str(text).ok().map(Value::Uuid),
            oid::DATE => NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(Value::Date),
            oid::TIME => NaiveTime::parse_from_str(text, "%H:%M:%S%.f").ok().map(Value::Time),
            oid::TIMESTAMP => NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok().map(Value::Timestamp),
            oid::TIMESTAMPTZ => parse_timestamptz(text).map(Value::TimestampTz),
            oid::JSON | oid::JSONB => Some(Value::Json(text.to_string())),
            _ => None,
        };
        typed.unwrap_or_else(|| Value::Text(text.to_string()))
    }

    /// Whether this is SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as JSON: scalars as JSON scalars, arrays as arrays, JSON as its document.
    /// Dates and times are ISO 8601 strings; exact decimals are JSON numbers when they fit
    /// one, else strings. A JSON document's numbers become f64s here (one beyond f64's range
    /// makes the document a string): [`Value::exact_json`] keeps them exact.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Numeric(n) => numeric_to_json(n),
            Value::Text(s) => J::String(s.clone()),
            Value::Bytes(b) => J::String(format!("\\x{}", hex::encode(b))),
            Value::Uuid(u) => J::String(u.to_string()),
            Value::Date(d) => J::String(d.to_string()),
            Value::Time(t) => J::String(t.to_string()),
            Value::Timestamp(t) => J::String(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string()),
            Value::TimestampTz(t) => J::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            Value::Json(text) => serde_json::from_str(text).unwrap_or_else(|_| J::String(text.clone())),
            Value::Array(items) => J::Array(items.iter().map(Value::to_json).collect()),
        }
    }

    /// The value as JSON text with every digit kept: like [`Value::to_json`], except that a
    /// JSON value is written as Postgres' own text (whitespace outside strings dropped, so it
    /// fits on one line), whose numbers need not fit an f64. `to_json` re-parses it into
    /// `serde_json`'s f64 numbers; output that must be exact (`august tail`) uses this.
    pub fn exact_json(&self) -> String {
        let mut out = String::new();
        self.write_exact_json(&mut out);
        out
    }

    fn write_exact_json(&self, out: &mut String) {
        match self {
            Value::Json(text) if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => compact_json(text, out),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_exact_json(out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_json().to_string()),
        }
    }
}

/// Copies valid JSON text without the whitespace between its tokens.
fn compact_json(text: &str, out: &mut String) {
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        } else {
            in_string = c == '"';
        }
        out.push(c);
    }
}

/// A JSON number when an f64 holds the decimal exactly enough (15 significant digits),
/// otherwise the decimal as a string, so no digit is silently lost.
fn numeric_to_json(text: &str) -> serde_json::Value {
    let significant = text.trim_start_matches(['-', '0', '.']).bytes().filter(u8::is_ascii_digit).count();
    match text.parse::<f64>() {
        Ok(f) if significant <= 15 && f.is_finite() => serde_json::Number::from_f64(f)
            .map(|n| {
                if f.fract() == 0.0 && f.abs() < 1e15 {
                    serde_json::Value::from(f as i64)
                } else {
                    serde_json::Value::Number(n)
                }
            })
            .unwrap_or_else(|| serde_json::Value::String(text.to_string())),
        _ => serde_json::Value::String(text.to_string()),
    }
}

fn parse_timestamptz(text: &str) -> Option<DateTime<Utc>> {
    // ISO output with TimeZone=UTC: `2026-01-02 03:04:05.678+00` (offset may carry minutes).
    let padded;
    let text = match text.rfind(['+', '-']) {
        Some(at) if at > 10 && text.len() - at == 3 => {
            padded = format!("{text}:00");
            padded.as_str()
        }
        _ => text,
    };
    DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z").ok().map(|t| t.with_timezone(&Utc))
}

/// Parses an array literal (`{1,2,NULL}`, `{"a b","c\"d"}`, `{{1,2},{3,4}}`). `None` when the
/// text is not one we understand (e.g. explicit bounds `[0:1]={…}`), so the caller keeps the
/// text.
fn parse_array(text: &str, element: u32) -> Option<Value> {
    let mut chars = text.chars().peekable();
    let value = parse_array_level(&mut chars, element, 1)?;
    chars.next().is_none().then_some(value)
}

/// Postgres' `MAXDIM`: no array has more dimensions, so deeper nesting is not an array (and
/// cannot exhaust the stack).
const MAX_DIMENSIONS: usize = 6;

fn parse_array_level(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    element: u32,
    depth: usize,
) -> Option<Value> {
    if chars.next()? != '{' || depth > MAX_DIMENSIONS {
        return None;
    }
    let mut items = Vec::new();
    skip_array_space(chars);
    if chars.peek() == Some(&'}') {
        chars.next();
        return Some(Value::Array(items));
    }
    loop {
        skip_array_space(chars);
        match chars.peek()? {
            '{' => items.push(parse_array_level(chars, element, depth + 1)?),
            '"' => {
                chars.next();
                let mut item = String::new();
                loop {
                    match chars.next()? {
                        '\\' => item.push(chars.next()?),
                        '"' => break,
                        c => item.push(c),
                    }
                }
                items.push(Value::decode(element, &item));
            }
            _ => {
                // Like `array_in`: a backslash escapes, ASCII whitespace at either end is
                // dropped (unless escaped), and only the bare, unescaped token NULL is NULL.
                let mut item = String::new();
                let mut kept = 0;
                let mut escaped = false;
                while let Some(&c) = chars.peek() {
                    if c == ',' || c == '}' {
                        break;
                    }
                    chars.next();
                    if c == '\\' {
                        item.push(chars.next()?);
                        escaped = true;
                        kept = item.len();
                    } else {
                        item.push(c);
                        if !is_array_space(c) {
                            kept = item.len();
                        }
                    }
                }
                item.truncate(kept);
                let null = !escaped && item.eq_ignore_ascii_case("NULL");
                items.push(if null { Value::Null } else { Value::decode(element, &item) });
            }
        }
        skip_array_space(chars);
        match chars.next()? {
            ',' => continue,
            '}' => return Some(Value::Array(items)),
            _ => return None,
        }
    }
}

/// The whitespace `array_in` ignores around elements: ASCII only, so a no-break or em space is
/// part of the element (and `array_out` leaves such elements unquoted).
fn is_array_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{0b}' | '\u{0c}')
}

fn skip_array_space(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.next_if(|&c| is_array_space(c)).is_some() {}
}

#[cfg(test)]
#[path = "value_tests.rs"]
mod tests;
