//! The emulator's objects are DrChrono's: every object of every list, plain and verbose,
//! validates against the response schema drchrono-openapi.yml gives its path, follows the
//! prose's data types (timestamps without zone, dates, decimals as two-place strings), and
//! carries every field August's mirror tables read (`ingest/src/drchrono/objects.rs`).
//!
//! A small validator for the parts of OpenAPI 3.0 the document uses on these paths (`type`,
//! `properties`, `items`, `$ref`, `enum`, `format: date`, `nullable`, `required`,
//! `x-verbose-required`). It is strict where the document is definite: types, enums, no
//! properties the schema does not declare, and `null` only where `nullable`. It is lenient
//! where the document is open: missing optional properties, objects without declared
//! properties, and a `type: number` field sent as a decimal string, since the prose says a
//! decimal "will always be returned as a string".

use std::sync::OnceLock;

use serde_json::Value;

use super::drchrono_api::{everything, quiet, start, RESOURCES};

fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/reference/drchrono/drchrono-openapi.yml");
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("the DrChrono OpenAPI document belongs beside the repository at {path}: {e}"));
        serde_norway::from_str(&text).unwrap()
    })
}

fn resolve(schema: &Value) -> &Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            resolve(reference.trim_start_matches("#/").split('/').fold(spec(), |node, part| &node[part]))
        }
        None => schema,
    }
}

fn is_decimal_string(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    digits.split_once('.').is_some_and(|(whole, cents)| {
        !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && cents.len() == 2
            && cents.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Every way `value` breaks `schema`, each as `path: problem`.
fn validate(schema: &Value, value: &Value, at: &str, verbose: bool, problems: &mut Vec<String>) {
    let schema = resolve(schema);
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            problems.push(format!("{at}: null where the schema is not nullable"));
        }
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            problems.push(format!("{at}: {value} is not one of the enum's values"));
        }
    }
    let type_ok = match schema.get("type").and_then(Value::as_str) {
        None => true,
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number() || value.as_str().is_some_and(is_decimal_string),
        Some("boolean") => value.is_boolean(),
        Some("array") => value.is_array(),
        Some("object") => value.is_object(),
        Some(other) => {
            problems.push(format!("{at}: the validator does not know type {other}"));
            true
        }
    };
    if !type_ok {
        problems.push(format!("{at}: {value} is not of type {}", schema["type"]));
        return;
    }
    if schema.get("format").and_then(Value::as_str) == Some("date") {
        let text = value.as_str().unwrap_or_default();
        if chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_err() {
            problems.push(format!("{at}: {value} is not a date"));
        }
    }
    if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
        for (i, item) in values.iter().enumerate() {
            validate(items, item, &format!("{at}[{i}]"), verbose, problems);
        }
    }
    let (Some(properties), Some(object)) = (schema.get("properties").and_then(Value::as_object), value.as_object())
    else {
        return;
    };
    for (key, field) in object {
        match properties.get(key) {
            Some(field_schema) => validate(field_schema, field, &format!("{at}.{key}"), verbose, problems),
            None => problems.push(format!("{at}: property {key} is not in the schema")),
        }
    }
    let mut required: Vec<&Value> = schema.get("required").and_then(Value::as_array).into_iter().flatten().collect();
    if verbose {
        required.extend(schema.get("x-verbose-required").and_then(Value::as_array).into_iter().flatten());
    }
    for name in required.iter().filter_map(|n| n.as_str()) {
        if !object.contains_key(name) {
            problems.push(format!("{at}: required property {name} is missing"));
        }
    }
}

/// The prose's data types, for the fields the schema leaves as plain strings.
fn data_types(object: &Value, at: &str, problems: &mut Vec<String>) {
    for (key, value) in object.as_object().into_iter().flatten() {
        let Some(text) = value.as_str() else { continue };
        let timestamp = key.ends_with("_at") || key == "scheduled_time";
        let date = key.starts_with("date_") || key.ends_with("_date") || key == "date_of_birth";
        if timestamp && chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").is_err() {
            problems.push(format!("{at}.{key}: {text:?} is not a timestamp like 2021-02-14T13:40:39"));
        }
        if date && !text.is_empty() && chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_err() {
            problems.push(format!("{at}.{key}: {text:?} is not a date like 2021-02-14"));
        }
    }
}

