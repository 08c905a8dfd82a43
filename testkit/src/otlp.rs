//! An OTLP/HTTP trace receiver for tests: a collector stand-in on `127.0.0.1:0` that keeps
//! every span it is sent, so a test can assert a trace's tree and links.
//!
//! It speaks the OTLP/HTTP protocol for traces as the specification has it
//! (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>): `POST /v1/traces` with a binary
//! protobuf `ExportTraceServiceRequest` (`Content-Type: application/x-protobuf`), answered
//! `200` with an `ExportTraceServiceResponse` of the same content type; a body that does not
//! decode is a `400` with a protobuf `google.rpc.Status`; another content type a `415`; any
//! other path a `404`. Compression is not supported (an encoded body is a `400`).
//!
//! Spans are kept decoded ([`ReceivedSpan`]: hex ids, the kind, attributes as text, links),
//! and the waiting helpers wake on each export rather than polling on a timer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;
use tokio::sync::watch;

const PROTOBUF: &str = "application/x-protobuf";

/// One span as received, ids in lower-case hex.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// The span's name.
    pub name: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits; `None` for a root.
    pub parent_span_id: Option<String>,
    /// `internal`, `server`, `client`, `producer`, `consumer` (or `unspecified`).
    pub kind: &'static str,
    /// Attributes, each value as text (numbers in decimal, booleans `true`/`false`).
    pub attributes: BTreeMap<String, String>,
    /// The spans this one links to, as `(trace id, span id)`.
    pub links: Vec<(String, String)>,
    /// Its events (a log line inside the span becomes one), each a name and attributes.
    pub events: Vec<(String, BTreeMap<String, String>)>,
    /// The resource's `service.name`.
    pub service: String,
}

impl ReceivedSpan {
    /// An attribute's value as text.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// Whether `parent` is this span's parent (same trace, parent id).
    pub fn is_child_of(&self, parent: &ReceivedSpan) -> bool {
        self.trace_id == parent.trace_id && self.parent_span_id.as_deref() == Some(parent.span_id.as_str())
    }

    /// Whether this span links to `other`.
    pub fn links_to(&self, other: &ReceivedSpan) -> bool {
        self.links.iter().any(|(trace, span)| *trace == other.trace_id && *span == other.span_id)
    }

    /// This span's context as a W3C `traceparent` (sampled: only sampled spans are exported).
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.span_id)
    }

    /// Its name and every attribute's key and value, its events' too, for asserting that
    /// none holds a given text.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        let events =
            self.events.iter().flat_map(|(name, attributes)| std::iter::once(name.as_str()).chain(pairs(attributes)));
        std::iter::once(self.name.as_str()).chain(pairs(&self.attributes)).chain(events)
    }
}

/// Each key and value of `map`, in turn.
fn pairs(map: &BTreeMap<String, String>) -> impl Iterator<Item = &str> {
    map.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()])
}

#[derive(Clone)]
struct Kept {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    exports: Arc<watch::Sender<u64>>,
}

/// The running receiver; stops when dropped.
pub struct OtlpReceiver {
    base: String,
    kept: Kept,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl OtlpReceiver {
    /// Binds `127.0.0.1:0` and serves until dropped.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let kept = Kept { spans: Arc::default(), exports: Arc::new(watch::channel(0).0) };
        let app = Router::new().route("/v1/traces", post(export)).with_state(kept.clone());
        let server = tokio::spawn(async move {
            // Ends only when the task is aborted (the receiver dropped).
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { base, kept, server })
    }

    /// The value for `OTEL_EXPORTER_OTLP_ENDPOINT` (`http://127.0.0.1:<port>`).
    pub fn endpoint(&self) -> &str {
        &self.base
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.kept.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits until `ready` holds for the spans received, up to `within`; returns them, or
    /// the spans so far as the error.
    pub async fn wait_until(
        &self,
        within: Duration,
        ready: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Result<Vec<ReceivedSpan>, Vec<ReceivedSpan>> {
        let mut exports = self.kept.exports.subscribe();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let spans = self.spans();
            if ready(&spans) {
                return Ok(spans);
            }
            match tokio::time::timeout_at(deadline, exports.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(self.spans()),
            }
        }
    }

    /// The first span `matches` accepts, waiting up to `within`; panics listing the spans
    /// received when none comes.
    pub async fn span(&self, within: Duration, what: &str, matches: impl Fn(&ReceivedSpan) -> bool) -> ReceivedSpan {
        match self.wait_until(within, |spans| spans.iter().any(&matches)).await {
            Ok(spans) => spans.into_iter().find(|s| matches(s)).expect("found when ready"),
            Err(spans) => panic!("no span {what} within {within:?}; received:\n{}", describe(&spans)),
        }
    }

    /// The first span named `name`, waiting up to `within`.
    pub async fn named(&self, name: &str, within: Duration) -> ReceivedSpan {
        self.span(within, &format!("named {name:?}"), |s| s.name == name).await
    }

    /// The first span named `name` whose parent is `parent`, waiting up to `within`.
    pub async fn child(&self, parent: &ReceivedSpan, name: &str, within: Duration) -> ReceivedSpan {
        let what = format!("{name:?} under {:?} {}", parent.name, parent.span_id);
        self.span(within, &what, |s| s.name == name && s.is_child_of(parent)).await
    }

    /// The spans of trace `trace_id` received so far.
    pub fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.spans().into_iter().filter(|s| s.trace_id == trace_id).collect()
    }
}

/// One line per span (name, ids, parent, attributes), for failure messages.
pub fn describe(spans: &[ReceivedSpan]) -> String {
    let lines: Vec<String> = spans
        .iter()
        .map(|s| {
            let parent = s.parent_span_id.as_deref().unwrap_or("-");
            format!(
                "{} trace={} span={} parent={parent} {:?} links={:?}",
                s.name, s.trace_id, s.span_id, s.attributes, s.links
            )
        })
        .collect();
    lines.join("\n")
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn protobuf(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, PROTOBUF)], body).into_response()
}

