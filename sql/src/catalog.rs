//! What a role can query: its tables in DataFusion, with Postgres's `pg_catalog` beside them
//! (from `datafusion-pg-catalog`) so `psql`'s `\d` and Grafana's catalog queries are answered
//! from the same tables the user may read.
//!
//! Each role has its own `SessionContext`, built once: the views with only the columns the
//! role sees ([`crate::Role::sees`]; a view it sees none of is absent), and every system
//! table. A table's rows are not in the context: a scan takes them from the query's
//! [`Snapshot`], which the query fills for exactly the tables its plan names, all as of one
//! LSN, before it runs.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use august_cdc::Lsn;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::DataFusionError;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::columns::{Column, TableDef};
use crate::users::Role;
use crate::SqlError;

/// The database name clients connect to and `current_database()` reports.
pub const DATABASE: &str = "august";

/// The rows a query reads, by table, and the LSN the views among them are as of.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The views' LSN.
    pub lsn: Lsn,
    /// Full rows (every column), by table name.
    pub batches: HashMap<String, RecordBatch>,
}

/// A table whose rows come from the query's snapshot, narrowed to the role's columns.
#[derive(Debug)]
struct SnapshotTable {
    name: String,
    /// Positions of the role's columns among the full table's.
    visible: Vec<usize>,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let snapshot = state
            .config()
            .get_extension::<Snapshot>()
            .ok_or_else(|| DataFusionError::Internal("a scan outside a query".into()))?;
        let batch = match snapshot.batches.get(&self.name) {
            Some(full) => full.project(&self.visible)?,
            None => RecordBatch::new_empty(self.schema.clone()),
        };
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema.clone(), projection.cloned())?)
    }
}

/// Every table the endpoint answers, with every column.
#[derive(Debug, Clone)]
pub struct Tables {
    /// The views.
    pub views: Vec<TableDef>,
    /// The system tables.
    pub system: Vec<TableDef>,
}

impl Tables {
    /// The views (typed: named views as they declare, pass-through views as the database's
    /// catalog types their tables) and the system tables.
    pub async fn load(pg: &tokio_postgres::Client) -> Result<Tables, SqlError> {
        let rows = pg
            .query(
                "SELECT table_name::text, column_name::text, udt_name::text FROM information_schema.columns
                 WHERE table_schema = current_schema()",
                &[],
            )
            .await
            .map_err(|e| SqlError::Postgres(august_schema::DbError::new("read the column types", e).to_string()))?;
        let udts: HashMap<(String, String), String> = rows.iter().map(|r| ((r.get(0), r.get(1)), r.get(2))).collect();
        let views = august_dataflow::views::all()
            .into_iter()
            .map(|spec| {
                let columns = spec
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        let ty = match spec.types {
                            Some(types) => types[i],
                            None => august_dataflow::ColumnType::of_udt(
                                udts.get(&(spec.name.to_string(), name.to_string())).map_or("text", String::as_str),
                            ),
                        };
                        Column { name: name.to_string(), ty: crate::columns::SqlType::Of(ty), class: spec.classes[i] }
                    })
                    .collect();
                TableDef { name: spec.name.to_string(), columns }
            })
            .collect();
        Ok(Tables { views, system: crate::system::tables() })
    }

    /// The table called `name`, and whether it is a view.
    pub fn find(&self, name: &str) -> Option<(&TableDef, bool)> {
        self.views
            .iter()
            .find(|t| t.name == name)
            .map(|t| (t, true))
            .or_else(|| self.system.iter().find(|t| t.name == name).map(|t| (t, false)))
    }
}

/// `role`'s context: its tables, `pg_catalog` and `information_schema`.
pub fn context(tables: &Tables, role: Role) -> Result<SessionContext, SqlError> {
    let config = SessionConfig::new()
        .with_default_catalog_and_schema(DATABASE, "public")
        .with_information_schema(true)
        .with_create_default_catalog_and_schema(true);
    let ctx = SessionContext::new_with_config(config);
    let views = tables.views.iter().map(|def| (def, true));
    for (def, is_view) in views.chain(tables.system.iter().map(|def| (def, false))) {
        // System tables hold no PHI: every role sees them whole.
        let visible: Vec<usize> =
            (0..def.columns.len()).filter(|&i| !is_view || role.sees(def.columns[i].class)).collect();
        if visible.is_empty() {
            continue;
        }
        let schema = Arc::new(def.schema().project(&visible).map_err(|e| SqlError::Engine(e.to_string()))?);
        let table = SnapshotTable { name: def.name.clone(), visible, schema };
        ctx.register_table(def.name.as_str(), Arc::new(table)).map_err(|e| SqlError::Engine(e.to_string()))?;
    }
    datafusion_pg_catalog::setup_pg_catalog(
        &ctx,
        DATABASE,
        datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider,
    )
    .map_err(|e| SqlError::Engine(e.to_string()))?;
    Ok(ctx)
}
