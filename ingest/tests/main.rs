//! The ingest endpoints: `oneshot` requests against the real router and a real Postgres.
#![allow(clippy::unwrap_used, missing_docs)]

mod deepcura;
mod drchrono;
mod fuzz;
mod http_limits;
mod oidc;
mod properties;
mod pull;
mod rejected;
mod stale;
mod sync_api;
mod verify;

use std::sync::{Arc, Mutex};

use august_ingest::{app, IngestState};
use august_schema::{PoolSettings, Secret};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

pub const DRCHRONO_SECRET: &str = "drchrono-webhook-secret";
pub const DEEPCURA_SECRET: &str = "deepcura-shared-secret";

pub async fn state(db: &august_testkit::TestDb) -> IngestState {
    IngestState {
        pool: august_schema::connect_pool(&PoolSettings::default(), db.config()).await.unwrap(),
        drchrono_secret: Secret::new(DRCHRONO_SECRET.into()),
        deepcura_secret: Secret::new(DEEPCURA_SECRET.into()),
    }
}

/// Sends a request through the router; returns the status and the JSON body.
pub async fn send(state: &IngestState, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

/// What was logged on this thread while the guard returned with it lives (a `#[tokio::test]`
/// runs its handlers on the test's own thread).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn capture() -> (tracing::subscriber::DefaultGuard, Logs) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (tracing::subscriber::set_default(subscriber), logs)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
