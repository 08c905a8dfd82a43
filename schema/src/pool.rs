//! Opening connections: one-off clients for tools like `august migrate`, and the shared
//! `bb8` pool for long-running services. Both check the credentials with a real connection
//! first, so a wrong password fails at start-up with a permanent error instead of surfacing
//! later as pool time-outs. Both use the TLS of their target (see [`crate::tls`]).

use bb8_postgres::PostgresConnectionManager;
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{tls, DbError, PoolSettings};

/// The shared connection pool.
pub type PgPool = bb8::Pool<PostgresConnectionManager<MakeRustlsConnect>>;

/// Opens one connection and drives it on a background task. The task ends when the client
/// is dropped.
pub async fn connect(config: &tokio_postgres::Config) -> Result<Client, DbError> {
    let tls = tls::for_config(config);
    let (client, connection) = tls
        .apply(config)
        .connect(tls.connector())
        .await
        .map_err(|e| DbError::new(format!("connect to {}", crate::settings::describe_config(config)), e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %DbError::new("connection", e), "postgres connection closed");
        }
    });
    Ok(client)
}

/// Builds the pool after proving one connection works. `config` comes from
/// [`crate::DbSettings::pg_config`], checked at start-up.
pub async fn connect_pool(limits: &PoolSettings, config: tokio_postgres::Config) -> Result<PgPool, DbError> {
    // Proves the credentials and the database now, with a classified error.
    drop(connect(&config).await?);
    let tls = tls::for_config(&config);
    let manager = PostgresConnectionManager::new(tls.apply(&config), tls.connector());
    let pool = bb8::Pool::builder()
        .max_size(limits.max_size)
        .idle_timeout(Some(limits.idle_timeout))
        .connection_timeout(limits.connect_timeout)
        .build_unchecked(manager);
    Ok(pool)
}
