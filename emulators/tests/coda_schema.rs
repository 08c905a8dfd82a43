//! The emulator speaks Coda's API as `coda-openapi.json` (1.5.0) defines it: every response it
//! gives the calls August makes, errors included, and every request body August's client
//! sends, validate against the document's schemas.
//!
//! A small validator, because the document combines `allOf` with `additionalProperties: false`
//! in each part, which a strict JSON-Schema validator rejects for every real response: here
//! the parts of an `allOf` are merged before extra properties are judged.

use std::sync::atomic::Ordering;

use august_emulators::coda::{self, Doc, EmulatorConfig, TableSpec};
use august_sinks::coda::client::upsert_body;
use serde_json::{json, Value};

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/reference/coda-openapi.json");
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the Coda OpenAPI document belongs beside the repository at {path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let target = reference.trim_start_matches("#/").split('/').fold(root, |node, part| &node[part]);
            resolve(root, target)
        }
        None => schema,
    }
}

/// Property names an object schema (with its `allOf` parts) allows.
fn known_properties(root: &Value, schema: &Value, names: &mut Vec<String>) {
    let schema = resolve(root, schema);
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        names.extend(props.keys().cloned());
    }
    for part in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        known_properties(root, part, names);
    }
}

fn validate(root: &Value, schema: &Value, value: &Value, at: &str, judge_extras: bool) -> Result<(), String> {
    let schema = resolve(root, schema);
    if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
        return Ok(());
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            validate(root, part, value, at, false)?;
        }
        if let Some(object) = value.as_object() {
            let mut names = Vec::new();
            known_properties(root, schema, &mut names);
            if let Some(extra) = object.keys().find(|k| !names.contains(k)) {
                return Err(format!("{at}: unexpected property {extra}"));
            }
        }
        return Ok(());
    }
    for combinator in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(combinator).and_then(Value::as_array) {
            return if options.iter().any(|o| validate(root, o, value, at, judge_extras).is_ok()) {
                Ok(())
            } else {
                Err(format!("{at}: {value} matches none of the {combinator} options"))
            };
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            return Err(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") | None if schema.get("properties").is_some() || schema.get("type").is_some() => {
            let object = value.as_object().ok_or_else(|| format!("{at}: expected an object, got {value}"))?;
            for required in
                schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
            {
                if !object.contains_key(required) {
                    return Err(format!("{at}: missing required {required}"));
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            for (key, item) in object {
                match properties.and_then(|p| p.get(key)) {
                    Some(property) => validate(root, property, item, &format!("{at}.{key}"), true)?,
                    None if judge_extras && schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        return Err(format!("{at}: unexpected property {key}"))
                    }
                    None => {
                        if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                            validate(root, extra, item, &format!("{at}.{key}"), true)?;
                        }
                    }
                }
            }
            Ok(())
        }
        Some("array") => {
            let items = value.as_array().ok_or_else(|| format!("{at}: expected an array, got {value}"))?;
            items
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| validate(root, &schema["items"], item, &format!("{at}[{i}]"), true))
        }
        Some("string") if !value.is_string() => Err(format!("{at}: expected a string, got {value}")),
        Some("number") if !value.is_number() => Err(format!("{at}: expected a number, got {value}")),
        Some("integer") if !value.is_i64() && !value.is_u64() => Err(format!("{at}: expected an integer, got {value}")),
        Some("boolean") if !value.is_boolean() => Err(format!("{at}: expected a boolean, got {value}")),
        _ => Ok(()),
    }
}

fn response_schema<'a>(root: &'a Value, path: &str, method: &str, status: u16) -> &'a Value {
    let response = &root["paths"][path][method]["responses"][status.to_string()];
    assert!(!response.is_null(), "{method} {path} does not document status {status}");
    &resolve(root, response)["content"]["application/json"]["schema"]
}

fn check_response(root: &Value, path: &str, method: &str, status: u16, body: &Value) {
    validate(root, response_schema(root, path, method, status), body, &format!("{method} {path} {status}"), true)
        .unwrap_or_else(|e| panic!("{e}\n{body}"));
}

