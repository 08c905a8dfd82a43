//! TLS to Postgres, with libpq's `sslmode` meanings, for every connection August opens: the
//! pool, one-off clients and (through [`PgTls::client_config`]) the walsender client.
//!
//! | mode | encrypted | chain checked | host name checked |
//! |---|---|---|---|
//! | `disable` | no | — | — |
//! | `prefer` (loopback and unix sockets, by default) | if the server agrees | no | no |
//! | `require` | yes | no | no |
//! | `verify-ca` | yes | yes | no |
//! | `verify-full` (every other host, by default) | yes | yes | yes |
//!
//! Roots come from `sslrootcert`/`DB_SSLROOTCERT`, else the platform's store. A client
//! certificate (`sslcert`+`sslkey`, Cloud SQL's client-certificate mode) is sent when given.
//! Unix sockets never use TLS, as in libpq. The one crypto provider is `aws-lc-rs` (the one
//! `reqwest` already builds); it is passed explicitly, so no process default is needed.
//!
//! **How a connection finds its TLS.** Every stage passes a `tokio_postgres::Config` around,
//! and it has no room for roots or verification. So [`crate::DbSettings::pg_config`] registers
//! the TLS it built under the target (hosts, ports, user, database), and every connection to
//! that target uses it. A configuration never registered (a test's, the embedded server's)
//! gets its own `sslmode` with libpq's meaning: `prefer` and `require` encrypt without
//! verifying. Registration also sets the configuration's `sslmode` to `require` for the
//! verifying modes, so even a caller that changes the target afterwards never goes unencrypted.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio_postgres::config::Host;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::SettingError;
use verifiers::LibpqVerifier;

mod verifiers;

/// libpq's `sslmode`, all five of them (`tokio-postgres` knows only the first three).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain text.
    Disable,
    /// TLS if the server offers it, unverified; plain text otherwise.
    Prefer,
    /// TLS, unverified.
    Require,
    /// TLS, the chain checked against the roots, any host name.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    /// libpq's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// The mode when none is set: `prefer` when every host is loopback or a unix socket,
    /// `verify-full` otherwise.
    pub fn default_for(hosts: &[Host]) -> Self {
        if !hosts.is_empty() && hosts.iter().all(is_local) {
            Self::Prefer
        } else {
            Self::VerifyFull
        }
    }

    /// Whether the session must be encrypted.
    pub fn requires_tls(self) -> bool {
        matches!(self, Self::Require | Self::VerifyCa | Self::VerifyFull)
    }

    fn for_tokio_postgres(self) -> tokio_postgres::config::SslMode {
        match self {
            Self::Disable => tokio_postgres::config::SslMode::Disable,
            Self::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        }
    }
}

impl FromStr for SslMode {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s.trim() {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return Err(()),
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TLS settings as given (`DB_SSLMODE`, `DB_SSLROOTCERT`, `DB_SSLCERT`, `DB_SSLKEY`, or the
/// same parameters of a connection string), before any file is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// `sslmode`; `None`: by host (see [`SslMode::default_for`]).
    pub mode: Option<SslMode>,
    /// `sslrootcert`: PEM file of the CA certificates to trust instead of the platform's.
    pub root_cert: Option<PathBuf>,
    /// `sslcert`: PEM file of the client certificate (chain).
    pub client_cert: Option<PathBuf>,
    /// `sslkey`: PEM file of the client certificate's private key.
    pub client_key: Option<PathBuf>,
}

/// The setting names an error about each TLS setting names.
#[derive(Debug, Clone, Copy)]
pub struct TlsSettingNames<'a> {
    /// For the root certificates.
    pub root_cert: &'a str,
    /// For the client certificate.
    pub client_cert: &'a str,
    /// For the client key.
    pub client_key: &'a str,
}

impl TlsSettingNames<'static> {
    /// The `DB_SSL*` settings.
    pub const SETTINGS: Self =
        TlsSettingNames { root_cert: "DB_SSLROOTCERT", client_cert: "DB_SSLCERT", client_key: "DB_SSLKEY" };
}

