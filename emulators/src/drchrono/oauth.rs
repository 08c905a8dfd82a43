//! OAuth 2 as DrChrono does it: `POST /o/token/` with a form (`grant_type=refresh_token`,
//! `refresh_token`, `client_id`, `client_secret`) answers a new access token, valid for
//! `expires_in` seconds ("Access tokens only last 48 hours"), and a new refresh token. Refresh
//! tokens rotate: the one just used stops working, so a client must store the new one before
//! it next refreshes. Errors use RFC 6749's bodies: `400 {"error": "invalid_grant"}` for an
//! unknown refresh token, `401 {"error": "invalid_client"}` for wrong client credentials.
//!
//! Every `/api/*` request must carry `Authorization: Bearer <access token>`; [`Tokens::check`]
//! says whether it does. Token requests do not count against the API quota.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{json, Value};

use super::{Shared, Stats};

/// The scopes a token grants (read access to what August pulls).
const SCOPE: &str = "patients:read calendar:read clinical:read billing:read user:read";

/// The client's credentials and every token issued.
#[derive(Debug)]
pub(crate) struct Tokens {
    client_id: String,
    client_secret: String,
    lifetime: Duration,
    refresh: HashSet<String>,
    access: HashMap<String, Instant>,
    refuse: bool,
}

impl Tokens {
    /// The client's credentials, its first refresh token and how long access tokens last.
    pub fn new(client_id: String, client_secret: String, refresh_token: String, lifetime: Duration) -> Tokens {
        let refresh = HashSet::from([refresh_token]);
        Tokens { client_id, client_secret, lifetime, refresh, access: HashMap::new(), refuse: false }
    }

    /// Whether an `Authorization` header carries an unexpired access token; `Err` is the
    /// `401`'s detail.
    pub fn check(&self, authorization: Option<&str>, now: Instant) -> Result<(), &'static str> {
        let Some(header) = authorization else { return Err("Authentication credentials were not provided.") };
        let token = header.strip_prefix("Bearer ").map(str::trim).unwrap_or_default();
        match self.access.get(token) {
            Some(expiry) if *expiry > now => Ok(()),
            Some(_) => Err("The access token has expired."),
            None => Err("Invalid token."),
        }
    }

    /// The refresh grant: the new token response, or the error status and body.
    fn refresh(&mut self, form: &HashMap<String, String>, now: Instant) -> Result<Value, (StatusCode, &'static str)> {
        let field = |name: &str| form.get(name).map(String::as_str);
        match field("grant_type") {
            Some("refresh_token") => {}
            Some("authorization_code") => return Err((StatusCode::BAD_REQUEST, "invalid_grant")),
            Some(_) => return Err((StatusCode::BAD_REQUEST, "unsupported_grant_type")),
            None => return Err((StatusCode::BAD_REQUEST, "invalid_request")),
        }
        if field("client_id") != Some(&self.client_id) || field("client_secret") != Some(&self.client_secret) {
            return Err((StatusCode::UNAUTHORIZED, "invalid_client"));
        }
        let Some(old) = field("refresh_token") else { return Err((StatusCode::BAD_REQUEST, "invalid_request")) };
        if self.refuse || !self.refresh.remove(old) {
            return Err((StatusCode::BAD_REQUEST, "invalid_grant"));
        }
        let access_token = Alphanumeric.sample_string(&mut rand::rng(), 30);
        let refresh_token = Alphanumeric.sample_string(&mut rand::rng(), 30);
        self.access.insert(access_token.clone(), now + self.lifetime);
        self.refresh.insert(refresh_token.clone());
        Ok(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.lifetime.as_secs(),
            "refresh_token": refresh_token,
            "scope": SCOPE,
        }))
    }

    /// Every access token issued so far expires at `now`.
    pub fn expire_all(&mut self, now: Instant) {
        for expiry in self.access.values_mut() {
            *expiry = now;
        }
    }

    /// Refuse (or stop refusing) every refresh with `invalid_grant`.
    pub fn refuse(&mut self, refuse: bool) {
        self.refuse = refuse;
    }

    /// The refresh token that works now (rotation leaves exactly one).
    pub fn current_refresh(&self) -> Option<String> {
        self.refresh.iter().next().cloned()
    }
}

/// `POST /o/token/`.
pub(crate) async fn token(
    State(shared): State<Shared>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let latency = shared.faults().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let answer = match form {
        Ok(Form(form)) => shared.tokens.lock().expect("tokens lock").refresh(&form, Instant::now()),
        Err(_) => Err((StatusCode::BAD_REQUEST, "invalid_request")),
    };
    match answer {
        Ok(body) => {
            Stats::bump(&shared.stats.token_refreshes);
            ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
        }
        Err((status, error)) => {
            Stats::bump(&shared.stats.token_refusals);
            (status, [(header::CACHE_CONTROL, "no-store")], Json(json!({ "error": error }))).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_refresh_token_works_once() {
        let mut tokens = Tokens::new("c".into(), "s".into(), "r0".into(), Duration::from_secs(60));
        let grant = |refresh: &str| {
            form(&[
                ("grant_type", "refresh_token"),
                ("client_id", "c"),
                ("client_secret", "s"),
                ("refresh_token", refresh),
            ])
        };
        let now = Instant::now();
        let body = tokens.refresh(&grant("r0"), now).expect("first refresh");
        assert_eq!(tokens.refresh(&grant("r0"), now), Err((StatusCode::BAD_REQUEST, "invalid_grant")));
        let access = format!("Bearer {}", body["access_token"].as_str().expect("access token"));
        assert_eq!(tokens.check(Some(&access), now), Ok(()));
        assert!(tokens.check(Some(&access), now + Duration::from_secs(61)).is_err(), "expired after its lifetime");
        let next = body["refresh_token"].as_str().expect("refresh token");
        assert!(tokens.refresh(&grant(next), now).is_ok());
    }

    #[test]
    fn wrong_client_credentials_are_invalid_client() {
        let mut tokens = Tokens::new("c".into(), "s".into(), "r0".into(), Duration::from_secs(60));
        let wrong = form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "c"),
            ("client_secret", "x"),
            ("refresh_token", "r0"),
        ]);
        assert_eq!(tokens.refresh(&wrong, Instant::now()), Err((StatusCode::UNAUTHORIZED, "invalid_client")));
    }
}
