//! The Postgres wire protocol: SCRAM-SHA-256 login against the users file, TLS when
//! configured, the simple and the extended query protocols, each statement run by the
//! [`Engine`].
//!
//! An unknown user goes through the same SCRAM exchange as a known one with a wrong password
//! (a verifier no password matches), so a login failure does not tell which it was. Errors
//! reach the client with their SQLSTATE; the log gets the SQLSTATE and the user, never the
//! query's text.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use futures_util::{stream, Sink};
use pgwire::api::auth::sasl::scram::{ScramAuth, ScramSecret};
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers, Type, METADATA_USER};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;

use crate::query::{Engine, Kind, Outcome, QueryError, SessionState};
use crate::users::{parse_verifier, Role, Users};
use crate::wire;

/// The users, read again from their file at every login.
#[derive(Debug)]
pub struct UserSource {
    path: std::path::PathBuf,
    users: RwLock<Users>,
    /// A per-process key for the stand-in verifier of unknown users.
    decoy: [u8; 16],
}

impl UserSource {
    /// The users of the file at `path`.
    pub fn new(path: std::path::PathBuf) -> Result<Self, crate::SqlError> {
        let users = Users::load(&path)?;
        Ok(Self { path, users: RwLock::new(users), decoy: rand::random() })
    }

    /// The role of `user`, if it (still) exists.
    pub fn role(&self, user: &str) -> Option<Role> {
        self.users.read().unwrap_or_else(|e| e.into_inner()).get(user).map(|u| u.role)
    }
}

#[async_trait]
impl AuthSource for UserSource {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        Err(PgWireError::InvalidPassword(login.user().unwrap_or_default().to_owned()))
    }

    async fn get_scram_secret(&self, login: &LoginInfo) -> PgWireResult<(ScramSecret, Option<()>)> {
        let name = login.user().unwrap_or_default();
        match Users::load(&self.path) {
            Ok(users) => *self.users.write().unwrap_or_else(|e| e.into_inner()) = users,
            Err(e) => {
                tracing::warn!(error = %e, "the SQL users file could not be read again: keeping the last one read")
            }
        }
        let secret = self
            .users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .and_then(|u| parse_verifier(&u.verifier).ok());
        Ok((secret.unwrap_or_else(|| self.decoy_for(name)), None))
    }
}

impl UserSource {
    /// The same salt for the same unknown name every time (as a real user's would be), keys
    /// no password matches.
    fn decoy_for(&self, name: &str) -> ScramSecret {
        use sha2::Digest;
        let salt = sha2::Sha256::digest([&self.decoy[..], name.as_bytes()].concat())[..16].to_vec();
        ScramSecret::Verifier {
            salt,
            iterations: crate::users::ITERATIONS,
            stored_key: rand::random::<[u8; 32]>().to_vec(),
            server_key: rand::random::<[u8; 32]>().to_vec(),
        }
    }
}

/// A planned statement of the extended protocol.
#[derive(Debug, Clone)]
pub struct Prepared {
    kind: Option<Kind>,
}

/// The handlers every connection shares.
pub struct Handlers {
    engine: Arc<Engine>,
    users: Arc<UserSource>,
    tls_cert: Option<Vec<u8>>,
}

impl Handlers {
    /// Handlers over `engine` for the users of `users`; `tls_cert` (PEM) enables SCRAM channel
    /// binding.
    pub fn new(engine: Arc<Engine>, users: Arc<UserSource>, tls_cert: Option<Vec<u8>>) -> Self {
        Self { engine, users, tls_cert }
    }

    /// The connection's user and role; see [`who`].
    fn who<C: ClientInfo>(&self, client: &C) -> PgWireResult<(String, Role)> {
        who(&self.users, self.tls_cert.is_some(), client)
    }
}

/// The connection's user and role, or an error when the user is gone from the file or the
/// connection is not encrypted where TLS is configured.
fn who<C: ClientInfo>(users: &UserSource, tls: bool, client: &C) -> PgWireResult<(String, Role)> {
    let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
    if tls && !client.is_secure() {
        return Err(user_error(QueryError {
            code: "28000",
            message: "this endpoint requires TLS (sslmode=require)".into(),
        }));
    }
    match users.role(&user) {
        Some(role) => Ok((user, role)),
        None => Err(user_error(QueryError { code: "28000", message: format!("role \"{user}\" is no longer allowed") })),
    }
}

fn session<C: ClientInfo>(client: &C) -> Arc<Mutex<SessionState>> {
    client.session_extensions().get_or_insert_with(|| Mutex::new(SessionState::default()))
}

