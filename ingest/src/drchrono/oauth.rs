//! DrChrono's OAuth 2 tokens (`{base}/o/token/`): access tokens last 48 h (`expires_in`), and a
//! refresh (`grant_type=refresh_token` with `refresh_token`, `client_id`, `client_secret`) may
//! hand back a new refresh token, which is stored every time.
//!
//! The tokens live in Postgres (`drchrono_oauth_tokens`, one row), sealed with
//! `DRCHRONO_TOKEN_KEY`: AES-256-CBC under one key derived from it, then HMAC-SHA256 over IV and
//! ciphertext under another, so a wrong key or a changed byte is detected rather than decrypted
//! into garbage. `DRCHRONO_REFRESH_TOKEN` seeds the row once (its hash is kept; a different seed
//! is a re-authorisation and replaces the row). A refresh runs while holding the row's lock
//! (`SELECT … FOR UPDATE`), so two processes never spend the same refresh token: the second
//! finds the first one's new access token and uses it.

use std::sync::Mutex;
use std::time::Duration;

use aes::cipher::{block_padding::Pkcs7, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use august_schema::access_log::{AccessEntry, AccessLog};
use august_schema::{DbError, PgPool, Secret};

use super::budget::pool_error;
use super::error::DrChronoError;

/// An access token is refreshed this long before it expires.
const REFRESH_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Seals and opens tokens with keys derived from `DRCHRONO_TOKEN_KEY`.
#[derive(Clone)]
pub struct Sealer {
    cipher_key: [u8; 32],
    mac_key: [u8; 32],
}

impl Sealer {
    /// Keys derived from the configured secret.
    pub fn new(secret: &Secret<String>) -> Self {
        let derive = |purpose: &[u8]| -> [u8; 32] {
            let mut hash = Sha256::new();
            hash.update(purpose);
            hash.update(secret.expose().as_bytes());
            hash.finalize().into()
        };
        Self { cipher_key: derive(b"august drchrono token cipher\0"), mac_key: derive(b"august drchrono token mac\0") }
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.mac_key).expect("HMAC takes any key length")
    }

    /// `iv ‖ ciphertext ‖ tag`.
    pub fn seal(&self, plaintext: &str) -> Vec<u8> {
        let iv: [u8; 16] = rand::random();
        let ciphertext = cbc::Encryptor::<aes::Aes256>::new(&self.cipher_key.into(), &iv.into())
            .encrypt_padded_vec::<Pkcs7>(plaintext.as_bytes());
        let mut sealed = iv.to_vec();
        sealed.extend_from_slice(&ciphertext);
        let mut mac = self.mac();
        mac.update(&sealed);
        sealed.extend_from_slice(&mac.finalize().into_bytes());
        sealed
    }

    /// The plaintext, or [`DrChronoError::BadTokenKey`] when the tag does not match.
    pub fn open(&self, sealed: &[u8]) -> Result<Secret<String>, DrChronoError> {
        if sealed.len() < 16 + 16 + 32 {
            return Err(DrChronoError::BadTokenKey);
        }
        let (body, tag) = sealed.split_at(sealed.len() - 32);
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_slice(tag).map_err(|_| DrChronoError::BadTokenKey)?;
        let (iv, ciphertext) = body.split_at(16);
        let iv: [u8; 16] = iv.try_into().map_err(|_| DrChronoError::BadTokenKey)?;
        let plaintext = cbc::Decryptor::<aes::Aes256>::new(&self.cipher_key.into(), &iv.into())
            .decrypt_padded_vec::<Pkcs7>(ciphertext)
            .map_err(|_| DrChronoError::BadTokenKey)?;
        String::from_utf8(plaintext).map(Secret::new).map_err(|_| DrChronoError::BadTokenKey)
    }
}

