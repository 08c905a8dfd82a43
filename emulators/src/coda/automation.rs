//! Coda automations, as the emulator runs them: a table's "when a row changes (in these
//! columns)" rule whose step is a Pack action calling August's write-back URL. Like a Pack's
//! fetcher it sends `PATCH <url with the row's key>` with `Authorization: Bearer <token>` and a
//! JSON body of the changed fields only (empty cells as null), `edited_by` (the editor's email,
//! as `User()` gives it) and `coda_row_id`.
//!
//! It fires after a staff edit (`POST /_emulator/edit`, the page's form) and after an API
//! upsert's mutation is applied (attributed to the API token's owner, as Coda does), for each
//! existing row where one of its columns' values actually changed; a row's creation is not a
//! change. Calls leave through one queue, in order, on a task of their own: the API never
//! waits for them. Their outcomes are counted ([`AutomationStats`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};

/// A table's automation: where a changed row is sent, and which of its columns count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Automation {
    /// The write-back URL; `{key}` stands for the row's key.
    pub url: String,
    /// The column id whose value is the row's key.
    pub key_column: String,
    /// Column id → the write-back field it sets: the columns whose change fires the rule.
    pub fields: BTreeMap<String, String>,
    /// The token the Pack sends (`Authorization: Bearer …`).
    pub token: String,
}

/// One call an automation makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The URL, its `{key}` filled in.
    pub url: String,
    /// The bearer token.
    pub token: String,
    /// The JSON body.
    pub body: Value,
}

impl Automation {
    /// The call for a row whose cells went from `before` to `after` (values by column id),
    /// edited by `user`; `None` when none of the automation's columns changed.
    pub fn call(
        &self,
        row_id: &str,
        before: &BTreeMap<String, Value>,
        after: &BTreeMap<String, Value>,
        user: &str,
    ) -> Option<Call> {
        let empty = Value::String(String::new());
        let mut body = Map::new();
        for (column, field) in &self.fields {
            let new = after.get(column).unwrap_or(&empty);
            if before.get(column).unwrap_or(&empty) != new {
                body.insert(field.clone(), if *new == empty { Value::Null } else { new.clone() });
            }
        }
        if body.is_empty() {
            return None;
        }
        body.insert("edited_by".into(), Value::String(user.to_string()));
        body.insert("coda_row_id".into(), Value::String(row_id.to_string()));
        let key = match after.get(&self.key_column) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let url = self.url.replace("{key}", &encode_segment(&key));
        Some(Call { url, token: self.token.clone(), body: Value::Object(body) })
    }
}

/// Percent-encodes a URL path segment (everything but RFC 3986's unreserved characters).
fn encode_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `url` with its scheme, host and port replaced by `base`'s (`http://host:port`): how a
/// mapping's write-back URL is pointed at another server.
pub fn rebase(url: &str, base: &str) -> String {
    let path_start = |u: &str| u.find("://").map(|s| s + 3).map(|s| u[s..].find('/').map_or(u.len(), |p| s + p));
    let path = path_start(url).map_or(url, |p| &url[p..]);
    format!("{}{path}", base.trim_end_matches('/'))
}

/// What the automations did.
#[derive(Debug, Default)]
pub struct AutomationStats {
    /// Calls made (answered or not).
    pub calls: AtomicU64,
    /// Calls that got no answer (connection refused, timeout).
    pub failures: AtomicU64,
    /// Answers by HTTP status.
    pub by_status: Mutex<BTreeMap<u16, u64>>,
}

impl AutomationStats {
    /// Calls answered 2xx.
    pub fn succeeded(&self) -> u64 {
        self.by_status.lock().expect("stats lock").range(200..300).map(|(_, n)| n).sum()
    }

    /// Calls answered otherwise, or not at all.
    pub fn refused(&self) -> u64 {
        let answered: u64 = self
            .by_status
            .lock()
            .expect("stats lock")
            .iter()
            .filter(|(s, _)| !(200..300).contains(*s))
            .map(|(_, n)| n)
            .sum();
        answered + self.failures.load(Ordering::Relaxed)
    }

