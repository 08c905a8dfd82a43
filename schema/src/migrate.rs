//! The migrations runner behind `august migrate`.
//!
//! Files in `migrations/` are named `NNNN_what_it_does.sql` and applied in that order, each in
//! its own transaction, while holding a session advisory lock so two deploys starting at once
//! cannot interleave. Each applied file is recorded in `schema_migrations` with the SHA-256 of
//! its text. Running again applies nothing; a recorded file whose text has since changed, or
//! a recorded file this build does not know, stops the run before anything is applied, naming
//! the file: an applied migration is history, and a fix is a new file.

use std::collections::HashMap;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::{set_actor, Actor, DbError};

/// One migration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// File name, e.g. `0001_clinical_mirrors.sql`.
    pub name: &'static str,
    /// The file's SQL.
    pub sql: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

impl Migration {
    /// Every migration in `migrations/`, embedded at build time, in order.
    pub fn embedded() -> &'static [Migration] {
        EMBEDDED
    }

    /// Hex SHA-256 of the file's text, as stored in `schema_migrations.checksum`.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Files applied by this run, in order.
    pub applied: Vec<&'static str>,
    /// Files that were already applied before this run.
    pub already_applied: usize,
}

/// Why a run stopped. Nothing after the failing file is applied.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A file name does not follow `NNNN_name.sql`, or files are out of order.
    #[error("migration file {name} is misnamed or out of order: names are NNNN_lowercase_words.sql, numbered upwards")]
    BadName {
        /// The offending file.
        name: String,
    },
    /// An applied file was edited afterwards.
    #[error("migration {name} was edited after it was applied (checksum {applied} in the database, {now} in this build): restore the file and put the change in a new migration")]
    Edited {
        /// The edited file.
        name: String,
        /// Checksum recorded when it was applied.
        applied: String,
        /// Checksum of the file in this build.
        now: String,
    },
    /// The database has a migration this build does not carry (a newer build applied it).
    #[error("the database has migration {name}, which this build does not know: run a build that includes it")]
    Unknown {
        /// The unknown file.
        name: String,
    },
    /// A file failed to apply; its transaction was rolled back.
    #[error("migration {name} failed: {source}")]
    Failed {
        /// The failing file.
        name: String,
        /// The database's error.
        source: DbError,
    },
    /// The runner's own bookkeeping failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Key of the session advisory lock the runner holds (`hashtext('august.migrate')`-like,
/// fixed so every build agrees).
const LOCK_KEY: i64 = 0x6175_6775_7374_6d67; // "augustmg"

/// Applies the pending `migrations`, in order. Safe to run concurrently and repeatedly.
pub async fn migrate(client: &mut Client, migrations: &[Migration]) -> Result<MigrationReport, MigrateError> {
    check_names(migrations)?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(|e| DbError::new("take the migrations lock", e))?;
    let result = migrate_locked(client, migrations).await;
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await;
    let report = result?;
    unlocked.map_err(|e| DbError::new("release the migrations lock", e))?;
    Ok(report)
}

async fn migrate_locked(client: &mut Client, migrations: &[Migration]) -> Result<MigrationReport, MigrateError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                name         text PRIMARY KEY,
                checksum     text NOT NULL,
                applied_at   timestamptz NOT NULL DEFAULT now(),
                execution_ms integer NOT NULL
            )",
        )
        .await
        .map_err(|e| DbError::new("create schema_migrations", e))?;
    let applied: HashMap<String, String> = client
        .query("SELECT name, checksum FROM schema_migrations", &[])
        .await
        .map_err(|e| DbError::new("read schema_migrations", e))?
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();

    for name in applied.keys() {
        if !migrations.iter().any(|m| m.name == name) {
            return Err(MigrateError::Unknown { name: name.clone() });
        }
    }
    for migration in migrations {
        if let Some(recorded) = applied.get(migration.name) {
            let now = migration.checksum();
            if *recorded != now {
                return Err(MigrateError::Edited { name: migration.name.to_string(), applied: recorded.clone(), now });
            }
        }
    }

    let mut report = MigrationReport { applied: Vec::new(), already_applied: applied.len() };
    for migration in migrations.iter().filter(|m| !applied.contains_key(m.name)) {
        apply(client, migration)
            .await
            .map_err(|source| MigrateError::Failed { name: migration.name.to_string(), source })?;
        tracing::info!(migration = migration.name, "applied migration");
        report.applied.push(migration.name);
    }
    Ok(report)
}

async fn apply(client: &mut Client, migration: &Migration) -> Result<(), DbError> {
    let started = Instant::now();
    let tx = client.transaction().await.map_err(|e| DbError::new("begin", e))?;
    set_actor(&tx, Actor::Migrate).await?;
    tx.batch_execute(migration.sql).await.map_err(|e| DbError::new("run the file", e))?;
    let elapsed_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    tx.execute(
        "INSERT INTO schema_migrations (name, checksum, execution_ms) VALUES ($1, $2, $3)",
        &[&migration.name, &migration.checksum(), &elapsed_ms],
    )
    .await
    .map_err(|e| DbError::new("record the migration", e))?;
    tx.commit().await.map_err(|e| DbError::new("commit", e))
}

fn check_names(migrations: &[Migration]) -> Result<(), MigrateError> {
    let mut previous: Option<&str> = None;
    for migration in migrations {
        let name = migration.name;
        let well_formed = name.len() > 9
            && name.ends_with(".sql")
            && name[..4].bytes().all(|b| b.is_ascii_digit())
            && name.as_bytes()[4] == b'_'
            && name[5..name.len() - 4].bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let in_order = previous.is_none_or(|p| p[..4] < name[..4]);
        if !well_formed || !in_order {
            return Err(MigrateError::BadName { name: name.to_string() });
        }
        previous = Some(name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_migrations_are_well_named_and_ordered() {
        assert!(!Migration::embedded().is_empty());
        check_names(Migration::embedded()).unwrap();
    }

    #[test]
    fn misnamed_or_reordered_files_are_refused() {
        let good = Migration { name: "0002_b.sql", sql: "" };
        let bad = Migration { name: "2_b.sql", sql: "" };
        let earlier = Migration { name: "0001_a.sql", sql: "" };
        assert!(matches!(check_names(&[bad]), Err(MigrateError::BadName { .. })));
        assert!(matches!(check_names(&[good, earlier]), Err(MigrateError::BadName { .. })));
        assert!(check_names(&[earlier, good]).is_ok());
    }

    #[test]
    fn checksum_changes_with_the_text() {
        let a = Migration { name: "0001_a.sql", sql: "SELECT 1;" };
        let b = Migration { name: "0001_a.sql", sql: "SELECT 2;" };
        assert_ne!(a.checksum(), b.checksum());
        assert_eq!(a.checksum().len(), 64);
    }
}