#[tokio::test]
async fn requests_and_responses_follow_the_coda_openapi_document() {
    let root = spec();
    let doc = Doc::new("doc-s", [TableSpec::new("grid-p", "providers", ["c-id", "c-last"])]);
    let emulator = coda::serve("127.0.0.1:0".parse().unwrap(), doc, EmulatorConfig::default()).await.unwrap();
    let base = emulator.base_url();
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: String, body: Option<Value>, token: &'static str| {
        let mut request = http.request(method, format!("{base}{path}")).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let token = "emulator-token";

    let upsert = upsert_body(
        &[
            vec![("c-id".into(), json!(1)), ("c-last".into(), json!("Freud"))],
            vec![("c-id".into(), json!(2)), ("c-last".into(), json!(""))],
        ],
        &["c-id".into()],
    );
    validate(&root, &json!({"$ref": "#/components/schemas/RowsUpsert"}), &upsert, "our upsert body", true).unwrap();
    let delete = json!({"rowIds": ["i-000001"]});
    validate(&root, &json!({"$ref": "#/components/schemas/RowsDelete"}), &delete, "our delete body", true).unwrap();

    let rows_path = "/docs/{docId}/tables/{tableIdOrName}/rows";
    let (status, body) =
        call(reqwest::Method::POST, "/docs/doc-s/tables/grid-p/rows".into(), Some(upsert), token).await;
    assert_eq!(status, 202);
    check_response(&root, rows_path, "post", status, &body);
    let request = body["requestId"].as_str().unwrap().to_string();

    let (status, body) = call(reqwest::Method::GET, format!("/mutationStatus/{request}"), None, token).await;
    check_response(&root, "/mutationStatus/{requestId}", "get", status, &body);
    assert_eq!(body["completed"], true);

    let (status, body) =
        call(reqwest::Method::GET, "/docs/doc-s/tables/grid-p/rows?query=c-id:1".into(), None, token).await;
    check_response(&root, rows_path, "get", status, &body);
    assert_eq!(body["items"].as_array().unwrap().len(), 1);

    let (status, body) =
        call(reqwest::Method::GET, "/docs/doc-s/tables/grid-p/columns?limit=1".into(), None, token).await;
    check_response(&root, "/docs/{docId}/tables/{tableIdOrName}/columns", "get", status, &body);
    assert!(body["nextPageToken"].is_string(), "a second page of columns");

    let (status, body) = call(reqwest::Method::GET, "/docs/doc-s/tables".into(), None, token).await;
    check_response(&root, "/docs/{docId}/tables", "get", status, &body);

    let (status, body) =
        call(reqwest::Method::DELETE, "/docs/doc-s/tables/grid-p/rows".into(), Some(delete), token).await;
    assert_eq!(status, 202);
    check_response(&root, rows_path, "delete", status, &body);

    // Errors: Coda's error body, with the documented statuses.
    let (status, body) = call(reqwest::Method::GET, "/docs/doc-s/tables/grid-p/rows".into(), None, "wrong-token").await;
    assert_eq!(status, 401);
    check_response(&root, rows_path, "get", status, &body);
    let (status, body) = call(reqwest::Method::GET, "/docs/doc-s/tables/grid-nope/rows".into(), None, token).await;
    assert_eq!(status, 404);
    check_response(&root, rows_path, "get", status, &body);
    let bad = json!({"rows": [{"cells": [{"column": "c-unknown", "value": 1}]}]});
    let (status, body) = call(reqwest::Method::POST, "/docs/doc-s/tables/grid-p/rows".into(), Some(bad), token).await;
    assert_eq!(status, 400);
    check_response(&root, rows_path, "post", status, &body);
    emulator.storm_429(1);
    let (status, body) = call(reqwest::Method::GET, "/docs/doc-s/tables/grid-p/rows".into(), None, token).await;
    assert_eq!(status, 429);
    check_response(&root, rows_path, "get", status, &body);
    assert_eq!(emulator.stats().throttled.load(Ordering::Relaxed), 1);
}

#[test]
fn the_validator_catches_what_breaks_the_schema() {
    let root = spec();
    let row_list = response_schema(&root, "/docs/{docId}/tables/{tableIdOrName}/rows", "get", 200);
    let missing = json!({"items": [{"id": "i-1", "type": "row"}]});
    assert!(validate(&root, row_list, &missing, "rows", true).is_err(), "a row missing required fields");
    let upsert = json!({"$ref": "#/components/schemas/RowsUpsert"});
    assert!(validate(&root, &upsert, &json!({"rows": [], "extra": 1}), "upsert", true).is_err(), "an unknown property");
    let result = response_schema(&root, "/docs/{docId}/tables/{tableIdOrName}/rows", "post", 202);
    assert!(validate(&root, result, &json!({"requestId": "r"}), "result", true).is_ok());
    assert!(validate(&root, result, &json!({"requestId": "r", "bogus": 1}), "result", true).is_err());
}
