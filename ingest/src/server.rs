//! Serving the router over HTTP/1.1 with the limits a public endpoint needs, which
//! `axum::serve` does not set:
//!
//! * a **header-read timeout**: a connection that has not sent a whole request head within
//!   [`HttpLimits::header_read_timeout`] is closed (a slow-loris client cannot hold a
//!   connection and its memory open);
//! * a **concurrency limit**: at most [`HttpLimits::max_in_flight`] requests are handled at
//!   once; one more is answered 503 `overloaded` with `Retry-After: 1` at once (DrChrono and Deep
//!   Cura retry), never queued behind the others;
//! * **graceful shutdown**: when `stop` resolves, no new connection is accepted and the requests
//!   in flight finish (each has [`crate::REQUEST_TIMEOUT`] at most).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::IngestError;

/// The limits of [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Requests handled at once; more are answered 503.
    pub max_in_flight: usize,
    /// Longest a connection may take to send a request's head.
    pub header_read_timeout: Duration,
}

impl Default for HttpLimits {
    /// 64 requests at once, 10 s for a request head.
    fn default() -> Self {
        Self { max_in_flight: 64, header_read_timeout: Duration::from_secs(10) }
    }
}

/// `router` with at most `max` requests in flight; one more is answered 503 at once.
pub fn limit_in_flight(router: Router, max: usize) -> Router {
    metrics::counter!(august_schema::metrics::INGEST_OVERLOADED.name).increment(0); // a series from the start
    router.layer(middleware::from_fn_with_state(Arc::new(Semaphore::new(max)), in_flight))
}

async fn in_flight(State(permits): State<Arc<Semaphore>>, request: Request, next: Next) -> Response {
    match permits.try_acquire_owned() {
        Ok(permit) => {
            let response = next.run(request).await;
            drop(permit);
            response
        }
        Err(_) => {
            metrics::counter!(august_schema::metrics::INGEST_OVERLOADED.name).increment(1);
            let mut response = IngestError::Overloaded.into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

/// Serves `router` on `listener` with `limits` until `stop` resolves; then accepts nothing
/// more and waits for the connections in flight to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    stop: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let router = limit_in_flight(router, limits.max_in_flight);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A closed or timed-out connection is the client's business, not an error of ours.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
