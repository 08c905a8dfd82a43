//! `--embedded`: runs a command against a private PostgreSQL kept in a folder of the user's
//! choosing (`.august/pg` by default), so August can be tried with no database to set up.

use std::path::Path;

use anyhow::Context;
use august_schema::embedded::EmbeddedPostgres;

/// The database August uses inside the embedded server.
const DATABASE: &str = "august";

/// Starts (or creates) the server in `dir`, makes sure its `august` database exists, and
/// returns the environment with `DATABASE_URL` pointing at it (and any other database
/// setting removed, so nothing can point elsewhere).
pub async fn start(dir: &Path) -> anyhow::Result<(EmbeddedPostgres, Vec<(String, String)>)> {
    let server = EmbeddedPostgres::start(dir, false)?;
    let admin = august_schema::connect(&server.url("postgres").parse()?).await?;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DATABASE])
        .await
        .context("look up the embedded database")?
        .is_some();
    if !exists {
        admin.batch_execute(&format!("CREATE DATABASE {DATABASE}")).await.context("create the embedded database")?;
    }
    eprintln!("august: using the embedded PostgreSQL in {} (port {})", dir.display(), server.port());
    let mut env: Vec<(String, String)> =
        std::env::vars().filter(|(key, _)| key != "DATABASE_URL" && !key.starts_with("DB_")).collect();
    env.push(("DATABASE_URL".to_string(), server.url(DATABASE)));
    Ok((server, env))
}
