//! Retention: the daily job `august serve` runs ([`spawn_daily`]: the coming months' audit
//! partitions, processed-message ids older than seven days, dead letters past
//! `AUGUST_DEAD_LETTER_DAYS`), and `august audit archive --before YYYY-MM --to DIR [--drop]`
//! ([`archive`]), which a person runs for months past the seven years: each month's partitions
//! are checked, written to `DIR/<partition>.csv`, recorded with their SHA-256 in
//! `audit_archives`, and detached (dropped with `--drop`). August never deletes audit rows.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use august_schema::audit_retention::{self, ArchiveError};
use august_schema::SettingError;

use crate::settings::Sources;
use crate::ConfigError;

/// Starts the audit housekeeping of a long-running process (`serve`, and `replicate` where
/// webhooks run apart): the chain-head log ([`super::audit::spawn_head_log`]) and the daily
/// retention job. Abort the handles to stop them.
pub fn spawn_housekeeping(sources: &Sources) -> Result<Vec<tokio::task::JoinHandle<()>>, ConfigError> {
    let pg = sources.database().map_err(ConfigError)?.1;
    let dead_letter_days = sources.coda().map_err(ConfigError)?.map(|(_, _, w)| w.dead_letter_days);
    Ok(vec![super::audit::spawn_head_log(pg.clone()), spawn_daily(pg, dead_letter_days)])
}

/// How often the job runs.
const EVERY: Duration = Duration::from_secs(24 * 3600);

/// Runs the retention job now and every day. `dead_letter_days` is set when a Coda sink runs.
/// Each run logs one line of counts (no values); failures are logged and tried the next day.
pub fn spawn_daily(pg: tokio_postgres::Config, dead_letter_days: Option<u32>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(EVERY);
        loop {
            ticks.tick().await;
            if let Err(e) = run_once(&pg, dead_letter_days).await {
                tracing::warn!(error = %e, "the retention job failed; it runs again tomorrow");
            }
        }
    })
}

async fn run_once(pg: &tokio_postgres::Config, dead_letter_days: Option<u32>) -> Result<(), august_schema::DbError> {
    let client = august_schema::connect(pg).await?;
    let done = audit_retention::maintain(&client).await?;
    let purged = match dead_letter_days {
        Some(days) => august_sinks::coda::dead_letters::purge(&client, days).await?,
        None => 0,
    };
    tracing::info!(
        partitions_created = done.partitions_created,
        processed_messages_deleted = done.processed_messages_deleted,
        dead_letters_purged = purged,
        "retention job done"
    );
    for (table, rows) in done.in_default {
        tracing::warn!(table, rows, "audit rows sit in the default partition (a month had none); see the runbook");
    }
    Ok(())
}

/// `august audit archive`: archives every audit partition of the months before `before`.
pub async fn archive(sources: &Sources, before: &str, to: PathBuf, drop: bool) -> anyhow::Result<()> {
    let before = parse_month(before).map_err(ConfigError)?;
    if !to.is_dir() {
        return Err(ConfigError(SettingError::new("--to", "is not a directory")).into());
    }
    let (_, pg) = sources.database().map_err(ConfigError)?;
    let mut db = august_schema::connect(&pg).await?;
    let partitions = audit_retention::partitions_before(&db, before).await?;
    if partitions.is_empty() {
        println!("nothing to archive: no audit partition ends before that month");
    }
    for partition in &partitions {
        match audit_retention::archive(&mut db, partition, &to, drop).await {
            Ok(done) => {
                let seqs = done.seqs.map_or_else(String::new, |(a, b)| format!(", seq {a} to {b}"));
                let fate = if done.dropped { "detached and dropped" } else { "detached" };
                println!(
                    "{}: {} rows{seqs} -> {} (sha256 {}), {fate}",
                    done.partition,
                    done.rows,
                    done.file.display(),
                    done.sha256
                );
            }
            Err(e @ ArchiveError::Refused { .. }) => anyhow::bail!("{e}"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `YYYY-MM` as that month's first instant (UTC); a month not yet over is refused.
fn parse_month(value: &str) -> Result<SystemTime, SettingError> {
    let bad = || SettingError::new("--before", "is not a month (YYYY-MM, e.g. 2019-01)");
    let date = chrono::NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d").map_err(|_| bad())?;
    if value.len() != 7 {
        return Err(bad());
    }
    let start = date.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc();
    if start > chrono::Utc::now() {
        return Err(SettingError::new("--before", "is a month that has not begun: only past months can be archived"));
    }
    Ok(start.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_is_a_month_that_has_begun() {
        let jan: SystemTime = chrono::DateTime::parse_from_rfc3339("2019-01-01T00:00:00Z").unwrap().into();
        assert_eq!(parse_month("2019-01").unwrap(), jan);
        for bad in ["2019-1", "2019-13", "2019", "January", "2019-01-15", "2999-01"] {
            assert!(parse_month(bad).is_err(), "{bad}");
        }
    }
}
