//! The link write-back: `deepcura_links` rows written into `deepcura_notes`
//! (`clinical_note_id`, `linked_at`, `link_method`, `needs_review`), as actor `august_linker`.
//!
//! A note's link columns are written only when they differ from what is stored (the `WHERE`
//! guard), so a link causes exactly one write. The write is itself a change the dataflow reads
//! back, but the links are computed from the note's own columns (patient, appointment, date),
//! never from the link columns, so it yields no new link: no ping-pong. Each batch of updates
//! commits in one transaction; after a frontier, everything before it is durable here.
//!
//! A lost connection (a Postgres restart or failover, a reset link) is not the end: the batch
//! is tried again on a new connection, with backoff, until it commits or fails for good. Its
//! frontier waits meanwhile, so the slot does not pass links not yet written.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use august_cdc::{Lsn, Value};
use august_dataflow::views::deepcura_links::SPEC;
use august_dataflow::{Output, ViewUpdate};
use august_schema::{set_actor, Actor, DbError, ErrorKind};
use tokio::sync::{mpsc, watch};

use crate::SinkError;

/// Counts what the sink did.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Notes whose link columns were written.
    pub writes: AtomicU64,
}

/// Writes links until the output ends. Publishes its durable LSN on `durable`.
pub async fn write_links(
    pg: tokio_postgres::Config,
    mut output: mpsc::Receiver<Output>,
    durable: watch::Sender<Lsn>,
    stats: Arc<LinkStats>,
) -> Result<(), SinkError> {
    let mut client = None;
    while let Some(item) = output.recv().await {
        match item {
            Output::Updates { updates, .. } => {
                let links: Vec<&ViewUpdate> =
                    updates.iter().filter(|u| u.view == SPEC.name && u.row.is_some()).collect();
                if links.is_empty() {
                    continue;
                }
                let written = write_until_done(&pg, &mut client, &links).await?;
                stats.writes.fetch_add(written, Ordering::Relaxed);
            }
            Output::Frontier(lsn) => {
                durable.send_replace(lsn);
            }
            Output::Notices { .. } | Output::Trace { .. } => {}
        }
    }
    Ok(())
}

/// Writes `links` on `client` (connecting when there is none or it closed), trying again on a
/// new connection while the failure is retryable.
async fn write_until_done(
    pg: &tokio_postgres::Config,
    client: &mut Option<tokio_postgres::Client>,
    links: &[&ViewUpdate],
) -> Result<u64, SinkError> {
    let mut backoff = Duration::from_millis(100);
    loop {
        let attempt = async {
            let connected = match client.take() {
                Some(open) if !open.is_closed() => open,
                _ => august_schema::connect(pg).await?,
            };
            let connected = client.insert(connected);
            write_batch(connected, links).await
        };
        match attempt.await {
            Ok(written) => return Ok(written),
            Err(error) if error.kind() == ErrorKind::Retryable => {
                tracing::warn!(error = %error, retry_in_ms = backoff.as_millis() as u64, "the link write-back failed; retrying");
                *client = None;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(error) => return Err(error),
        }
    }
}

const UPDATE: &str = "UPDATE deepcura_notes
       SET clinical_note_id = $2, link_method = $3, needs_review = $4,
           linked_at = CASE WHEN $2::text IS NULL THEN NULL ELSE now() END
     WHERE id = $1
       AND (clinical_note_id, link_method, needs_review) IS DISTINCT FROM ($2::text, $3::text, $4)";

async fn write_batch(client: &mut tokio_postgres::Client, links: &[&ViewUpdate]) -> Result<u64, SinkError> {
    let column = |name: &str| SPEC.columns.iter().position(|c| *c == name).expect("deepcura_links column");
    let (clinical_note, method, review) = (column("clinical_note_id"), column("link_method"), column("needs_review"));
    let tx = client.transaction().await.map_err(|e| DbError::new("begin the link write-back", e))?;
    set_actor(&tx, Actor::Linker).await?;
    let statement = tx.prepare(UPDATE).await.map_err(|e| DbError::new("prepare the link write-back", e))?;
    let mut written = 0;
    for link in links {
        let row = link.row.as_ref().expect("filtered to rows");
        let Value::Uuid(note_id) = &link.key else {
            return Err(SinkError::Shape { view: SPEC.name, message: "note_id is not a uuid".into() });
        };
        let text = |value: &Value| match value {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        };
        let needs_review = matches!(row[review], Value::Bool(true));
        written += tx
            .execute(&statement, &[note_id, &text(&row[clinical_note]), &text(&row[method]), &needs_review])
            .await
            .map_err(|e| DbError::new("write a link", e))?;
    }
    tx.commit().await.map_err(|e| DbError::new("commit the link write-back", e))?;
    Ok(written)
}
