//! One statement, from text to result batches: classified (a query, a transaction boundary, a
//! `SET`/`SHOW`, or a write, which is refused: the endpoint is read-only), planned by DataFusion
//! against the role's context, and run over a snapshot of exactly the tables its plan reads.
//!
//! Inside `BEGIN … COMMIT` every query reads the snapshot the first one took, so a transaction
//! sees one LSN throughout; outside one, each query takes its own. `SHOW august_lsn` reports
//! the LSN of the session's open transaction, else of its last query, else the latest.
//!
//! Every statement that reads a table, or is refused, leaves one `access_log` row: the user,
//! the tables read, rows returned and the SQLSTATE of a refusal — never a value or the query's
//! text, which can hold one.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use august_cdc::Lsn;
use august_schema::access_log::{AccessEntry, AccessLog};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, ParamValues, ScalarValue};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::collect;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use tokio::sync::Mutex as AsyncMutex;

use crate::catalog::{self, Snapshot, Tables};
use crate::live::LiveViews;
use crate::system::PipelineStatus;
use crate::users::Role;

/// A refusal or failure, as the client sees it: SQLSTATE and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// The SQLSTATE.
    pub code: &'static str,
    /// What went wrong (it may quote the client's own query, so it is never logged).
    pub message: String,
}

impl QueryError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    fn engine(e: DataFusionError) -> Self {
        let message = e.to_string();
        let code = match e.find_root() {
            DataFusionError::SQL(..) => "42601",
            DataFusionError::SchemaError(s, _)
                if matches!(**s, datafusion::common::SchemaError::FieldNotFound { .. }) =>
            {
                "42703"
            }
            DataFusionError::Plan(m) if m.contains("table") && m.contains("not found") => "42P01",
            DataFusionError::NotImplemented(_) => "0A000",
            DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => "42804",
            _ => "XX000",
        };
        Self { code, message }
    }
}

/// What one statement is.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A query, planned.
    Query(Box<LogicalPlan>),
    /// `BEGIN` / `START TRANSACTION`.
    Begin,
    /// `COMMIT`, `ROLLBACK`, `END`, `ABORT`.
    End(&'static str),
    /// `SET …`: accepted and ignored.
    Set,
    /// `SHOW name`.
    Show(String),
    /// Anything that writes or changes the schema: refused (its first keyword).
    Refused(String),
}

