//! The write-back API's OpenAPI 3.1 document, served at `GET /api/openapi.json`. Its static
//! parts (the error and conflict bodies, the bearer security scheme, the info) come from the
//! Rust types through `utoipa`; each target's request body (`<Target>Patch`) and stored row
//! (`<Target>Row`) are built from the field schemas read from the catalog, so the document
//! says what the validation enforces: types, enums, lengths, minimums, nullability, and no
//! member beyond the staff-owned fields and `edited_by`, `expected_updated_at`,
//! `coda_row_id`.

use serde_json::{json, Map, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{ConflictBody, ConflictDetail, ErrorBody, ErrorDetail};
use super::fields::{FieldSchema, Kind, Schemas, TargetSchema};

/// The name of the bearer security scheme.
pub const SECURITY_SCHEME: &str = "codaWritebackToken";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "August Coda write-back API",
        description = "Staff edits made in Coda, sent back to August's system of record by a Coda Pack action.",
    ),
    components(schemas(ErrorBody, ErrorDetail, ConflictBody, ConflictDetail)),
    modifiers(&BearerToken)
)]
struct Static;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                SECURITY_SCHEME,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some("CODA_WRITEBACK_TOKEN, as the Pack's HeaderBearerToken"))
                        .build(),
                ),
            );
        }
    }
}

/// `prior-auth` → `PriorAuth`.
pub fn component_prefix(target: &str) -> String {
    target
        .split(['-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_uppercase().chain(chars).collect::<String>()).unwrap_or_default()
        })
        .collect()
}

/// The document for `schemas`.
pub fn document(schemas: &Schemas) -> Value {
    let mut doc = serde_json::to_value(Static::openapi()).unwrap_or_else(|_| json!({}));
    let mut paths = Map::new();
    for schema in &schemas.targets {
        let prefix = component_prefix(schema.target.name);
        if let Some(components) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
            components.insert(format!("{prefix}Patch"), patch_schema(schema));
            components.insert(format!("{prefix}Row"), row_schema(schema));
        }
        paths.insert(schema.target.route.to_string(), json!({"patch": operation(schema, &prefix)}));
    }
    paths.insert(
        "/api/openapi.json".into(),
        json!({"get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "The OpenAPI document",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}}
        }}),
    );
    doc["paths"] = Value::Object(paths);
    doc
}

fn error_response(description: &str, component: &str) -> Value {
    json!({"description": description,
           "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{component}")}}}})
}

fn operation(schema: &TargetSchema, prefix: &str) -> Value {
    let target = schema.target;
    let parameter = target.route.rsplit('{').next().unwrap_or("id").trim_end_matches('}');
    let error = |d: &str| error_response(d, "ErrorBody");
    json!({
        "operationId": format!("patch_{}", target.name.replace('-', "_")),
        "summary": format!("Set staff-owned fields of one {} row", target.table),
        "description": format!(
            "Sets the fields given (only these: {}). Editors: active staff with role {}. A replay \
             (every field already holds its value) answers the stored row and writes nothing.",
            target.fields.join(", "), target.editors.join(" or ")),
        "security": [{SECURITY_SCHEME: []}],
        "parameters": [{"name": parameter, "in": "path", "required": true, "schema": {"type": "string"}}],
        "requestBody": {"required": true, "content": {"application/json": {
            "schema": {"$ref": format!("#/components/schemas/{prefix}Patch")}}}},
        "responses": {
            "200": {"description": "The stored row, after commit",
                    "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{prefix}Row")}}}},
            "400": error("The body is not a JSON object"),
            "401": error("No or wrong bearer token"),
            "403": error("edited_by may not edit this table"),
            "404": error("No such row, or it is deleted"),
            "409": error_response("expected_updated_at is older than the row", "ConflictBody"),
            "413": error("The body is larger than 1 MiB"),
            "415": error("The body is not application/json"),
            "422": error("A field is unknown, read-only or invalid, no field is set, or a constraint refuses the change"),
            "503": error("The database is unavailable or busy: try again"),
        }
    })
}

fn patch_schema(schema: &TargetSchema) -> Value {
    let mut properties = Map::new();
    properties.insert("edited_by".into(), json!({"type": "string", "format": "email", "maxLength": 320}));
    properties.insert("expected_updated_at".into(), json!({"type": ["string", "null"], "format": "date-time"}));
    properties.insert("coda_row_id".into(), json!({"type": ["string", "null"], "minLength": 1, "maxLength": 320}));
    for field in schema.fields() {
        properties.insert(field.name.clone(), column_schema(field));
    }
    json!({
        "type": "object",
        "description": format!("The changed fields of one {} row, and who changed them", schema.target.table),
        "properties": properties,
        "required": ["edited_by"],
        "minProperties": 2,
        "additionalProperties": false,
    })
}

fn row_schema(schema: &TargetSchema) -> Value {
    let properties: Map<String, Value> =
        schema.columns.iter().map(|field| (field.name.clone(), column_schema(field))).collect();
    let required: Vec<&str> = schema.columns.iter().map(|f| f.name.as_str()).collect();
    json!({
        "type": "object",
        "description": format!("One {} row as stored", schema.target.table),
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// One column's JSON Schema.
pub fn column_schema(field: &FieldSchema) -> Value {
    let mut out = Map::new();
    let (kind, format) = match field.kind {
        Kind::Text => ("string", None),
        Kind::Bool => ("boolean", None),
        Kind::Int { .. } => ("integer", None),
        Kind::Date => ("string", Some("date")),
        Kind::Timestamptz => ("string", Some("date-time")),
        Kind::Uuid => ("string", Some("uuid")),
        Kind::TextList => ("array", None),
        Kind::Other => return json!({"description": field.sql_type}),
    };
    out.insert("type".into(), if field.nullable { json!([kind, "null"]) } else { json!(kind) });
    if let Some(format) = format {
        out.insert("format".into(), json!(format));
    }
    if field.kind == Kind::TextList {
        out.insert("items".into(), json!({"type": "string"}));
    }
    if let Some(allowed) = &field.allowed {
        let mut values: Vec<Value> = allowed.iter().map(|a| json!(a)).collect();
        if field.nullable {
            values.push(Value::Null);
        }
        out.insert("enum".into(), Value::Array(values));
    }
    if let Some(n) = field.min_length {
        out.insert("minLength".into(), json!(n));
    }
    if let Some(n) = field.max_length {
        out.insert("maxLength".into(), json!(n));
    }
    if let Kind::Int { min, max } = field.kind {
        out.insert("minimum".into(), json!(field.minimum.unwrap_or(min).max(min)));
        out.insert("maximum".into(), json!(field.maximum.unwrap_or(max).min(max)));
    }
    Value::Object(out)
}
