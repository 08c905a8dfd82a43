//! Retention (migrations 0013 and 0014): the audit tables are kept by month, seven years, and
//! never deleted by August. [`maintain`] is the daily job `august serve` runs: it creates the
//! coming months' partitions, deletes processed-message ids older than seven days (they only
//! guard against replays), and reports rows that fell into a DEFAULT partition. [`archive`] is
//! what a person runs (`august audit archive`) for a month past its retention: the partition is
//! checked (its chain intact and contiguous with what was archived before), written to a CSV
//! file whose SHA-256 is recorded in `audit_archives`, then detached (and dropped only when
//! asked), so `audit verify` links the kept trail to the archive.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use futures_util::{pin_mut, TryStreamExt};
use sha2::{Digest, Sha256};
use tokio_postgres::{Client, Transaction};

use crate::audit_chain::{self, GENESIS};
use crate::upsert::quote_ident;
use crate::{set_actor, Actor, DbError};

/// The tables partitioned by month, and whether each is hash-chained.
pub const PARTITIONED: &[(&str, bool)] = &[("change_log", true), ("access_log", true), ("coda_disclosures", false)];

/// Months of partitions kept ready ahead of the current one.
pub const MONTHS_AHEAD: i32 = 3;

/// What one run of the daily job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maintained {
    /// Partitions created.
    pub partitions_created: i32,
    /// Processed-message ids deleted (older than seven days).
    pub processed_messages_deleted: i64,
    /// Tables whose DEFAULT partition holds rows, with how many: rows of a month that had no
    /// partition, which `archive` cannot take by month.
    pub in_default: Vec<(&'static str, i64)>,
}

/// Runs the daily retention job.
pub async fn maintain(client: &Client) -> Result<Maintained, DbError> {
    let mut done = Maintained::default();
    for (table, _) in PARTITIONED {
        let made: i32 = client
            .query_one("SELECT august_audit_partitions($1::text::regclass, $2)", &[table, &MONTHS_AHEAD])
            .await
            .map_err(|e| DbError::new("create the coming months' audit partitions", e))?
            .get(0);
        done.partitions_created += made;
        let stray: i64 = client
            .query_one(&format!("SELECT count(*) FROM {}", quote_ident(&format!("{table}_default"))), &[])
            .await
            .map_err(|e| DbError::new("count rows in a default audit partition", e))?
            .get(0);
        if stray > 0 {
            done.in_default.push((table, stray));
        }
    }
    done.processed_messages_deleted = client
        .query_one("SELECT august_cleanup_processed_messages()", &[])
        .await
        .map_err(|e| DbError::new("delete old processed-message ids", e))?
        .get(0);
    Ok(done)
}

/// One month's partition of an audit table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// The partitioned table.
    pub table: &'static str,
    /// Whether it is hash-chained.
    pub chained: bool,
    /// The partition (`<table>_YYYY_MM`, or `<table>_before` for the rows from before
    /// migration 0013).
    pub name: String,
    /// Its first instant (a month's start, UTC).
    pub month: SystemTime,
}

/// The attached partitions of every audit table (not the DEFAULT one) that end at or before
/// `before`, oldest first; their bounds are read from the catalog.
pub async fn partitions_before(client: &Client, before: SystemTime) -> Result<Vec<Partition>, DbError> {
    let mut found = Vec::new();
    for (table, chained) in PARTITIONED {
        let rows = client
            .query(
                "SELECT name, low FROM (
                     SELECT c.relname::text AS name,
                            substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \\(''([^'']+)''\\)')::timestamptz AS low,
                            substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([^'']+)''\\)')::timestamptz AS high
                       FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                      WHERE i.inhparent = $1::text::regclass) p
                  WHERE high <= $2
                  ORDER BY low",
                &[table, &before],
            )
            .await
            .map_err(|e| DbError::new("list the audit partitions", e))?;
        found.extend(rows.iter().map(|r| Partition { table, chained: *chained, name: r.get(0), month: r.get(1) }));
    }
    found.sort_by_key(|p| (p.month, PARTITIONED.iter().position(|(t, _)| *t == p.table)));
    Ok(found)
}

/// Why a partition was not archived.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The archive file could not be written.
    #[error("cannot write the archive file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The chain is broken, or the partition is not the next run of positions after what was
    /// archived before: archiving it would hide the break.
    #[error("{partition} is not archived: {reason}")]
    Refused {
        /// The partition.
        partition: String,
        /// Why (positions and ids only).
        reason: String,
    },
}

