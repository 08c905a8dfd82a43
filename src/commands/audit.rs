//! `august audit verify [--since SEQ|TIME]` checks the hash chains over `change_log` and
//! `access_log` ([`august_schema::audit_chain`]) and prints one line per chain: `ok` with the
//! row count and head, or the first broken link by position and row id (never a value: the
//! rows hold PHI). Exit 0 when every chain is intact, 1 when one is broken. Each run leaves an
//! `access_log` row (actor `august_auditor`). `patient`, `actors` and `access` are the
//! auditor's reports ([`super::audit_report`]); `archive` moves months past retention to files
//! ([`super::retention`]).

use std::time::{Duration, Instant, SystemTime};

use august_schema::audit_chain::{self, Since, CHAINS};
use august_schema::SettingError;

use super::audit_report::{Format, Report};
use crate::settings::Sources;
use crate::ConfigError;

/// What to do with the audit trail.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Recompute every chain's hashes and report the first broken link per chain.
    Verify {
        /// Start at this chain position, or at the first row written at or after this RFC 3339
        /// time (e.g. 2026-01-31T00:00:00Z); the link into that row is taken on trust.
        #[arg(long, value_name = "SEQ|TIME")]
        since: Option<String>,
    },
    /// Every change to one patient's records across all tables (when, actor, editor, fields)
    /// and every row of theirs the Coda mirror holds (Coda table, row, when, PHI classes).
    Patient {
        /// The patient's DrChrono id.
        id: i64,
        /// Only what happened at or after this RFC 3339 time.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Show the old and new values too (PHI: the run's access_log row says values were read).
        #[arg(long)]
        values: bool,
        /// How to print it.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Archive the audit trail's monthly partitions of the months before `--before` (past the
    /// seven years): each is checked, written to `<DIR>/<partition>.csv`, recorded with its
    /// SHA-256 in `audit_archives` (so `verify` links the kept trail to it), and detached.
    Archive {
        /// The first month to keep (YYYY-MM); every month before it is archived.
        #[arg(long, value_name = "YYYY-MM")]
        before: String,
        /// The directory the CSV files are written to (keep them as long as the log bucket).
        #[arg(long, value_name = "DIR")]
        to: std::path::PathBuf,
        /// Drop each partition once archived (otherwise it stays, detached, for a person to drop).
        #[arg(long)]
        drop: bool,
    },
    /// Writes per actor per day (UTC), with the editors behind each actor.
    Actors {
        /// Only writes at or after this RFC 3339 time.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// How to print it.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// External calls per system and status: how many, first and last, median and slowest.
    Access {
        /// Only calls at or after this RFC 3339 time.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// How to print it.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// Runs the subcommand.
pub async fn run(sources: &Sources, command: AuditCommand) -> anyhow::Result<()> {
    let (report, since, format) = match command {
        AuditCommand::Verify { since } => return verify(sources, since).await,
        AuditCommand::Archive { before, to, drop } => {
            return super::retention::archive(sources, &before, to, drop).await
        }
        AuditCommand::Patient { id, since, values, format } => (Report::Patient { id, values }, since, format),
        AuditCommand::Actors { since, format } => (Report::Actors, since, format),
        AuditCommand::Access { since, format } => (Report::Access, since, format),
    };
    let since = since.as_deref().map(parse_time).transpose().map_err(ConfigError)?;
    super::audit_report::run(sources, report, since, format).await
}

async fn verify(sources: &Sources, since: Option<String>) -> anyhow::Result<()> {
    let since = since.as_deref().map(parse_since).transpose().map_err(ConfigError)?;
    let (_, pg) = sources.database().map_err(ConfigError)?;
    let mut db = august_schema::connect(&pg).await?;
    let started = Instant::now();
    let mut reports = Vec::new();
    for chain in CHAINS {
        let report = audit_chain::verify(&mut db, chain, since).await?;
        println!("{report}");
        reports.push(report);
    }
    audit_chain::record_run(&db, &reports, started.elapsed()).await?;
    let broken: Vec<&str> = reports.iter().filter(|r| r.broken.is_some()).map(|r| r.chain).collect();
    if !broken.is_empty() {
        anyhow::bail!("the audit trail is broken ({})", broken.join(", "));
    }
    Ok(())
}

/// How often `serve` logs the chain heads.
const HEAD_LOG_EVERY: Duration = Duration::from_secs(600);

/// Logs every chain's head (name, position, hash; no value) now and every ten minutes, so the
/// log shipped off this machine anchors the chains: a trail rewritten later no longer ends in a
/// logged hash. Failures are logged and retried at the next tick.
pub fn spawn_head_log(pg: tokio_postgres::Config) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(HEAD_LOG_EVERY);
        let mut client: Option<tokio_postgres::Client> = None;
        loop {
            ticks.tick().await;
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                client = august_schema::connect(&pg).await.ok();
            }
            let Some(c) = &client else { continue };
            match audit_chain::heads(c).await {
                Ok(heads) => {
                    for head in heads {
                        tracing::info!(chain = %head.chain, seq = head.seq, hash = %head.hash_hex(), "audit chain head");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the audit chain heads"),
            }
        }
    })
}

fn parse_since(value: &str) -> Result<Since, SettingError> {
    if let Ok(seq) = value.parse::<i64>() {
        return if seq >= 1 {
            Ok(Since::Seq(seq))
        } else {
            Err(SettingError::new("--since", "a position is 1 or more"))
        };
    }
    parse_time(value).map(Since::Time).map_err(|_| {
        SettingError::new("--since", "is neither a chain position nor an RFC 3339 time (2026-01-31T00:00:00Z)")
    })
}

fn parse_time(value: &str) -> Result<SystemTime, SettingError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(SystemTime::from)
        .map_err(|_| SettingError::new("--since", "is not an RFC 3339 time (2026-01-31T00:00:00Z)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_position_or_a_time() {
        assert_eq!(parse_since("42").unwrap(), Since::Seq(42));
        assert!(matches!(parse_since("2026-01-31T00:00:00Z").unwrap(), Since::Time(_)));
        assert!(parse_since("0").is_err());
        assert!(parse_since("yesterday").is_err());
    }
}
