//! A client session with Postgres' walsender: the replication protocol, spoken directly.
//!
//! `tokio-postgres` has no replication mode, so this module opens its own connection
//! (`replication=database`), authenticates (trust, password, MD5, SCRAM-SHA-256), runs
//! replication commands (`CREATE_REPLICATION_SLOT`, `START_REPLICATION`) and then reads the
//! COPY stream frame by frame. [`WalSender::next_frame`] only ever appends to its own buffer
//! before a whole frame is there, so it is cancellation-safe: the consumer can wait on it in
//! a `select!` next to its timers and the durable-LSN watch, and answer the server at once.
//!
//! The session pins `DateStyle=ISO`, `TimeZone=UTC` and `extra_float_digits=3`, so values
//! arrive in the text forms [`crate::Value::decode`] expects.
//!
//! TLS is the target's, as for every other connection (`august_schema::tls`): an SSLRequest
//! first unless the mode is `disable` (or the host a unix socket), the rustls handshake if the
//! server agrees, plain text only when it declines under `prefer`. A cleartext password is
//! sent only over TLS or to a loopback or unix-socket server.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_postgres::config::Host;
use tokio_rustls::rustls;

use august_schema::tls::SslMode;

use crate::{CdcError, Lsn};

/// Session settings that fix the text form of values.
const SESSION_OPTIONS: &str =
    "-c DateStyle=ISO -c TimeZone=UTC -c extra_float_digits=3 -c IntervalStyle=postgres -c bytea_output=hex";

/// Microseconds from the Unix epoch to Postgres' (2000-01-01).
pub const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// The longest backend message: Postgres builds each in one allocation of at most 1 GiB,
/// so a longer length is a broken stream, not a reason to reserve gigabytes.
const MAX_MESSAGE: usize = 1 << 30;

pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// One frame of the replication stream.
#[derive(Debug)]
pub enum Frame {
    /// WAL data: one pgoutput message.
    XLogData {
        /// Where the message's WAL ends.
        wal_end: Lsn,
        /// The pgoutput bytes.
        data: Bytes,
    },
    /// The server's heartbeat, with how far it has read the WAL.
    Keepalive {
        /// The server's WAL position: every transaction committed before it has been sent.
        wal_end: Lsn,
        /// The server wants a status update now.
        reply_requested: bool,
    },
}

/// An open replication session.
pub struct WalSender {
    io: Box<dyn Transport>,
    /// Encrypted, or on this machine: where a cleartext password may go.
    private_link: bool,
    read: BytesMut,
    write: BytesMut,
}

impl WalSender {
    /// A session over a transport that is already connected (the fuzzer's scripted server),
    /// not yet authenticated.
    pub(crate) fn over(io: Box<dyn Transport>) -> Self {
        Self { io, private_link: false, read: BytesMut::new(), write: BytesMut::new() }
    }
}

impl std::fmt::Debug for WalSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalSender").finish_non_exhaustive()
    }
}