/// What was archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    /// The partition.
    pub partition: String,
    /// Rows written to the file.
    pub rows: i64,
    /// Its chain positions, when chained and not empty.
    pub seqs: Option<(i64, i64)>,
    /// The file.
    pub file: PathBuf,
    /// The file's SHA-256, hex.
    pub sha256: String,
    /// Whether the detached partition was dropped.
    pub dropped: bool,
}

/// Archives one partition into `dir`: checks it, writes `<partition>.csv` (every column, a
/// header line, rows in id order), records it in `audit_archives`, and detaches it, dropping it
/// only with `drop`, all while the partition is locked against writes and no other archive runs.
/// For a chained table the whole chain must verify and the partition must be the oldest still
/// attached. The file takes its name only once the archive is committed; a failed run leaves
/// none behind.
pub async fn archive(
    client: &mut Client,
    partition: &Partition,
    dir: &Path,
    drop: bool,
) -> Result<Archived, ArchiveError> {
    let path = dir.join(format!("{}.csv", partition.name));
    if path.exists() {
        let reason = format!("{} exists already", path.display());
        return Err(ArchiveError::Refused { partition: partition.name.clone(), reason });
    }
    if let Some(chain) = audit_chain::CHAINS.iter().copied().find(|c| partition.chained && *c == partition.table) {
        let report = audit_chain::verify(client, chain, None).await?;
        if let Some(broken) = &report.broken {
            let reason = format!("the {chain} chain is broken ({})", report_line(broken));
            return Err(ArchiveError::Refused { partition: partition.name.clone(), reason });
        }
    }
    let partial = path.with_extension("csv.partial");
    let done = archive_locked(client, partition, &partial, drop).await;
    if done.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    let (rows, seqs, sha256) = done?;
    std::fs::rename(&partial, &path).map_err(|source| ArchiveError::File { path: partial.clone(), source })?;
    Ok(Archived { partition: partition.name.clone(), rows, seqs, file: path, sha256, dropped: drop })
}

/// Advisory lock key of an archive run: one at a time.
const ARCHIVE_LOCK: i64 = 7_022_364_202_455_951_363;

/// The archive itself, in one transaction: checked, written to `partial`, recorded, detached.
async fn archive_locked(
    client: &mut Client,
    partition: &Partition,
    partial: &Path,
    drop: bool,
) -> Result<(i64, Option<(i64, i64)>, String), ArchiveError> {
    let refuse = |reason: String| ArchiveError::Refused { partition: partition.name.clone(), reason };
    let ident = quote_ident(&partition.name);
    let tx = client.transaction().await.map_err(|e| DbError::new("begin archiving", e))?;
    set_actor(&tx, Actor::Auditor).await?;
    // The DETACH below waits for every reader of the parent, and audited writes would queue
    // behind it: give up rather than stall the clinic.
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '10s'; SELECT pg_advisory_xact_lock({ARCHIVE_LOCK}); LOCK TABLE {ident} IN EXCLUSIVE MODE"
    ))
    .await
    .map_err(|e| DbError::new("lock the partition (try again when the audit tables are quiet)", e))?;
    let (seqs, prev_hash, last_hash) = if partition.chained {
        chained_range(&tx, partition, &ident).await?.map_err(refuse)?
    } else {
        (None, None, None)
    };
    let (rows, sha256) = write_csv(&tx, &ident, partial).await?;
    let file_name = partial.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    tx.execute(
        "INSERT INTO audit_archives (chain, partition_name, month_start, first_seq, last_seq, prev_hash, last_hash,
                                     row_count, file_name, file_sha256)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &partition.table,
            &partition.name,
            &partition.month,
            &seqs.map(|s| s.0),
            &seqs.map(|s| s.1),
            &prev_hash,
            &last_hash,
            &rows,
            &file_name,
            &sha256,
        ],
    )
    .await
    .map_err(|e| DbError::new("record the archive", e))?;
    let detach = format!("ALTER TABLE {} DETACH PARTITION {ident}", quote_ident(partition.table));
    tx.batch_execute(&detach).await.map_err(|e| DbError::new("detach the archived partition", e))?;
    if drop {
        let sql = format!("DROP TABLE {ident}");
        tx.batch_execute(&sql).await.map_err(|e| DbError::new("drop the archived partition", e))?;
    }
    tx.execute(
        "INSERT INTO access_log (service, method, path_template, duration_ms, row_count, request_id)
         VALUES ('postgres', 'ARCHIVE', 'audit archive', 0, $1, $2)",
        &[&i32::try_from(rows).unwrap_or(i32::MAX), &partition.name],
    )
    .await
    .map_err(|e| DbError::new("record the archive in access_log", e))?;
    tx.commit().await.map_err(|e| DbError::new("commit the archive", e))?;
    Ok((rows, seqs, sha256))
}