/// The OAuth client's identity.
#[derive(Clone)]
pub struct OAuthClient {
    /// `{DRCHRONO_API_BASE}/o/token/`.
    pub token_url: String,
    /// `DRCHRONO_CLIENT_ID`.
    pub client_id: String,
    /// `DRCHRONO_CLIENT_SECRET`.
    pub client_secret: Secret<String>,
}

#[derive(Clone)]
struct AccessToken {
    token: Secret<String>,
    expires_at: DateTime<Utc>,
}

/// The stored tokens and the one place that refreshes them.
pub struct TokenStore {
    pool: PgPool,
    http: reqwest::Client,
    oauth: OAuthClient,
    sealer: Sealer,
    log: AccessLog,
    cached: Mutex<Option<AccessToken>>,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
}

impl TokenStore {
    /// A store over `drchrono_oauth_tokens`.
    pub fn new(pool: PgPool, http: reqwest::Client, oauth: OAuthClient, sealer: Sealer, log: AccessLog) -> Self {
        Self { pool, http, oauth, sealer, log, cached: Mutex::new(None) }
    }

    /// Seeds the row from `DRCHRONO_REFRESH_TOKEN`, unless it was seeded from that same token
    /// already (DrChrono may have rotated it since). Without a seed, a row must exist.
    pub async fn seed(&self, refresh_token: Option<&Secret<String>>) -> Result<(), DrChronoError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let Some(seed) = refresh_token else {
            let exists = client
                .query_opt("SELECT 1 FROM drchrono_oauth_tokens", &[])
                .await
                .map_err(|e| DbError::new("read the DrChrono token store", e))?;
            return exists.map(|_| ()).ok_or(DrChronoError::NotConfigured("DRCHRONO_REFRESH_TOKEN"));
        };
        let seed_hash = hex::encode(Sha256::digest(seed.expose().as_bytes()));
        client
            .execute(
                "INSERT INTO drchrono_oauth_tokens (refresh_token, seed_hash) VALUES ($1, $2)
                 ON CONFLICT (account) DO UPDATE
                    SET refresh_token = EXCLUDED.refresh_token, seed_hash = EXCLUDED.seed_hash,
                        access_token = NULL, access_expires_at = NULL, updated_at = now()
                  WHERE drchrono_oauth_tokens.seed_hash <> EXCLUDED.seed_hash",
                &[&self.sealer.seal(seed.expose()), &seed_hash],
            )
            .await
            .map_err(|e| DbError::new("seed the DrChrono token store", e))?;
        Ok(())
    }

    /// A valid access token: the cached one, the stored one, or a fresh one.
    pub async fn access_token(&self) -> Result<Secret<String>, DrChronoError> {
        if let Some(cached) = self.cached.lock().expect("token cache").clone() {
            if cached.expires_at - REFRESH_MARGIN > Utc::now() {
                return Ok(cached.token);
            }
        }
        self.refresh(None).await
    }

    /// DrChrono refused `rejected`: refresh, unless another process already replaced it.
    pub async fn after_unauthorized(&self, rejected: &Secret<String>) -> Result<Secret<String>, DrChronoError> {
        *self.cached.lock().expect("token cache") = None;
        self.refresh(Some(rejected)).await
    }

    async fn refresh(&self, rejected: Option<&Secret<String>>) -> Result<Secret<String>, DrChronoError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(|e| DbError::new("begin", e))?;
        let row = tx
            .query_opt(
                "SELECT access_token, access_expires_at, refresh_token FROM drchrono_oauth_tokens FOR UPDATE",
                &[],
            )
            .await
            .map_err(|e| DbError::new("lock the DrChrono token store", e))?
            .ok_or(DrChronoError::NotConfigured("DRCHRONO_REFRESH_TOKEN"))?;
        let stored: Option<Vec<u8>> = row.get(0);
        let expires_at: Option<DateTime<Utc>> = row.get(1);
        if let (Some(sealed), Some(expires_at)) = (stored, expires_at) {
            let token = self.sealer.open(&sealed)?;
            let replaced = rejected.is_none_or(|r| r.expose() != token.expose());
            if replaced && expires_at - REFRESH_MARGIN > Utc::now() {
                tx.commit().await.map_err(|e| DbError::new("commit", e))?;
                return Ok(self.remember(token, expires_at));
            }
        }
        let refresh_token = self.sealer.open(row.get(2))?;
        let fresh = self.call_token_endpoint(&refresh_token).await?;
        let expires_at = Utc::now() + chrono::TimeDelta::seconds(fresh.expires_in.unwrap_or(48 * 3600).max(60));
        let rotated = fresh.refresh_token.as_deref().unwrap_or(refresh_token.expose());
        tx.execute(
            "UPDATE drchrono_oauth_tokens SET access_token = $1, access_expires_at = $2, refresh_token = $3,
                    refreshed_at = now(), updated_at = now()",
            &[&self.sealer.seal(&fresh.access_token), &expires_at, &self.sealer.seal(rotated)],
        )
        .await
        .map_err(|e| DbError::new("store the DrChrono tokens", e))?;
        tx.commit().await.map_err(|e| DbError::new("commit", e))?;
        tracing::info!(expires_at = %expires_at, "DrChrono access token refreshed");
        Ok(self.remember(Secret::new(fresh.access_token), expires_at))
    }

    fn remember(&self, token: Secret<String>, expires_at: DateTime<Utc>) -> Secret<String> {
        *self.cached.lock().expect("token cache") = Some(AccessToken { token: token.clone(), expires_at });
        token
    }

    async fn call_token_endpoint(&self, refresh_token: &Secret<String>) -> Result<TokenResponse, DrChronoError> {
        const PATH: &str = "/o/token/";
        let form = [
            ("refresh_token", refresh_token.expose().as_str()),
            ("grant_type", "refresh_token"),
            ("client_id", self.oauth.client_id.as_str()),
            ("client_secret", self.oauth.client_secret.expose().as_str()),
        ];
        let started = std::time::Instant::now();
        let sent = self.http.post(&self.oauth.token_url).form(&form).timeout(Duration::from_secs(30)).send().await;
        let status = sent.as_ref().ok().map(|r| r.status().as_u16());
        self.log.record(AccessEntry {
            method: "POST",
            path_template: PATH.into(),
            status,
            duration: started.elapsed(),
            rows: None,
            error: None,
        });
        let response =
            sent.map_err(|e| DrChronoError::Unavailable { path: PATH, reason: super::client::transport_kind(&e) })?;
        match response.status().as_u16() {
            200..=299 => {
                response.json().await.map_err(|_| DrChronoError::BadPage { path: PATH, problem: "no access_token" })
            }
            400 | 401 | 403 => {
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                let code = match body.get("error").and_then(|e| e.as_str()) {
                    Some("invalid_client") => "invalid_client",
                    Some("unauthorized_client") => "unauthorized_client",
                    _ => "invalid_grant",
                };
                tracing::error!(code, "DrChrono refused the token refresh");
                Err(DrChronoError::Reauthorise(code))
            }
            status => Err(DrChronoError::Unavailable { path: PATH, reason: format!("status {status}") }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_tokens_open_with_the_same_key_only() {
        let sealer = Sealer::new(&Secret::new("key one, long enough".to_string()));
        let sealed = sealer.seal("access-token-123");
        assert!(!sealed.windows(16).any(|w| w == b"access-token-123"), "no plaintext in the sealed bytes");
        assert_eq!(sealer.open(&sealed).unwrap().expose(), "access-token-123");
        let other = Sealer::new(&Secret::new("key two, long enough".to_string()));
        assert!(matches!(other.open(&sealed), Err(DrChronoError::BadTokenKey)));
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert!(matches!(sealer.open(&tampered), Err(DrChronoError::BadTokenKey)));
        assert_ne!(sealer.seal("x"), sealer.seal("x"), "a fresh IV every time");
    }
}