/// What a statement produced.
#[derive(Debug)]
pub enum Outcome {
    /// Rows: their schema and batches.
    Rows(SchemaRef, Vec<RecordBatch>),
    /// A command tag only.
    Done(&'static str),
    /// A transaction began (tag).
    Began,
    /// A transaction ended (tag).
    Ended(&'static str),
}

/// A connection's state between statements.
#[derive(Debug, Default)]
pub struct SessionState {
    /// The snapshot of the open transaction, once its first query took it.
    pinned: Option<Arc<Snapshot>>,
    in_transaction: bool,
    last_lsn: Option<Lsn>,
}

/// Everything queries need, shared by every connection.
pub struct Engine {
    tables: Tables,
    contexts: HashMap<Role, SessionContext>,
    parser: PostgresCompatibilityParser,
    live: Arc<LiveViews>,
    status: PipelineStatus,
    pg: tokio_postgres::Config,
    client: AsyncMutex<Option<tokio_postgres::Client>>,
    log: AccessLog,
}

/// The settings `SHOW` answers (besides `august_lsn`), as a Postgres 16 server would.
const SETTINGS: &[(&str, &str)] = &[
    ("server_version", "16.0 (August)"),
    ("server_version_num", "160000"),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("datestyle", "ISO, MDY"),
    ("timezone", "UTC"),
    ("transaction_isolation", "repeatable read"),
    ("transaction_read_only", "on"),
    ("default_transaction_read_only", "on"),
    ("standard_conforming_strings", "on"),
    ("integer_datetimes", "on"),
    ("search_path", "public"),
    ("max_identifier_length", "63"),
    ("lc_collate", "C"),
    ("is_superuser", "off"),
];

impl Engine {
    /// Builds every role's context over `tables`.
    pub fn new(
        tables: Tables,
        live: Arc<LiveViews>,
        status: PipelineStatus,
        pg: tokio_postgres::Config,
        log: AccessLog,
    ) -> Result<Engine, crate::SqlError> {
        let contexts = Role::ALL
            .into_iter()
            .map(|r| Ok((r, catalog::context(&tables, r)?)))
            .collect::<Result<_, crate::SqlError>>()?;
        Ok(Engine {
            tables,
            contexts,
            parser: PostgresCompatibilityParser::new(),
            live,
            status,
            pg,
            client: AsyncMutex::new(None),
            log,
        })
    }

    /// The statements of `sql`, rewritten for DataFusion.
    pub fn parse(&self, sql: &str) -> Result<Vec<Statement>, QueryError> {
        let statements = self.parser.parse(sql).map_err(|e| QueryError::new("42601", e.to_string()))?;
        Ok(statements.into_iter().map(|s| self.parser.rewrite(s)).collect())
    }

    /// What `statement` is, planned for `role` when it is a query.
    pub async fn classify(&self, role: Role, statement: Statement) -> Result<Kind, QueryError> {
        Ok(match statement {
            Statement::Query(_) | Statement::Explain { .. } => {
                let state = self.contexts[&role].state();
                let plan = state
                    .statement_to_plan(DfStatement::Statement(Box::new(statement)))
                    .await
                    .map_err(QueryError::engine)?;
                Kind::Query(Box::new(plan))
            }
            Statement::StartTransaction { .. } => Kind::Begin,
            Statement::Commit { .. } => Kind::End("COMMIT"),
            Statement::Rollback { .. } => Kind::End("ROLLBACK"),
            Statement::Set(_) | Statement::Discard { .. } | Statement::Deallocate { .. } => Kind::Set,
            Statement::ShowVariable { variable } => {
                Kind::Show(variable.iter().map(|i| i.value.to_lowercase()).collect::<Vec<_>>().join(" "))
            }
            other => {
                let text = other.to_string();
                Kind::Refused(text.split_whitespace().next().unwrap_or("statement").to_uppercase())
            }
        })
    }

    /// The inferred type of each parameter of a planned query, in order.
    pub fn parameter_types(plan: &LogicalPlan) -> Vec<Option<DataType>> {
        let types = plan.get_parameter_types().unwrap_or_default();
        let mut ids: Vec<(usize, Option<DataType>)> = types
            .into_iter()
            .filter_map(|(id, t)| id.trim_start_matches('$').parse::<usize>().ok().map(|n| (n, t)))
            .collect();
        ids.sort_by_key(|(n, _)| *n);
        ids.into_iter().map(|(_, t)| t).collect()
    }

    /// Runs `kind` for `user` with `role`; `params` fill a query's placeholders.
    pub async fn run(
        &self,
        user: &str,
        role: Role,
        session: &Mutex<SessionState>,
        kind: &Kind,
        params: Vec<ScalarValue>,
    ) -> Result<Outcome, QueryError> {
        match kind {
            Kind::Begin => {
                let mut s = session.lock().unwrap_or_else(|e| e.into_inner());
                s.in_transaction = true;
                s.pinned = None;
                Ok(Outcome::Began)
            }
            Kind::End(tag) => {
                let mut s = session.lock().unwrap_or_else(|e| e.into_inner());
                s.in_transaction = false;
                s.pinned = None;
                Ok(Outcome::Ended(tag))
            }
            Kind::Set => Ok(Outcome::Done("SET")),
            Kind::Show(name) => self.show(name, session),
            Kind::Refused(what) => {
                let err = QueryError::new("25006", format!("cannot execute {what} in a read-only transaction"));
                self.audit(user, role, what_method(what), "", None, Some(err.code), Instant::now());
                Err(err)
            }
            Kind::Query(plan) => self.query(user, role, session, plan, params).await,
        }
    }

    fn show(&self, name: &str, session: &Mutex<SessionState>) -> Result<Outcome, QueryError> {
        let value =
            if name == "august_lsn" {
                let s = session.lock().unwrap_or_else(|e| e.into_inner());
                s.pinned.as_ref().map(|p| p.lsn).or(s.last_lsn).unwrap_or_else(|| self.live.lsn()).to_string()
            } else if name == "all" {
                return Err(QueryError::new("0A000", "SHOW ALL is not supported"));
            } else {
                SETTINGS.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()).ok_or_else(|| {
                    QueryError::new("42704", format!("unrecognized configuration parameter \"{name}\""))
                })?
            };
        let schema =
            Arc::new(datafusion::arrow::datatypes::Schema::new(vec![datafusion::arrow::datatypes::Field::new(
                name,
                DataType::Utf8,
                false,
            )]));
        let column = Arc::new(datafusion::arrow::array::StringArray::from(vec![value]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![column]).map_err(|e| QueryError::new("XX000", e.to_string()))?;
        Ok(Outcome::Rows(schema, vec![batch]))
    }

    async fn query(
        &self,
        user: &str,
        role: Role,
        session: &Mutex<SessionState>,
        plan: &LogicalPlan,
        params: Vec<ScalarValue>,
    ) -> Result<Outcome, QueryError> {
        let started = Instant::now();
        let plan = if params.is_empty() {
            plan.clone()
        } else {
            plan.clone().replace_params_with_values(&ParamValues::from(params)).map_err(QueryError::engine)?
        };
        let read = tables_read(&plan, &self.tables);
        let path = read.iter().cloned().collect::<Vec<_>>().join(",");
        let result = async {
            let snapshot = self.snapshot(session, &read).await?;
            let mut state = self.contexts[&role].state();
            state.config_mut().set_extension(snapshot.clone());
            let physical = state.create_physical_plan(&plan).await.map_err(QueryError::engine)?;
            let batches = collect(physical, state.task_ctx()).await.map_err(QueryError::engine)?;
            session.lock().unwrap_or_else(|e| e.into_inner()).last_lsn = Some(snapshot.lsn);
            Ok::<_, QueryError>(Outcome::Rows(Arc::new(plan.schema().as_arrow().clone()), batches))
        }
        .await;
        if !read.is_empty() || result.is_err() {
            let rows = match &result {
                Ok(Outcome::Rows(_, batches)) => Some(batches.iter().map(|b| b.num_rows()).sum()),
                _ => None,
            };
            self.audit(user, role, "SELECT", &path, rows, result.as_ref().err().map(|e| e.code), started);
        }
        result
    }

    /// The rows of `read`, as of one LSN: the open transaction's snapshot (taken whole at its
    /// first query), else a new one of just these tables.
    async fn snapshot(
        &self,
        session: &Mutex<SessionState>,
        read: &BTreeSet<String>,
    ) -> Result<Arc<Snapshot>, QueryError> {
        let (pinned, in_transaction) = {
            let s = session.lock().unwrap_or_else(|e| e.into_inner());
            (s.pinned.clone(), s.in_transaction)
        };
        if let Some(pinned) = pinned {
            if read.iter().all(|t| pinned.batches.contains_key(t) || self.is_system(t)) {
                let mut snapshot = Snapshot { lsn: pinned.lsn, batches: pinned.batches.clone() };
                self.add_system(&mut snapshot, read).await?;
                return Ok(Arc::new(snapshot));
            }
        }
        let views: Vec<&crate::columns::TableDef> = if in_transaction {
            self.tables.views.iter().collect()
        } else {
            self.tables.views.iter().filter(|t| read.contains(&t.name)).collect()
        };
        let (lsn, batches) = self.live.snapshot(&views).map_err(|e| QueryError::new("XX000", e.to_string()))?;
        let mut snapshot = Snapshot { lsn, batches: views.iter().map(|t| t.name.clone()).zip(batches).collect() };
        if in_transaction {
            let pinned = Arc::new(Snapshot { lsn, batches: snapshot.batches.clone() });
            session.lock().unwrap_or_else(|e| e.into_inner()).pinned = Some(pinned);
        }
        self.add_system(&mut snapshot, read).await?;
        Ok(Arc::new(snapshot))
    }

    fn is_system(&self, name: &str) -> bool {
        self.tables.system.iter().any(|t| t.name == name)
    }

    async fn add_system(&self, snapshot: &mut Snapshot, read: &BTreeSet<String>) -> Result<(), QueryError> {
        for def in self.tables.system.iter().filter(|t| read.contains(&t.name)) {
            let mut client = self.client.lock().await;
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                *client = Some(
                    august_schema::connect(&self.pg)
                        .await
                        .map_err(|e| QueryError::new("08006", format!("August's database is unreachable: {e}")))?,
                );
            }
            let pg = client.as_ref().ok_or_else(|| QueryError::new("08006", "no database connection"))?;
            let rows = crate::system::rows(&def.name, &self.status, &self.live, pg)
                .await
                .map_err(|e| QueryError::new("XX000", e.to_string()))?;
            let batch =
                def.batch(rows.iter().map(|r| r.as_slice())).map_err(|e| QueryError::new("XX000", e.to_string()))?;
            snapshot.batches.insert(def.name.clone(), batch);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn audit(
        &self,
        user: &str,
        role: Role,
        method: &'static str,
        tables: &str,
        rows: Option<usize>,
        error: Option<&'static str>,
        started: Instant,
    ) {
        self.log.record_by(
            format!("sql:{user} ({})", role.name()),
            AccessEntry {
                method,
                path_template: tables.to_string().into(),
                status: None,
                duration: started.elapsed(),
                rows,
                error,
            },
        );
    }

    /// Waits until every access recorded so far is stored.
    pub async fn flush_log(&self) {
        self.log.flush().await;
    }
}

/// The access-log method of a refused statement's keyword.
fn what_method(what: &str) -> &'static str {
    match what {
        "INSERT" => "INSERT",
        "UPDATE" => "UPDATE",
        "DELETE" => "DELETE",
        "CREATE" => "CREATE",
        "DROP" => "DROP",
        "ALTER" => "ALTER",
        "COPY" => "COPY",
        "TRUNCATE" => "TRUNCATE",
        _ => "REFUSED",
    }
}

/// The endpoint's own tables `plan` scans (catalog tables are not counted).
fn tables_read(plan: &LogicalPlan, tables: &Tables) -> BTreeSet<String> {
    let mut read = BTreeSet::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let schema = scan.table_name.schema();
            if schema.is_none_or(|s| s == "public") && tables.find(scan.table_name.table()).is_some() {
                read.insert(scan.table_name.table().to_string());
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    read
}