fn user_error(e: QueryError) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), e.code.into(), e.message)))
}

fn respond(outcome: Outcome, format: &Format) -> PgWireResult<Response> {
    Ok(match outcome {
        Outcome::Done(tag) => Response::Execution(Tag::new(tag)),
        Outcome::Began => Response::TransactionStart(Tag::new("BEGIN")),
        Outcome::Ended(tag) => Response::TransactionEnd(Tag::new(tag)),
        Outcome::Rows(schema, batches) => {
            let fields = Arc::new(wire::fields(&schema, format));
            let rows = wire::rows(&batches, fields.clone())?;
            Response::Query(QueryResponse::new(fields, stream::iter(rows.into_iter().map(Ok))))
        }
    })
}

#[async_trait]
impl SimpleQueryHandler for Handlers {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (user, role) = self.who(client)?;
        let session = session(client);
        let statements = self.engine.parse(query).map_err(user_error)?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::new();
        for statement in statements {
            let outcome = match self.engine.classify(role, statement).await {
                Ok(kind) => self.engine.run(&user, role, &session, &kind, vec![]).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(outcome) => responses.push(respond(outcome, &Format::UnifiedText)?),
                Err(e) => {
                    tracing::debug!(user, sqlstate = e.code, "SQL statement refused");
                    responses.push(Response::Error(Box::new(ErrorInfo::new("ERROR".into(), e.code.into(), e.message))));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

/// Plans statements of the extended protocol for the connection's role.
pub struct Parser {
    engine: Arc<Engine>,
    users: Arc<UserSource>,
    tls: bool,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(&self, client: &C, sql: &str, _types: &[Option<Type>]) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let (_, role) = who(&self.users, self.tls, client)?;
        let mut statements = self.engine.parse(sql).map_err(user_error)?;
        if statements.len() > 1 {
            return Err(user_error(QueryError {
                code: "42601",
                message: "cannot insert multiple commands into a prepared statement".into(),
            }));
        }
        let Some(statement) = statements.pop() else {
            return Ok(Some(Prepared { kind: None }));
        };
        let kind = self.engine.classify(role, statement).await.map_err(user_error)?;
        Ok(Some(Prepared { kind: Some(kind) }))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(match &stmt.kind {
            Some(Kind::Query(plan)) => {
                Engine::parameter_types(plan).iter().map(|t| wire::param_type(t.as_ref())).collect()
            }
            _ => vec![],
        })
    }

    fn get_result_schema(&self, stmt: &Prepared, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        let format = format.unwrap_or(&Format::UnifiedText);
        Ok(match &stmt.kind {
            Some(Kind::Query(plan)) => wire::fields(plan.schema().as_arrow(), format),
            Some(Kind::Show(name)) => wire::fields(
                &datafusion::arrow::datatypes::Schema::new(vec![datafusion::arrow::datatypes::Field::new(
                    name,
                    datafusion::arrow::datatypes::DataType::Utf8,
                    false,
                )]),
                format,
            ),
            _ => vec![],
        })
    }
}

#[async_trait]
impl ExtendedQueryHandler for Handlers {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        Arc::new(Parser { engine: self.engine.clone(), users: self.users.clone(), tls: self.tls_cert.is_some() })
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<Prepared>, _max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (user, role) = self.who(client)?;
        let Some(kind) = &portal.statement.statement.kind else {
            return Ok(Response::EmptyQuery);
        };
        let params = match kind {
            Kind::Query(plan) => {
                let inferred = Engine::parameter_types(plan);
                let declared: Vec<Type> = inferred.iter().map(|t| wire::param_type(t.as_ref())).collect();
                wire::params(portal, &declared, &inferred)?
            }
            _ => vec![],
        };
        let outcome = self.engine.run(&user, role, &session(client), kind, params).await.map_err(user_error)?;
        respond(outcome, &portal.result_column_format)
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::new(Self { engine: self.engine.clone(), users: self.users.clone(), tls_cert: self.tls_cert.clone() })
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::new(Self { engine: self.engine.clone(), users: self.users.clone(), tls_cert: self.tls_cert.clone() })
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        let mut scram = ScramAuth::new(self.users.clone());
        scram.set_iterations(crate::users::ITERATIONS);
        if let Some(cert) = &self.tls_cert {
            if let Err(e) = scram.configure_certificate(cert) {
                tracing::warn!(error = %e, "SCRAM channel binding is off: the certificate could not be read");
            }
        }
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = "16.0 (August)".into();
        parameters.default_transaction_read_only = true;
        Arc::new(SASLAuthStartupHandler::new(Arc::new(parameters)).with_scram(scram))
    }
}
