//! Rows Coda refused (`sink_dead_letters`), kept for a person to act on: `august dead-letters
//! list | resolve | replay`. A refused (view, key, content) is recorded once while it is open,
//! and the sink does not send that content again, after a restart either: it would only be
//! refused again, at the cost of a write. `replay` closes the letter and forgets the ledger's
//! row, so the sink's next start sends the row's current content; `resolve` just closes it.
//! Closed letters, and open ones older than the retention (`AUGUST_DEAD_LETTER_DAYS`), are
//! purged when the sink starts. Coda's message may quote a value: it stays in the table and is
//! never logged or listed.

use std::collections::HashSet;

use august_schema::DbError;
use chrono::{DateTime, Utc};

/// The content hash recorded for a refused delete.
pub const DELETE: &str = "delete";

/// One dead letter, as listed (no payload, no message: they may hold PHI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id.
    pub id: i64,
    /// The view.
    pub view: String,
    /// The row's key.
    pub key: String,
    /// The Coda doc and table.
    pub target: String,
    /// Coda's status.
    pub status: Option<i32>,
    /// When it was refused.
    pub created_at: DateTime<Utc>,
    /// `resolved` or `replayed`, once closed.
    pub resolution: Option<String>,
}

/// What a refused write was.
pub struct Refusal<'a> {
    /// The view.
    pub view: &'a str,
    /// The row's key.
    pub key: &'a str,
    /// The refused content's hash, or [`DELETE`].
    pub hash: &'a str,
    /// The Coda doc and table.
    pub target: &'a str,
    /// Coda's status.
    pub status: u16,
    /// Coda's message (may quote a value: stored, never logged).
    pub message: &'a str,
    /// The cells or the key that was refused.
    pub payload: &'a serde_json::Value,
    /// The change's LSN.
    pub lsn: &'a str,
}

/// Records a refusal, unless the same content of the same row is already open; true when new.
pub async fn record(db: &tokio_postgres::Client, r: &Refusal<'_>) -> Result<bool, DbError> {
    let inserted = db
        .execute(
            "INSERT INTO sink_dead_letters (sink, view, row_key, content_hash, target, status_code, message, payload, lsn)
             VALUES ('coda', $1, $2, $3, $4, $5, $6, $7, $8::text::pg_lsn)
             ON CONFLICT (sink, view, row_key, content_hash) WHERE resolved_at IS NULL DO NOTHING",
            &[&r.view, &r.key, &r.hash, &r.target, &i32::from(r.status), &r.message, r.payload, &r.lsn],
        )
        .await
        .map_err(|e| DbError::new("record a dead letter", e))?;
    Ok(inserted > 0)
}

/// The open refusals of these views, as (view, key, hash).
pub async fn open(db: &tokio_postgres::Client, views: &[String]) -> Result<HashSet<(String, String, String)>, DbError> {
    let rows = db
        .query(
            "SELECT view, row_key, content_hash FROM sink_dead_letters
              WHERE sink = 'coda' AND resolved_at IS NULL AND view = ANY($1)",
            &[&views],
        )
        .await
        .map_err(|e| DbError::new("read the open dead letters", e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

/// Deletes closed letters and open ones older than `days`; returns how many.
pub async fn purge(db: &tokio_postgres::Client, days: u32) -> Result<u64, DbError> {
    db.execute(
        "DELETE FROM sink_dead_letters
          WHERE resolved_at IS NOT NULL OR created_at < now() - make_interval(days => $1)",
        &[&i32::try_from(days).unwrap_or(i32::MAX)],
    )
    .await
    .map_err(|e| DbError::new("purge dead letters", e))
}

/// The letters of `view` (all views when `None`), open ones only unless `closed_too`.
pub async fn list(
    db: &tokio_postgres::Client,
    view: Option<&str>,
    closed_too: bool,
) -> Result<Vec<DeadLetter>, DbError> {
    let rows = db
        .query(
            "SELECT id, view, row_key, target, status_code, created_at, resolution FROM sink_dead_letters
              WHERE ($1::text IS NULL OR view = $1) AND ($2 OR resolved_at IS NULL)
              ORDER BY id",
            &[&view, &closed_too],
        )
        .await
        .map_err(|e| DbError::new("list dead letters", e))?;
    Ok(rows
        .iter()
        .map(|r| DeadLetter {
            id: r.get(0),
            view: r.get(1),
            key: r.get(2),
            target: r.get(3),
            status: r.get(4),
            created_at: r.get(5),
            resolution: r.get(6),
        })
        .collect())
}

/// Closes open letters by id as `resolved`; returns how many.
pub async fn resolve(db: &tokio_postgres::Client, ids: &[i64]) -> Result<u64, DbError> {
    db.execute(
        "UPDATE sink_dead_letters SET resolved_at = now(), resolution = 'resolved'
          WHERE id = ANY($1) AND resolved_at IS NULL",
        &[&ids],
    )
    .await
    .map_err(|e| DbError::new("resolve dead letters", e))
}

/// Closes open letters as `replayed` (by id, or every open one of `view`, or all) and forgets
/// what the ledger says Coda holds for their rows, so the sink's next start sends them again.
/// Returns how many.
pub async fn replay(db: &mut tokio_postgres::Client, view: Option<&str>, ids: &[i64]) -> Result<u64, DbError> {
    let tx = db.transaction().await.map_err(|e| DbError::new("begin", e))?;
    let rows = tx
        .query(
            "UPDATE sink_dead_letters SET resolved_at = now(), resolution = 'replayed'
              WHERE resolved_at IS NULL AND (cardinality($2::bigint[]) = 0 OR id = ANY($2))
                AND ($1::text IS NULL OR view = $1)
          RETURNING view, row_key",
            &[&view, &ids],
        )
        .await
        .map_err(|e| DbError::new("replay dead letters", e))?;
    for row in &rows {
        let (view, key): (String, String) = (row.get(0), row.get(1));
        tx.execute("DELETE FROM coda_sync_state WHERE view = $1 AND row_key = $2", &[&view, &key])
            .await
            .map_err(|e| DbError::new("forget a replayed row in the ledger", e))?;
    }
    tx.commit().await.map_err(|e| DbError::new("commit", e))?;
    Ok(rows.len() as u64)
}
