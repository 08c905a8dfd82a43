//! The Coda API client (`CODA_API_BASE`, Bearer `CODA_API_TOKEN`), following Coda's OpenAPI
//! 1.5.0: list columns, upsert rows with `keyColumns`, mutation status, list rows with a keyed
//! `query`, delete rows. Every call waits for the shared write or read quota first, and leaves
//! one `access_log` row. A write takes its slot of the quota right before its request leaves,
//! after everything it needed first (a look-up, a ledger write), so the spacing Coda sees is
//! the spacing the limiter keeps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use august_schema::{ErrorKind, Secret};
use governor::DefaultDirectRateLimiter;
use serde::Deserialize;
use serde_json::{json, Value};

use august_schema::access_log::{AccessEntry, AccessLog};

use super::quota::{limiter, Pacer};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CodaError {
    /// 429: wait (as long as `Retry-After` says, when it says) and try again.
    #[error("Coda rate limit (429)")]
    RateLimited {
        /// The server's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// A time-out, a broken connection or a malformed answer: try again later.
    #[error("Coda unavailable: {0}")]
    Unavailable(String),
    /// 5xx: try again later.
    #[error("Coda server error ({status}): {message}")]
    ServerError {
        /// The status.
        status: u16,
        /// Coda's message.
        message: String,
    },
    /// Another 4xx: the request itself is wrong (e.g. a value Coda refuses).
    #[error("Coda refused the request ({status}): {message}")]
    Rejected {
        /// The status.
        status: u16,
        /// Coda's message.
        message: String,
    },
    /// 401, 403 or 404: the token, the doc or the table is wrong. Fix the settings.
    #[error("Coda answered {status} to {path}: {message}; check CODA_API_TOKEN and the mapping's doc and table ids")]
    Fatal {
        /// The status.
        status: u16,
        /// The call.
        path: &'static str,
        /// Coda's message.
        message: String,
    },
}

impl CodaError {
    /// Whether trying again can help.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CodaError::RateLimited { .. } | CodaError::Unavailable(_) | CodaError::ServerError { .. } => {
                ErrorKind::Retryable
            }
            CodaError::Rejected { .. } | CodaError::Fatal { .. } => ErrorKind::Permanent,
        }
    }

    /// The `outcome` label of `august_coda_requests_total` for a request that failed so.
    pub fn outcome(&self) -> &'static str {
        match self {
            CodaError::RateLimited { .. } => "rate_limited",
            CodaError::ServerError { .. } => "server_error",
            CodaError::Unavailable(_) => "network",
            CodaError::Rejected { .. } | CodaError::Fatal { .. } => "client_error",
        }
    }
}

/// How the client reaches Coda.
#[derive(Debug, Clone)]
pub struct CodaSettings {
    /// `CODA_API_BASE`.
    pub base: String,
    /// `CODA_API_TOKEN`.
    pub token: Secret<String>,
    /// Writes allowed per window (Coda: 10 per 6 s).
    pub writes: (u32, Duration),
    /// Reads allowed per window (Coda: 100 per 6 s).
    pub reads: (u32, Duration),
    /// How long one call may take.
    pub timeout: Duration,
}

impl Default for CodaSettings {
    fn default() -> Self {
        Self {
            base: "https://coda.io/apis/v1".into(),
            token: Secret::new(String::new()),
            writes: (10, Duration::from_secs(6)),
            reads: (100, Duration::from_secs(6)),
            timeout: Duration::from_secs(30),
        }
    }
}

/// A Coda column.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ColumnInfo {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// The client.
#[derive(Clone)]
pub struct CodaClient {
    http: reqwest::Client,
    settings: CodaSettings,
    writes: Arc<Pacer>,
    reads: Arc<DefaultDirectRateLimiter>,
    log: AccessLog,
}

impl std::fmt::Debug for CodaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodaClient").field("base", &self.settings.base).finish_non_exhaustive()
    }
}

