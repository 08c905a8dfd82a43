//! Who may call `/sync/*`: Cloud Scheduler sends a Google-signed OIDC ID token as
//! `Authorization: Bearer <jwt>`, and [`OidcVerifier::verify`] decides whether to believe it.
//!
//! A token is accepted when, in this order:
//!
//! 1. the header is `Bearer <three base64url parts>` and the token's header says `alg: RS256`
//!    (`none`, `HS*` and every other algorithm are refused before any key is looked at);
//! 2. its `kid` names a key in Google's JWKS ([`GOOGLE_JWKS_URL`]) and the signature verifies
//!    with that key;
//! 3. `iss` is one of the issuers ([`GOOGLE_ISSUERS`]), `aud` is the configured audience, `exp`
//!    is in the future and `iat` is present and not in the future (both with 60 s of leeway for
//!    clock skew), `sub` is present;
//! 4. when an invoker is configured, `email` is that service account and `email_verified` is
//!    true (a JSON bool, or the string `"true"`).
//!
//! # The key cache
//!
//! Keys are fetched on first use and kept for the response's `Cache-Control: max-age` (at
//! most a day), else an hour. A token whose `kid` is not in a fresh cache triggers one refetch
//! (Google rotates its keys), but such refetches happen at most once every 30 s, and a failed
//! fetch is retried at most once every 30 s, so a flood of bad tokens cannot make us hammer
//! Google. When a fetch fails, keys already held are still used until a fetch succeeds; a
//! token whose key cannot be had because of the failure is refused with
//! [`OidcError::KeysUnavailable`], the one retryable refusal. Fetches are one at a time (at
//! most 5 s each), and a token that needs one waits for it; a token whose key is held in a
//! fresh cache never waits on the network.
//!
//! Refusals are logged at `warn` with their [`OidcError::kind`] only: never the token, never a
//! claim's value.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

/// Where Google publishes the keys that sign its ID tokens.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// The `iss` values Google's ID tokens carry.
pub const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

/// Clock skew allowed on `exp`, `nbf` and `iat`.
const LEEWAY: Duration = Duration::from_secs(60);
/// Google's ID tokens are about 1 KiB; anything much larger is not one.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Checks Google-signed OIDC ID tokens. Cheap to clone: clones share one key cache.
#[derive(Clone)]
pub struct OidcVerifier {
    rules: Arc<Rules>,
    keys: Arc<KeyCache>,
}

/// Who sent an accepted token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The `email` claim, only when Google vouches for it (`email_verified` is true).
    pub email: Option<String>,
    /// The `sub` claim: Google's stable id of the account.
    pub subject: String,
}

/// Why a token was refused. The message names what is wrong, never the token or a claim's
/// value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// There is no `Authorization` header.
    #[error("the Authorization header is missing")]
    Missing,
    /// The `Authorization` header is not `Bearer <token>` (e.g. `Basic`).
    #[error("the Authorization header is not a Bearer token")]
    NotBearer,
    /// The token is not a well-formed JWT.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// The token's header names an algorithm other than RS256.
    #[error("the token is not signed with RS256")]
    WrongAlgorithm,
    /// The token names no `kid`, or one that is not among Google's published keys.
    #[error("the token is not signed with a key Google publishes")]
    UnknownKey,
    /// The signature does not verify with the key the token names.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// A required claim is absent: `exp`, `iat`, `iss`, `aud` or `sub`.
    #[error("the token has no {0} claim")]
    MissingClaim(&'static str),
    /// `aud` is not the configured audience.
    #[error("the token is for another audience")]
    WrongAudience,
    /// `iss` is not one of the accepted issuers.
    #[error("the token is not issued by Google")]
    WrongIssuer,
    /// `email` is not the configured invoker.
    #[error("the token is not from the configured invoker")]
    WrongInvoker,
    /// The invoker's `email_verified` is not true.
    #[error("the token's email is not verified")]
    EmailNotVerified,
    /// Google's keys could not be fetched, so the token could not be checked: retry later.
    #[error("the signing keys could not be fetched: {0}")]
    KeysUnavailable(String),
}

impl OidcError {
    /// Whether the same token may be accepted later: only when the keys could not be fetched.
    pub fn is_retryable(&self) -> bool {
        matches!(self, OidcError::KeysUnavailable(_))
    }

    /// A machine-readable name of the refusal, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            OidcError::Missing => "missing",
            OidcError::NotBearer => "not_bearer",
            OidcError::Malformed => "malformed",
            OidcError::WrongAlgorithm => "wrong_algorithm",
            OidcError::UnknownKey => "unknown_key",
            OidcError::BadSignature => "bad_signature",
            OidcError::Expired => "expired",
            OidcError::NotYetValid => "not_yet_valid",
            OidcError::MissingClaim(_) => "missing_claim",
            OidcError::WrongAudience => "wrong_audience",
            OidcError::WrongIssuer => "wrong_issuer",
            OidcError::WrongInvoker => "wrong_invoker",
            OidcError::EmailNotVerified => "email_not_verified",
            OidcError::KeysUnavailable(_) => "keys_unavailable",
        }
    }
}