impl WalSender {
    /// Connects and authenticates as the configuration says, in replication mode.
    pub async fn connect(config: &tokio_postgres::Config) -> Result<Self, CdcError> {
        let timeout = config.get_connect_timeout().copied().unwrap_or(Duration::from_secs(10));
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let (io, private_link): (Box<dyn Transport>, bool) = match config.get_hosts().first() {
            Some(Host::Tcp(host)) => {
                let mut stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host.as_str(), port)))
                    .await
                    .map_err(|_| CdcError::io("connect for replication", std::io::ErrorKind::TimedOut.into()))?
                    .map_err(|e| CdcError::io("connect for replication", e))?;
                stream.set_nodelay(true).map_err(|e| CdcError::io("set TCP_NODELAY", e))?;
                let loopback = stream.peer_addr().is_ok_and(|a| a.ip().is_loopback());
                let target_tls = august_schema::tls::for_config(config);
                if target_tls.mode() == SslMode::Disable
                    || !tls::server_accepts_tls(&mut stream, target_tls.mode()).await?
                {
                    (Box::new(stream), loopback)
                } else {
                    let name = august_schema::tls::server_name(host).map_err(CdcError::Protocol)?;
                    let connector = tokio_rustls::TlsConnector::from(target_tls.client_config());
                    let stream = tokio::time::timeout(timeout, connector.connect(name, stream))
                        .await
                        .map_err(|_| CdcError::io("TLS handshake", std::io::ErrorKind::TimedOut.into()))?
                        .map_err(|e| tls::handshake_error(host, e))?;
                    (Box::new(stream), true)
                }
            }
            Some(Host::Unix(dir)) => {
                let path = dir.join(format!(".s.PGSQL.{port}"));
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| CdcError::io("connect for replication", e))?;
                (Box::new(stream), true)
            }
            None => return Err(CdcError::Protocol("the connection settings name no host".into())),
        };
        let mut session = Self { io, private_link, read: BytesMut::with_capacity(64 * 1024), write: BytesMut::new() };
        let user = config.get_user().unwrap_or("postgres").to_string();
        let dbname = config.get_dbname().unwrap_or(&user).to_string();
        let application = config.get_application_name().unwrap_or("august").to_string();
        let params = [
            ("user", user.as_str()),
            ("database", dbname.as_str()),
            ("replication", "database"),
            ("application_name", application.as_str()),
            ("options", SESSION_OPTIONS),
        ];
        frontend::startup_message(params.iter().copied(), &mut session.write)
            .map_err(|e| CdcError::io("startup", e))?;
        session.flush().await?;
        session.authenticate(user.as_bytes(), config.get_password()).await?;
        Ok(session)
    }

    pub(crate) async fn authenticate(&mut self, user: &[u8], password: Option<&[u8]>) -> Result<(), CdcError> {
        let mut scram: Option<ScramSha256> = None;
        let need_password = || password.ok_or_else(|| CdcError::Auth("a password is required and none is set".into()));
        loop {
            let (tag, mut body) = self.read_message().await?;
            match tag {
                b'R' if body.len() < 4 => return Err(CdcError::Protocol("short authentication request".into())),
                b'R' => match body.get_i32() {
                    0 => {}
                    3 if !self.private_link => {
                        return Err(CdcError::Auth(
                            "a cleartext password over an unencrypted link to another machine, which August \
                             refuses: set DB_SSLMODE (or sslmode) to require or stronger, or use scram-sha-256"
                                .into(),
                        ))
                    }
                    3 => {
                        frontend::password_message(need_password()?, &mut self.write)
                            .map_err(|e| CdcError::io("password", e))?;
                        self.flush().await?;
                    }
                    5 => {
                        let salt: [u8; 4] = body
                            .get(..4)
                            .and_then(|s| s.try_into().ok())
                            .ok_or_else(|| CdcError::Protocol("short MD5 salt".into()))?;
                        let hash = postgres_protocol::authentication::md5_hash(user, need_password()?, salt);
                        frontend::password_message(hash.as_bytes(), &mut self.write)
                            .map_err(|e| CdcError::io("password", e))?;
                        self.flush().await?;
                    }
                    10 => {
                        if !body.split(|b| *b == 0).any(|m| m == b"SCRAM-SHA-256") {
                            return Err(CdcError::Auth("SASL without SCRAM-SHA-256".into()));
                        }
                        let client = ScramSha256::new(need_password()?, ChannelBinding::unsupported());
                        frontend::sasl_initial_response("SCRAM-SHA-256", client.message(), &mut self.write)
                            .map_err(|e| CdcError::io("SASL", e))?;
                        self.flush().await?;
                        scram = Some(client);
                    }
                    11 => {
                        let client =
                            scram.as_mut().ok_or_else(|| CdcError::Protocol("SASL continue before start".into()))?;
                        client.update(&body).map_err(|e| CdcError::Auth(format!("SCRAM: {e}")))?;
                        frontend::sasl_response(client.message(), &mut self.write)
                            .map_err(|e| CdcError::io("SASL", e))?;
                        self.flush().await?;
                    }
                    12 => {
                        let client =
                            scram.as_mut().ok_or_else(|| CdcError::Protocol("SASL final before start".into()))?;
                        client.finish(&body).map_err(|e| CdcError::Auth(format!("SCRAM: {e}")))?;
                    }
                    other => return Err(CdcError::Auth(format!("authentication request {other}"))),
                },
                b'E' => return Err(server_error("authenticate", &body)),
                b'Z' => return Ok(()),
                _ => {} // ParameterStatus, BackendKeyData, NoticeResponse
            }
        }
    }

    /// Runs a replication command and returns its rows as text.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, CdcError> {
        frontend::query(sql, &mut self.write).map_err(|e| CdcError::io("query", e))?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                b'D' => rows.push(data_row(body)?),
                b'E' => error = Some(server_error(sql.split_whitespace().next().unwrap_or("query"), &body)),
                b'Z' => return error.map_or(Ok(rows), Err),
                _ => {} // RowDescription, CommandComplete, NoticeResponse
            }
        }
    }

    /// Starts streaming `slot` from `start` (zero: from the slot's confirmed position) with
    /// pgoutput protocol 1, text values, logical messages on, streaming of large
    /// transactions off.
    pub async fn start_replication(&mut self, slot: &str, start: Lsn, publication: &str) -> Result<(), CdcError> {
        let sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {start} (proto_version '1', publication_names {}, messages 'true')",
            quote_ident(slot),
            quote_literal(&quote_ident(publication)),
        );
        frontend::query(&sql, &mut self.write).map_err(|e| CdcError::io("START_REPLICATION", e))?;
        self.flush().await?;
        let mut error = None;
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                b'W' => return Ok(()),
                b'E' => error = Some(server_error("START_REPLICATION", &body)),
                b'Z' => {
                    return Err(
                        error.unwrap_or_else(|| CdcError::Protocol("START_REPLICATION ended without streaming".into()))
                    )
                }
                _ => {}
            }
        }
    }

    /// The next frame of the stream. Cancellation-safe.
    pub async fn next_frame(&mut self) -> Result<Frame, CdcError> {
        loop {
            let (tag, mut body) = self.read_message().await?;
            match tag {
                b'd' if body.first() == Some(&b'w') && body.len() >= 25 => {
                    body.advance(1);
                    let _wal_start = body.get_u64();
                    let wal_end = Lsn(body.get_u64());
                    let _sent_at = body.get_i64();
                    return Ok(Frame::XLogData { wal_end, data: body });
                }
                b'd' if body.first() == Some(&b'k') && body.len() >= 18 => {
                    body.advance(1);
                    let wal_end = Lsn(body.get_u64());
                    let _sent_at = body.get_i64();
                    return Ok(Frame::Keepalive { wal_end, reply_requested: body.get_u8() == 1 });
                }
                b'd' => return Err(CdcError::Protocol("unknown or short CopyData frame".into())),
                b'E' => return Err(server_error("replication stream", &body)),
                b'c' => {
                    return Err(CdcError::io(
                        "replication stream",
                        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the server ended the stream"),
                    ))
                }
                _ => {} // NoticeResponse, ParameterStatus
            }
        }
    }

    /// Sends a standby status update: received up to `written`, durable up to `flushed`.
    pub async fn send_status(&mut self, written: Lsn, flushed: Lsn, reply_requested: bool) -> Result<(), CdcError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
            - PG_EPOCH_OFFSET_MICROS;
        let mut payload = BytesMut::with_capacity(34);
        payload.put_u8(b'r');
        payload.put_u64(written.0);
        payload.put_u64(flushed.0);
        payload.put_u64(flushed.0);
        payload.put_i64(now);
        payload.put_u8(u8::from(reply_requested));
        self.write.put_u8(b'd');
        self.write.put_i32(4 + payload.len() as i32);
        self.write.extend_from_slice(&payload);
        self.flush().await
    }

    /// Ends the stream politely (CopyDone, Terminate). Best effort.
    pub async fn finish(mut self) {
        self.write.extend_from_slice(&[b'c', 0, 0, 0, 4]);
        frontend::terminate(&mut self.write);
        let _ = self.flush().await;
    }

    async fn flush(&mut self) -> Result<(), CdcError> {
        self.io.write_all(&self.write).await.map_err(|e| CdcError::io("write to the server", e))?;
        self.write.clear();
        self.io.flush().await.map_err(|e| CdcError::io("write to the server", e))
    }

    /// One backend message: its tag and body. Cancellation-safe: bytes are only appended to
    /// `self.read` until a whole message is there.
    async fn read_message(&mut self) -> Result<(u8, Bytes), CdcError> {
        loop {
            if self.read.len() >= 5 {
                let len = u32::from_be_bytes([self.read[1], self.read[2], self.read[3], self.read[4]]) as usize;
                if len < 4 {
                    return Err(CdcError::Protocol("message length below 4".into()));
                }
                if len > MAX_MESSAGE {
                    return Err(CdcError::Protocol("message longer than the server can send".into()));
                }
                if self.read.len() > len {
                    let tag = self.read[0];
                    let mut frame = self.read.split_to(1 + len);
                    frame.advance(5);
                    return Ok((tag, frame.freeze()));
                }
                self.read.reserve(1 + len - self.read.len());
            }
            let n = self.io.read_buf(&mut self.read).await.map_err(|e| CdcError::io("read from the server", e))?;
            if n == 0 {
                return Err(CdcError::io("read from the server", std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }
}

mod tls;

fn data_row(mut body: Bytes) -> Result<Vec<Option<String>>, CdcError> {
    let short = || CdcError::Protocol("short DataRow".into());
    if body.len() < 2 {
        return Err(short());
    }
    let n = body.get_i16().max(0) as usize;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        if body.len() < 4 {
            return Err(short());
        }
        let len = body.get_i32();
        if len < 0 {
            values.push(None);
            continue;
        }
        let len = len as usize;
        if body.len() < len {
            return Err(short());
        }
        values.push(Some(String::from_utf8_lossy(&body.split_to(len)).into_owned()));
    }
    Ok(values)
}

/// An ErrorResponse as an error. Replication commands' messages name slots, options and
/// positions, never row data.
fn server_error(context: &str, body: &[u8]) -> CdcError {
    let (mut code, mut message) = (String::from("XX000"), String::from("unknown error"));
    for field in body.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let text = String::from_utf8_lossy(&field[1..]).into_owned();
        match field[0] {
            b'C' => code = text,
            b'M' => message = text,
            _ => {}
        }
    }
    CdcError::Server { context: context.to_string(), code, message }
}

/// Quotes an identifier for a replication command.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal for a replication command.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cleartext_password_request_over_a_plain_link_to_another_machine_is_refused() {
        let (client, mut server) = tokio::io::duplex(1024);
        let mut session =
            WalSender { io: Box::new(client), private_link: false, read: BytesMut::new(), write: BytesMut::new() };
        server.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await.unwrap();
        let err = session.authenticate(b"august", Some(b"secret")).await.unwrap_err();
        assert!(err.to_string().contains("cleartext password"), "{err}");
        assert_eq!(err.kind(), august_schema::ErrorKind::Permanent);
        drop(session);
        let mut sent = Vec::new();
        server.read_to_end(&mut sent).await.unwrap();
        assert!(sent.is_empty(), "the password was not sent");
    }
}