fn report_line(broken: &audit_chain::BrokenLink) -> String {
    let at = broken.seq.map_or_else(|| "an unchained row".to_string(), |s| format!("seq {s}"));
    format!("{} at {at}", broken.kind.as_str())
}

/// A chained partition's positions and the hashes at its two ends.
type Range = (Option<(i64, i64)>, Option<Vec<u8>>, Option<Vec<u8>>);

/// A chained partition's [`Range`], checked against the archive before it: `Err(reason)` when
/// archiving it would leave a gap.
async fn chained_range(client: &Transaction<'_>, p: &Partition, ident: &str) -> Result<Result<Range, String>, DbError> {
    let row = client
        .query_one(
            &format!(
                "SELECT min(chain_seq), max(chain_seq),
                        (SELECT prev_hash FROM {ident} ORDER BY chain_seq LIMIT 1),
                        (SELECT row_hash FROM {ident} ORDER BY chain_seq DESC LIMIT 1),
                        (SELECT min(chain_seq) FROM {table}), count(*)
                   FROM {ident}",
                table = quote_ident(p.table)
            ),
            &[],
        )
        .await
        .map_err(|e| DbError::new("read the partition's chain positions", e))?;
    let (first, last): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
    let (Some(first), Some(last)) = (first, last) else { return Ok(Ok((None, None, None))) };
    let (oldest, rows): (Option<i64>, i64) = (row.get(4), row.get(5));
    if rows != last - first + 1 {
        return Ok(Err(format!("{rows} rows for positions {first} to {last}: not one run")));
    }
    if oldest != Some(first) {
        return Ok(Err(format!(
            "older positions are still attached (seq {} onwards); archive months in order",
            oldest.unwrap_or(0)
        )));
    }
    let before = client
        .query_opt(
            "SELECT last_seq, last_hash FROM audit_archives WHERE chain = $1 AND last_seq IS NOT NULL ORDER BY last_seq DESC LIMIT 1",
            &[&p.table],
        )
        .await
        .map_err(|e| DbError::new("read the previous archive", e))?;
    let (expected_first, expected_prev) =
        before.map_or((1, GENESIS.to_vec()), |r| (r.get::<_, i64>(0) + 1, r.get::<_, Vec<u8>>(1)));
    let prev: Vec<u8> = row.get(2);
    if first != expected_first || prev != expected_prev {
        return Ok(Err(format!(
            "it starts at seq {first}, and the trail archived or kept before it ends at seq {}",
            expected_first - 1
        )));
    }
    Ok(Ok((Some((first, last)), Some(prev), Some(row.get(3)))))
}

/// Writes the partition as CSV to `path`, synced, and returns its rows and SHA-256.
async fn write_csv(client: &Transaction<'_>, ident: &str, path: &Path) -> Result<(i64, String), ArchiveError> {
    let file_error = |source| ArchiveError::File { path: path.to_path_buf(), source };
    let mut file = std::fs::File::create(path).map_err(file_error)?;
    let copy = format!("COPY (SELECT * FROM {ident} ORDER BY id) TO STDOUT (FORMAT csv, HEADER)");
    let stream = client.copy_out(&copy).await.map_err(|e| DbError::new("export the partition", e))?;
    pin_mut!(stream);
    let mut digest = Sha256::new();
    let mut lines = 0_i64;
    while let Some(chunk) = stream.try_next().await.map_err(|e| DbError::new("export the partition", e))? {
        digest.update(&chunk);
        lines += chunk.iter().filter(|b| **b == b'\n').count() as i64;
        file.write_all(&chunk).map_err(file_error)?;
    }
    file.sync_all().map_err(file_error)?;
    let rows: i64 = client
        .query_one(&format!("SELECT count(*) FROM {ident}"), &[])
        .await
        .map_err(|e| DbError::new("count the partition's rows", e))?
        .get(0);
    // A value with a newline inside quotes adds lines, never removes them.
    debug_assert!(lines > rows, "a header and a line per row at least");
    Ok((rows, hex::encode(digest.finalize())))
}