fn refusal(status: StatusCode, message: &str) -> Response {
    // gRPC's INVALID_ARGUMENT, as the specification pairs it with 400.
    protobuf(status, RpcStatus { code: 3, message: message.to_string() }.encode_to_vec())
}

async fn export(State(kept): State<Kept>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.split(';').next().map(str::trim) != Some(PROTOBUF) {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "only application/x-protobuf").into_response();
    }
    if headers.get(header::CONTENT_ENCODING).is_some_and(|v| v.as_bytes() != b"identity") {
        return refusal(StatusCode::BAD_REQUEST, "compressed bodies are not supported");
    }
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return refusal(StatusCode::BAD_REQUEST, "the body is not an ExportTraceServiceRequest");
    };
    let received = decode(request);
    if let Ok(mut spans) = kept.spans.lock() {
        spans.extend(received);
    }
    kept.exports.send_modify(|n| *n += 1);
    protobuf(StatusCode::OK, ExportTraceServiceResponse { partial_success: None }.encode_to_vec())
}

fn decode(request: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.map(|r| attributes(&r.attributes)).unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            out.push(ReceivedSpan {
                name: span.name,
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: (!span.parent_span_id.is_empty()).then(|| hex(&span.parent_span_id)),
                kind: match span.kind {
                    1 => "internal",
                    2 => "server",
                    3 => "client",
                    4 => "producer",
                    5 => "consumer",
                    _ => "unspecified",
                },
                attributes: attributes(&span.attributes),
                links: span.links.iter().map(|l| (hex(&l.trace_id), hex(&l.span_id))).collect(),
                events: span.events.iter().map(|e| (e.name.clone(), attributes(&e.attributes))).collect(),
                service: service.clone(),
            });
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter().map(|kv| (kv.key.clone(), kv.value.as_ref().map(text).unwrap_or_default())).collect()
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => hex(b),
        Some(any_value::Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(text).collect();
            format!("[{}]", items.join(","))
        }
        Some(any_value::Value::KvlistValue(kv)) => format!("{:?}", attributes(&kv.values)),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span};

    fn request() -> ExportTraceServiceRequest {
        let kv = |k: &str, v: any_value::Value| KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        let span = Span {
            trace_id: vec![0xab; 16],
            span_id: vec![1; 8],
            parent_span_id: vec![2; 8],
            name: "ingest.commit".into(),
            kind: 2,
            attributes: vec![kv("august.rows", any_value::Value::IntValue(3))],
            links: vec![span::Link { trace_id: vec![0xcd; 16], span_id: vec![4; 8], ..Default::default() }],
            events: vec![span::Event {
                name: "retried".into(),
                attributes: vec![kv("august.attempt", any_value::Value::IntValue(2))],
                ..Default::default()
            }],
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                    attributes: vec![kv("service.name", any_value::Value::StringValue("august".into()))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    #[tokio::test]
    async fn an_export_is_kept_decoded_and_answered_as_otlp_http_says() {
        let receiver = OtlpReceiver::start().await.unwrap();
        let url = format!("{}/v1/traces", receiver.endpoint());
        let client = reqwest_free_post(&url, PROTOBUF, request().encode_to_vec()).await;
        assert_eq!(client.0, 200);
        assert!(client.1.contains(PROTOBUF), "{}", client.1);
        let span = receiver.named("ingest.commit", Duration::from_secs(5)).await;
        assert_eq!(span.trace_id, "ab".repeat(16));
        assert_eq!(span.parent_span_id.as_deref(), Some("0202020202020202"));
        assert_eq!((span.kind, span.attr("august.rows"), span.service.as_str()), ("server", Some("3"), "august"));
        assert_eq!(span.links, vec![("cd".repeat(16), "04".repeat(8))]);
        let texts: Vec<&str> = span.texts().collect();
        assert_eq!(texts, ["ingest.commit", "august.rows", "3", "retried", "august.attempt", "2"]);

        assert_eq!(reqwest_free_post(&url, PROTOBUF, vec![0xff, 0xff, 0xff]).await.0, 400);
        assert_eq!(reqwest_free_post(&url, "application/json", b"{}".to_vec()).await.0, 415);
        assert_eq!(receiver.spans().len(), 1, "refused bodies keep nothing");
    }

    /// A POST over a plain TCP stream (the testkit has no HTTP client): the status and headers.
    async fn reqwest_free_post(url: &str, content_type: &str, body: Vec<u8>) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_once('/').unwrap();
        let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
        let head = format!(
            "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, answer.split("\r\n\r\n").next().unwrap().to_lowercase())
    }
}