impl OidcVerifier {
    /// A verifier of tokens for `audience` (the URL Cloud Scheduler is configured to put in
    /// `aud`), signed by the keys at `jwks_url` ([`GOOGLE_JWKS_URL`] in production) and issued by
    /// [`GOOGLE_ISSUERS`]. With `invoker`, only that verified email is accepted.
    pub fn new(jwks_url: String, audience: String, invoker: Option<String>, http: reqwest::Client) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = LEEWAY.as_secs();
        validation.validate_nbf = true;
        validation.set_audience(&[audience]);
        validation.set_issuer(&GOOGLE_ISSUERS);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        OidcVerifier { rules: Arc::new(Rules { validation, invoker }), keys: Arc::new(KeyCache::new(jwks_url, http)) }
    }

    /// The same verifier, accepting these `iss` values instead of [`GOOGLE_ISSUERS`].
    pub fn with_issuers(self, issuers: Vec<String>) -> Self {
        let mut rules = Arc::unwrap_or_clone(self.rules);
        rules.validation.set_issuer(&issuers);
        OidcVerifier { rules: Arc::new(rules), keys: self.keys }
    }

    /// Checks the raw `Authorization` header value, if any, and says who sent it.
    pub async fn verify(&self, header: Option<&str>) -> Result<Caller, OidcError> {
        let verdict = self.check(header).await;
        if let Err(refusal) = &verdict {
            tracing::warn!(kind = refusal.kind(), "OIDC token refused");
        }
        verdict
    }

    async fn check(&self, header: Option<&str>) -> Result<Caller, OidcError> {
        let token = bearer_token(header)?;
        let jose = jose_header(token)?;
        if jose.alg != "RS256" {
            return Err(OidcError::WrongAlgorithm);
        }
        let kid = jose.kid.ok_or(OidcError::UnknownKey)?;
        let key = self.keys.key(&kid).await?;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &self.rules.validation).map_err(refusal)?.claims;

        let iat = claims.iat.ok_or(OidcError::MissingClaim("iat"))?;
        if iat > jsonwebtoken::get_current_timestamp() + LEEWAY.as_secs() {
            return Err(OidcError::NotYetValid);
        }
        let subject = claims.sub.ok_or(OidcError::MissingClaim("sub"))?;
        let verified = claims.email_verified.is_some_and(|flag| flag.is_true());
        if let Some(invoker) = &self.rules.invoker {
            if claims.email.as_deref() != Some(invoker.as_str()) {
                return Err(OidcError::WrongInvoker);
            }
            if !verified {
                return Err(OidcError::EmailNotVerified);
            }
        }
        Ok(Caller { email: claims.email.filter(|_| verified), subject })
    }
}

/// What a token must satisfy besides its signature.
#[derive(Clone)]
struct Rules {
    validation: Validation,
    invoker: Option<String>,
}

/// The claims checked here; jsonwebtoken checks `exp`, `nbf`, `iss` and `aud`.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    iat: Option<u64>,
    email: Option<String>,
    email_verified: Option<Flag>,
}

/// Google sends `email_verified` as a bool; some issuers send the string `"true"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
}

impl Flag {
    fn is_true(&self) -> bool {
        match self {
            Flag::Bool(b) => *b,
            Flag::Text(s) => s == "true",
        }
    }
}

/// The part of the JOSE header read before a key is chosen.
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    kid: Option<String>,
}

fn bearer_token(header: Option<&str>) -> Result<&str, OidcError> {
    let value = header.map(str::trim).filter(|v| !v.is_empty()).ok_or(OidcError::Missing)?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(OidcError::NotBearer);
    }
    match token.trim() {
        "" => Err(OidcError::Malformed),
        token => Ok(token),
    }
}

/// Reads the header ourselves so an unsupported `alg` (which jsonwebtoken cannot even parse,
/// e.g. `none`) is named as such, and so no key is looked up for a token we would refuse anyway.
fn jose_header(token: &str) -> Result<JoseHeader, OidcError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(OidcError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(OidcError::Malformed);
    };
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).map_err(|_| OidcError::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| OidcError::Malformed)
}

fn refusal(error: jsonwebtoken::errors::Error) -> OidcError {
    match error.kind() {
        ErrorKind::InvalidSignature => OidcError::BadSignature,
        ErrorKind::ExpiredSignature => OidcError::Expired,
        ErrorKind::ImmatureSignature => OidcError::NotYetValid,
        ErrorKind::InvalidAudience => OidcError::WrongAudience,
        ErrorKind::InvalidIssuer => OidcError::WrongIssuer,
        ErrorKind::InvalidAlgorithm => OidcError::WrongAlgorithm,
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => OidcError::MissingClaim("exp"),
            "iss" => OidcError::MissingClaim("iss"),
            "aud" => OidcError::MissingClaim("aud"),
            "sub" => OidcError::MissingClaim("sub"),
            _ => OidcError::Malformed,
        },
        // A published key that cannot verify anything vouches for nothing.
        ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat | ErrorKind::Provider(_) => OidcError::BadSignature,
        _ => OidcError::Malformed,
    }
}

mod keys;

use keys::KeyCache;

#[cfg(test)]
mod tests {
    use super::keys::max_age;
    use super::*;

    fn headers(cache_control: &str) -> reqwest::header::HeaderMap {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::CACHE_CONTROL, cache_control.parse().expect("a valid header value"));
        headers
    }

    #[test]
    fn max_age_is_read_from_cache_control() {
        let google = headers("public, max-age=20731, must-revalidate, no-transform");
        assert_eq!(max_age(&google), Some(Duration::from_secs(20731)));
        assert_eq!(max_age(&headers("Max-Age = 60")), Some(Duration::from_secs(60)));
        assert_eq!(max_age(&headers("no-cache")), None);
        assert_eq!(max_age(&headers("max-age=soon")), None);
        assert_eq!(max_age(&reqwest::header::HeaderMap::new()), None);
    }
}
