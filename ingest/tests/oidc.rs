//! OIDC ID tokens for `/sync/*`: tokens signed with the test keys in `tests/keys/`, checked
//! against a JWKS served on a local port that counts its requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use august_ingest::oidc::{Caller, OidcError, OidcVerifier};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub const TEST_KEY: &[u8] = include_bytes!("keys/oidc-test-key.pem");
pub const OTHER_KEY: &[u8] = include_bytes!("keys/oidc-other-key.pem");
const TEST_JWKS: &str = include_str!("keys/oidc-test-jwks.json");
pub const KID: &str = "oidc-test-key";
pub const AUDIENCE: &str = "https://august.example.com/sync/drchrono";
pub const INVOKER: &str = "scheduler@august-clinic.iam.gserviceaccount.com";

/// A JWKS endpoint whose answer can be changed, counting the requests it gets.
pub struct KeyServer {
    url: String,
    fetches: Arc<AtomicUsize>,
    jwks: Arc<Mutex<Value>>,
}

impl KeyServer {
    pub async fn start() -> KeyServer {
        let fetches = Arc::new(AtomicUsize::new(0));
        let jwks = Arc::new(Mutex::new(serde_json::from_str(TEST_JWKS).unwrap()));
        let router = Router::new()
            .route(
                "/certs",
                get(|State((fetches, jwks)): State<(Arc<AtomicUsize>, Arc<Mutex<Value>>)>| async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let body = jwks.lock().unwrap().clone();
                    ([("cache-control", "public, max-age=3600")], Json(body))
                }),
            )
            .with_state((fetches.clone(), jwks.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/certs", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        KeyServer { url, fetches, jwks }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    pub fn verifier(&self, invoker: Option<&str>) -> OidcVerifier {
        OidcVerifier::new(self.url.clone(), AUDIENCE.into(), invoker.map(Into::into), reqwest::Client::new())
    }
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// What Cloud Scheduler's token says.
pub fn claims() -> Value {
    json!({
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "sub": "104857600000000000001",
        "azp": "104857600000000000001",
        "email": INVOKER,
        "email_verified": true,
        "iat": now(),
        "exp": now() + 3600,
    })
}

pub fn sign_with(claims: &Value, kid: &str, pem: &[u8]) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(pem).unwrap()).unwrap()
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A valid token's header.
pub fn valid() -> String {
    bearer(&sign_with(&claims(), KID, TEST_KEY))
}

pub fn with(changes: Value) -> Value {
    let mut claims = claims();
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

async fn refused(verifier: &OidcVerifier, claims: Value) -> OidcError {
    verifier.verify(Some(&bearer(&sign_with(&claims, KID, TEST_KEY)))).await.unwrap_err()
}

#[tokio::test]
async fn the_test_jwks_is_the_test_keys_public_half() {
    let derived =
        jsonwebtoken::jwk::Jwk::from_encoding_key(&EncodingKey::from_rsa_pem(TEST_KEY).unwrap(), Algorithm::RS256)
            .unwrap();
    let derived = serde_json::to_value(derived).unwrap();
    let published: Value = serde_json::from_str(TEST_JWKS).unwrap();
    assert_eq!(published["keys"][0]["n"], derived["n"]);
    assert_eq!(published["keys"][0]["e"], derived["e"]);
}

#[tokio::test]
async fn a_valid_token_is_accepted_with_its_email() {
    let server = KeyServer::start().await;
    let caller = server.verifier(Some(INVOKER)).verify(Some(&valid())).await.unwrap();
    assert_eq!(caller, Caller { email: Some(INVOKER.into()), subject: "104857600000000000001".into() });
}

#[tokio::test]
async fn the_short_issuer_and_a_lowercase_scheme_are_accepted() {
    let server = KeyServer::start().await;
    let token = sign_with(&with(json!({"iss": "accounts.google.com"})), KID, TEST_KEY);
    server.verifier(Some(INVOKER)).verify(Some(&format!("bearer {token}"))).await.unwrap();
}

#[tokio::test]
async fn keys_are_fetched_once_for_many_tokens() {
    let server = KeyServer::start().await;
    let verifier = server.verifier(None);
    verifier.verify(Some(&valid())).await.unwrap();
    verifier.clone().verify(Some(&valid())).await.unwrap();
    assert_eq!(server.fetches(), 1);
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let server = KeyServer::start().await;
    let refusal = refused(&server.verifier(None), with(json!({"aud": "https://elsewhere.example.com"}))).await;
    assert_eq!(refusal, OidcError::WrongAudience);
    assert!(!refusal.is_retryable());
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused() {
    let server = KeyServer::start().await;
    let verifier = server.verifier(None);
    assert_eq!(refused(&verifier, with(json!({"iss": "https://evil.example.com"}))).await, OidcError::WrongIssuer);
    // Unless that issuer is configured.
    let custom = verifier.with_issuers(vec!["https://evil.example.com".into()]);
    let token = sign_with(&with(json!({"iss": "https://evil.example.com"})), KID, TEST_KEY);
    custom.verify(Some(&bearer(&token))).await.unwrap();
    assert_eq!(refused(&custom, claims()).await, OidcError::WrongIssuer);
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let server = KeyServer::start().await;
    let ten_minutes_ago = json!({"iat": now() - 4200, "exp": now() - 600});
    assert_eq!(refused(&server.verifier(None), with(ten_minutes_ago)).await, OidcError::Expired);
}

#[tokio::test]
async fn a_token_without_iat_or_exp_is_refused() {
    let server = KeyServer::start().await;
    let verifier = server.verifier(None);
    assert_eq!(refused(&verifier, with(json!({"iat": null}))).await, OidcError::MissingClaim("iat"));
    assert_eq!(refused(&verifier, with(json!({"exp": null}))).await, OidcError::MissingClaim("exp"));
    assert_eq!(refused(&verifier, with(json!({"iat": now() + 600}))).await, OidcError::NotYetValid);
}

#[tokio::test]
async fn a_token_signed_by_another_key_under_the_same_kid_is_refused() {
    let server = KeyServer::start().await;
    let forged = sign_with(&claims(), KID, OTHER_KEY);
    assert_eq!(server.verifier(None).verify(Some(&bearer(&forged))).await, Err(OidcError::BadSignature));
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_then_is_refused() {
    let server = KeyServer::start().await;
    let verifier = server.verifier(None);
    verifier.verify(Some(&valid())).await.unwrap();
    assert_eq!(server.fetches(), 1);

    let stranger = bearer(&sign_with(&claims(), "rotated-away", TEST_KEY));
    assert_eq!(verifier.verify(Some(&stranger)).await, Err(OidcError::UnknownKey));
    assert_eq!(server.fetches(), 2, "an unknown kid refetches the keys");

    let another = bearer(&sign_with(&claims(), "never-published", TEST_KEY));
    assert_eq!(verifier.verify(Some(&another)).await, Err(OidcError::UnknownKey));
    assert_eq!(verifier.verify(Some(&stranger)).await, Err(OidcError::UnknownKey));
    assert_eq!(server.fetches(), 2, "no second refetch within 30 s");
    // Known keys are still served from the cache.
    verifier.verify(Some(&valid())).await.unwrap();
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn a_rotated_key_is_found_by_refetching() {
    let server = KeyServer::start().await;
    let verifier = server.verifier(None);
    verifier.verify(Some(&valid())).await.unwrap();

    let mut rotated =
        jsonwebtoken::jwk::Jwk::from_encoding_key(&EncodingKey::from_rsa_pem(OTHER_KEY).unwrap(), Algorithm::RS256)
            .unwrap();
    rotated.common.key_id = Some("oidc-other-key".into());
    server.jwks.lock().unwrap()["keys"].as_array_mut().unwrap().push(serde_json::to_value(rotated).unwrap());

    let token = sign_with(&claims(), "oidc-other-key", OTHER_KEY);
    verifier.verify(Some(&bearer(&token))).await.unwrap();
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn a_token_from_another_service_account_is_refused() {
    let server = KeyServer::start().await;
    let other = with(json!({"email": "someone-else@august-clinic.iam.gserviceaccount.com"}));
    assert_eq!(refused(&server.verifier(Some(INVOKER)), other.clone()).await, OidcError::WrongInvoker);
    assert_eq!(refused(&server.verifier(Some(INVOKER)), with(json!({"email": null}))).await, OidcError::WrongInvoker);
    // Without a configured invoker any Google-signed token for the audience is accepted.
    let token = sign_with(&other, KID, TEST_KEY);
    server.verifier(None).verify(Some(&bearer(&token))).await.unwrap();
}

#[tokio::test]
async fn an_unverified_email_is_refused() {
    let server = KeyServer::start().await;
    let verifier = server.verifier(Some(INVOKER));
    assert_eq!(refused(&verifier, with(json!({"email_verified": false}))).await, OidcError::EmailNotVerified);
    assert_eq!(refused(&verifier, with(json!({"email_verified": "false"}))).await, OidcError::EmailNotVerified);
    assert_eq!(refused(&verifier, with(json!({"email_verified": null}))).await, OidcError::EmailNotVerified);
    // Without an invoker the token passes, but its email is not vouched for.
    let token = sign_with(&with(json!({"email_verified": false})), KID, TEST_KEY);
    assert_eq!(server.verifier(None).verify(Some(&bearer(&token))).await.unwrap().email, None);
}

#[tokio::test]
async fn email_verified_as_the_string_true_is_accepted() {
    let server = KeyServer::start().await;
    let token = sign_with(&with(json!({"email_verified": "true"})), KID, TEST_KEY);
    let caller = server.verifier(Some(INVOKER)).verify(Some(&bearer(&token))).await.unwrap();
    assert_eq!(caller.email.as_deref(), Some(INVOKER));
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_public_key_is_refused() {
    let server = KeyServer::start().await;
    let jwks: Value = serde_json::from_str(TEST_JWKS).unwrap();
    let modulus =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwks["keys"][0]["n"].as_str().unwrap()).unwrap();
    let verifier = server.verifier(None);
    for public in [TEST_JWKS.as_bytes(), modulus.as_slice()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(KID.into());
        let token = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(public)).unwrap();
        assert_eq!(verifier.verify(Some(&bearer(&token))).await, Err(OidcError::WrongAlgorithm));
    }
    assert_eq!(server.fetches(), 0, "no key is looked up for a token that names the wrong algorithm");
}

#[tokio::test]
async fn an_unsigned_token_is_refused() {
    let server = KeyServer::start().await;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(json!({"alg": "none", "kid": KID, "typ": "JWT"}).to_string());
    let payload = b64.encode(claims().to_string());
    let verifier = server.verifier(None);
    assert_eq!(verifier.verify(Some(&bearer(&format!("{header}.{payload}.")))).await, Err(OidcError::WrongAlgorithm));
    // The header says RS256 but the signature is empty.
    let header = b64.encode(json!({"alg": "RS256", "kid": KID}).to_string());
    assert_eq!(verifier.verify(Some(&bearer(&format!("{header}.{payload}.")))).await, Err(OidcError::BadSignature));
}

#[tokio::test]
async fn a_missing_or_basic_authorization_header_is_refused() {
    let server = KeyServer::start().await;
    let verifier = server.verifier(None);
    assert_eq!(verifier.verify(None).await, Err(OidcError::Missing));
    assert_eq!(verifier.verify(Some("  ")).await, Err(OidcError::Missing));
    assert_eq!(verifier.verify(Some("Basic c2NoZWR1bGVyOnNlY3JldA==")).await, Err(OidcError::NotBearer));
    let token = sign_with(&claims(), KID, TEST_KEY);
    assert_eq!(verifier.verify(Some(&token)).await, Err(OidcError::NotBearer), "a bare token is not a Bearer header");
    assert_eq!(verifier.verify(Some("Bearer")).await, Err(OidcError::Malformed));
    assert_eq!(server.fetches(), 0);
}

#[tokio::test]
async fn a_malformed_token_is_refused() {
    let server = KeyServer::start().await;
    let verifier = server.verifier(None);
    let valid = sign_with(&claims(), KID, TEST_KEY);
    let (_, rest) = valid.split_once('.').unwrap();
    let cases = [
        "not-a-jwt".to_string(),
        "a.b".to_string(),
        format!("{valid}.extra"),
        format!("%%%.{rest}"),
        format!("{}.{rest}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("not json")),
        "x".repeat(10_000),
    ];
    for token in cases {
        assert_eq!(verifier.verify(Some(&bearer(&token))).await, Err(OidcError::Malformed), "{token:.40}");
    }
}

#[tokio::test]
async fn an_unreachable_key_server_is_a_retryable_refusal() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/certs", listener.local_addr().unwrap());
    drop(listener);
    let verifier = OidcVerifier::new(url, AUDIENCE.into(), None, reqwest::Client::new());
    let refusal = verifier.verify(Some(&valid())).await.unwrap_err();
    assert!(matches!(refusal, OidcError::KeysUnavailable(_)), "{refusal:?}");
    assert!(refusal.is_retryable());
    // Within 30 s the failure is repeated without another attempt, and stays retryable.
    assert!(verifier.verify(Some(&valid())).await.unwrap_err().is_retryable());
}

#[tokio::test]
async fn refusals_never_show_the_token_or_its_claims() {
    let server = KeyServer::start().await;
    let verifier = server.verifier(Some(INVOKER));
    let tokens = [
        sign_with(&with(json!({"aud": "https://elsewhere.example.com"})), KID, TEST_KEY),
        sign_with(&with(json!({"email": "someone-else@example.com"})), KID, TEST_KEY),
        sign_with(&claims(), KID, OTHER_KEY),
        sign_with(&claims(), "rotated-away", TEST_KEY),
    ];
    for token in tokens {
        let refusal = verifier.verify(Some(&bearer(&token))).await.unwrap_err();
        let shown = format!("{refusal} {refusal:?}");
        for secret in [token.as_str(), "elsewhere", "someone-else", "rotated-away", "104857600000000000001"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
