//! One `access_log` row per call to an external API: method, path template, status,
//! duration, row count. Never a value, never a token. Rows are written in batches by a
//! background task so a call does not wait on Postgres.

use std::time::Duration;

use tokio::sync::mpsc;

/// One call.
#[derive(Debug, Clone)]
pub struct AccessEntry {
    /// `GET`, `POST`, …
    pub method: &'static str,
    /// The path with placeholders (`/docs/{docId}/tables/{tableIdOrName}/rows`).
    pub path_template: &'static str,
    /// The HTTP status, or `None` when no response came.
    pub status: Option<u16>,
    /// How long the call took.
    pub duration: Duration,
    /// Rows sent or received.
    pub rows: Option<usize>,
}

/// Where calls are recorded.
#[derive(Debug, Clone)]
pub struct AccessLog {
    service: &'static str,
    tx: mpsc::UnboundedSender<AccessEntry>,
}

impl AccessLog {
    /// Records calls to `service` in `access_log` of the database `pg`.
    pub fn start(service: &'static str, pg: tokio_postgres::Config) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_entries(service, pg, rx));
        Self { service, tx }
    }

    /// Records one call.
    pub fn record(&self, entry: AccessEntry) {
        metrics::histogram!("august_external_call_seconds", "service" => self.service, "path" => entry.path_template)
            .record(entry.duration.as_secs_f64());
        let _ = self.tx.send(entry);
    }
}

async fn write_entries(
    service: &'static str,
    pg: tokio_postgres::Config,
    mut rx: mpsc::UnboundedReceiver<AccessEntry>,
) {
    let mut client = None;
    let mut batch = Vec::new();
    while let Some(entry) = rx.recv().await {
        batch.push(entry);
        while let Ok(entry) = rx.try_recv() {
            batch.push(entry);
        }
        loop {
            if client.as_ref().is_none_or(|c: &tokio_postgres::Client| c.is_closed()) {
                client = august_schema::connect(&pg).await.ok();
            }
            let Some(c) = &client else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            match insert(c, service, &batch).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %august_schema::DbError::new("write access_log", e), "retrying");
                    client = None;
                }
            }
        }
        batch.clear();
    }
}

async fn insert(
    client: &tokio_postgres::Client,
    service: &str,
    batch: &[AccessEntry],
) -> Result<(), tokio_postgres::Error> {
    let methods: Vec<&str> = batch.iter().map(|e| e.method).collect();
    let paths: Vec<&str> = batch.iter().map(|e| e.path_template).collect();
    let statuses: Vec<Option<i32>> = batch.iter().map(|e| e.status.map(i32::from)).collect();
    let durations: Vec<i32> = batch.iter().map(|e| i32::try_from(e.duration.as_millis()).unwrap_or(i32::MAX)).collect();
    let rows: Vec<Option<i32>> = batch.iter().map(|e| e.rows.and_then(|r| i32::try_from(r).ok())).collect();
    client
        .execute(
            "INSERT INTO access_log (service, method, path_template, status_code, duration_ms, row_count, actor)
             SELECT $1, m, p, s, d, r, 'august_coda_sink' FROM unnest($2::text[], $3::text[], $4::int[], $5::int[], $6::int[]) AS t(m, p, s, d, r)",
            &[&service, &methods, &paths, &statuses, &durations, &rows],
        )
        .await
        .map(|_| ())
}
