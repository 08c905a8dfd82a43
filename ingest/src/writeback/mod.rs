//! The Coda write-back API: staff edits made in Coda land in Postgres, checked, audited, and
//! announced to the Coda sink so it does not echo them back.
//!
//! * `PATCH /api/intake/{appointment_id}`, `PATCH /api/tasks/{task_id}`,
//!   `PATCH /api/prior-auth/{auth_id}` (the routes of [`TARGETS`]), behind
//!   `Authorization: Bearer <CODA_WRITEBACK_TOKEN>` (constant time, checked from the headers
//!   before a byte of the body is read);
//! * `GET /api/openapi.json`: the API's OpenAPI 3.1 document ([`openapi`]), unauthenticated.
//!
//! A request's body is a JSON object with the changed fields only, plus `edited_by` (the Coda
//! user's email), optional `expected_updated_at` (RFC 3339) and optional `coda_row_id`. The
//! fields are checked against schemas read from the catalog at start-up ([`fields`],
//! [`request`]); the transaction ([`store`]) locks the row, checks the editor's role, answers a
//! replay without writing, refuses a stale `expected_updated_at`, then updates the row under
//! actor `coda_writeback` with the editor in `app.actor_detail` and commits an edit notice with
//! it. Every authenticated request leaves one `sync_log` row (source `coda_writeback`, event
//! the target) and one `access_log` row, and is counted in
//! `august_writeback_requests_total{target,outcome}` and timed in
//! `august_writeback_seconds{target}`. Logs and errors carry ids and field names only.

mod error;
pub mod fields;
pub mod openapi;
pub mod request;
mod store;

use std::sync::Arc;
use std::time::Instant;

use august_schema::writeback::{Target, TARGETS};
use august_schema::{PgPool, Secret};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{middleware, Json, Router};
use tracing::Instrument;

pub use error::{ConflictBody, ConflictDetail, ErrorBody, ErrorDetail, WritebackError};
pub use fields::{SchemaError, Schemas};
pub use store::{path_template, Stored};

use crate::IngestError;
use store::Refusal;

/// What the write-back handlers share.
#[derive(Clone)]
pub struct WritebackState {
    /// The system of record.
    pub pool: PgPool,
    /// `CODA_WRITEBACK_TOKEN`: what `Authorization: Bearer` must carry.
    pub token: Secret<String>,
    /// The targets' field schemas, read from the catalog.
    pub schemas: Arc<Schemas>,
    openapi: Arc<serde_json::Value>,
}

impl WritebackState {
    /// Reads the field schemas from the database behind `pool` and builds the OpenAPI document.
    pub async fn load(pool: PgPool, token: Secret<String>) -> Result<Self, SchemaError> {
        let client = pool.get().await.map_err(|e| SchemaError::NoConnection(e.to_string()))?;
        let schemas = fields::load(&*client).await?;
        drop(client);
        let openapi = Arc::new(openapi::document(&schemas));
        Ok(Self { pool, token, schemas: Arc::new(schemas), openapi })
    }
}

/// The write-back routes and `GET /api/openapi.json`, with the webhooks' body limit and time
/// limit.
pub fn router(state: WritebackState) -> Router {
    let mut router = Router::new().route("/api/openapi.json", get(serve_openapi));
    for target in &TARGETS {
        router = router.route(
            target.route,
            patch(
                move |State(state): State<WritebackState>,
                      key: Result<Path<String>, PathRejection>,
                      request: Request| { receive(state, target, key, request) },
            ),
        );
    }
    router
        .layer(DefaultBodyLimit::max(crate::BODY_LIMIT))
        .layer(middleware::from_fn(crate::time_limit))
        .with_state(state)
}

async fn serve_openapi(State(state): State<WritebackState>) -> Json<serde_json::Value> {
    Json((*state.openapi).clone())
}

/// Whether `headers` carry `Authorization: Bearer <token>` (constant time).
fn authorized(headers: &HeaderMap, token: &Secret<String>) -> bool {
    let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let presented = match presented.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => "",
    };
    crate::constant_time_eq(presented.as_bytes(), token.expose().as_bytes())
}

async fn receive(
    state: WritebackState,
    target: &'static Target,
    key: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let span = crate::trace::writeback(target.name, request.headers());
    let (outcome, response) = if !authorized(request.headers(), &state.token) {
        ("unauthorized", IngestError::Unauthorized.into_response())
    } else {
        match handle(&state, target, key, request, started).instrument(span.clone()).await {
            Ok(Stored::Written(row)) => ("succeeded", Json(row).into_response()),
            Ok(Stored::Replay(row)) => ("duplicate", Json(row).into_response()),
            Err(e) => (e.status_and_code().1, e.into_response()),
        }
    };
    crate::trace::answered(&span, response.status().as_u16(), outcome);
    tracing::debug!(target_name = target.name, status = response.status().as_u16(), outcome, "write-back answered");
    metrics::counter!(august_schema::metrics::WRITEBACK_REQUESTS.name, "target" => target.name, "outcome" => outcome)
        .increment(1);
    metrics::histogram!(august_schema::metrics::WRITEBACK_SECONDS.name, "target" => target.name)
        .record(started.elapsed().as_secs_f64());
    response
}

/// An authenticated request: read, checked, applied; a refusal is recorded before it is
/// answered.
async fn handle(
    state: &WritebackState,
    target: &'static Target,
    key: Result<Path<String>, PathRejection>,
    request: Request,
    started: Instant,
) -> Result<Stored, WritebackError> {
    let schema = state.schemas.get(target.name).ok_or(WritebackError::NotFound(target.name))?;
    let key = key.map_err(|_| IngestError::BadRequest("the id in the path could not be read".into()))?.0;
    let body = read_body(request).await;
    let mut client = state.pool.get().await.map_err(|_| IngestError::Busy)?;
    let (editor, refusal, check_exists) = match body {
        Err(e) => (None, Refusal::from(WritebackError::Transport(e)), false),
        Ok(body) => match request::parse(schema, &body) {
            Err(e) => (request::editor_of(&body), Refusal::from(e), true),
            Ok(patch) => {
                match crate::trace::commit("writeback", store::apply(&mut client, schema, &key, &patch, started)).await
                {
                    Ok(stored) => return Ok(stored),
                    Err(refusal) => (Some(patch.edited_by), refusal, false),
                }
            }
        },
    };
    if matches!(&refusal.error, WritebackError::Transport(IngestError::Unavailable(_))) {
        tracing::warn!(target_name = target.name, key = %key, "write-back not stored: the database failed");
    } else {
        store::record_refusal(&mut client, schema, &key, editor.as_deref(), &refusal, check_exists, started).await;
    }
    Err(refusal.error)
}

/// The body, once the content type is JSON and within the body limit.
async fn read_body(request: Request) -> Result<Bytes, IngestError> {
    crate::require_json(request.headers())?;
    Bytes::from_request(request, &()).await.map_err(crate::body_rejection)
}
