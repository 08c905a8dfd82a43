//! The DrChrono REST client the pulls use: one list page per call, with
//!
//! * bearer auth from the [`TokenStore`], refreshed before expiry and once on a 401;
//! * the shared hourly budget ([`CallBudget`]): every call is reserved before it is made; a
//!   person's run waits for the next window, scheduled work stops with
//!   [`DrChronoError::BudgetSpent`];
//! * a 429 waits for `Retry-After` (DrChrono resets at the top of the hour) and asks again;
//! * a 302 is followed by repeating the request, headers and all, at `Location` (only on
//!   DrChrono's own origin: the token never leaves it);
//! * 5xx and transport errors are retried with backoff, a few times;
//! * an `access_log` row for every call (method, path template, status, duration, rows).
//!
//! Pages are `{"previous", "results", "next"}` as DrChrono's prose documents them; the machine
//! schema says `data`, so both are accepted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use august_schema::access_log::{AccessEntry, AccessLog};
use august_schema::{Actor, PgPool, Secret};

use super::budget::{CallBudget, Priority, Reservation};
use super::error::DrChronoError;
use super::oauth::{OAuthClient, Sealer, TokenStore};

/// How August reaches DrChrono (the `DRCHRONO_*` settings).
#[derive(Clone)]
pub struct DrChronoSettings {
    /// `DRCHRONO_API_BASE`, without a trailing slash.
    pub api_base: String,
    /// `DRCHRONO_CLIENT_ID`.
    pub client_id: String,
    /// `DRCHRONO_CLIENT_SECRET`.
    pub client_secret: Secret<String>,
    /// `DRCHRONO_REFRESH_TOKEN`: seeds the token store once.
    pub refresh_token: Option<Secret<String>>,
    /// `DRCHRONO_TOKEN_KEY`: seals the stored tokens.
    pub token_key: Secret<String>,
    /// `DRCHRONO_CALLS_PER_HOUR`.
    pub calls_per_hour: u32,
    /// `DRCHRONO_CALLS_RESERVE`: kept for people's syncs.
    pub calls_reserve: u32,
    /// `DRCHRONO_RATE_WINDOW_SECS`: the rate-limit window (an hour; shorter against an emulator).
    pub rate_window: Duration,
}

/// One list page.
#[derive(Debug)]
pub struct Page {
    /// The objects.
    pub results: Vec<Value>,
    /// The next page's URL, if any.
    pub next: Option<String>,
}

/// Transient failures retried per call before giving up.
const ATTEMPTS: u32 = 5;
/// Redirects followed per call.
const REDIRECTS: u32 = 5;

/// The client. Cheap to clone.
#[derive(Clone)]
pub struct DrChronoClient {
    inner: Arc<Inner>,
}

struct Inner {
    api_base: String,
    http: reqwest::Client,
    tokens: TokenStore,
    budget: CallBudget,
    log: AccessLog,
}