#[tokio::test]
async fn every_list_object_matches_its_paths_response_schema() {
    let (_emulator, api) = start(quiet(150)).await;
    let mut problems = Vec::new();
    for resource in RESOURCES {
        let path = format!("/api/{resource}");
        let envelope = &spec()["paths"][&path]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        let properties = envelope["properties"].as_object().unwrap();
        let items = properties.get("data").or(properties.get("results")).unwrap()["items"].clone();
        for verbose in [false, true] {
            let url = format!(
                "{}{}verbose={verbose}",
                everything(resource),
                if resource == "appointments" { "&" } else { "?" }
            );
            let (_, first) = api.get(&url).await;
            for key in ["previous", "next"] {
                assert!(first[key].is_null() || first[key].is_string(), "{url}: {key} is a URL or null");
            }
            let objects = api.all(&url).await;
            assert!(!objects.is_empty(), "{url}");
            for (i, object) in objects.iter().enumerate() {
                let at = format!("{url} #{i}");
                validate(&items, object, &at, verbose, &mut problems);
                data_types(object, &at, &mut problems);
            }
        }
    }
    problems.dedup();
    assert!(
        problems.is_empty(),
        "{} problems, e.g.:\n{}",
        problems.len(),
        problems[..problems.len().min(30)].join("\n")
    );
}

#[test]
fn the_validator_catches_what_breaks_the_schema() {
    let patient = &spec()["components"]["schemas"]["Patient"];
    let broken = serde_json::json!({
        "id": "12", "gender": "M", "doctor": 3, "cell_phone": null, "invented": 1, "date_of_birth": "1990-01-01"
    });
    let mut problems = Vec::new();
    validate(patient, &broken, "patient", true, &mut problems);
    for expected in ["patient.id", "patient.gender", "patient.cell_phone", "invented", "primary_insurance"] {
        assert!(problems.iter().any(|p| p.contains(expected)), "{expected} not caught: {problems:?}");
    }
    let line_item = &spec()["components"]["schemas"]["BillingLineItem"];
    let mut problems = Vec::new();
    let item = serde_json::json!({"appointment": 1, "code": "99213", "procedure_type": "C", "diagnosis_pointers": [], "price": "12.5"});
    validate(line_item, &item, "item", false, &mut problems);
    assert_eq!(problems.len(), 1, "a decimal string needs two places: {problems:?}");
    let mut problems = Vec::new();
    data_types(
        &serde_json::json!({"updated_at": "2024-02-14 13:40:39Z", "service_date": "14/02/2024"}),
        "x",
        &mut problems,
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
}

/// The JSON names each mirror table reads, from `f("name", …)` in one `ObjectSpec` (or slice)
/// of August's `objects.rs`.
fn august_reads(source: &str, constant: &str) -> Vec<String> {
    let start = source.find(&format!("pub const {constant}:")).unwrap_or_else(|| panic!("{constant} in objects.rs"));
    let end = ["\n};", "\n];"].iter().filter_map(|end| source[start..].find(end)).min().unwrap();
    let block = &source[start..start + end];
    block.split("f(\"").skip(1).map(|rest| rest[..rest.find('"').unwrap()].to_string()).collect()
}

#[tokio::test]
async fn objects_carry_every_field_august_reads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ingest/src/drchrono/objects.rs");
    let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("August's field list at {path}: {e}"));
    let (emulator, _api) = start(quiet(200)).await;
    let mut missing = Vec::new();
    for (constant, resource) in [
        ("PATIENTS", "patients"),
        ("APPOINTMENTS", "appointments"),
        ("MEDICATIONS", "medications"),
        ("PROBLEMS", "problems"),
        ("ALLERGIES", "allergies"),
        ("LINE_ITEMS", "line_items"),
    ] {
        let objects = emulator.objects(resource);
        for field in august_reads(&source, constant) {
            if !objects.iter().any(|o| o.get(&field).is_some()) {
                missing.push(format!("{resource}.{field}"));
            }
        }
    }
    let patients = emulator.objects("patients");
    for field in august_reads(&source, "INSURANCE") {
        if !patients.iter().any(|p| p["primary_insurance"].get(&field).is_some()) {
            missing.push(format!("patients.primary_insurance.{field}"));
        }
    }
    // clinical_note_row in ingest/src/drchrono/mod.rs reads these.
    let notes = emulator.objects("clinical_notes");
    for pointer in [
        "/appointment",
        "/patient",
        "/archived",
        "/clinical_note_sections",
        "/signee/locked_by",
        "/signee/supervisor_locked_by",
    ] {
        if !notes.iter().all(|n| n.pointer(pointer).is_some()) {
            missing.push(format!("clinical_notes{pointer}"));
        }
    }
    assert!(missing.is_empty(), "fields August reads that the emulator never sends: {missing:?}");
}
