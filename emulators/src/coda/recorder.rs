//! A stand-in for August's write-back endpoints, for tests of the automations: it records
//! every request it gets (method, path, `Authorization` header, JSON body) and answers each
//! with one status.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::Value;

/// One request received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// Its method.
    pub method: String,
    /// Its path (percent-encoded, as sent).
    pub path: String,
    /// Its `Authorization` header, if any.
    pub authorization: Option<String>,
    /// Its body as JSON (`Null` when it is not JSON).
    pub body: Value,
}

/// A running recorder.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Recorder {
    /// Starts a recorder on a free loopback port answering `status` with `{}`.
    pub async fn start(status: u16) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = received.clone();
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let log = log.clone();
            async move {
                let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(String::from);
                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let path = uri.path().to_string();
                log.lock().expect("recorder lock").push(Received {
                    method: method.to_string(),
                    path,
                    authorization,
                    body,
                });
                (status, axum::Json(serde_json::json!({})))
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, received })
    }

    /// Its base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("recorder lock").clone()
    }

    /// Waits until at least `n` requests have arrived (or `timeout` passed), then returns all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= n || Instant::now() >= deadline {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
