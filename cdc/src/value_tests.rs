//! Value decoding, type by type, and its JSON forms.

use super::*;

#[test]
fn scalars_decode_to_their_types() {
    assert_eq!(Value::decode(oid::BOOL, "t"), Value::Bool(true));
    assert_eq!(Value::decode(oid::INT8, "-9223372036854775808"), Value::Int(i64::MIN));
    assert_eq!(
        Value::decode(oid::NUMERIC, "12345678901234567890.000000001"),
        Value::Numeric("12345678901234567890.000000001".into())
    );
    assert_eq!(Value::decode(oid::DATE, "2026-02-28"), Value::Date(NaiveDate::from_ymd_opt(2026, 2, 28).unwrap()));
    let ts = Value::decode(oid::TIMESTAMPTZ, "2026-01-02 03:04:05.5+00");
    assert_eq!(ts.to_json(), serde_json::json!("2026-01-02T03:04:05.500Z"));
    let ts = Value::decode(oid::TIMESTAMPTZ, "2026-01-02 03:04:05+05:30");
    assert_eq!(ts.to_json(), serde_json::json!("2026-01-01T21:34:05Z"));
    assert_eq!(Value::decode(oid::BYTEA, "\\x00ff"), Value::Bytes(vec![0, 255]));
}

#[test]
fn what_cannot_be_typed_keeps_its_text() {
    assert_eq!(Value::decode(oid::TIMESTAMP, "infinity"), Value::Text("infinity".into()));
    assert_eq!(Value::decode(oid::INT4, "x"), Value::Text("x".into()));
    assert_eq!(Value::decode(1186, "1 day"), Value::Text("1 day".into()), "interval is not modelled");
}

#[test]
fn arrays_with_quotes_nulls_and_nesting() {
    assert_eq!(
        Value::decode(1009, r#"{plain,"with space","quo\"te",NULL,"NULL"}"#),
        Value::Array(vec![
            Value::Text("plain".into()),
            Value::Text("with space".into()),
            Value::Text("quo\"te".into()),
            Value::Null,
            Value::Text("NULL".into()),
        ])
    );
    assert_eq!(
        Value::decode(1007, "{{1,2},{3,4}}"),
        Value::Array(vec![
            Value::Array(vec![Value::Int(1), Value::Int(2)]),
            Value::Array(vec![Value::Int(3), Value::Int(4)])
        ])
    );
    assert_eq!(Value::decode(1007, "{}"), Value::Array(vec![]));
    assert_eq!(Value::decode(1007, "[0:1]={1,2}"), Value::Text("[0:1]={1,2}".into()));
}

#[test]
fn nesting_beyond_six_dimensions_is_text_not_a_stack_overflow() {
    let six = format!("{}1{}", "{".repeat(6), "}".repeat(6));
    assert!(matches!(Value::decode(1007, &six), Value::Array(_)));
    let deep = format!("{}1{}", "{".repeat(200_000), "}".repeat(200_000));
    assert_eq!(Value::decode(1007, &deep), Value::Text(deep.clone()));
}

#[test]
fn only_ascii_whitespace_around_unquoted_array_elements_is_insignificant() {
    // `array_out` quotes elements with ASCII whitespace only: these arrive unquoted.
    assert_eq!(
        Value::decode(1009, "{\u{a0}null,null\u{2003},\u{a0}x\u{a0},NuLl, NULL ,\\NULL}"),
        Value::Array(vec![
            Value::Text("\u{a0}null".into()),
            Value::Text("null\u{2003}".into()),
            Value::Text("\u{a0}x\u{a0}".into()),
            Value::Null,
            Value::Null,
            Value::Text("NULL".into()),
        ])
    );
    assert_eq!(
        Value::decode(1007, "{ 1,\t2\u{0b}, \u{0c}3\r\n}"),
        Value::Array(vec![Value::Int(1), Value::Int(2), Value::Int(3)])
    );
}

#[test]
fn exact_json_keeps_every_digit_of_a_json_document() {
    let huge = r#"{"a": [123456789012345678901234567890.123456789, 1e400], "b": "x  y\"  z"}"#;
    assert_eq!(
        Value::decode(oid::JSONB, huge).exact_json(),
        r#"{"a":[123456789012345678901234567890.123456789,1e400],"b":"x  y\"  z"}"#
    );
    assert_eq!(
        Value::Array(vec![Value::Json("[1e400]".into()), Value::Null, Value::Text("t".into())]).exact_json(),
        r#"[[1e400],null,"t"]"#
    );
    assert_eq!(Value::Numeric("12345678901234567890.1".into()).exact_json(), r#""12345678901234567890.1""#);
    assert_eq!(Value::Json("not json".into()).exact_json(), r#""not json""#, "only valid JSON is written raw");
}

#[test]
fn json_values_become_documents() {
    assert_eq!(Value::decode(oid::JSONB, r#"{"a": [1, 2]}"#).to_json(), serde_json::json!({"a": [1, 2]}));
    assert_eq!(Value::Numeric("1.50".into()).to_json(), serde_json::json!(1.5));
    assert_eq!(Value::Numeric("120.00".into()).to_json(), serde_json::json!(120));
    assert_eq!(Value::Numeric("12345678901234567890.1".into()).to_json(), serde_json::json!("12345678901234567890.1"));
    assert_eq!(Value::Numeric("NaN".into()).to_json(), serde_json::json!("NaN"));
}
