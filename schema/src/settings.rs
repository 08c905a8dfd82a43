//! How to reach Postgres: either one connection string (`DATABASE_URL`) or the seeds' parts
//! (`DB_HOST`, `DB_PORT`, `DB_NAME`, `DB_USER`, `DB_PASSWORD`), plus pool limits. The binary
//! gathers these from the environment and the config file; this module checks them once, at
//! start-up, and turns them into a client configuration. Nothing here prints a password.

use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};

use crate::{Secret, SettingError};

/// Where the database is.
#[derive(Debug, Clone)]
pub enum ConnectTarget {
    /// A libpq-style connection string or `postgres://` URL, from the named setting.
    Url {
        /// The setting it came from, for error messages (e.g. `DATABASE_URL`).
        setting: String,
        /// The string itself; it may hold a password.
        url: Secret<String>,
    },
    /// Separate parts, as the clinic's seed services configured them.
    Parts {
        /// `DB_HOST`: a host name, an IP address, or a unix-socket directory.
        host: String,
        /// `DB_PORT`.
        port: u16,
        /// `DB_NAME`.
        dbname: String,
        /// `DB_USER`.
        user: String,
        /// `DB_PASSWORD`, if the server asks for one.
        password: Option<Secret<String>>,
    },
}

/// Connection-pool limits. The defaults are the seeds' (max 10, idle 30 s, connect 2 s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections open at once.
    pub max_size: u32,
    /// An idle connection is closed after this long.
    pub idle_timeout: Duration,
    /// Giving up on opening a connection after this long.
    pub connect_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self { max_size: 10, idle_timeout: Duration::from_secs(30), connect_timeout: Duration::from_secs(2) }
    }
}

/// Everything needed to open connections to the system of record.
#[derive(Debug, Clone)]
pub struct DbSettings {
    /// Where the database is.
    pub target: ConnectTarget,
    /// Pool limits.
    pub pool: PoolSettings,
    /// Shown in `pg_stat_activity.application_name`.
    pub application_name: String,
}

impl DbSettings {
    /// Settings from one connection string, naming `setting` in any error about it.
    pub fn from_url(setting: &str, url: impl Into<String>) -> Self {
        Self {
            target: ConnectTarget::Url { setting: setting.to_string(), url: Secret::new(url.into()) },
            pool: PoolSettings::default(),
            application_name: "august".to_string(),
        }
    }

    /// Checks the settings and builds the client configuration. Call once at start-up; an
    /// error names the setting at fault and never shows its value.
    pub fn pg_config(&self) -> Result<tokio_postgres::Config, SettingError> {
        let mut config = match &self.target {
            ConnectTarget::Url { setting, url } => parse_url(setting, url.expose())?,
            ConnectTarget::Parts { host, port, dbname, user, password } => {
                let mut config = tokio_postgres::Config::new();
                if host.trim().is_empty() {
                    return Err(SettingError::new("DB_HOST", "is empty"));
                }
                if dbname.trim().is_empty() {
                    return Err(SettingError::new("DB_NAME", "is empty"));
                }
                if user.trim().is_empty() {
                    return Err(SettingError::new("DB_USER", "is empty"));
                }
                config.host(host).port(*port).dbname(dbname).user(user);
                if let Some(password) = password {
                    config.password(password.expose().as_bytes());
                }
                config
            }
        };
        if self.pool.max_size == 0 {
            return Err(SettingError::new("DB_POOL_MAX_SIZE", "must be at least 1"));
        }
        if self.pool.connect_timeout.is_zero() {
            return Err(SettingError::new("DB_CONNECT_TIMEOUT_SECS", "must be more than 0"));
        }
        config.connect_timeout(self.pool.connect_timeout);
        config.application_name(&self.application_name);
        Ok(config)
    }

    /// The setting an operator would change to fix the target (`DATABASE_URL`, `DB_HOST`…).
    pub fn setting_name(&self) -> &str {
        match &self.target {
            ConnectTarget::Url { setting, .. } => setting,
            ConnectTarget::Parts { .. } => "DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD",
        }
    }

    /// `host:port/dbname as user`, for log lines and error messages (no password).
    pub fn describe(&self) -> String {
        match self.pg_config() {
            Ok(config) => describe_config(&config),
            Err(_) => "an invalid database setting".to_string(),
        }
    }
}

/// `host:port/dbname as user` for a client configuration, without its password.
pub fn describe_config(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("(default user)");
    let dbname = config.get_dbname().unwrap_or(user);
    format!("{host}:{port}/{dbname} as {user}")
}

fn parse_url(setting: &str, url: &str) -> Result<tokio_postgres::Config, SettingError> {
    if url.trim().is_empty() {
        return Err(SettingError::new(setting, "is empty"));
    }
    // The parser's own message can quote part of the string, which may be the password.
    let config: tokio_postgres::Config = url.parse().map_err(|_| {
        SettingError::new(
            setting,
            "is not a valid Postgres connection string (expected postgres://user:password@host:port/dbname)",
        )
    })?;
    if config.get_hosts().is_empty() {
        return Err(SettingError::new(setting, "names no host"));
    }
    if config.get_user().is_none() {
        return Err(SettingError::new(setting, "names no user"));
    }
    if config.get_ssl_mode() == SslMode::Require {
        return Err(SettingError::new(
            setting,
            "sslmode=require is not supported: reach Cloud SQL through its Auth Proxy or a unix socket",
        ));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_url_is_named_and_its_password_withheld() {
        let settings = DbSettings::from_url("DATABASE_URL", "postgres://u:s3cret@host:notaport/db");
        let err = settings.pg_config().unwrap_err();
        assert_eq!(err.setting, "DATABASE_URL");
        assert!(!err.to_string().contains("s3cret"));
    }

    #[test]
    fn a_url_without_host_is_refused() {
        let err = DbSettings::from_url("DATABASE_URL", "dbname=x user=y").pg_config().unwrap_err();
        assert!(err.to_string().contains("no host"), "{err}");
    }

    #[test]
    fn parts_build_a_config_and_describe_hides_the_password() {
        let settings = DbSettings {
            target: ConnectTarget::Parts {
                host: "db.internal".into(),
                port: 6543,
                dbname: "clinical".into(),
                user: "august".into(),
                password: Some(Secret::new("pw-123".into())),
            },
            pool: PoolSettings::default(),
            application_name: "august".into(),
        };
        let config = settings.pg_config().unwrap();
        assert_eq!(config.get_ports(), &[6543]);
        assert_eq!(settings.describe(), "db.internal:6543/clinical as august");
        assert!(!format!("{settings:?}").contains("pw-123"));
    }

    #[test]
    fn empty_parts_are_named() {
        let settings = DbSettings {
            target: ConnectTarget::Parts {
                host: "h".into(),
                port: 5432,
                dbname: " ".into(),
                user: "u".into(),
                password: None,
            },
            pool: PoolSettings::default(),
            application_name: "august".into(),
        };
        assert_eq!(settings.pg_config().unwrap_err().setting, "DB_NAME");
    }
}
