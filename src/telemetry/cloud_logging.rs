//! JSON log lines as Google Cloud Logging reads them from a container's standard error
//! (`AUGUST_LOG_FORMAT=json`): `severity` (DEBUG, INFO, WARNING, ERROR), `message`, `time`
//! (RFC 3339), `target`, the event's own fields, and, inside a traced span,
//! `logging.googleapis.com/trace` (`projects/<GOOGLE_CLOUD_PROJECT>/traces/<trace id>`, or
//! the bare trace id without a project), `logging.googleapis.com/spanId` and
//! `logging.googleapis.com/trace_sampled`, so Cloud Logging shows a line under its trace.
//!
//! Events carry ids only (the project's rule), so nothing here filters values.

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Cloud Logging's trace field.
pub const TRACE_FIELD: &str = "logging.googleapis.com/trace";
/// Cloud Logging's span field.
pub const SPAN_FIELD: &str = "logging.googleapis.com/spanId";
/// Cloud Logging's sampled flag.
pub const SAMPLED_FIELD: &str = "logging.googleapis.com/trace_sampled";

/// The event formatter; `project` is `GOOGLE_CLOUD_PROJECT`, when set.
pub struct CloudLogging {
    /// The Google Cloud project traces are stored in.
    pub project: Option<String>,
}

/// Cloud Logging's `LogSeverity` for a `tracing` level (TRACE folds into DEBUG).
fn severity(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

/// Collects an event's fields as JSON values.
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_string(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().to_string(), Value::String(value.to_string()));
    }
}

impl CloudLogging {
    /// The trace fields of the span the event happened in, when that span is traced: its
    /// OpenTelemetry context is active while it is entered.
    fn trace_fields(&self, line: &mut Map<String, Value>) {
        let context = opentelemetry::Context::current();
        let span = context.span();
        let span_context = span.span_context();
        if !span_context.is_valid() {
            return;
        }
        let trace_id = span_context.trace_id().to_string();
        let trace = match &self.project {
            Some(project) => format!("projects/{project}/traces/{trace_id}"),
            None => trace_id,
        };
        line.insert(TRACE_FIELD.into(), Value::String(trace));
        line.insert(SPAN_FIELD.into(), Value::String(span_context.span_id().to_string()));
        line.insert(SAMPLED_FIELD.into(), Value::Bool(span_context.is_sampled()));
    }
}

impl<S, N> FormatEvent<S, N> for CloudLogging
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let mut line = fields.0;
        let message = line.remove("message").unwrap_or(Value::String(String::new()));
        let metadata = event.metadata();
        line.insert("severity".into(), Value::String(severity(metadata.level()).into()));
        line.insert("message".into(), message);
        line.insert(
            "time".into(),
            Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        line.insert("target".into(), Value::String(metadata.target().into()));
        if let Some(span) = ctx.lookup_current() {
            line.insert("span".into(), Value::String(span.name().into()));
        }
        self.trace_fields(&mut line);
        writeln!(writer, "{}", Value::Object(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_cloud_logging_severities() {
        let names: Vec<&str> =
            [Level::TRACE, Level::DEBUG, Level::INFO, Level::WARN, Level::ERROR].iter().map(severity).collect();
        assert_eq!(names, ["DEBUG", "DEBUG", "INFO", "WARNING", "ERROR"]);
    }
}
