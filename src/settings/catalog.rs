//! Every setting August reads, declared once: environment variable, config-file key,
//! default and meaning. The declarations drive the lookup, the error messages, and the
//! README's table (`august settings`).

/// One setting.
#[derive(Debug)]
pub struct Setting {
    /// Environment variable.
    pub env: &'static str,
    /// Key in the config file (`section.key`).
    pub file_key: &'static str,
    /// Value when unset, if any.
    pub default: Option<&'static str>,
    /// What it does (shown in the README table).
    pub doc: &'static str,
}

macro_rules! setting {
    ($env:literal, $key:literal, $default:expr, $doc:literal) => {
        Setting { env: $env, file_key: $key, default: $default, doc: $doc }
    };
}

/// Every setting August reads.
pub const SETTINGS: &[Setting] = &[
    setting!(
        "DATABASE_URL",
        "database.url",
        None,
        "Postgres connection string (`postgres://user:password@host:port/db`). Use this or the `DB_*` parts."
    ),
    setting!(
        "DB_HOST",
        "database.host",
        None,
        "Postgres host name, IP or unix-socket folder (when `DATABASE_URL` is not set)."
    ),
    setting!("DB_PORT", "database.port", Some("5432"), "Postgres port."),
    setting!("DB_NAME", "database.name", None, "Database name."),
    setting!("DB_USER", "database.user", None, "Database user."),
    setting!(
        "DB_PASSWORD",
        "database.password",
        None,
        "Database password (secret). May also complete a `DATABASE_URL` that has none."
    ),
    setting!("DB_POOL_MAX_SIZE", "database.pool_max_size", Some("10"), "Most pooled connections."),
    setting!(
        "DB_POOL_IDLE_SECS",
        "database.pool_idle_secs",
        Some("30"),
        "Seconds before an idle pooled connection is closed."
    ),
    setting!(
        "DB_CONNECT_TIMEOUT_SECS",
        "database.connect_timeout_secs",
        Some("2"),
        "Seconds to wait for a new connection."
    ),
    setting!(
        "DB_SSLMODE",
        "database.sslmode",
        None,
        "TLS to Postgres, as libpq: `disable`, `prefer`, `require` (encrypted, unverified), `verify-ca`, `verify-full`. Unset: `verify-full`, or `prefer` for loopback and unix sockets."
    ),
    setting!(
        "DB_SSLROOTCERT",
        "database.sslrootcert",
        None,
        "PEM file of the CA certificates `verify-ca`/`verify-full` trust (Cloud SQL's server CA); unset: the platform's."
    ),
    setting!(
        "DB_SSLCERT",
        "database.sslcert",
        None,
        "PEM file of the client certificate, for Cloud SQL's client-certificate mode (with `DB_SSLKEY`)."
    ),
    setting!("DB_SSLKEY", "database.sslkey", None, "PEM file of the client certificate's private key."),
    setting!("AUGUST_HTTP_ADDR", "http.addr", Some("0.0.0.0:8080"), "Address the webhook endpoints listen on."),
    setting!(
        "AUGUST_HTTP_MAX_IN_FLIGHT",
        "http.max_in_flight",
        Some("64"),
        "Requests the webhook endpoints handle at once; one more is answered 503 with `Retry-After: 1`."
    ),
    setting!(
        "AUGUST_HTTP_HEADER_TIMEOUT_SECS",
        "http.header_timeout_secs",
        Some("10"),
        "Seconds a connection to the webhook endpoints may take to send a request's headers before it is closed."
    ),
    setting!(
        "PORT",
        "http.port",
        None,
        "Port to listen on (set by Cloud Run); overrides the port of `AUGUST_HTTP_ADDR`."
    ),
    setting!(
        "DRCHRONO_WEBHOOK_SECRET",
        "drchrono.webhook_secret",
        None,
        "DrChrono webhook secret (secret): what `X-drchrono-signature` must carry, and the handshake's HMAC key."
    ),
    setting!(
        "DEEPCURA_SHARED_SECRET",
        "deepcura.shared_secret",
        None,
        "Deep Cura shared secret (secret): what `X-DeepCura-Secret` must carry, and (hashed) the AES key."
    ),
    setting!(
        "CODA_WRITEBACK_TOKEN",
        "coda.writeback_token",
        None,
        "Coda write-back token (secret, at least 16 characters): what the Pack's `Authorization: Bearer` must carry on `PATCH /api/…`. Unset: write-back is off."
    ),
    setting!(
        "DRCHRONO_API_BASE",
        "drchrono.api_base",
        Some("https://app.drchrono.com"),
        "DrChrono API base URL (the emulator's, for tests and the demo); the token URL is `{base}/o/token/`."
    ),
    setting!("DRCHRONO_CLIENT_ID", "drchrono.client_id", None, "DrChrono OAuth client id. With the secret, turns pull sync on."),
    setting!("DRCHRONO_CLIENT_SECRET", "drchrono.client_secret", None, "DrChrono OAuth client secret (secret)."),
    setting!(
        "DRCHRONO_REFRESH_TOKEN",
        "drchrono.refresh_token",
        None,
        "DrChrono refresh token (secret): seeds the token store once; a different value replaces it (re-authorisation)."
    ),
    setting!(
        "DRCHRONO_TOKEN_KEY",
        "drchrono.token_key",
        None,
        "Key (secret, at least 16 characters) that seals the DrChrono tokens stored in Postgres."
    ),
    setting!(
        "DRCHRONO_CALLS_PER_HOUR",
        "drchrono.calls_per_hour",
        Some("500"),
        "DrChrono calls allowed per hour for the account, shared by every August process and command."
    ),
    setting!(
        "DRCHRONO_CALLS_RESERVE",
        "drchrono.calls_reserve",
        Some("50"),
        "Calls per hour that scheduled syncs leave for people running `august sync` and `august verify`."
    ),
    setting!(
        "DRCHRONO_RATE_WINDOW_SECS",
        "drchrono.rate_window_secs",
        Some("3600"),
        "Length of DrChrono's rate-limit window (an hour; shorter only against the emulator)."
    ),
    setting!(
        "AUGUST_RECONCILE_SECS",
        "drchrono.reconcile_secs",
        Some("900"),
        "Seconds between `serve`'s incremental DrChrono reconciliation passes (0 turns them off)."
    ),
    setting!(
        "AUGUST_SYNC_OIDC_AUDIENCE",
        "sync.oidc_audience",
        None,
        "Audience the Cloud Scheduler OIDC token of `/sync/*` must carry; without it `/sync/*` answers 503."
    ),
    setting!(
        "AUGUST_SYNC_OIDC_INVOKER",
        "sync.oidc_invoker",
        None,
        "Service-account email `/sync/*` callers must be (the token's verified `email`)."
    ),
    setting!(
        "AUGUST_SYNC_JWKS_URL",
        "sync.jwks_url",
        Some("https://www.googleapis.com/oauth2/v3/certs"),
        "Where the OIDC signing keys of `/sync/*` tokens are published (Google's by default)."
    ),
    setting!(
        "AUGUST_SLOT",
        "replication.slot",
        None,
        "Replication slot August streams from (slots are per cluster, and each belongs to one database). Unset: `august` if this database already has that slot, else `august_<database>` (sanitised, at most 63 characters)."
    ),
    setting!(
        "AUGUST_CODA_MAPPING",
        "coda.mapping",
        None,
        "Coda mapping file (TOML). Without it, `replicate` writes no Coda tables."
    ),
    setting!(
        "CODA_API_BASE",
        "coda.api_base",
        Some("https://coda.io/apis/v1"),
        "Coda API base URL (the emulator's, for tests and the demo)."
    ),
    setting!("CODA_API_TOKEN", "coda.api_token", None, "Coda API token (secret), sent as `Authorization: Bearer`."),
    setting!(
        "AUGUST_CODA_MAX_ROWS_PER_REQUEST",
        "coda.max_rows_per_request",
        Some("500"),
        "Most rows in one Coda write."
    ),
    setting!(
        "AUGUST_CODA_MAX_REQUEST_BYTES",
        "coda.max_request_bytes",
        Some("1048576"),
        "Largest Coda write body, in bytes."
    ),
    setting!(
        "AUGUST_CODA_WRITES_PER_6S",
        "coda.writes_per_6s",
        Some("10"),
        "Coda write quota shared by every table and doc (Coda allows 10 per 6 s per user)."
    ),
    setting!(
        "AUGUST_CODA_READS_PER_6S",
        "coda.reads_per_6s",
        Some("100"),
        "Coda read quota (Coda allows 100 reads per 6 s per user): mutation checks, look-ups, start-up checks."
    ),
    setting!(
        "AUGUST_DEAD_LETTER_DAYS",
        "coda.dead_letter_days",
        Some("30"),
        "Days an open Coda dead letter is kept before the sink purges it (closed ones go at the next start)."
    ),
    setting!(
        "AUGUST_CODA_CONFIRM_DEADLINE_SECS",
        "coda.confirm_deadline_secs",
        Some("300"),
        "Seconds a Coda write may stay uncompleted before the sink settles it by reading the table back."
    ),
    setting!(
        "AUGUST_METRICS_ADDR",
        "http.metrics_addr",
        Some("127.0.0.1:9464"),
        "Address `serve`, `ingest` and `replicate` serve Prometheus `GET /metrics` on (never on the webhook port)."
    ),
    setting!(
        "AUGUST_SQL_ADDR",
        "sql.addr",
        Some("127.0.0.1:6875"),
        "Address `serve` and `replicate` answer SQL on (the Postgres wire protocol: the live views and the system tables). Set it empty to turn the endpoint off."
    ),
    setting!(
        "AUGUST_SQL_USERS_FILE",
        "sql.users_file",
        Some("august-sql-users.toml"),
        "The SQL endpoint's users: TOML with each user's name, role and SCRAM-SHA-256 verifier, written by `august sql-user add`. Missing: nobody can log in."
    ),
    setting!(
        "AUGUST_SQL_SSLCERT",
        "sql.sslcert",
        None,
        "PEM file of the SQL endpoint's certificate chain, for TLS (with `AUGUST_SQL_SSLKEY`)."
    ),
    setting!("AUGUST_SQL_SSLKEY", "sql.sslkey", None, "PEM file of the SQL endpoint's private key."),
    setting!(
        "AUGUST_DB_CAPACITY_BYTES",
        "database.capacity_bytes",
        None,
        "Storage the database may use, in bytes (e.g. the Cloud SQL disk size): exported as `august_postgres_capacity_bytes` for the storage alert; unset, the alert cannot fire."
    ),
    setting!(
        "AUGUST_HEARTBEAT_SECS",
        "replication.heartbeat_secs",
        Some("10"),
        "Seconds between heartbeats written to the WAL (they keep the slot moving when only unpublished tables change)."
    ),
    setting!(
        "AUGUST_TRANSACTION_CHUNK_ROWS",
        "replication.transaction_chunk_rows",
        Some("50000"),
        "Changed rows of one transaction held before they go on as a chunk (bounds memory for big transactions; the slot still moves only past whole transactions)."
    ),
    setting!(
        "AUGUST_LOG",
        "log.filter",
        Some("info,tokio_postgres=warn"),
        "Log filter (`tracing` syntax, e.g. `info,august_cdc=debug`)."
    ),
    setting!("AUGUST_LOG_FORMAT", "log.format", Some("text"), "`text` for people, `json` for Cloud Logging."),
];

/// The settings as a Markdown table, as printed by `august settings` and kept in the README.
pub fn markdown_table() -> String {
    let mut out = String::from("| Variable | Config file key | Default | Meaning |\n|---|---|---|---|\n");
    for s in SETTINGS {
        let default = s.default.map(|d| format!("`{d}`")).unwrap_or_else(|| "—".to_string());
        out.push_str(&format!("| `{}` | `{}` | {default} | {} |\n", s.env, s.file_key, s.doc));
    }
    out
}
