//! The pull-sync endpoints Cloud Scheduler calls, as the seeds name them:
//!
//! * `POST /sync/{resource}` (`patients`, `providers`, `appointments`, `clinical-notes`,
//!   `medications`, `problems`, `allergies`, `line-items`, `all`): starts an incremental run in
//!   the background under the scheduled budget and answers 202 `{"run_id", "status", "resources"}`
//!   at once; 409 with the running run's id when a run already holds one of its feeds;
//! * `GET /sync/runs/{id}`: the run's status, counts and per-feed progress.
//!
//! Both need a Google-signed OIDC ID token (`Authorization: Bearer …`, checked by [`crate::oidc`]
//! before anything else is read): 401 otherwise. Without `AUGUST_SYNC_OIDC_AUDIENCE` (or without
//! DrChrono credentials) they answer 503 `not_configured`: never a run without authentication.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::drchrono::budget::Priority;
use crate::drchrono::feeds::feeds_for;
use crate::drchrono::pull::{Progress, PullOptions};
use crate::drchrono::runs::{StartError, Syncer, SOURCE};
use crate::oidc::OidcVerifier;

/// What the endpoints need, or why they are off.
#[derive(Clone)]
pub struct SyncApi {
    state: Result<Arc<Configured>, &'static str>,
}

struct Configured {
    syncer: Syncer,
    oidc: OidcVerifier,
}

impl SyncApi {
    /// The endpoints, configured.
    pub fn new(syncer: Syncer, oidc: OidcVerifier) -> Self {
        Self { state: Ok(Arc::new(Configured { syncer, oidc })) }
    }

    /// The endpoints answering 503, naming the setting that is missing.
    pub fn not_configured(missing: &'static str) -> Self {
        Self { state: Err(missing) }
    }
}

/// The `/sync/*` routes.
pub fn routes(api: SyncApi) -> Router {
    Router::new().route("/sync/runs/{id}", get(run_status)).route("/sync/{resource}", post(start_run)).with_state(api)
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message.into()}}))).into_response()
}

/// The configuration and an authenticated caller, or the response that refuses.
async fn authorised(api: &SyncApi, headers: &HeaderMap) -> Result<Arc<Configured>, Response> {
    let configured = api.state.clone().map_err(|missing| {
        error(StatusCode::SERVICE_UNAVAILABLE, "not_configured", format!("pull sync is not configured: set {missing}"))
    })?;
    let header = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match configured.oidc.verify(header).await {
        Ok(_) => Ok(configured),
        Err(e) if e.is_retryable() => Err(error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string())),
        Err(e) => Err(error(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())),
    }
}

async fn start_run(State(api): State<SyncApi>, Path(resource): Path<String>, headers: HeaderMap) -> Response {
    let configured = match authorised(&api, &headers).await {
        Ok(configured) => configured,
        Err(refused) => return refused,
    };
    let Ok(feeds) = feeds_for([resource.as_str()]) else {
        return error(StatusCode::NOT_FOUND, "unknown_resource", "no such sync resource");
    };
    let names: Vec<&str> = feeds.iter().map(|f| f.name).collect();
    let options = PullOptions { full: false, since: None, priority: Priority::Scheduled };
    let event = format!("sync_{}", resource.replace('-', "_"));
    match configured.syncer.claim(feeds, options, &event).await {
        Ok(run) => {
            let id = run.id;
            tokio::spawn(async move {
                let summary = run.run(tokio::sync::watch::channel(Progress::default()).0).await;
                tracing::info!(run_id = %summary.run_id, status = summary.status, fetched = summary.counts.fetched, "sync run ended");
            });
            (StatusCode::ACCEPTED, Json(json!({"run_id": id, "status": "started", "resources": names}))).into_response()
        }
        Err(StartError::AlreadyRunning { feed, run_id }) => (
            StatusCode::CONFLICT,
            Json(json!({"error": {
                "code": "already_running",
                "message": format!("a sync of {feed} is already running"),
                "run_id": run_id,
            }})),
        )
            .into_response(),
        Err(e @ (StartError::Failed(_) | StartError::NotDue)) => {
            tracing::error!(error = %e, "could not start a sync run");
            error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the run could not be started")
        }
    }
}

async fn run_status(State(api): State<SyncApi>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let configured = match authorised(&api, &headers).await {
        Ok(configured) => configured,
        Err(refused) => return refused,
    };
    let Ok(id) = Uuid::parse_str(&id) else {
        return error(StatusCode::NOT_FOUND, "unknown_run", "no such run");
    };
    match run_report(&configured.syncer, id).await {
        Ok(Some(report)) => Json(report).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "unknown_run", "no such run"),
        Err(e) => {
            tracing::error!(error = %e, "could not read a sync run");
            error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the database is unavailable")
        }
    }
}

/// A run's `sync_log` row and its feeds' progress, as JSON (ids, counts and codes only).
pub async fn run_report(syncer: &Syncer, id: Uuid) -> Result<Option<Value>, crate::drchrono::DrChronoError> {
    let client = syncer.pool().get().await.map_err(crate::drchrono::budget::pool_error)?;
    let db = |e| crate::drchrono::DrChronoError::Db(august_schema::DbError::new("read a sync run", e));
    let Some(run) = client
        .query_opt(
            "SELECT status, event, resources, started_at, finished_at, records_received, records_inserted,
                    records_updated, records_unchanged, records_failed, pages, calls, error_code, error_message
               FROM sync_log WHERE id = $1 AND source = $2",
            &[&id, &SOURCE],
        )
        .await
        .map_err(db)?
    else {
        return Ok(None);
    };
    let feeds = client
        .query(
            "SELECT resource, pages, fetched, inserted, updated, unchanged, failed, resume_url IS NOT NULL, last_error
               FROM drchrono_sync_state WHERE resource = ANY($1) ORDER BY resource",
            &[&run.get::<_, Vec<String>>(2)],
        )
        .await
        .map_err(db)?;
    let stamp = |i: usize| run.get::<_, Option<chrono::DateTime<chrono::Utc>>>(i).map(|t| t.to_rfc3339());
    let error_code: Option<String> = run.get(12);
    Ok(Some(json!({
        "run_id": id,
        "status": run.get::<_, String>(0),
        "event": run.get::<_, String>(1),
        "resources": run.get::<_, Vec<String>>(2),
        "started_at": stamp(3),
        "finished_at": stamp(4),
        "counts": {
            "fetched": run.get::<_, i32>(5), "inserted": run.get::<_, i32>(6), "updated": run.get::<_, i32>(7),
            "unchanged": run.get::<_, i32>(8), "failed": run.get::<_, i32>(9), "pages": run.get::<_, i32>(10),
            "calls": run.get::<_, i32>(11),
        },
        "error": error_code.map(|code| json!({"code": code, "message": run.get::<_, Option<String>>(13)})),
        "feeds": feeds.iter().map(|f| json!({
            "feed": f.get::<_, String>(0), "pages": f.get::<_, i32>(1), "fetched": f.get::<_, i32>(2),
            "inserted": f.get::<_, i32>(3), "updated": f.get::<_, i32>(4), "unchanged": f.get::<_, i32>(5),
            "failed": f.get::<_, i32>(6), "unfinished": f.get::<_, bool>(7), "last_error": f.get::<_, Option<String>>(8),
        })).collect::<Vec<_>>(),
    })))
}