impl DrChronoClient {
    /// Builds the client and seeds the token store.
    pub async fn connect(
        settings: &DrChronoSettings,
        pool: PgPool,
        pg: tokio_postgres::Config,
    ) -> Result<Self, DrChronoError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| DrChronoError::Unavailable { path: "/", reason: transport_kind(&e) })?;
        let log = AccessLog::start("drchrono", Actor::DrChronoSync, pg);
        let api_base = settings.api_base.trim_end_matches('/').to_string();
        let oauth = OAuthClient {
            token_url: format!("{api_base}/o/token/"),
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
        };
        let tokens = TokenStore::new(pool.clone(), http.clone(), oauth, Sealer::new(&settings.token_key), log.clone());
        tokens.seed(settings.refresh_token.as_ref()).await?;
        let budget = CallBudget::new(pool, settings.calls_per_hour, settings.calls_reserve, settings.rate_window);
        Ok(Self { inner: Arc::new(Inner { api_base, http, tokens, budget, log }) })
    }

    /// The shared call budget.
    pub fn budget(&self) -> &CallBudget {
        &self.inner.budget
    }

    /// `{base}{path}?{query}`.
    pub fn url(&self, path: &str, query: &[(&str, String)]) -> String {
        let mut url = format!("{}{path}", self.inner.api_base);
        for (i, (key, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(key);
            url.push('=');
            url.push_str(&encode(value));
        }
        url
    }

    /// Waits until every call so far has its `access_log` row.
    pub async fn flush_access_log(&self) {
        self.inner.log.flush().await;
    }

    /// GETs one list page; `path` names the endpoint in logs and errors.
    pub async fn page(&self, url: &str, path: &'static str, priority: Priority) -> Result<Page, DrChronoError> {
        let body = self.get(url, path, priority).await?;
        parse_page(body, path)
    }

    async fn get(&self, url: &str, path: &'static str, priority: Priority) -> Result<Value, DrChronoError> {
        let inner = &*self.inner;
        let mut url = url.to_string();
        let mut token = inner.tokens.access_token().await?;
        let (mut refreshed, mut redirects, mut failures) = (false, 0, 0);
        loop {
            self.reserve(priority).await?;
            let started = Instant::now();
            let sent = inner
                .http
                .get(&url)
                .bearer_auth(token.expose())
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await;
            let status = sent.as_ref().ok().map(|r| r.status().as_u16());
            let response = match sent {
                Ok(response) => response,
                Err(e) => {
                    self.record(path, None, started, None);
                    failures += 1;
                    if failures >= ATTEMPTS {
                        return Err(DrChronoError::Unavailable { path, reason: transport_kind(&e) });
                    }
                    backoff(failures).await;
                    continue;
                }
            };
            match status.unwrap_or(0) {
                200..=299 => {
                    let body = response.json::<Value>().await;
                    let rows = body.as_ref().ok().and_then(|b| list_of(b).map(Vec::len));
                    self.record(path, status, started, rows);
                    return body.map_err(|_| DrChronoError::BadPage { path, problem: "not JSON" });
                }
                302 | 301 | 303 | 307 | 308 if redirects < REDIRECTS => {
                    self.record(path, status, started, None);
                    redirects += 1;
                    url = self.follow(&url, &response, path)?;
                }
                401 if !refreshed => {
                    self.record(path, status, started, None);
                    refreshed = true;
                    token = inner.tokens.after_unauthorized(&token).await?;
                }
                429 => {
                    self.record(path, status, started, None);
                    let wait = retry_after(&response).unwrap_or(Duration::from_secs(60));
                    tracing::warn!(path, wait_secs = wait.as_secs(), "DrChrono rate limit reached; waiting");
                    tokio::time::sleep(wait).await;
                }
                500..=599 => {
                    self.record(path, status, started, None);
                    failures += 1;
                    if failures >= ATTEMPTS {
                        return Err(DrChronoError::Unavailable {
                            path,
                            reason: format!("status {}", status.unwrap_or(0)),
                        });
                    }
                    backoff(failures).await;
                }
                other => {
                    self.record(path, status, started, None);
                    return Err(DrChronoError::Refused { status: other, path });
                }
            }
        }
    }

    async fn reserve(&self, priority: Priority) -> Result<(), DrChronoError> {
        loop {
            match self.inner.budget.reserve(priority).await? {
                Reservation::Granted { .. } => return Ok(()),
                Reservation::Closing { wait } => tokio::time::sleep(wait + Duration::from_millis(20)).await,
                Reservation::Spent { calls_left, wait } => match priority {
                    Priority::Scheduled => return Err(DrChronoError::BudgetSpent { calls_left }),
                    Priority::Manual => {
                        tracing::info!(
                            wait_secs = wait.as_secs(),
                            "DrChrono hourly budget spent; waiting for the next hour"
                        );
                        tokio::time::sleep(wait + Duration::from_millis(20)).await;
                    }
                },
            }
        }
    }

    /// The `Location` of a redirect, resolved against `url`, if it stays on DrChrono's origin.
    fn follow(&self, url: &str, response: &reqwest::Response, path: &'static str) -> Result<String, DrChronoError> {
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .ok_or(DrChronoError::BadPage { path, problem: "a redirect without Location" })?;
        let base = reqwest::Url::parse(url).map_err(|_| DrChronoError::BadPage { path, problem: "a bad URL" })?;
        let target = base.join(location).map_err(|_| DrChronoError::BadPage { path, problem: "a bad Location" })?;
        let api = reqwest::Url::parse(&self.inner.api_base).map_err(|_| DrChronoError::OffSiteRedirect { path })?;
        if target.origin() != api.origin() {
            return Err(DrChronoError::OffSiteRedirect { path });
        }
        Ok(target.to_string())
    }

    fn record(&self, path: &'static str, status: Option<u16>, started: Instant, rows: Option<usize>) {
        let status_class = match status {
            Some(401) => "401",
            Some(403) => "403",
            Some(429) => "429",
            Some(200..=299) => "2xx",
            Some(300..=399) => "3xx",
            Some(400..=499) => "4xx",
            Some(_) => "5xx",
            None => "network",
        };
        let name = august_schema::metrics::DRCHRONO_CALLS.name;
        metrics::counter!(name, "path" => path, "status" => status_class).increment(1);
        self.inner.log.record(AccessEntry {
            method: "GET",
            path_template: path.into(),
            status,
            duration: started.elapsed(),
            rows,
            error: None,
        });
    }
}

