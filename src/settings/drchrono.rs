//! The DrChrono pull settings (`DRCHRONO_*`, `AUGUST_RECONCILE_SECS`) and the `/sync/*` OIDC
//! settings (`AUGUST_SYNC_*`), checked once at start-up.

use std::time::Duration;

use august_ingest::drchrono::DrChronoSettings;
use august_schema::{Secret, SettingError};

use super::Sources;

/// Who may call `/sync/*`.
#[derive(Debug, Clone)]
pub struct SyncOidc {
    /// `AUGUST_SYNC_JWKS_URL`.
    pub jwks_url: String,
    /// `AUGUST_SYNC_OIDC_AUDIENCE`.
    pub audience: String,
    /// `AUGUST_SYNC_OIDC_INVOKER`.
    pub invoker: Option<String>,
}

impl Sources {
    /// DrChrono's settings, or `None` when pull sync is off (no client id or secret set).
    pub fn drchrono(&self) -> Result<Option<DrChronoSettings>, SettingError> {
        let id = self.get("DRCHRONO_CLIENT_ID").map(|(v, _)| v);
        let secret = self.get("DRCHRONO_CLIENT_SECRET").map(|(v, _)| v);
        let (client_id, client_secret) = match (id, secret) {
            (None, None) => return Ok(None),
            (Some(id), Some(secret)) => (id, Secret::new(secret)),
            (None, Some(_)) => {
                return Err(SettingError::new("DRCHRONO_CLIENT_ID", "is not set (DRCHRONO_CLIENT_SECRET is)"))
            }
            (Some(_), None) => {
                return Err(SettingError::new("DRCHRONO_CLIENT_SECRET", "is not set (DRCHRONO_CLIENT_ID is)"))
            }
        };
        let (base, origin) = self.get("DRCHRONO_API_BASE").expect("DRCHRONO_API_BASE has a default");
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(SettingError::new(origin.name(), "must be an http(s) URL"));
        }
        let token_key = self.required("DRCHRONO_TOKEN_KEY")?;
        if token_key.len() < 16 {
            return Err(SettingError::new("DRCHRONO_TOKEN_KEY", "is too short to be a key (at least 16 characters)"));
        }
        let calls_per_hour: u32 = self
            .parse("DRCHRONO_CALLS_PER_HOUR", "a whole number")?
            .filter(|n| *n > 0)
            .ok_or_else(|| SettingError::new("DRCHRONO_CALLS_PER_HOUR", "must be at least 1"))?;
        let calls_reserve: u32 = self.parse("DRCHRONO_CALLS_RESERVE", "a whole number")?.unwrap_or(0);
        if calls_reserve >= calls_per_hour {
            return Err(SettingError::new("DRCHRONO_CALLS_RESERVE", "must be less than DRCHRONO_CALLS_PER_HOUR"));
        }
        let window: u64 = self
            .parse("DRCHRONO_RATE_WINDOW_SECS", "a whole number of seconds")?
            .filter(|s| *s >= 10)
            .ok_or_else(|| SettingError::new("DRCHRONO_RATE_WINDOW_SECS", "must be at least 10"))?;
        Ok(Some(DrChronoSettings {
            api_base: base.trim_end_matches('/').to_string(),
            client_id,
            client_secret,
            refresh_token: self.get("DRCHRONO_REFRESH_TOKEN").map(|(v, _)| Secret::new(v)),
            token_key: Secret::new(token_key),
            calls_per_hour,
            calls_reserve,
            rate_window: Duration::from_secs(window),
        }))
    }

    /// Seconds between reconciliation passes, or `None` when they are off.
    pub fn reconcile_every(&self) -> Result<Option<Duration>, SettingError> {
        let secs: u64 = self.parse("AUGUST_RECONCILE_SECS", "a whole number of seconds")?.unwrap_or(0);
        Ok((secs > 0).then(|| Duration::from_secs(secs)))
    }

    /// The `/sync/*` OIDC settings, or `None` when no audience is set (the endpoints then
    /// answer 503).
    pub fn sync_oidc(&self) -> Result<Option<SyncOidc>, SettingError> {
        let Some((audience, _)) = self.get("AUGUST_SYNC_OIDC_AUDIENCE") else { return Ok(None) };
        let (jwks_url, origin) = self.get("AUGUST_SYNC_JWKS_URL").expect("AUGUST_SYNC_JWKS_URL has a default");
        if !(jwks_url.starts_with("https://") || jwks_url.starts_with("http://")) {
            return Err(SettingError::new(origin.name(), "must be an http(s) URL"));
        }
        Ok(Some(SyncOidc { jwks_url, audience, invoker: self.get("AUGUST_SYNC_OIDC_INVOKER").map(|(v, _)| v) }))
    }
}