/// The TLS of one target, ready to connect with: its mode and the rustls configuration.
#[derive(Clone)]
pub struct PgTls {
    mode: SslMode,
    client: Arc<ClientConfig>,
}

impl fmt::Debug for PgTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTls").field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl PgTls {
    /// Reads the certificate files and builds the TLS for `hosts`. An error names the setting
    /// at fault (from `names`) and the file, never a key.
    pub fn build(settings: &TlsSettings, hosts: &[Host], names: TlsSettingNames<'_>) -> Result<Self, SettingError> {
        let mode = settings.mode.unwrap_or_else(|| SslMode::default_for(hosts));
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| SettingError::new(names.root_cert, format!("TLS set-up failed: {e}")))?;
        let verifier: Arc<dyn ServerCertVerifier> = match mode {
            SslMode::Disable | SslMode::Prefer | SslMode::Require => {
                Arc::new(LibpqVerifier { provider: provider.clone(), chain: None })
            }
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let roots = roots(settings.root_cert.as_deref(), names.root_cert)?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| SettingError::new(names.root_cert, format!("holds no usable CA certificate: {e}")))?;
                if mode == SslMode::VerifyCa {
                    Arc::new(LibpqVerifier { provider: provider.clone(), chain: Some(webpki) })
                } else {
                    webpki
                }
            }
        };
        let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
        let client = match (&settings.client_cert, &settings.client_key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(_), None) => {
                return Err(SettingError::new(names.client_key, "must be set with the client certificate"))
            }
            (None, Some(_)) => return Err(SettingError::new(names.client_cert, "must be set with the client key")),
            (Some(cert), Some(key)) => {
                let chain = certificates(cert, names.client_cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    SettingError::new(
                        names.client_key,
                        format!("{}: not a readable PEM private key ({e})", key.display()),
                    )
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| SettingError::new(names.client_key, format!("does not match the certificate: {e}")))?
            }
        };
        Ok(Self { mode, client: Arc::new(client) })
    }

    /// libpq's meaning of a `tokio-postgres` mode alone: no roots, so nothing is verified.
    pub fn unverified(mode: tokio_postgres::config::SslMode) -> Self {
        static ENCRYPT_ONLY: OnceLock<Arc<ClientConfig>> = OnceLock::new();
        let client = ENCRYPT_ONLY.get_or_init(|| {
            let provider = provider();
            let config = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("aws-lc-rs supports the default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(LibpqVerifier { provider, chain: None }))
                .with_no_client_auth();
            Arc::new(config)
        });
        let mode = match mode {
            tokio_postgres::config::SslMode::Disable => SslMode::Disable,
            tokio_postgres::config::SslMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        };
        Self { mode, client: client.clone() }
    }

    /// The mode.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The rustls configuration, for a client that does its own handshake (the walsender's).
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client.clone()
    }

    /// The connector `tokio-postgres` and the pool use.
    pub fn connector(&self) -> MakeRustlsConnect {
        MakeRustlsConnect::new((*self.client).clone())
    }

    /// `config` with its `sslmode` set to this mode (`disable` when every host is a unix
    /// socket, where Postgres has no TLS).
    pub fn apply(&self, config: &tokio_postgres::Config) -> tokio_postgres::Config {
        let mut config = config.clone();
        let unix_only = config.get_hosts().iter().all(|h| matches!(h, Host::Unix(_)));
        let mode = if unix_only { SslMode::Disable } else { self.mode };
        config.ssl_mode(mode.for_tokio_postgres());
        config
    }
}

static REGISTERED: OnceLock<Mutex<HashMap<String, PgTls>>> = OnceLock::new();

fn target_key(config: &tokio_postgres::Config) -> String {
    format!("{:?} {:?} {:?} {:?}", config.get_hosts(), config.get_ports(), config.get_user(), config.get_dbname())
}

