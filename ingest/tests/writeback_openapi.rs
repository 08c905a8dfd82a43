//! The served OpenAPI document: valid 3.1 with the bearer scheme, and true of the real server:
//! the requests it accepts validate against the target's `Patch` schema (and the ones it
//! refuses field by field do not), and every answer validates against the schema the document
//! gives for its status.

use serde_json::{json, Value};

use crate::{answer, Server, AUTH, INTAKE, TASK};

/// A validator for `schema`, whose references point into `doc`'s components; formats checked.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let root = json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "components": doc["components"], "allOf": [schema]});
    jsonschema::options().should_validate_formats(true).build(&root).unwrap()
}

/// The schema the document gives for `path`'s PATCH request body, or for its answer `status`.
fn request_schema(doc: &Value, route: &str) -> Value {
    doc["paths"][route]["patch"]["requestBody"]["content"]["application/json"]["schema"].clone()
}

fn response_schema(doc: &Value, route: &str, status: u16) -> Value {
    doc["paths"][route]["patch"]["responses"][status.to_string()]["content"]["application/json"]["schema"].clone()
}

#[tokio::test]
async fn the_served_document_is_true_of_real_requests_and_answers() {
    let server = Server::start("wb_openapi").await;
    let (status, doc) =
        answer(server.http.get(format!("{}/api/openapi.json", server.base)).send().await.unwrap()).await;
    assert_eq!(status, 200, "served without a token");
    if let Ok(path) = std::env::var("AUGUST_WRITEBACK_OPENAPI_OUT") {
        // For external checkers (openapi-spec-validator, schemathesis) in CI.
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    }
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    let schemes = &doc["components"]["securitySchemes"];
    let (name, scheme) = schemes.as_object().unwrap().iter().next().unwrap();
    assert_eq!((scheme["type"].as_str(), scheme["scheme"].as_str()), (Some("http"), Some("bearer")));
    let intake = &doc["components"]["schemas"]["IntakePatch"]["properties"]["status"];
    assert_eq!(intake["enum"], json!(["not_started", "in_progress", "complete", "blocked"]));
    let task = &doc["components"]["schemas"]["TasksPatch"]["properties"]["title"];
    assert_eq!((task["minLength"].as_i64(), task["maxLength"].as_i64()), (Some(1), Some(500)));
    let units = &doc["components"]["schemas"]["PriorAuthPatch"]["properties"]["units_approved"];
    assert_eq!((units["minimum"].as_i64(), &units["type"]), (Some(0), &json!(["integer", "null"])));
    // The document is itself valid JSON Schema throughout (every component compiles).
    for component in doc["components"]["schemas"].as_object().unwrap().keys() {
        validator(&doc, &json!({"$ref": format!("#/components/schemas/{component}")}));
    }

    let intake_route = "/api/intake/{appointment_id}";
    let task_route = "/api/tasks/{task_id}";
    let auth_route = "/api/prior-auth/{auth_id}";
    let cases = [
        (
            intake_route,
            format!("/api/intake/{INTAKE}"),
            json!({"edited_by": "ops@clinic.example", "status": "in_progress", "coda_row_id": "i-1"}),
            200,
            true,
        ),
        (
            intake_route,
            format!("/api/intake/{INTAKE}"),
            json!({"edited_by": "ops@clinic.example", "status": "in_progress"}),
            200,
            true,
        ),
        (
            task_route,
            format!("/api/tasks/{TASK}"),
            json!({"edited_by": "clin@clinic.example", "due_date": "2026-05-01", "details": null}),
            200,
            true,
        ),
        (
            auth_route,
            format!("/api/prior-auth/{AUTH}"),
            json!({"edited_by": "billing@clinic.example", "units_approved": 3, "submitted_at": "2026-01-02T03:04:05Z"}),
            200,
            true,
        ),
        (
            auth_route,
            format!("/api/prior-auth/{AUTH}"),
            json!({"edited_by": "billing@clinic.example", "expected_updated_at": "2000-01-01T00:00:00Z", "notes": "late"}),
            409,
            true,
        ),
        (
            auth_route,
            format!("/api/prior-auth/{AUTH}"),
            json!({"edited_by": "ops@clinic.example", "notes": "x"}),
            403,
            true,
        ),
        (
            task_route,
            "/api/tasks/6f1c2a34-0000-4000-8000-0000000000ff".into(),
            json!({"edited_by": "ops@clinic.example", "title": "t"}),
            404,
            true,
        ),
        (
            intake_route,
            format!("/api/intake/{INTAKE}"),
            json!({"edited_by": "ops@clinic.example", "status": "finished"}),
            422,
            false,
        ),
        (
            intake_route,
            format!("/api/intake/{INTAKE}"),
            json!({"edited_by": "ops@clinic.example", "patient_id": 1}),
            422,
            false,
        ),
        (task_route, format!("/api/tasks/{TASK}"), json!({"edited_by": "ops@clinic.example", "title": ""}), 422, false),
        (task_route, format!("/api/tasks/{TASK}"), json!({"edited_by": "ops@clinic.example"}), 422, false),
        (
            auth_route,
            format!("/api/prior-auth/{AUTH}"),
            json!({"edited_by": "billing@clinic.example", "units_approved": -2}),
            422,
            false,
        ),
        (auth_route, format!("/api/prior-auth/{AUTH}"), json!({"notes": "who?"}), 422, false),
    ];
    for (route, path, body, expected, valid_request) in &cases {
        let request = validator(&doc, &request_schema(&doc, route));
        assert_eq!(request.is_valid(body), *valid_request, "{route} {body}: the document agrees with the server");
        let (status, answer) = server.patch(path, body).await;
        assert_eq!(status, *expected, "{path} {body}: {answer}");
        let response = response_schema(&doc, route, status);
        assert!(response.is_object(), "{route}: status {status} is documented");
        let errors: Vec<String> = validator(&doc, &response).iter_errors(&answer).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{route} {status}: {answer} breaks the document: {errors:?}");
        assert_eq!(doc["paths"][route]["patch"]["security"], json!([{name: []}]));
    }
}
