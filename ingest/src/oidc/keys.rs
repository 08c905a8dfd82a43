//! Google's signing keys (the JWKS at `AUGUST_SYNC_JWKS_URL`), cached by `kid` for the
//! response's `max-age` (capped), fetched one request at a time, and fetched again for an
//! unknown `kid` at most once per [`REFETCH_FLOOR`], so a flood of bad tokens cannot make August
//! hammer Google. Keys already held stay in use while a fetch fails.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use serde::Deserialize;

use super::OidcError;

/// How long keys are kept when the JWKS response has no `max-age`.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
/// A wrong or hostile `max-age` must not pin keys for ever (nor overflow an `Instant`); the
/// unknown-`kid` refetch would still pick up new keys, but revoked ones would linger.
const LONGEST_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// The least time between two refetches for an unknown `kid`, and between a failed fetch and
/// the next attempt.
const REFETCH_FLOOR: Duration = Duration::from_secs(30);
/// The longest a JWKS fetch may take (fetches are one at a time, so this bounds the wait).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Google's keys by `kid`, and when to fetch them again.
pub(super) struct KeyCache {
    url: String,
    http: reqwest::Client,
    state: Mutex<CacheState>,
    /// Held for the whole of a fetch, so concurrent misses cause one request, not many.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct CacheState {
    keys: HashMap<String, DecodingKey>,
    fresh_until: Option<Instant>,
    last_attempt: Option<Instant>,
    last_kid_refetch: Option<Instant>,
    /// Why the latest fetch failed; `None` once one succeeds.
    last_failure: Option<String>,
}

/// What to do for a `kid`, given the cache.
enum Lookup {
    Found(DecodingKey),
    Fetch { for_unknown_kid: bool },
    Settled(OidcError),
}

impl CacheState {
    fn lookup(&self, kid: &str, now: Instant) -> Lookup {
        let fresh = self.fresh_until.is_some_and(|until| now < until);
        let recent = |at: Option<Instant>| at.is_some_and(|at| now.duration_since(at) < REFETCH_FLOOR);
        match self.keys.get(kid) {
            Some(key) if fresh => Lookup::Found(key.clone()),
            _ if !fresh && !recent(self.last_attempt) => Lookup::Fetch { for_unknown_kid: false },
            None if fresh && !recent(self.last_kid_refetch) => Lookup::Fetch { for_unknown_kid: true },
            _ => match self.settle(kid) {
                Ok(key) => Lookup::Found(key),
                Err(refusal) => Lookup::Settled(refusal),
            },
        }
    }

    /// The answer from what is held, without fetching: a stale key is better than none.
    fn settle(&self, kid: &str) -> Result<DecodingKey, OidcError> {
        match (self.keys.get(kid), &self.last_failure) {
            (Some(key), _) => Ok(key.clone()),
            (None, Some(why)) => Err(OidcError::KeysUnavailable(why.clone())),
            (None, None) => Err(OidcError::UnknownKey),
        }
    }
}

impl KeyCache {
    pub(super) fn new(url: String, http: reqwest::Client) -> Self {
        Self { url, http, state: Mutex::new(CacheState::default()), fetching: tokio::sync::Mutex::new(()) }
    }

    fn state(&self) -> MutexGuard<'_, CacheState> {
        // The state is always left consistent (plain assignments), so a panic elsewhere
        // while it was held does not make it unusable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) async fn key(&self, kid: &str) -> Result<DecodingKey, OidcError> {
        if let Some(answer) = self.held(kid) {
            return answer;
        }
        let _one_fetch_at_a_time = self.fetching.lock().await;
        // Another task may have fetched while this one waited.
        let for_unknown_kid = match self.state().lookup(kid, Instant::now()) {
            Lookup::Found(key) => return Ok(key),
            Lookup::Settled(refusal) => return Err(refusal),
            Lookup::Fetch { for_unknown_kid } => for_unknown_kid,
        };
        self.fetch(for_unknown_kid).await;
        self.state().settle(kid)
    }

    /// `None` when a fetch is needed.
    fn held(&self, kid: &str) -> Option<Result<DecodingKey, OidcError>> {
        match self.state().lookup(kid, Instant::now()) {
            Lookup::Found(key) => Some(Ok(key)),
            Lookup::Settled(refusal) => Some(Err(refusal)),
            Lookup::Fetch { .. } => None,
        }
    }

    /// Records the attempt only when it is over, so tasks queued behind it on `fetching` see
    /// its result rather than a refusal decided while it was still under way.
    async fn fetch(&self, for_unknown_kid: bool) {
        let started = Instant::now();
        let fetched = self.download().await;
        let mut state = self.state();
        state.last_attempt = Some(started);
        if for_unknown_kid {
            state.last_kid_refetch = Some(started);
        }
        match fetched {
            Ok((keys, max_age)) => {
                tracing::debug!(keys = keys.len(), max_age_secs = max_age.as_secs(), "OIDC signing keys fetched");
                state.keys = keys;
                state.fresh_until = Some(started + max_age);
                state.last_failure = None;
            }
            Err(why) => {
                tracing::warn!(error = %why, url = %self.url, "OIDC signing keys could not be fetched");
                state.last_failure = Some(why);
            }
        }
    }

    async fn download(&self) -> Result<(HashMap<String, DecodingKey>, Duration), String> {
        let response = self
            .http
            .get(&self.url)
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("the key server is unreachable: {}", causes(&e.without_url())))?;
        if !response.status().is_success() {
            return Err(format!("the key server answered {}", response.status()));
        }
        let max_age = max_age(response.headers()).unwrap_or(DEFAULT_MAX_AGE).min(LONGEST_MAX_AGE);
        let jwks: Jwks = response.json().await.map_err(|_| "the key server's answer is not a JWKS".to_string())?;
        let keys: HashMap<_, _> = jwks.keys.into_iter().filter_map(Jwk::into_rs256_key).collect();
        if keys.is_empty() {
            return Err("the JWKS holds no RS256 signing key".into());
        }
        Ok((keys, max_age))
    }
}

/// An error and its sources, `a: b: c`: reqwest's own message alone rarely says what failed.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `max-age` of a `Cache-Control` header, e.g. `public, max-age=20731, must-revalidate`.
pub(super) fn max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    let seconds = value.split(',').find_map(|directive| {
        let (name, seconds) = directive.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("max-age") {
            seconds.trim().trim_matches('"').parse().ok()
        } else {
            None
        }
    })?;
    Some(Duration::from_secs(seconds))
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

/// One JWKS entry, loosely typed so one odd entry does not hide the others.
#[derive(Deserialize)]
struct Jwk {
    kty: Option<String>,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
}

impl Jwk {
    fn into_rs256_key(self) -> Option<(String, DecodingKey)> {
        let usable = self.kty.as_deref() == Some("RSA")
            && self.alg.as_deref().is_none_or(|alg| alg == "RS256")
            && self.usage.as_deref().is_none_or(|usage| usage == "sig");
        if !usable {
            return None;
        }
        let key = DecodingKey::from_rsa_components(self.n.as_deref()?, self.e.as_deref()?).ok()?;
        Some((self.kid?, key))
    }
}
