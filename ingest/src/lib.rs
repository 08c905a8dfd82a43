//! HTTP in: where clinical data enters August. [`app`] builds the router:
//!
//! * `GET /health`: 200 with the database's status when Postgres answers, 503 otherwise;
//! * `GET /webhooks/drchrono?msg=M` and `POST /webhooks/drchrono` ([`drchrono`]);
//! * `POST /webhooks/deepcura` ([`deepcura`]);
//! * `POST /sync/{resource}` and `GET /sync/runs/{id}` ([`sync_api`], merged in by the binary):
//!   DrChrono pull sync ([`drchrono::pull`]) behind Google-signed OIDC ([`oidc`]).
//! * `PATCH /api/intake|tasks|prior-auth/{id}` and `GET /api/openapi.json` ([`writeback`],
//!   merged in by the binary when `CODA_WRITEBACK_TOKEN` is set): staff edits from Coda.
//!
//! Every error is `{"error": {"code", "message"}}` ([`IngestError`]); a bad signature or
//! secret is a 401 with nothing written and nothing of the payload logged, answered from the
//! headers before a byte of the body is read (`authenticated_body`). Bodies are limited to
//! 1 MiB (413); a request may take 10 s. [`server`] serves the router with a header-read
//! timeout and a concurrency limit. Deliveries are counted by source, event and
//! outcome (`august_ingest_deliveries_total`), and timed (`august_ingest_handler_seconds`).
//! Each delivery is a `webhook` span and each transaction an `ingest.commit` span whose
//! context the transaction carries into the WAL when it is sampled (module `trace`).
#![forbid(missing_docs)]

pub mod deepcura;
pub mod drchrono;
mod error;
pub mod fields;
mod journal;
pub mod oidc;
pub mod server;
mod stale;
pub mod sync_api;
mod trace;
pub mod writeback;

use std::time::{Duration, Instant};

use august_schema::{PgPool, Secret};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

pub use error::IngestError;

/// What the handlers share.
#[derive(Clone)]
pub struct IngestState {
    /// The system of record.
    pub pool: PgPool,
    /// `DRCHRONO_WEBHOOK_SECRET`.
    pub drchrono_secret: Secret<String>,
    /// `DEEPCURA_SHARED_SECRET`.
    pub deepcura_secret: Secret<String>,
}

/// Largest body accepted.
pub const BODY_LIMIT: usize = 1 << 20;
/// Longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The router.
pub fn app(state: IngestState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/webhooks/drchrono", get(drchrono::verify).post(drchrono::receive))
        .route("/webhooks/deepcura", axum::routing::post(deepcura::receive))
        .fallback(|| async {
            IngestError::BadRequest("no such endpoint".into()).into_response_with(StatusCode::NOT_FOUND)
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(time_limit))
        .with_state(state)
}

impl IngestError {
    fn into_response_with(self, status: StatusCode) -> Response {
        let mut response = self.into_response();
        *response.status_mut() = status;
        response
    }
}

async fn time_limit(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let path = request.uri().path().to_string();
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"error": {"code": "timeout", "message": "the request took too long"}})),
        )
            .into_response(),
    };
    let route = if path.starts_with("/webhooks/drchrono") {
        "drchrono"
    } else if path.starts_with("/webhooks/deepcura") {
        "deepcura"
    } else if path.starts_with("/api/") {
        "writeback"
    } else {
        "other"
    };
    metrics::histogram!(august_schema::metrics::INGEST_HANDLER_SECONDS.name, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

async fn health(State(state): State<IngestState>) -> Response {
    let answered = match tokio::time::timeout(Duration::from_secs(2), state.pool.get()).await {
        Ok(Ok(client)) => client.query_one("SELECT 1", &[]).await.is_ok(),
        _ => false,
    };
    if answered {
        Json(serde_json::json!({"status": "ok", "database": "ok"})).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({"status": "unavailable", "database": "unreachable"})))
            .into_response()
    }
}

/// Compares secrets in constant time (for equal lengths; a length difference shows only that).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0 && !b.is_empty()
}

/// A webhook's headers and body, read only once `secret_header` carries `secret` (compared in
/// constant time) and the content type is JSON: a sender without the secret is answered 401
/// from its headers alone, and its body is never read (nor waited for).
pub(crate) async fn authenticated_body(
    request: Request,
    secret_header: &'static str,
    secret: &Secret<String>,
) -> Result<(HeaderMap, Bytes), IngestError> {
    let presented = request.headers().get(secret_header).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !constant_time_eq(presented.as_bytes(), secret.expose().as_bytes()) {
        return Err(IngestError::Unauthorized);
    }
    require_json(request.headers())?;
    let headers = request.headers().clone();
    // `Bytes` honours the router's `DefaultBodyLimit` (kept in the request's extensions).
    let body = Bytes::from_request(request, &()).await.map_err(body_rejection)?;
    Ok((headers, body))
}

fn require_json(headers: &HeaderMap) -> Result<(), IngestError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")) {
        Ok(())
    } else {
        Err(IngestError::UnsupportedMediaType)
    }
}

fn body_rejection(rejection: axum::extract::rejection::BytesRejection) -> IngestError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        IngestError::TooLarge
    } else {
        IngestError::BadRequest("the body could not be read".into())
    }
}

fn count<T>(source: &'static str, event: &'static str, result: &Result<T, IngestError>) {
    let (_, outcome) = trace::outcome(result);
    let name = august_schema::metrics::INGEST_DELIVERIES.name;
    metrics::counter!(name, "source" => source, "event" => event, "outcome" => outcome).increment(1);
}