/// Makes `tls` the TLS of every connection to `config`'s target, and sets `config`'s own
/// `sslmode` to match (`require` for the verifying modes).
pub fn register(config: &mut tokio_postgres::Config, tls: PgTls) {
    config.ssl_mode(tls.mode.for_tokio_postgres());
    let registry = REGISTERED.get_or_init(Default::default);
    registry.lock().unwrap_or_else(|e| e.into_inner()).insert(target_key(config), tls);
}

/// The TLS to reach `config`'s target with: the registered one, else its own `sslmode`
/// unverified.
pub fn for_config(config: &tokio_postgres::Config) -> PgTls {
    let registered =
        REGISTERED.get().and_then(|r| r.lock().unwrap_or_else(|e| e.into_inner()).get(&target_key(config)).cloned());
    registered.unwrap_or_else(|| PgTls::unverified(config.get_ssl_mode()))
}

/// Whether `host` is a unix socket or a loopback address (or `localhost`).
pub fn is_local(host: &Host) -> bool {
    match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name.eq_ignore_ascii_case("localhost")
                || name.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
    }
}

/// Whether `error` is the handshake refusing a certificate (the server's, by the CA or the
/// host name; or ours, by the server): the same settings are refused again on every try, so
/// retrying only hides the cause.
pub fn refuses_certificate(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        let rustls_error = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|inner| inner.downcast_ref())
        });
        if let Some(rustls_error) = rustls_error {
            return matches!(
                rustls_error,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::AlertReceived(
                        rustls::AlertDescription::BadCertificate
                            | rustls::AlertDescription::CertificateRequired
                            | rustls::AlertDescription::UnknownCA
                            | rustls::AlertDescription::CertificateUnknown
                    )
            );
        }
        next = e.source();
    }
    false
}

/// The name to check the server's certificate against.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .map_err(|_| format!("{host} is not a valid TLS server name"))
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider())).clone()
}

fn certificates(path: &Path, setting: &str) -> Result<Vec<CertificateDer<'static>>, SettingError> {
    let unreadable = |e: &dyn fmt::Display| {
        SettingError::new(setting, format!("{}: not a readable PEM certificate file ({e})", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(&e))?;
    if certs.is_empty() {
        return Err(unreadable(&"no certificate in it"));
    }
    Ok(certs)
}

fn roots(path: Option<&Path>, setting: &str) -> Result<RootCertStore, SettingError> {
    let mut roots = RootCertStore::empty();
    match path {
        Some(path) => {
            for cert in certificates(path, setting)? {
                roots.add(cert).map_err(|e| {
                    SettingError::new(setting, format!("{}: not a usable CA certificate ({e})", path.display()))
                })?;
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if roots.is_empty() {
                return Err(SettingError::new(
                    setting,
                    "is not set and the platform has no CA certificates: name the server's CA file",
                ));
            }
        }
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_sockets_default_to_prefer_and_other_hosts_to_verify_full() {
        let tcp = |h: &str| Host::Tcp(h.to_string());
        assert_eq!(SslMode::default_for(&[tcp("127.0.0.1")]), SslMode::Prefer);
        assert_eq!(SslMode::default_for(&[tcp("localhost")]), SslMode::Prefer);
        assert_eq!(SslMode::default_for(&[tcp("::1")]), SslMode::Prefer);
        assert_eq!(SslMode::default_for(&[Host::Unix("/cloudsql/x".into())]), SslMode::Prefer);
        assert_eq!(SslMode::default_for(&[tcp("10.20.0.3")]), SslMode::VerifyFull);
        assert_eq!(SslMode::default_for(&[tcp("127.0.0.1"), tcp("db.internal")]), SslMode::VerifyFull);
    }

    #[test]
    fn all_five_modes_parse() {
        for mode in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            assert_eq!(mode.parse::<SslMode>().map(SslMode::as_str), Ok(mode));
        }
        assert!("allow".parse::<SslMode>().is_err());
    }
}
