//! How to reach Postgres: either one connection string (`DATABASE_URL`) or the seeds' parts
//! (`DB_HOST`, `DB_PORT`, `DB_NAME`, `DB_USER`, `DB_PASSWORD`), plus TLS (`DB_SSLMODE`…, or
//! the connection string's `sslmode`, `sslrootcert`, `sslcert`, `sslkey`) and pool limits.
//! The binary gathers these from the environment and the config file; this module checks them
//! once, at start-up, and turns them into a client configuration. Nothing here prints a
//! password.

use std::time::Duration;

use tokio_postgres::config::Host;

use crate::tls::{self, PgTls, SslMode, TlsSettingNames, TlsSettings};
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
    /// TLS (`DB_SSLMODE`, `DB_SSLROOTCERT`, `DB_SSLCERT`, `DB_SSLKEY`); a connection string
    /// may carry the same, but not both.
    pub tls: TlsSettings,
    /// Shown in `pg_stat_activity.application_name`.
    pub application_name: String,
}

impl DbSettings {
    /// Settings from one connection string, naming `setting` in any error about it.
    pub fn from_url(setting: &str, url: impl Into<String>) -> Self {
        Self {
            target: ConnectTarget::Url { setting: setting.to_string(), url: Secret::new(url.into()) },
            pool: PoolSettings::default(),
            tls: TlsSettings::default(),
            application_name: "august".to_string(),
        }
    }

    /// Checks the settings, reads the TLS files and builds the client configuration, whose
    /// connections use that TLS (see [`crate::tls`]). Call once at start-up; an error names
    /// the setting at fault and never shows its value.
    pub fn pg_config(&self) -> Result<tokio_postgres::Config, SettingError> {
        let (mut config, tls_settings, names) = self.checked()?;
        let tls = PgTls::build(&tls_settings, config.get_hosts(), names)?;
        tls::register(&mut config, tls);
        Ok(config)
    }

    /// The mode connections will use: the one set, else the host's default.
    pub fn ssl_mode(&self) -> Result<SslMode, SettingError> {
        let (config, tls, _) = self.checked()?;
        Ok(tls.mode.unwrap_or_else(|| SslMode::default_for(config.get_hosts())))
    }

