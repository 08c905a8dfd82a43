//! The TLS start of a session: SSLRequest, the server's answer, and what a failed handshake
//! means.

use super::*;

/// Asks the server for TLS. `false`: it declined and `mode` allows plain text (`prefer`).
pub(super) async fn server_accepts_tls(stream: &mut tokio::net::TcpStream, mode: SslMode) -> Result<bool, CdcError> {
    let mut request = BytesMut::new();
    frontend::ssl_request(&mut request);
    stream.write_all(&request).await.map_err(|e| CdcError::io("request TLS", e))?;
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer).await.map_err(|e| CdcError::io("request TLS", e))?;
    match answer[0] {
        b'S' => Ok(true),
        b'N' if !mode.requires_tls() => Ok(false),
        b'N' => Err(CdcError::Protocol(format!(
            "the server does not offer TLS, which sslmode={mode} requires: turn ssl on in the server, or lower DB_SSLMODE"
        ))),
        other => Err(CdcError::Protocol(format!("unexpected answer {other:#04x} to an SSLRequest"))),
    }
}

/// A handshake the certificate failed is permanent (the fix is a setting); a broken
/// connection during it is not.
pub(super) fn handshake_error(host: &str, e: std::io::Error) -> CdcError {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(tls) => CdcError::Protocol(format!(
            "TLS with {host} failed: {tls} (check DB_SSLROOTCERT and that the certificate names the host, or DB_SSLMODE)"
        )),
        None => CdcError::io("TLS handshake", e),
    }
}
