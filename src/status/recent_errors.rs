//! The status page's "recent errors": a `tracing` layer that keeps the last [`CAPACITY`]
//! WARN and ERROR events of the process — time, level, target, message, and only the fields
//! that name things by id (`view`, `feed`, `slot`, `run_id`, `retry_in_ms`, …, each value a
//! short token). Free text in fields (`error = %e`, which can quote a remote answer) stays in
//! the logs and never reaches the page; the message is the call site's own sentence, which
//! the project's rules keep free of PHI.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{Filtered, LevelFilter};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// How many events the page shows.
pub const CAPACITY: usize = 50;
/// The longest message kept, in bytes (cut at a character boundary).
const MESSAGE_BYTES: usize = 240;
/// Field names that carry an id or a count, kept when their value is a short token.
const ID_FIELDS: &[&str] =
    &["id", "key", "view", "table", "feed", "slot", "prefix", "route", "path", "status", "code", "kind", "outcome"];
/// Name endings of such fields (`run_id`, `retry_in_ms`, `target_name`, …).
const ID_SUFFIXES: &[&str] = &["_id", "_ms", "_secs", "_seconds", "_bytes", "_lsn", "_name", "_count"];

/// One kept event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErrorEvent {
    /// When, in Unix seconds.
    pub at: f64,
    /// `WARN` or `ERROR`.
    pub level: String,
    /// The module that logged it (`august_sinks::coda::writer`, …).
    pub target: String,
    /// The call site's message.
    pub message: String,
    /// Its id-like fields.
    pub fields: BTreeMap<String, String>,
}

/// The last events, newest last; clones share them.
#[derive(Clone, Debug, Default)]
pub struct RecentErrors {
    events: Arc<Mutex<VecDeque<ErrorEvent>>>,
}

/// The process's own, that [`layer`] fills and the status page reads.
pub fn process() -> &'static RecentErrors {
    static PROCESS: OnceLock<RecentErrors> = OnceLock::new();
    PROCESS.get_or_init(RecentErrors::default)
}

/// The layer to stack on the process's subscriber: [`process`]'s, for WARN and above.
pub fn layer<S: Subscriber + for<'a> LookupSpan<'a>>() -> Filtered<RecentErrors, LevelFilter, S> {
    process().clone().with_filter(LevelFilter::WARN)
}

impl RecentErrors {
    /// The kept events, oldest first.
    pub fn events(&self) -> Vec<ErrorEvent> {
        self.events.lock().map(|e| e.iter().cloned().collect()).unwrap_or_default()
    }

    fn keep(&self, event: ErrorEvent) {
        if let Ok(mut events) = self.events.lock() {
            if events.len() == CAPACITY {
                events.pop_front();
            }
            events.push_back(event);
        }
    }
}

impl<S: Subscriber> Layer<S> for RecentErrors {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = IdFields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        self.keep(ErrorEvent {
            at: super::unix_now(),
            level: meta.level().to_string(),
            target: meta.target().to_string(),
            message: fields.message,
            fields: fields.ids,
        });
    }
}

/// Collects the message and the id-like fields of one event.
#[derive(Default)]
struct IdFields {
    message: String,
    ids: BTreeMap<String, String>,
}

impl IdFields {
    fn offer(&mut self, field: &Field, value: String) {
        let name = field.name();
        if name == "message" {
            self.message = cut(value, MESSAGE_BYTES);
        } else if is_id_name(name) && is_token(&value) {
            self.ids.insert(name.to_string(), value);
        }
    }
}

impl Visit for IdFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.offer(field, value.to_string());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.offer(field, value.to_string());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.offer(field, value.to_string());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.offer(field, value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.offer(field, format!("{value:?}"));
    }
}

fn is_id_name(name: &str) -> bool {
    ID_FIELDS.contains(&name) || ID_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// A short word of letters, digits and `_-.:/`: an id, a number, a view or path template.
fn is_token(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/'))
}

fn cut(mut text: String, bytes: usize) -> String {
    if text.len() > bytes {
        let mut end = bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    fn recorded(log: impl FnOnce()) -> Vec<ErrorEvent> {
        let recent = RecentErrors::default();
        let subscriber = tracing_subscriber::registry().with(recent.clone().with_filter(LevelFilter::WARN));
        tracing::subscriber::with_default(subscriber, log);
        recent.events()
    }

    #[test]
    fn keeps_warnings_and_errors_with_their_id_fields_only() {
        let events = recorded(|| {
            tracing::info!(view = "scheduling_ops", "not kept: info");
            let error = "Coda said: patient Grace Hopper, born 1986-12-09";
            tracing::warn!(error = %error, retry_in_ms = 250u64, view = "scheduling_ops", "Coda write failed; retrying");
            tracing::error!(feed = "patients", name = "Grace", key = "has a space", "DrChrono pull failed");
        });
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0].level, "WARN");
        assert_eq!(events[0].message, "Coda write failed; retrying");
        assert_eq!(events[0].target, module_path!());
        let fields: Vec<(&str, &str)> = events[0].fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(fields, [("retry_in_ms", "250"), ("view", "scheduling_ops")], "no error text");
        assert_eq!(events[1].level, "ERROR");
        assert_eq!(events[1].fields.keys().collect::<Vec<_>>(), ["feed"], "not a name, not free text");
    }

    #[test]
    fn keeps_only_the_newest_events_and_cuts_long_messages() {
        let events = recorded(|| {
            for i in 0..CAPACITY + 5 {
                tracing::warn!(attempt_count = i, "{}", "é".repeat(200));
            }
        });
        assert_eq!(events.len(), CAPACITY);
        assert_eq!(events[0].fields["attempt_count"], "5", "the oldest five dropped");
        assert!(events[0].message.len() <= MESSAGE_BYTES + '…'.len_utf8());
        assert!(events[0].message.ends_with('…'));
    }
}
