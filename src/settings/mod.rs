//! Settings: every knob August reads, from the environment or from the optional TOML file
//! given with `--config`, the environment winning. Each setting is declared once in
//! [`SETTINGS`] (name, file key, default, meaning), which drives the lookup, the error
//! messages and the README's table. A setting that is missing or malformed is reported as one
//! line naming it, and the binary exits with code 2; a secret's value is never printed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use august_schema::settings::ConnectTarget;
use august_schema::{DbSettings, PoolSettings, Secret, SettingError};

mod catalog;
mod drchrono;

pub use catalog::{markdown_table, SETTINGS};

/// Where a value came from, for error messages.
#[derive(Debug, Clone)]
enum Origin {
    Env(&'static str),
    File(&'static str, PathBuf),
    Default(&'static str),
}

impl Origin {
    fn name(&self) -> String {
        match self {
            Origin::Env(name) | Origin::Default(name) => (*name).to_string(),
            Origin::File(key, path) => format!("{key} (in {})", path.display()),
        }
    }
}

/// The environment and the config file, read once at start-up.
pub struct Sources {
    env: HashMap<String, String>,
    file: HashMap<String, String>,
    file_path: Option<PathBuf>,
}

impl std::fmt::Debug for Sources {
    /// Keys only: the values include every secret (`DB_PASSWORD`, `CODA_API_TOKEN`, …).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn keys(map: &HashMap<String, String>) -> Vec<&str> {
            let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
            keys.sort_unstable();
            keys
        }
        f.debug_struct("Sources")
            .field("env", &keys(&self.env))
            .field("file", &keys(&self.file))
            .field("file_path", &self.file_path)
            .finish()
    }
}

impl Sources {
    /// Reads `config_file` (if given) and takes `env` as the environment. A file that cannot
    /// be read or parsed, or that has a key August does not know, is an error naming it.
    pub fn load(
        config_file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingError> {
        let mut file = HashMap::new();
        if let Some(path) = config_file {
            let name = || format!("--config {}", path.display());
            let text =
                std::fs::read_to_string(path).map_err(|e| SettingError::new(name(), format!("cannot read: {e}")))?;
            let table: toml::Table = text
                .parse()
                .map_err(|e: toml::de::Error| SettingError::new(name(), format!("not valid TOML: {}", e.message())))?;
            flatten("", &table, &mut file)
                .map_err(|key| SettingError::new(name(), format!("`{key}` must be a string, number or boolean")))?;
            if let Some(unknown) = file.keys().find(|key| !SETTINGS.iter().any(|s| s.file_key == key.as_str())) {
                return Err(SettingError::new(
                    format!("{unknown} (in {})", path.display()),
                    "is not a setting August knows",
                ));
            }
        }
        Ok(Self { env: env.into_iter().collect(), file, file_path: config_file.map(Path::to_path_buf) })
    }

    fn get(&self, env: &'static str) -> Option<(String, Origin)> {
        let setting = SETTINGS.iter().find(|s| s.env == env).expect("every looked-up setting is declared");
        if let Some(value) = self.env.get(env).filter(|v| !v.is_empty()) {
            return Some((value.clone(), Origin::Env(env)));
        }
        if let (Some(value), Some(path)) = (self.file.get(setting.file_key), &self.file_path) {
            return Some((value.clone(), Origin::File(setting.file_key, path.clone())));
        }
        setting.default.map(|d| (d.to_string(), Origin::Default(env)))
    }

    fn is_set(&self, env: &'static str) -> bool {
        matches!(self.get(env), Some((_, Origin::Env(_) | Origin::File(..))))
    }

    fn parse<T: std::str::FromStr>(&self, env: &'static str, what: &str) -> Result<Option<T>, SettingError> {
        match self.get(env) {
            None => Ok(None),
            Some((value, origin)) => {
                value.trim().parse().map(Some).map_err(|_| SettingError::new(origin.name(), format!("must be {what}")))
            }
        }
    }

    fn required(&self, env: &'static str) -> Result<String, SettingError> {
        self.get(env).map(|(v, _)| v).ok_or_else(|| SettingError::new(env, "is not set"))
    }

    /// The database settings, checked: either `DATABASE_URL` or `DB_HOST`+`DB_NAME`+`DB_USER`.
    pub fn database(&self) -> Result<(DbSettings, tokio_postgres::Config), SettingError> {
        let pool = PoolSettings {
            max_size: self
                .parse("DB_POOL_MAX_SIZE", "a whole number from 1 to 1000")?
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| SettingError::new("DB_POOL_MAX_SIZE", "must be a whole number from 1 to 1000"))?,
            idle_timeout: Duration::from_secs(
                self.parse("DB_POOL_IDLE_SECS", "a whole number of seconds")?.unwrap_or(30),
            ),
            connect_timeout: Duration::from_secs(
                self.parse::<u64>("DB_CONNECT_TIMEOUT_SECS", "a whole number of seconds")?
                    .filter(|s| *s > 0)
                    .ok_or_else(|| SettingError::new("DB_CONNECT_TIMEOUT_SECS", "must be at least 1"))?,
            ),
        };
        let password = self.get("DB_PASSWORD").map(|(v, _)| Secret::new(v));
        let target = if let Some((url, origin)) = self.get("DATABASE_URL") {
            if let Some(part) = ["DB_HOST", "DB_NAME", "DB_USER"].into_iter().find(|p| self.is_set(p)) {
                return Err(SettingError::new(
                    origin.name(),
                    format!("is set together with {part}: set one or the other"),
                ));
            }
            ConnectTarget::Url { setting: origin.name(), url: Secret::new(url) }
        } else if self.is_set("DB_HOST") || self.is_set("DB_NAME") || self.is_set("DB_USER") {
            ConnectTarget::Parts {
                host: self.required("DB_HOST")?,
                port: self
                    .parse("DB_PORT", "a port number (1-65535)")?
                    .filter(|p| *p > 0)
                    .ok_or_else(|| SettingError::new("DB_PORT", "must be a port number (1-65535)"))?,
                dbname: self.required("DB_NAME")?,
                user: self.required("DB_USER")?,
                password: password.clone(),
            }
        } else {
            return Err(SettingError::new(
                "DATABASE_URL",
                "is not set (set DATABASE_URL, or DB_HOST, DB_NAME and DB_USER)",
            ));
        };
        let tls = august_schema::tls::TlsSettings {
            mode: self.parse("DB_SSLMODE", "one of disable, prefer, require, verify-ca, verify-full")?,
            root_cert: self.get("DB_SSLROOTCERT").map(|(v, _)| v.into()),
            client_cert: self.get("DB_SSLCERT").map(|(v, _)| v.into()),
            client_key: self.get("DB_SSLKEY").map(|(v, _)| v.into()),
        };
        let settings = DbSettings { target, pool, tls, application_name: "august".to_string() };
        let mut config = settings.pg_config()?;
        if config.get_password().is_none() {
            if let Some(password) = password {
                config.password(password.expose().as_bytes());
            }
        }
        Ok((settings, config))
    }

