//! Entry points for the fuzz targets (`fuzz/`) and the property tests: each feeds arbitrary
//! bytes to one decoder and must return, never panic. Not part of the crate's API.

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::walsender::{Frame, WalSender};
use crate::{pgoutput, Value};

/// Decodes one pgoutput message, and every text value in it as each type August models.
pub fn pgoutput_message(data: &[u8]) {
    let Ok(message) = pgoutput::decode(data) else { return };
    let tuples: Vec<&[pgoutput::Datum<'_>]> = match &message {
        pgoutput::Message::Insert { new, .. } => vec![new],
        pgoutput::Message::Update { old, new, .. } => {
            old.iter().map(|(_, t)| t.as_slice()).chain([new.as_slice()]).collect()
        }
        pgoutput::Message::Delete { old, .. } => vec![&old.1],
        _ => vec![],
    };
    for (i, datum) in tuples.into_iter().flatten().enumerate() {
        if let pgoutput::Datum::Text(text) = datum {
            value_text(TYPES[i % TYPES.len()], text);
        }
    }
}

/// Type OIDs the value decoder treats specially (scalars and arrays), and one it does not.
const TYPES: &[u32] = &[
    16, 17, 20, 21, 23, 25, 26, 114, 700, 701, 1042, 1043, 1082, 1083, 1114, 1184, 1700, 2950, 3802, 1000, 1001, 1005,
    1007, 1009, 1014, 1015, 1016, 1021, 1022, 1028, 1115, 1182, 1183, 1185, 1231, 2951, 199, 3807, 1186,
];

/// Decodes `text` as a value of type `type_oid` and renders it both ways JSON is written.
pub fn value_text(type_oid: u32, text: &str) {
    let value = Value::decode(type_oid, text);
    let _ = value.to_json();
    let _ = value.exact_json();
}

/// Decodes `data` as a value: the first byte picks the type, the rest (lossily UTF-8) is the
/// text.
pub fn value_bytes(data: &[u8]) {
    let Some((&pick, text)) = data.split_first() else { return };
    value_text(TYPES[usize::from(pick) % TYPES.len()], &String::from_utf8_lossy(text));
}

/// A replication session against a server that answers with `server`: authentication, a
/// replication command, `START_REPLICATION`, then frames until the stream fails or ends.
/// Returns how many frames were read.
pub fn walsender_session(server: &[u8]) -> usize {
    let script = Script { input: server.to_vec(), at: 0 };
    let mut session = WalSender::over(Box::new(script));
    run_ready(async move {
        if session.authenticate(b"august", Some(b"secret")).await.is_err() {
            return 0;
        }
        if session.simple_query("IDENTIFY_SYSTEM").await.is_err() {
            return 0;
        }
        if session.start_replication("august", crate::Lsn(0), "august_cdc").await.is_err() {
            return 0;
        }
        let mut frames = 0;
        while let Ok(frame) = session.next_frame().await {
            if let Frame::XLogData { data, .. } = frame {
                pgoutput_message(&data);
            }
            frames += 1;
        }
        frames
    })
}

/// Runs a future whose I/O is always ready (the scripted server) to completion on this thread.
fn run_ready<T>(future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut context) {
            return out;
        }
    }
}

/// A server that sends a fixed script, then closes; what the client writes is dropped.
struct Script {
    input: Vec<u8>,
    at: usize,
}

impl AsyncRead for Script {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let n = buf.remaining().min(self.input.len() - self.at);
        let at = self.at;
        buf.put_slice(&self.input[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Script {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An authentication request too short to hold its code once panicked (`get_i32`).
    #[test]
    fn a_short_authentication_request_is_an_error_not_a_panic() {
        assert_eq!(walsender_session(&[b'R', 0, 0, 0, 6, 0, 0]), 0);
    }

    #[test]
    fn a_scripted_server_streams_frames_to_the_end() {
        let mut server = vec![b'R', 0, 0, 0, 8, 0, 0, 0, 0, b'Z', 0, 0, 0, 5, b'I'];
        server.extend([b'Z', 0, 0, 0, 5, b'I', b'W', 0, 0, 0, 4]);
        let keepalive = [b'k', 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        for _ in 0..3 {
            server.extend([b'd', 0, 0, 0, 4 + keepalive.len() as u8]);
            server.extend(keepalive);
        }
        assert_eq!(walsender_session(&server), 3);
    }
}