/// The objects of a list page: `results`, or `data` as the machine schema names it.
pub fn list_of(body: &Value) -> Option<&Vec<Value>> {
    body.get("results").or_else(|| body.get("data")).and_then(Value::as_array)
}

fn parse_page(mut body: Value, path: &'static str) -> Result<Page, DrChronoError> {
    let next = match body.get("next") {
        None | Some(Value::Null) => None,
        Some(Value::String(next)) if next.is_empty() => None,
        Some(Value::String(next)) => Some(next.clone()),
        Some(_) => return Err(DrChronoError::BadPage { path, problem: "next is not a URL" }),
    };
    let results = ["results", "data"]
        .iter()
        .find_map(|key| match body.get_mut(*key).map(Value::take) {
            Some(Value::Array(items)) => Some(items),
            _ => None,
        })
        .ok_or(DrChronoError::BadPage { path, problem: "no results array" })?;
    Ok(Page { results, next })
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(|secs| Duration::from_secs(secs.clamp(1, 3600)))
}

async fn backoff(failures: u32) {
    let base = Duration::from_millis(250 * 2u64.pow(failures.min(6)));
    let jitter = Duration::from_millis(rand::random::<u64>() % 250);
    tokio::time::sleep(base + jitter).await;
}

/// A transport error as a kind, never with the URL (which carries query values).
pub(crate) fn transport_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        "transport error".into()
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_in_either_envelope_are_read() {
        let results =
            parse_page(serde_json::json!({"previous": null, "results": [{"id": 1}], "next": "u"}), "/p").unwrap();
        assert_eq!((results.results.len(), results.next.as_deref()), (1, Some("u")));
        let data = parse_page(serde_json::json!({"data": [{"id": 1}, {"id": 2}], "next": null}), "/p").unwrap();
        assert_eq!((data.results.len(), data.next), (2, None));
        assert!(matches!(parse_page(serde_json::json!({"next": null}), "/p"), Err(DrChronoError::BadPage { .. })));
        assert!(matches!(
            parse_page(serde_json::json!({"results": [], "next": 3}), "/p"),
            Err(DrChronoError::BadPage { .. })
        ));
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("2024-01-01/2024-06-30"), "2024-01-01%2F2024-06-30");
    }
}
