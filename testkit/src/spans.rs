//! Spans a test can read back: one OpenTelemetry pipeline per test binary, exporting into
//! memory, installed as the global `tracing` subscriber the first time a test asks for it
//! ([`spans`]). Global, because the spans of one change come from tokio tasks and from the
//! dataflow's own worker threads, where a thread's default subscriber would not reach.
//!
//! Tests of one binary run side by side and share it, so each test starts a trace of its own
//! ([`Spans::new_trace`]) and reads back only the spans of that trace, or linked to it.
//! Only spans of August's crates are recorded.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use august_schema::trace::TraceParent;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

/// The spans this test binary has ended.
#[derive(Debug)]
pub struct Spans {
    exporter: InMemorySpanExporter,
    _provider: SdkTracerProvider,
}

/// The recorder, installed on first use.
pub fn spans() -> &'static Spans {
    static SPANS: OnceLock<Spans> = OnceLock::new();
    SPANS.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let ours = tracing_subscriber::filter::filter_fn(|meta| meta.target().starts_with("august"));
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("august-tests")).with_filter(ours);
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .expect("no other global subscriber in a test binary that records spans");
        Spans { exporter, _provider: provider }
    })
}

impl Spans {
    /// A fresh, sampled trace context, as a writer would put into the WAL.
    pub fn new_trace(&self) -> TraceParent {
        let ids = uuid::Uuid::new_v4().into_bytes();
        let span = uuid::Uuid::new_v4().into_bytes();
        let mut span_id = [0u8; 8];
        span_id.copy_from_slice(&span[..8]);
        TraceParent { trace_id: ids, span_id, flags: 1 }
    }

    /// Every span ended so far.
    pub fn all(&self) -> Vec<SpanData> {
        self.exporter.get_finished_spans().expect("the in-memory exporter answers")
    }

    /// The ended spans of `trace_id`, and those linked to one of them.
    pub fn of_trace(&self, trace_id: [u8; 16]) -> Vec<SpanData> {
        let all = self.all();
        let ours = |s: &SpanData| s.span_context.trace_id().to_bytes() == trace_id;
        let linked = |s: &SpanData| s.links.links.iter().any(|l| l.span_context.trace_id().to_bytes() == trace_id);
        all.into_iter().filter(|s| ours(s) || linked(s)).collect()
    }

    /// Waits (up to `timeout`) until the spans of `trace_id` satisfy `done`, and returns them;
    /// panics with what was there when they never do.
    pub async fn wait_for(
        &self,
        trace_id: [u8; 16],
        timeout: Duration,
        done: impl Fn(&[SpanData]) -> bool,
    ) -> Vec<SpanData> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.of_trace(trace_id);
            if done(&spans) {
                return spans;
            }
            if Instant::now() >= deadline {
                let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
                panic!("the trace never got the spans expected; it holds {names:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The spans called `name`.
pub fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// The value of attribute `key`, as text.
pub fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.as_str().into_owned())
}

/// Panics when any attribute of any span (links' included) holds one of `forbidden` (PHI).
pub fn assert_no_text(spans: &[SpanData], forbidden: &[&str]) {
    for span in spans {
        let links = span.links.links.iter().flat_map(|l| &l.attributes);
        for kv in span.attributes.iter().chain(links) {
            let text = match &kv.value {
                Value::String(s) => s.as_str().to_string(),
                other => other.as_str().into_owned(),
            };
            for word in forbidden {
                assert!(!text.contains(word), "span {} attribute {} holds {word:?}", span.name, kv.key);
            }
        }
        assert!(!forbidden.iter().any(|w| span.name.contains(w)), "span name {}", span.name);
    }
}