    /// The replication slot `AUGUST_SLOT` names, checked against the slot-name rules; `None`
    /// when unset (the pipeline then picks the database's default, see
    /// [`august_cdc::slot::choose_slot`]).
    pub fn slot(&self) -> Result<Option<String>, SettingError> {
        let Some((slot, origin)) = self.get("AUGUST_SLOT") else { return Ok(None) };
        if !august_cdc::slot::is_valid_slot_name(&slot) {
            return Err(SettingError::new(
                origin.name(),
                "must be lower-case letters, digits and underscores, at most 63 of them",
            ));
        }
        Ok(Some(slot))
    }

    /// The replication consumer's settings; its slot is [`Sources::slot`] when set (the
    /// pipeline resolves the default against the database).
    pub fn cdc(&self) -> Result<august_cdc::CdcConfig, SettingError> {
        let slot = self.slot()?.unwrap_or_default();
        let heartbeat: u64 = self
            .parse("AUGUST_HEARTBEAT_SECS", "a whole number of seconds")?
            .filter(|s| *s > 0)
            .ok_or_else(|| SettingError::new("AUGUST_HEARTBEAT_SECS", "must be at least 1"))?;
        Ok(august_cdc::CdcConfig {
            slot,
            heartbeat: Some(Duration::from_secs(heartbeat)),
            ..august_cdc::CdcConfig::default()
        })
    }

    /// How many changed rows of one transaction the dataflow holds before sending a chunk.
    pub fn transaction_chunk_rows(&self) -> Result<usize, SettingError> {
        self.parse("AUGUST_TRANSACTION_CHUNK_ROWS", "a whole number")?
            .filter(|n| *n > 0)
            .ok_or_else(|| SettingError::new("AUGUST_TRANSACTION_CHUNK_ROWS", "must be at least 1"))
    }

    /// The Coda mapping (`AUGUST_CODA_MAPPING`), or `None` when none is configured.
    pub fn coda_mapping(&self) -> Result<Option<august_sinks::coda::mapping::Mapping>, SettingError> {
        let Some((path, origin)) = self.get("AUGUST_CODA_MAPPING") else { return Ok(None) };
        august_sinks::coda::mapping::Mapping::load(std::path::Path::new(&path))
            .map(Some)
            .map_err(|e| SettingError::new(origin.name(), e.to_string()))
    }

