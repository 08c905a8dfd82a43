//! What every `/api/*` request passes before its list is read, in this order:
//!
//! ```text
//! latency ─► Bearer check ─► hourly budget ─► injected 500/503 ─► injected 302 ─► the list
//!            401 {"detail"}   429 Retry-After   {"detail"}          Location: …&_redirected=1
//! ```
//!
//! Only authenticated requests count against the budget, the `302`s and injected errors
//! included (DrChrono counts what reached it); refused ones (`429`) do not.

use std::time::{Instant, SystemTime};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::faults::{draw_error, draw_redirect};
use super::{detail, origin, Shared, Stats};

/// Lets the request through, or gives the response to send instead.
pub(crate) async fn admit(shared: &Shared, headers: &HeaderMap, uri: &Uri) -> Result<(), Response> {
    shared.stats.call(uri.path());
    let faults = shared.faults();
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if let Err(why) = shared.tokens.lock().expect("tokens lock").check(authorization, Instant::now()) {
        Stats::bump(&shared.stats.unauthorized);
        let mut refused = detail(StatusCode::UNAUTHORIZED, why);
        refused.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"api\""));
        return Err(refused);
    }
    if let Err(wait) = shared.budget.lock().expect("budget lock").admit(SystemTime::now()) {
        Stats::bump(&shared.stats.throttled);
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        let why = format!("Request was throttled. Expected available in {seconds} seconds.");
        let mut refused = detail(StatusCode::TOO_MANY_REQUESTS, &why);
        refused.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return Err(refused);
    }
    if let Some((status, why)) = draw_error(&faults) {
        Stats::bump(&shared.stats.faults);
        return Err(detail(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), why));
    }
    let redirected = uri.query().is_some_and(|q| q.split('&').any(|pair| pair == "_redirected=1"));
    if !redirected && draw_redirect(&faults) {
        Stats::bump(&shared.stats.redirects);
        let query = match uri.query() {
            Some(q) if !q.is_empty() => format!("{q}&_redirected=1"),
            _ => "_redirected=1".to_string(),
        };
        let location = format!("{}{}?{query}", origin(headers, shared.addr), uri.path());
        return Err((StatusCode::FOUND, [(header::LOCATION, location)]).into_response());
    }
    Ok(())
}