impl CodaClient {
    /// A client; every call is recorded in `log`.
    pub fn new(settings: CodaSettings, log: AccessLog) -> Result<Self, CodaError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| CodaError::Unavailable(e.to_string()))?;
        Ok(Self {
            writes: Arc::new(Pacer::new(settings.writes)),
            reads: Arc::new(limiter(settings.reads)),
            http,
            settings,
            log,
        })
    }

    /// Waits until the write quota admits one more write, without taking the slot: the write
    /// call takes it as its request leaves. The writer waits here first and builds its batch
    /// after, coalescing what arrived meanwhile. Cancellation-safe.
    pub async fn write_slot(&self) {
        tokio::time::sleep_until(self.writes.ready_at().into()).await;
    }

    /// When the write quota next admits a write.
    pub fn write_ready_at(&self) -> Instant {
        self.writes.ready_at()
    }

    /// The write quota now: writes spent in the last window, writes a window allows, and the
    /// window (`august_coda_quota_*`).
    pub fn write_quota(&self) -> (u32, u32, Duration) {
        (self.writes.used(), self.settings.writes.0, self.settings.writes.1)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        template: &'static str,
        path: String,
        body: Option<Value>,
        rows: Option<usize>,
    ) -> Result<Value, CodaError> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.settings.base))
            .bearer_auth(self.settings.token.expose());
        if let Some(body) = body {
            request = request.json(&body);
        }
        if method == reqwest::Method::GET {
            self.reads.until_ready().await;
        } else {
            self.writes.take().await; // nothing between the slot and the request
        }
        let started = Instant::now();
        let span = super::traced::request_span(&method, template, rows);
        let result = request.send().await;
        let status = result.as_ref().ok().map(|r| r.status().as_u16());
        super::traced::answered(&span, status);
        self.log.record(AccessEntry {
            method: method_name(&method),
            path_template: template.into(),
            status,
            duration: started.elapsed(),
            rows,
            error: None,
        });
        let response = result.map_err(|e| {
            CodaError::Unavailable(if e.is_timeout() { "timed out".into() } else { "connection failed".into() })
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs);
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body.get("message").and_then(Value::as_str).unwrap_or("no message").to_string();
        Err(match status.as_u16() {
            429 => CodaError::RateLimited { retry_after },
            401 | 403 | 404 => CodaError::Fatal { status: status.as_u16(), path: template, message },
            s if s >= 500 => CodaError::ServerError { status: s, message },
            s => CodaError::Rejected { status: s, message },
        })
    }

    /// Every item of a paginated list, following `nextPageToken` (a token carries the first
    /// page's parameters).
    async fn all_pages(&self, template: &'static str, path: String, first: &str) -> Result<Vec<Value>, CodaError> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let query = match &token {
                Some(t) => format!("?pageToken={}", encode(t)),
                None => first.to_string(),
            };
            let page = self.call(reqwest::Method::GET, template, format!("{path}{query}"), None, None).await?;
            match page.get("items").and_then(Value::as_array) {
                Some(page_items) => items.extend(page_items.iter().cloned()),
                None => return Err(CodaError::Unavailable("malformed list".into())),
            }
            match page.get("nextPageToken").and_then(Value::as_str) {
                Some(next) => token = Some(next.to_string()),
                None => return Ok(items),
            }
        }
    }

    /// Every column of a table (all pages).
    pub async fn list_columns(&self, doc: &str, table: &str) -> Result<Vec<ColumnInfo>, CodaError> {
        let path = format!("/docs/{}/tables/{}/columns", encode(doc), encode(table));
        let items = self.all_pages("/docs/{docId}/tables/{tableIdOrName}/columns", path, "?limit=100").await?;
        serde_json::from_value(Value::Array(items)).map_err(|_| CodaError::Unavailable("malformed column list".into()))
    }

    /// Upserts rows (cells as `(column id, value)`) keyed on `key_columns`; returns the
    /// request id to check with [`CodaClient::mutation_completed`]. Takes a write slot.
    pub async fn upsert_rows(
        &self,
        doc: &str,
        table: &str,
        rows: &[Vec<(String, Value)>],
        key_columns: &[String],
    ) -> Result<String, CodaError> {
        let body = upsert_body(rows, key_columns);
        let result = self
            .call(
                reqwest::Method::POST,
                "/docs/{docId}/tables/{tableIdOrName}/rows",
                format!("/docs/{}/tables/{}/rows", encode(doc), encode(table)),
                Some(body),
                Some(rows.len()),
            )
            .await?;
        request_id(&result)
    }

    /// Whether the mutation has been applied.
    pub async fn mutation_completed(&self, request: &str) -> Result<bool, CodaError> {
        let status = self
            .call(
                reqwest::Method::GET,
                "/mutationStatus/{requestId}",
                format!("/mutationStatus/{}", encode(request)),
                None,
                None,
            )
            .await?;
        Ok(status.get("completed").and_then(Value::as_bool).unwrap_or(false))
    }

    /// The ids of the rows whose `column` equals `value` (a keyed `query`).
    pub async fn find_rows(
        &self,
        doc: &str,
        table: &str,
        column: &str,
        value: &Value,
    ) -> Result<Vec<String>, CodaError> {
        Ok(self.find_row_values(doc, table, column, value).await?.into_iter().map(|(id, _)| id).collect())
    }

    /// The rows whose `column` equals `value` (a keyed `query`, one read): row id and values by
    /// column id.
    pub async fn find_row_values(
        &self,
        doc: &str,
        table: &str,
        column: &str,
        value: &Value,
    ) -> Result<Vec<(String, std::collections::BTreeMap<String, Value>)>, CodaError> {
        let query = format!("{column}:{value}");
        let page = self
            .call(
                reqwest::Method::GET,
                "/docs/{docId}/tables/{tableIdOrName}/rows",
                format!(
                    "/docs/{}/tables/{}/rows?limit=100&useColumnNames=false&valueFormat=simple&query={}",
                    encode(doc),
                    encode(table),
                    encode(&query)
                ),
                None,
                None,
            )
            .await?;
        Ok(page["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|r| {
                        let values = serde_json::from_value(r["values"].clone()).unwrap_or_default();
                        r["id"].as_str().map(|id| (id.to_string(), values))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Every row of a table (all pages of 500): row id and values by column id.
    pub async fn list_rows(
        &self,
        doc: &str,
        table: &str,
    ) -> Result<Vec<(String, std::collections::BTreeMap<String, Value>)>, CodaError> {
        let path = format!("/docs/{}/tables/{}/rows", encode(doc), encode(table));
        let first = "?limit=500&useColumnNames=false&valueFormat=simple";
        let items = self.all_pages("/docs/{docId}/tables/{tableIdOrName}/rows", path, first).await?;
        items
            .into_iter()
            .map(|item| match (item["id"].as_str(), serde_json::from_value(item["values"].clone())) {
                (Some(id), Ok(values)) => Ok((id.to_string(), values)),
                _ => Err(CodaError::Unavailable("malformed row list".into())),
            })
            .collect()
    }

    /// Deletes rows by id; returns the request id. Takes a write slot.
    pub async fn delete_rows(&self, doc: &str, table: &str, row_ids: &[String]) -> Result<String, CodaError> {
        let result = self
            .call(
                reqwest::Method::DELETE,
                "/docs/{docId}/tables/{tableIdOrName}/rows",
                format!("/docs/{}/tables/{}/rows", encode(doc), encode(table)),
                Some(json!({"rowIds": row_ids})),
                Some(row_ids.len()),
            )
            .await?;
        request_id(&result)
    }
}

/// The JSON body of an upsert.
pub fn upsert_body(rows: &[Vec<(String, Value)>], key_columns: &[String]) -> Value {
    let rows: Vec<Value> = rows
        .iter()
        .map(|cells| json!({"cells": cells.iter().map(|(c, v)| json!({"column": c, "value": v})).collect::<Vec<_>>()}))
        .collect();
    json!({"rows": rows, "keyColumns": key_columns})
}

fn request_id(result: &Value) -> Result<String, CodaError> {
    result
        .get("requestId")
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| CodaError::Unavailable("no requestId in the answer".into()))
}

fn method_name(method: &reqwest::Method) -> &'static str {
    match *method {
        reqwest::Method::GET => "GET",
        reqwest::Method::POST => "POST",
        reqwest::Method::PUT => "PUT",
        reqwest::Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

/// Percent-encodes a path segment or query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