    /// The Coda sink's settings, or `None` when no mapping is configured.
    pub fn coda(
        &self,
    ) -> Result<
        Option<(
            august_sinks::coda::mapping::Mapping,
            august_sinks::coda::client::CodaSettings,
            august_sinks::coda::writer::WriterConfig,
        )>,
        SettingError,
    > {
        let Some(mapping) = self.coda_mapping()? else { return Ok(None) };
        let (base, _) = self.get("CODA_API_BASE").expect("CODA_API_BASE has a default");
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(SettingError::new("CODA_API_BASE", "must be an http(s) URL"));
        }
        let token = self.required("CODA_API_TOKEN")?;
        let writes: u32 = self
            .parse("AUGUST_CODA_WRITES_PER_6S", "a whole number")?
            .filter(|n| *n > 0)
            .ok_or_else(|| SettingError::new("AUGUST_CODA_WRITES_PER_6S", "must be at least 1"))?;
        let reads: u32 = self
            .parse("AUGUST_CODA_READS_PER_6S", "a whole number")?
            .filter(|n| *n > 0)
            .ok_or_else(|| SettingError::new("AUGUST_CODA_READS_PER_6S", "must be at least 1"))?;
        let max_rows: usize = self
            .parse("AUGUST_CODA_MAX_ROWS_PER_REQUEST", "a whole number")?
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| SettingError::new("AUGUST_CODA_MAX_ROWS_PER_REQUEST", "must be from 1 to 10000"))?;
        let max_bytes: usize = self
            .parse("AUGUST_CODA_MAX_REQUEST_BYTES", "a whole number of bytes")?
            .filter(|n| *n >= 1024)
            .ok_or_else(|| SettingError::new("AUGUST_CODA_MAX_REQUEST_BYTES", "must be at least 1024"))?;
        let settings = august_sinks::coda::client::CodaSettings {
            base: base.trim_end_matches('/').to_string(),
            token: Secret::new(token),
            writes: (writes, Duration::from_secs(6)),
            reads: (reads, Duration::from_secs(6)),
            ..Default::default()
        };
        let dead_letter_days: u32 = self
            .parse("AUGUST_DEAD_LETTER_DAYS", "a whole number of days")?
            .filter(|d| *d >= 1)
            .ok_or_else(|| SettingError::new("AUGUST_DEAD_LETTER_DAYS", "must be at least 1"))?;
        let confirm_deadline: u64 = self
            .parse("AUGUST_CODA_CONFIRM_DEADLINE_SECS", "a whole number of seconds")?
            .filter(|s| *s >= 1)
            .ok_or_else(|| SettingError::new("AUGUST_CODA_CONFIRM_DEADLINE_SECS", "must be at least 1"))?;
        let writer = august_sinks::coda::writer::WriterConfig {
            max_rows,
            max_bytes,
            dead_letter_days,
            confirm_deadline: Duration::from_secs(confirm_deadline),
            ..Default::default()
        };
        Ok(Some((mapping, settings, writer)))
    }

    /// Where the webhook endpoints listen, and their secrets.
    pub fn ingest(&self) -> Result<(std::net::SocketAddr, Secret<String>, Secret<String>), SettingError> {
        let (addr, origin) = self.get("AUGUST_HTTP_ADDR").expect("AUGUST_HTTP_ADDR has a default");
        let mut addr: std::net::SocketAddr =
            addr.parse().map_err(|_| SettingError::new(origin.name(), "must be host:port, e.g. 0.0.0.0:8080"))?;
        if let Some(port) = self.parse::<u16>("PORT", "a port number (1-65535)")? {
            addr.set_port(port);
        }
        let secret = |name: &'static str| -> Result<Secret<String>, SettingError> {
            let value = self.required(name)?;
            if value.len() < 16 {
                return Err(SettingError::new(name, "is too short to be a secret (at least 16 characters)"));
            }
            Ok(Secret::new(value))
        };
        Ok((addr, secret("DRCHRONO_WEBHOOK_SECRET")?, secret("DEEPCURA_SHARED_SECRET")?))
    }

    /// `CODA_WRITEBACK_TOKEN`, or `None` when the Coda write-back is off.
    pub fn writeback_token(&self) -> Result<Option<Secret<String>>, SettingError> {
        let Some((token, origin)) = self.get("CODA_WRITEBACK_TOKEN") else { return Ok(None) };
        if token.len() < 16 {
            return Err(SettingError::new(origin.name(), "is too short to be a secret (at least 16 characters)"));
        }
        Ok(Some(Secret::new(token)))
    }

    /// Where the long-running commands serve `GET /metrics`.
    pub fn metrics_addr(&self) -> Result<std::net::SocketAddr, SettingError> {
        self.parse("AUGUST_METRICS_ADDR", "host:port, e.g. 127.0.0.1:9464")?
            .ok_or_else(|| SettingError::new("AUGUST_METRICS_ADDR", "is not set"))
    }

    /// The SQL endpoint's settings, or `None` when `AUGUST_SQL_ADDR` is set empty.
    pub fn sql(&self) -> Result<Option<august_sql::SqlConfig>, SettingError> {
        let explicitly_empty = self.env.get("AUGUST_SQL_ADDR").is_some_and(|v| v.trim().is_empty())
            || self.file.get("sql.addr").is_some_and(|v| v.trim().is_empty());
        if explicitly_empty {
            return Ok(None);
        }
        let addr = self
            .parse("AUGUST_SQL_ADDR", "host:port, e.g. 127.0.0.1:6875 (empty: off)")?
            .ok_or_else(|| SettingError::new("AUGUST_SQL_ADDR", "is not set"))?;
        let users_file = self.get("AUGUST_SQL_USERS_FILE").map(|(v, _)| v.into()).unwrap_or_default();
        let tls = match (self.get("AUGUST_SQL_SSLCERT"), self.get("AUGUST_SQL_SSLKEY")) {
            (Some((cert, _)), Some((key, _))) => Some((cert.into(), key.into())),
            (None, None) => None,
            (Some(_), None) => {
                return Err(SettingError::new("AUGUST_SQL_SSLKEY", "must be set with AUGUST_SQL_SSLCERT"))
            }
            (None, Some(_)) => {
                return Err(SettingError::new("AUGUST_SQL_SSLCERT", "must be set with AUGUST_SQL_SSLKEY"))
            }
        };
        Ok(Some(august_sql::SqlConfig { addr, users_file, tls }))
    }

    /// The users file `august sql-user` edits.
    pub fn sql_users_file(&self) -> std::path::PathBuf {
        self.get("AUGUST_SQL_USERS_FILE").map(|(v, _)| v.into()).unwrap_or_default()
    }

    /// `AUGUST_DB_CAPACITY_BYTES`: the storage the database may use, when set.
    pub fn db_capacity_bytes(&self) -> Result<Option<u64>, SettingError> {
        match self.parse::<u64>("AUGUST_DB_CAPACITY_BYTES", "a whole number of bytes")? {
            Some(0) => Err(SettingError::new("AUGUST_DB_CAPACITY_BYTES", "must be more than 0")),
            bytes => Ok(bytes),
        }
    }

    /// The webhook server's limits: requests in flight and the header-read timeout.
    pub fn http_limits(&self) -> Result<august_ingest::server::HttpLimits, SettingError> {
        let max_in_flight = self
            .parse("AUGUST_HTTP_MAX_IN_FLIGHT", "a whole number from 1 to 100000")?
            .filter(|n| (1..=100_000).contains(n))
            .ok_or_else(|| SettingError::new("AUGUST_HTTP_MAX_IN_FLIGHT", "must be a whole number from 1 to 100000"))?;
        let header_secs: u64 = self
            .parse("AUGUST_HTTP_HEADER_TIMEOUT_SECS", "a whole number of seconds")?
            .filter(|s| (1..=3600).contains(s))
            .ok_or_else(|| SettingError::new("AUGUST_HTTP_HEADER_TIMEOUT_SECS", "must be from 1 to 3600"))?;
        Ok(august_ingest::server::HttpLimits { max_in_flight, header_read_timeout: Duration::from_secs(header_secs) })
    }

    /// A variable another standard defines and reads from the environment only (OpenTelemetry's
    /// `OTEL_*`, Google Cloud's `GOOGLE_CLOUD_PROJECT`): not one of [`SETTINGS`], never in the
    /// config file; `None` when unset or empty.
    pub fn standard(&self, env: &str) -> Option<&str> {
        self.env.get(env).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    /// The log filter and whether to log JSON.
    pub fn log(&self) -> Result<(String, bool), SettingError> {
        let (filter, _) = self.get("AUGUST_LOG").expect("AUGUST_LOG has a default");
        let (format, origin) = self.get("AUGUST_LOG_FORMAT").expect("AUGUST_LOG_FORMAT has a default");
        let json = match format.as_str() {
            "text" => false,
            "json" => true,
            _ => return Err(SettingError::new(origin.name(), "must be `text` or `json`")),
        };
        Ok((filter, json))
    }
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut HashMap<String, String>) -> Result<(), String> {
    for (key, value) in table {
        let full = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            toml::Value::Table(inner) => flatten(&full, inner, out)?,
            toml::Value::String(s) => drop(out.insert(full, s.clone())),
            toml::Value::Integer(i) => drop(out.insert(full, i.to_string())),
            toml::Value::Boolean(b) => drop(out.insert(full, b.to_string())),
            toml::Value::Float(f) => drop(out.insert(full, f.to_string())),
            _ => return Err(full),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
