//! `/sync/*` through the real router (`oneshot`), with OIDC tokens signed by the test keys,
//! runs pulling from the DrChrono emulator into a real Postgres.

use std::time::Duration;

use august_ingest::sync_api::{routes, SyncApi};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::oidc::{bearer, sign_with, valid, with, KeyServer, INVOKER, KID, OTHER_KEY, TEST_KEY};
use super::pull::{emulator, quota_off, syncer};

async fn call(api: &SyncApi, method: &str, path: &str, authorization: Option<String>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let response = routes(api.clone()).oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn wait_for_end(api: &SyncApi, run: &str) -> Value {
    for _ in 0..200 {
        let (status, report) = call(api, "GET", &format!("/sync/runs/{run}"), Some(valid())).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        if report["status"] != "started" {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {run} did not end");
}

#[tokio::test]
async fn a_valid_scheduler_token_starts_a_run_that_reports_its_counts() {
    let db = august_testkit::fresh_db("sync_api_run").await;
    let drchrono = emulator(quota_off(10)).await;
    let keys = KeyServer::start().await;
    let api = SyncApi::new(syncer(&db, &drchrono).await, keys.verifier(Some(INVOKER)));

    let (status, started) = call(&api, "POST", "/sync/patients", Some(valid())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["status"], "started");
    assert_eq!(started["resources"], json!(["patients"]));
    let report = wait_for_end(&api, started["run_id"].as_str().unwrap()).await;
    assert_eq!(report["status"], "succeeded", "{report}");
    assert_eq!(report["counts"]["inserted"], json!(drchrono.counts()["patients"]));
    assert_eq!(report["feeds"][0]["feed"], "patients");
    assert_eq!(db.count("SELECT count(*) FROM patients").await as usize, drchrono.counts()["patients"]);
}

#[tokio::test]
async fn every_bad_token_is_refused_with_401_and_starts_nothing() {
    let db = august_testkit::fresh_db("sync_api_refused").await;
    let drchrono = emulator(quota_off(5)).await;
    let keys = KeyServer::start().await;
    let api = SyncApi::new(syncer(&db, &drchrono).await, keys.verifier(Some(INVOKER)));
    let now = jsonwebtoken::get_current_timestamp();
    let cases = [
        ("no token", None),
        ("wrong audience", Some(bearer(&sign_with(&with(json!({"aud": "https://elsewhere.example"})), KID, TEST_KEY)))),
        ("wrong issuer", Some(bearer(&sign_with(&with(json!({"iss": "https://issuer.example"})), KID, TEST_KEY)))),
        ("expired", Some(bearer(&sign_with(&with(json!({"exp": now - 600, "iat": now - 4200})), KID, TEST_KEY)))),
        ("bad signature", Some(bearer(&sign_with(&super::oidc::claims(), KID, OTHER_KEY)))),
        ("wrong invoker", Some(bearer(&sign_with(&with(json!({"email": "someone@example.com"})), KID, TEST_KEY)))),
    ];
    for (case, authorization) in cases {
        let (status, body) = call(&api, "POST", "/sync/all", authorization).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{case}");
        assert!(body["error"]["message"].is_string());
    }
    assert_eq!(db.count("SELECT count(*) FROM sync_log").await, 0, "nothing started");
    assert_eq!(drchrono.stats().api_calls, 0, "no DrChrono call");
}

#[tokio::test]
async fn a_second_request_for_a_running_resource_answers_409_with_the_running_id() {
    let db = august_testkit::fresh_db("sync_api_conflict").await;
    let config = august_emulators::drchrono::DrChronoConfig {
        faults: august_emulators::drchrono::Faults { latency: Duration::from_millis(100), ..Default::default() },
        ..quota_off(30)
    };
    let drchrono = emulator(config).await;
    let keys = KeyServer::start().await;
    let api = SyncApi::new(syncer(&db, &drchrono).await, keys.verifier(Some(INVOKER)));
    let (status, first) = call(&api, "POST", "/sync/all", Some(valid())).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    for path in ["/sync/all", "/sync/appointments"] {
        let (status, second) = call(&api, "POST", path, Some(valid())).await;
        assert_eq!(status, StatusCode::CONFLICT, "{second}");
        assert_eq!(second["error"]["code"], "already_running");
        assert_eq!(second["error"]["run_id"], first["run_id"]);
    }
    let report = wait_for_end(&api, first["run_id"].as_str().unwrap()).await;
    assert_eq!(report["status"], "succeeded", "{report}");
    let (status, _) = call(&api, "POST", "/sync/all", Some(valid())).await;
    assert_eq!(status, StatusCode::ACCEPTED, "free again once the run ended");
}

#[tokio::test]
async fn without_configuration_sync_answers_503_and_unknown_names_404() {
    let (status, body) =
        call(&SyncApi::not_configured("AUGUST_SYNC_OIDC_AUDIENCE"), "POST", "/sync/all", Some(valid())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "not_configured");
    assert!(body["error"]["message"].as_str().unwrap().contains("AUGUST_SYNC_OIDC_AUDIENCE"));

    let db = august_testkit::fresh_db("sync_api_unknown").await;
    let drchrono = emulator(quota_off(2)).await;
    let keys = KeyServer::start().await;
    let api = SyncApi::new(syncer(&db, &drchrono).await, keys.verifier(Some(INVOKER)));
    let (status, body) = call(&api, "POST", "/sync/everything", Some(valid())).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_resource")));
    let (status, _) = call(&api, "GET", "/sync/runs/not-a-run", Some(valid())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&api, "GET", "/sync/runs/00000000-0000-0000-0000-000000000000", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "run reports need the token too");
}