    fn checked(&self) -> Result<(tokio_postgres::Config, TlsSettings, TlsSettingNames<'_>), SettingError> {
        let mut tls = self.tls.clone();
        let mut names = TlsSettingNames::SETTINGS;
        let mut config = match &self.target {
            ConnectTarget::Url { setting, url } => {
                let (rest, from_url) = split_tls_params(setting, url.expose())?;
                merge_tls(&mut tls, &mut names, from_url, setting)?;
                parse_url(setting, &rest)?
            }
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
        Ok((config, tls, names))
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
        match self.checked() {
            Ok((config, ..)) => describe_config(&config),
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
    Ok(config)
}

/// The TLS parameters a connection string names.
const TLS_PARAMS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// Takes libpq's TLS parameters out of a connection string (URL or `key=value` form), since
/// `tokio-postgres` knows only three of the five modes and none of the files. Returns the
/// rest, for `tokio-postgres` to parse, and the TLS parameters.
fn split_tls_params(setting: &str, url: &str) -> Result<(String, TlsSettings), SettingError> {
    let mut found: Vec<(String, String)> = Vec::new();
    let rest = if let Some((base, query)) =
        url.split_once('?').filter(|(base, _)| base.starts_with("postgres://") || base.starts_with("postgresql://"))
    {
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if TLS_PARAMS.contains(&key) {
                found.push((key.to_string(), percent_decode(value)));
            } else {
                kept.push(pair);
            }
        }
        if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url.to_string()
    } else {
        let mut kept = Vec::new();
        for (key, value, raw) in key_value_pairs(url)
            .ok_or_else(|| SettingError::new(setting, "is not a valid Postgres connection string"))?
        {
            if TLS_PARAMS.contains(&key.as_str()) {
                found.push((key, value));
            } else {
                kept.push(raw);
            }
        }
        kept.join(" ")
    };
    let mut tls = TlsSettings::default();
    for (key, value) in found {
        match key.as_str() {
            "sslmode" => {
                tls.mode = Some(value.parse().map_err(|_| {
                    SettingError::new(
                        setting,
                        "has an unknown sslmode (expected disable, prefer, require, verify-ca or verify-full)",
                    )
                })?)
            }
            "sslrootcert" => tls.root_cert = Some(value.into()),
            "sslcert" => tls.client_cert = Some(value.into()),
            _ => tls.client_key = Some(value.into()),
        }
    }
    Ok((rest, tls))
}

/// Adds the connection string's TLS parameters to the `DB_SSL*` settings; one given both
/// ways is an error naming both.
fn merge_tls<'a>(
    tls: &mut TlsSettings,
    names: &mut TlsSettingNames<'a>,
    from_url: TlsSettings,
    setting: &'a str,
) -> Result<(), SettingError> {
    let both = |param: &str, env: &str| {
        SettingError::new(env, format!("is set together with {param} in {setting}: set one or the other"))
    };
    if let Some(mode) = from_url.mode {
        if tls.mode.is_some() {
            return Err(both("sslmode", "DB_SSLMODE"));
        }
        tls.mode = Some(mode);
    }
    for (from, into, name, param, env) in [
        (from_url.root_cert, &mut tls.root_cert, &mut names.root_cert, "sslrootcert", "DB_SSLROOTCERT"),
        (from_url.client_cert, &mut tls.client_cert, &mut names.client_cert, "sslcert", "DB_SSLCERT"),
        (from_url.client_key, &mut tls.client_key, &mut names.client_key, "sslkey", "DB_SSLKEY"),
    ] {
        if let Some(path) = from {
            if into.is_some() {
                return Err(both(param, env));
            }
            *into = Some(path);
            *name = setting;
        }
    }
    Ok(())
}

/// `key=value` pairs of a libpq keyword string: the key, the unquoted value, and the pair as
/// written. `None` when a pair is malformed.
fn key_value_pairs(s: &str) -> Option<Vec<(String, String, String)>> {
    let mut pairs = Vec::new();
    let mut chars = s.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else { return Some(pairs) };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        chars.next().filter(|(_, c)| *c == '=')?;
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if(|(_, c)| *c == '\'').is_some() {
            loop {
                match chars.next()? {
                    (_, '\'') => break,
                    (_, '\\') => value.push(chars.next()?.1),
                    (_, c) => value.push(c),
                }
            }
        } else {
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                if c == '\\' {
                    value.push(chars.next()?.1);
                } else {
                    value.push(c);
                }
            }
        }
        let end = chars.peek().map_or(s.len(), |(i, _)| *i);
        pairs.push((key, value, s[start..end].to_string()));
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
            tls: TlsSettings::default(),
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
            tls: TlsSettings::default(),
            application_name: "august".into(),
        };
        assert_eq!(settings.pg_config().unwrap_err().setting, "DB_NAME");
    }

    #[test]
    fn tls_parameters_are_taken_out_of_both_forms_of_connection_string() {
        let (rest, tls) = split_tls_params(
            "DATABASE_URL",
            "postgres://u@h/db?sslmode=verify-ca&application_name=x&sslrootcert=%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u@h/db?application_name=x");
        assert_eq!(tls.mode, Some(SslMode::VerifyCa));
        assert_eq!(tls.root_cert.as_deref(), Some(std::path::Path::new("/ca.pem")));

        let (rest, tls) =
            split_tls_params("DATABASE_URL", "host=h user=u sslmode = verify-full sslkey='/k e y' dbname=db").unwrap();
        assert_eq!(rest, "host=h user=u dbname=db");
        assert_eq!(tls.mode, Some(SslMode::VerifyFull));
        assert_eq!(tls.client_key.as_deref(), Some(std::path::Path::new("/k e y")));
    }

    #[test]
    fn a_bad_sslmode_is_named() {
        let err = DbSettings::from_url("DATABASE_URL", "postgres://u@h/db?sslmode=allow").pg_config().unwrap_err();
        assert_eq!(err.setting, "DATABASE_URL");
        assert!(err.to_string().contains("sslmode"), "{err}");
    }

    #[test]
    fn sslmode_in_the_url_and_db_sslmode_together_are_refused() {
        let mut settings = DbSettings::from_url("DATABASE_URL", "postgres://u@h/db?sslmode=require");
        settings.tls.mode = Some(SslMode::Disable);
        assert_eq!(settings.pg_config().unwrap_err().setting, "DB_SSLMODE");
    }

    #[test]
    fn a_missing_root_certificate_file_names_its_setting() {
        let mut settings = DbSettings::from_url("DATABASE_URL", "postgres://u@db.internal/db");
        settings.tls.root_cert = Some("/nonexistent/ca.pem".into());
        let err = settings.pg_config().unwrap_err();
        assert_eq!(err.setting, "DB_SSLROOTCERT");
        let err = DbSettings::from_url("DATABASE_URL", "postgres://u@db.internal/db?sslrootcert=/nonexistent/ca.pem")
            .pg_config()
            .unwrap_err();
        assert_eq!(err.setting, "DATABASE_URL");
    }

    #[test]
    fn require_is_accepted_and_the_default_depends_on_the_host() {
        let config = DbSettings::from_url("DATABASE_URL", "postgres://u@h/db?sslmode=require").pg_config().unwrap();
        assert_eq!(config.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        assert_eq!(DbSettings::from_url("U", "postgres://u@10.0.0.3/db").ssl_mode().unwrap(), SslMode::VerifyFull);
        assert_eq!(DbSettings::from_url("U", "postgres://u@127.0.0.1/db").ssl_mode().unwrap(), SslMode::Prefer);
        assert_eq!(DbSettings::from_url("U", "host=/cloudsql/p:r:i user=u").ssl_mode().unwrap(), SslMode::Prefer);
    }
}
