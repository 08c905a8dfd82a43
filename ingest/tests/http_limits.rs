//! The HTTP surface's limits: a wrong secret is refused from the headers (the body is never
//! read), a connection that never finishes its headers is closed, and requests beyond the
//! concurrency limit are answered 503. Oneshot where the behaviour is the router's, real
//! sockets where it is about connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use august_ingest::server::{serve, HttpLimits};
use august_ingest::{app, IngestState};
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::{send, state, DEEPCURA_SECRET, DRCHRONO_SECRET};

/// A body that counts how often it was asked for a chunk.
fn counted_body(polls: Arc<AtomicUsize>) -> Body {
    let chunks = futures_util::stream::iter(0..3).map(move |_| {
        polls.fetch_add(1, Ordering::SeqCst);
        Ok::<_, std::io::Error>(Bytes::from_static(b"{}"))
    });
    Body::from_stream(chunks)
}

#[tokio::test]
async fn a_wrong_secret_is_refused_without_reading_the_body() {
    let db = august_testkit::fresh_db("http_secret_first").await;
    let state = state(&db).await;
    for (path, header, good) in [
        ("/webhooks/drchrono", "x-drchrono-signature", DRCHRONO_SECRET),
        ("/webhooks/deepcura", "x-deepcura-secret", DEEPCURA_SECRET),
    ] {
        let polls = Arc::new(AtomicUsize::new(0));
        let request = |secret: &str, polls: &Arc<AtomicUsize>| {
            Request::post(path)
                .header("content-type", "application/json")
                .header(header, secret)
                .header("x-drchrono-event", "PING")
                .body(counted_body(polls.clone()))
                .unwrap()
        };
        let (status, body) = send(&state, request("not-the-secret", &polls)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
        assert_eq!(polls.load(Ordering::SeqCst), 0, "{path}: the body was read before the secret was checked");
        // With the secret the same body is read: the counter can move.
        send(&state, request(good, &polls)).await;
        assert!(polls.load(Ordering::SeqCst) > 0, "{path}: the body is read once the secret is right");
    }
}

/// Serves the real router with `limits` on a loopback port until the token is cancelled.
async fn serving(state: IngestState, limits: HttpLimits) -> (u16, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, app(state), limits, stop.clone().cancelled_owned()));
    (port, stop)
}

/// Reads until the peer closes (or `within` passes); what was read, and whether it closed.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut got = Vec::new();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

#[tokio::test]
async fn a_sender_that_stalls_on_its_body_with_a_wrong_secret_gets_401_at_once() {
    let db = august_testkit::fresh_db("http_stalled_body").await;
    let (port, stop) = serving(state(&db).await, HttpLimits::default()).await;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = "POST /webhooks/deepcura HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                X-DeepCura-Secret: wrong-wrong-wrong\r\nContent-Length: 100000\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.unwrap();
    // The body never comes; the answer must not wait for it (nor for the 10 s request limit).
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("answered without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    stop.cancel();
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed() {
    let db = august_testkit::fresh_db("http_header_timeout").await;
    let limits = HttpLimits { header_read_timeout: Duration::from_secs(1), ..HttpLimits::default() };
    let (port, stop) = serving(state(&db).await, limits).await;
    let mut slow = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    slow.write_all(b"POST /webhooks/drchrono HTTP/1.1\r\nHost: x\r\nX-drchrono-ev").await.unwrap();
    let (_, closed) = read_to_close(&mut slow, Duration::from_secs(20)).await;
    assert!(closed, "the server kept a connection open that never finished its headers");
    // A whole request on a new connection is served as usual.
    let mut fine = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    fine.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let (answer, _) = read_to_close(&mut fine, Duration::from_secs(20)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    stop.cancel();
}

#[tokio::test]
async fn requests_beyond_the_limit_in_flight_are_answered_503() {
    let db = august_testkit::fresh_db("http_in_flight").await;
    let limits = HttpLimits { max_in_flight: 1, ..HttpLimits::default() };
    let (port, stop) = serving(state(&db).await, limits).await;
    // One delivery with the right secret whose body is late: it is in flight, holding the one
    // place, until the body comes.
    let body = r#"{"receiver":{},"object":{}}"#;
    let mut held = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!(
        "POST /webhooks/drchrono HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n\
         X-drchrono-event: PING\r\nX-drchrono-signature: {DRCHRONO_SECRET}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    held.write_all(head.as_bytes()).await.unwrap();
    let client = reqwest::Client::new();
    let health = format!("http://127.0.0.1:{port}/health");
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let response = client.get(&health).send().await.unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            break response;
        }
        assert!(Instant::now() < deadline, "a second request was served while one was in flight");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(refused.headers().get("retry-after").map(|v| v.to_str().unwrap()), Some("1"));
    let refusal: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(refusal["error"]["code"], "overloaded");
    // The body arrives: the held delivery completes, and the place is free again.
    held.write_all(body.as_bytes()).await.unwrap();
    let (answer, _) = read_to_close(&mut held, Duration::from_secs(20)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(client.get(&health).send().await.unwrap().status(), StatusCode::OK);
    stop.cancel();
}
