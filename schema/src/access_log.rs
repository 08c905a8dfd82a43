//! One `access_log` row per call to an external API (Coda, DrChrono): method, path template,
//! status, duration, row count. Never a value, never a token. Rows are written in batches by a
//! background task so a call does not wait on Postgres; [`AccessLog::flush`] waits until what
//! was recorded so far is stored.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::Actor;

/// One call.
#[derive(Debug, Clone)]
pub struct AccessEntry {
    /// `GET`, `POST`, … (for SQL: the statement's kind, `SELECT`).
    pub method: &'static str,
    /// The path with placeholders (`/docs/{docId}/tables/{tableIdOrName}/rows`; for SQL: the
    /// tables the query read, comma-separated).
    pub path_template: std::borrow::Cow<'static, str>,
    /// The HTTP status, or `None` when no response came.
    pub status: Option<u16>,
    /// How long the call took.
    pub duration: Duration,
    /// Rows sent or received.
    pub rows: Option<usize>,
    /// Why it failed, when it did: a code, never a value (SQL: the SQLSTATE).
    pub error: Option<&'static str>,
}

enum Message {
    /// A call, and who made it when not the log's own actor.
    Call(AccessEntry, Option<String>),
    Flush(oneshot::Sender<()>),
}

/// Where calls are recorded.
#[derive(Debug, Clone)]
pub struct AccessLog {
    service: &'static str,
    tx: mpsc::UnboundedSender<Message>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("access_log message")
    }
}

impl AccessLog {
    /// Records calls to `service` (`coda`, `drchrono`) made by `actor` in `access_log` of the
    /// database `pg`.
    pub fn start(service: &'static str, actor: Actor, pg: tokio_postgres::Config) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_entries(service, actor, pg, rx));
        Self { service, tx }
    }

    /// Records one call.
    pub fn record(&self, entry: AccessEntry) {
        metrics::histogram!(crate::metrics::EXTERNAL_CALL_SECONDS.name, "service" => self.service, "path" => entry.path_template.to_string())
            .record(entry.duration.as_secs_f64());
        let _ = self.tx.send(Message::Call(entry, None));
    }

    /// Records one access made by `who` (a person, such as a SQL user: `sql:<name>`), not by
    /// the log's actor. No latency metric: its path is not a bounded label.
    pub fn record_by(&self, who: String, entry: AccessEntry) {
        let _ = self.tx.send(Message::Call(entry, Some(who)));
    }

    /// Waits until every call recorded before this one is stored (or the writer has stopped).
    pub async fn flush(&self) {
        let (done, stored) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).is_ok() {
            let _ = stored.await;
        }
    }
}

async fn write_entries(
    service: &'static str,
    actor: Actor,
    pg: tokio_postgres::Config,
    mut rx: mpsc::UnboundedReceiver<Message>,
) {
    let mut client = None;
    let mut batch = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(message) = next.take().or_else(|| rx.try_recv().ok()) {
            match message {
                Message::Call(entry, who) => batch.push((entry, who)),
                Message::Flush(done) => flushes.push(done),
            }
        }
        while !batch.is_empty() {
            if client.as_ref().is_none_or(|c: &tokio_postgres::Client| c.is_closed()) {
                client = crate::connect(&pg).await.ok();
            }
            let Some(c) = &client else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            match insert(c, service, actor, &batch).await {
                Ok(()) => batch.clear(),
                Err(e) => {
                    tracing::warn!(error = %crate::DbError::new("write access_log", e), "retrying");
                    client = None;
                }
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

async fn insert(
    client: &tokio_postgres::Client,
    service: &str,
    actor: Actor,
    batch: &[(AccessEntry, Option<String>)],
) -> Result<(), tokio_postgres::Error> {
    let methods: Vec<&str> = batch.iter().map(|(e, _)| e.method).collect();
    let paths: Vec<&str> = batch.iter().map(|(e, _)| e.path_template.as_ref()).collect();
    let statuses: Vec<Option<i32>> = batch.iter().map(|(e, _)| e.status.map(i32::from)).collect();
    let durations: Vec<i32> =
        batch.iter().map(|(e, _)| i32::try_from(e.duration.as_millis()).unwrap_or(i32::MAX)).collect();
    let rows: Vec<Option<i32>> = batch.iter().map(|(e, _)| e.rows.and_then(|r| i32::try_from(r).ok())).collect();
    let errors: Vec<Option<&str>> = batch.iter().map(|(e, _)| e.error).collect();
    let actors: Vec<&str> = batch.iter().map(|(_, who)| who.as_deref().unwrap_or(actor.as_str())).collect();
    client
        .execute(
            "INSERT INTO access_log (service, method, path_template, status_code, duration_ms, row_count, error, actor)
             SELECT $1, m, p, s, d, r, e, a
             FROM unnest($2::text[], $3::text[], $4::int[], $5::int[], $6::int[], $7::text[], $8::text[])
                  AS t(m, p, s, d, r, e, a)",
            &[&service, &methods, &paths, &statuses, &durations, &rows, &errors, &actors],
        )
        .await
        .map(|_| ())
}
