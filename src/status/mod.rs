//! The status page, on the metrics address beside `GET /metrics`: what the on-call engineer
//! opens first, one self-contained HTML page that needs nothing from outside the clinic's
//! network.
//!
//! ```text
//!   metrics recorder ──render──▶ sampler (every 2 s) ──▶ History (1 h ring buffer)
//!          │                                                   │
//!          └──render, now──▶ GET /status.json ◀────────────────┘ ◀── RecentErrors (tracing layer)
//!                                   ▲
//!   GET /status (page.html) ──polls─┘
//! ```
//!
//! The numbers are the process's own metrics read back by the catalog's names
//! ([`snapshot`]): the page shows exactly what a Prometheus scrape would, and "—" for a
//! metric not recorded yet. `GET /status.json?since=T` returns the snapshot now, the history
//! after `T` (all of it without `since`, so the page fetches the hour once, then only what is
//! new) and the recent WARN/ERROR events ([`recent_errors`]). Nothing on it carries PHI: view
//! and feed names, counts, bytes, seconds, and id-like log fields only.

mod history;
mod recent_errors;
mod scrape;
mod snapshot;
pub mod sql_status;

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};

pub use recent_errors::layer as recent_errors;

use history::{History, Point};
use snapshot::Snapshot;

/// The page: HTML, CSS and script in one file, drawn by its own script (no build step, no
/// fonts or scripts from elsewhere).
const PAGE: &str = include_str!("page.html");
/// How often the sampler reads the metrics (and the page polls).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// How far back the charts go.
pub const HISTORY: Duration = Duration::from_secs(3600);
/// The page may run script and style of its own and fetch from where it came, nothing else.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'";

struct Status {
    handle: PrometheusHandle,
    history: Mutex<History>,
}

impl Status {
    fn now(&self) -> Snapshot {
        Snapshot::read(&scrape::parse(&self.handle.render()), unix_now())
    }
}

/// `GET /status` and `GET /status.json` for `handle`'s metrics, to merge into the metrics
/// router; starts the sampler, which ends once the router is dropped.
pub fn routes(handle: PrometheusHandle) -> Router {
    let capacity = (HISTORY.as_secs() / SAMPLE_EVERY.as_secs()) as usize;
    let status = Arc::new(Status { handle, history: Mutex::new(History::new(capacity)) });
    tokio::spawn(sample(Arc::downgrade(&status)));
    Router::new().route("/status", get(page)).route("/status.json", get(json)).with_state(status)
}

/// Adds a point every [`SAMPLE_EVERY`] while the routes live.
async fn sample(status: Weak<Status>) {
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(status) = status.upgrade() else { return };
        let point = Point::of(&status.now());
        if let Ok(mut history) = status.history.lock() {
            history.push(point);
        };
    }
}

async fn page() -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::CACHE_CONTROL, "no-store"),
    ];
    (headers, PAGE).into_response()
}

#[derive(Deserialize)]
struct Since {
    since: Option<f64>,
}

/// The body of `GET /status.json`.
#[derive(Serialize)]
struct StatusJson {
    version: &'static str,
    sample_every_seconds: u64,
    history_seconds: u64,
    now: Snapshot,
    history: Vec<Point>,
    errors: Vec<recent_errors::ErrorEvent>,
}

async fn json(State(status): State<Arc<Status>>, since: Result<Query<Since>, QueryRejection>) -> Response {
    let Ok(Query(Since { since })) = since else {
        let message = "`since` must be a time in Unix seconds";
        let body = serde_json::json!({"error": {"code": "bad_query", "message": message}});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    };
    let now = status.now();
    let history = status.history.lock().map(|h| h.since(since)).unwrap_or_default();
    let body = StatusJson {
        version: env!("CARGO_PKG_VERSION"),
        sample_every_seconds: SAMPLE_EVERY.as_secs(),
        history_seconds: HISTORY.as_secs(),
        now,
        history,
        errors: recent_errors::process().events(),
    };
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// Now, in Unix seconds.
fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use metrics_exporter_prometheus::PrometheusBuilder;
    use tower::ServiceExt;

    use super::*;

    async fn get(uri: &str) -> (StatusCode, String) {
        let recorder = PrometheusBuilder::new().build_recorder();
        let response = routes(recorder.handle()).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_bad_since_is_a_json_400() {
        let (status, body) = get("/status.json?since=yesterday").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], "bad_query");
    }

    #[tokio::test]
    async fn nothing_recorded_is_null_not_zero() {
        let (status, body) = get("/status.json").await;
        assert_eq!(status, StatusCode::OK);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["now"]["cdc"]["slot_lag_bytes"], serde_json::Value::Null);
        assert_eq!(body["now"]["tables"], serde_json::json!([]));
    }
}