    /// The counters as JSON (for `GET /_emulator/stats`).
    pub fn json(&self) -> Value {
        let by_status: Map<String, Value> = self
            .by_status
            .lock()
            .expect("stats lock")
            .iter()
            .map(|(status, n)| (status.to_string(), Value::from(*n)))
            .collect();
        serde_json::json!({
            "calls": self.calls.load(Ordering::Relaxed),
            "failures": self.failures.load(Ordering::Relaxed),
            "by_status": by_status,
        })
    }
}

/// Where the calls go out: a queue and the task that sends them.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    queue: tokio::sync::mpsc::UnboundedSender<Call>,
    base: Arc<Mutex<Option<String>>>,
}

impl Dispatcher {
    /// Starts the sending task; outcomes go to `stats`.
    pub fn start(stats: Arc<AutomationStats>) -> Self {
        let (queue, mut calls) = tokio::sync::mpsc::unbounded_channel::<Call>();
        let base: Arc<Mutex<Option<String>>> = Arc::default();
        let rebased = base.clone();
        tokio::spawn(async move {
            let http = match reqwest::Client::builder().timeout(Duration::from_secs(15)).build() {
                Ok(http) => http,
                Err(e) => return tracing::error!(error = %e, "the Coda emulator's automations cannot send"),
            };
            while let Some(call) = calls.recv().await {
                let url = match rebased.lock().expect("base lock").as_deref() {
                    Some(base) => rebase(&call.url, base),
                    None => call.url.clone(),
                };
                stats.calls.fetch_add(1, Ordering::Relaxed);
                let sent = http.patch(&url).bearer_auth(&call.token).json(&call.body).send().await;
                match sent {
                    Ok(answer) => {
                        let status = answer.status().as_u16();
                        *stats.by_status.lock().expect("stats lock").entry(status).or_default() += 1;
                        tracing::debug!(status, "the Coda emulator's automation was answered");
                    }
                    Err(e) => {
                        stats.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e.without_url(), "the Coda emulator's automation got no answer");
                    }
                }
            }
        });
        Self { queue, base }
    }

    /// Queues calls (never waits).
    pub fn send(&self, calls: Vec<Call>) {
        for call in calls {
            let _ = self.queue.send(call);
        }
    }

    /// Sends every later call to `base` (`http://host:port`) instead of its URL's own server.
    pub fn point_at(&self, base: &str) {
        *self.base.lock().expect("base lock") = Some(base.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cells(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn only_changed_columns_are_sent_and_empty_cells_as_null() {
        let automation = Automation {
            url: "http://h:1/api/intake/{key}".into(),
            key_column: "c-key".into(),
            fields: cells(&[("c-status", json!("status")), ("c-who", json!("assigned_to"))])
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap().to_string()))
                .collect(),
            token: "t".into(),
        };
        let before = cells(&[("c-key", json!("A 1")), ("c-status", json!("open")), ("c-who", json!("x@y.z"))]);
        let after = cells(&[("c-key", json!("A 1")), ("c-status", json!("open")), ("c-who", json!(""))]);
        let call = automation.call("i-1", &before, &after, "u@clinic.example").unwrap();
        assert_eq!(call.url, "http://h:1/api/intake/A%201");
        assert_eq!(call.body, json!({"assigned_to": null, "edited_by": "u@clinic.example", "coda_row_id": "i-1"}));
        assert_eq!(automation.call("i-1", &before, &before, "u@clinic.example"), None);
        let other = cells(&[("c-key", json!("A 1")), ("c-other", json!(1))]);
        assert_eq!(automation.call("i-1", &after, &other.into_iter().chain(after.clone()).collect(), "u"), None);
    }

    #[test]
    fn rebase_keeps_the_path() {
        assert_eq!(
            rebase("http://127.0.0.1:8080/api/tasks/{key}", "http://127.0.0.1:5555/"),
            "http://127.0.0.1:5555/api/tasks/{key}"
        );
        assert_eq!(rebase("https://a.example.org", "http://b:1"), "http://b:1");
    }
}
