//! A checked write-back's transaction, in the order the contract fixes: the row by key
//! `FOR UPDATE` (absent or deleted → 404), the editor's role (403), a replay (every field
//! already holds its value → the stored row, nothing written), a stale `expected_updated_at`
//! (409), then the `UPDATE` under actor `coda_writeback` with the editor in
//! `app.actor_detail`, the edit notice, the `sync_log` and `access_log` rows, and the commit.
//! Values travel as one `jsonb` parameter read back with `jsonb_populate_record`, so Postgres
//! casts each to its column's type and compares typed values for the replay test.
//!
//! A refusal rolls that transaction back; [`record_refusal`] then writes its audit rows (and,
//! when the row exists, a refresh notice so the sink corrects the Coda row) in one of its own.

use std::fmt::Write;
use std::time::Instant;

use august_schema::upsert::quote_ident;
use august_schema::writeback::{emit, Notice, EDIT_PREFIX, REFRESH_PREFIX};
use august_schema::{Actor, DbError};
use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, GenericClient};

use super::error::WritebackError;
use super::fields::{Kind, TargetSchema};
use super::request::Patch;

/// What a successful request did.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// The row was changed; here is the stored row.
    Written(Value),
    /// Every field already held its value: nothing was written.
    Replay(Value),
}

/// A refusal, and whether the row it was about exists (then the sink is told to refresh it).
#[derive(Debug)]
pub struct Refusal {
    /// Why.
    pub error: WritebackError,
    /// Whether the row exists and is not deleted.
    pub row_exists: bool,
}

impl From<WritebackError> for Refusal {
    fn from(error: WritebackError) -> Self {
        Refusal { error, row_exists: false }
    }
}

impl From<DbError> for Refusal {
    fn from(e: DbError) -> Self {
        WritebackError::from(e).into()
    }
}

/// `t.id = $2::text::uuid`: the key column matched against parameter `param`; not found when
/// `key` cannot be a value of the column's type.
fn key_cast(schema: &TargetSchema, key: &str, param: usize) -> Result<String, WritebackError> {
    let column = schema.key().ok_or(WritebackError::NotFound(schema.target.name))?;
    if column.kind == Kind::Uuid && uuid::Uuid::parse_str(key).is_err() {
        return Err(WritebackError::NotFound(schema.target.name));
    }
    Ok(format!("t.{} = ${param}::text::{}", quote_ident(&column.name), column.sql_type))
}

fn deleted(schema: &TargetSchema) -> &'static str {
    if schema.column("deleted_at").is_some() {
        "t.deleted_at IS NOT NULL"
    } else {
        "false"
    }
}

fn lock_sql(schema: &TargetSchema, patch: &Patch, key_match: &str) -> String {
    let (mut stored, mut wanted) = (String::new(), String::new());
    for (i, name) in patch.fields.keys().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(stored, "{sep}t.{}", quote_ident(name));
        let _ = write!(wanted, "{sep}p.{}", quote_ident(name));
    }
    let table = quote_ident(schema.target.table);
    format!(
        "SELECT to_jsonb(t), {deleted}, ROW({stored}) IS NOT DISTINCT FROM ROW({wanted}),
                coalesce($4::timestamptz < t.updated_at, false),
                (SELECT s.role FROM staff_roles s WHERE s.email = $3 AND s.active)
           FROM {table} AS t, jsonb_populate_record(NULL::{table}, $1::jsonb) AS p
          WHERE {key_match}
            FOR UPDATE OF t",
        deleted = deleted(schema)
    )
}

fn update_sql(schema: &TargetSchema, patch: &Patch, key_match: &str) -> String {
    let mut set = String::new();
    for (i, name) in patch.fields.keys().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(set, "{sep}{0} = p.{0}", quote_ident(name));
    }
    if let (Some(done), true, Some(_)) =
        (&schema.completion, patch.fields.contains_key("status"), schema.column("completed_at"))
    {
        let done = done.replace('\'', "''");
        let _ = write!(set, ", completed_at = CASE WHEN p.status = '{done}' THEN coalesce(t.completed_at, now()) END");
    }
    let table = quote_ident(schema.target.table);
    format!(
        "UPDATE {table} AS t SET {set}
           FROM jsonb_populate_record(NULL::{table}, $1::jsonb) AS p
          WHERE {key_match}
      RETURNING to_jsonb(t)"
    )
}

/// `SET LOCAL app.actor` and `app.actor_detail` (the editor, when known).
async fn set_actor(tx: &impl GenericClient, editor: Option<&str>) -> Result<(), DbError> {
    tx.execute_typed(
        "SELECT set_config('app.actor', $1, true), set_config('app.actor_detail', coalesce($2, ''), true)",
        &[(&Actor::CodaWriteback.as_str(), Type::TEXT), (&editor, Type::TEXT)],
    )
    .await
    .map(|_| ())
    .map_err(|e| DbError::new("set app.actor", e))
}

/// The request's `sync_log` and `access_log` rows.
struct Audit<'a> {
    schema: &'a TargetSchema,
    key: &'a str,
    status: &'static str,
    http_status: u16,
    written: i32,
    error: Option<(&'static str, String)>,
    started: Instant,
}

impl Audit<'_> {
    async fn write(&self, tx: &impl GenericClient) -> Result<(), DbError> {
        let (code, message) = match &self.error {
            Some((code, message)) => (Some(*code), Some(message.as_str())),
            None => (None, None),
        };
        let duration = i32::try_from(self.started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let (path, http_status) = (path_template(self.schema.target.route), i32::from(self.http_status));
        tx.execute_typed(
            "WITH sync AS (
                 INSERT INTO sync_log (source, event, delivery_id, status, records_received, records_written,
                                       error_code, error_message, finished_at)
                 VALUES ('coda_writeback', $1, $2, $3, 1, $4, $5, $6, now()))
             INSERT INTO access_log (service, method, path_template, status_code, duration_ms, row_count)
             VALUES ('coda', 'PATCH', $7, $8, $9, $4)",
            &[
                (&self.schema.target.name, Type::TEXT),
                (&self.key, Type::TEXT),
                (&self.status, Type::TEXT),
                (&self.written, Type::INT4),
                (&code, Type::TEXT),
                (&message, Type::TEXT),
                (&path, Type::TEXT),
                (&http_status, Type::INT4),
                (&duration, Type::INT4),
            ],
        )
        .await
        .map_err(|e| DbError::new("write sync_log and access_log", e))?;
        Ok(())
    }
}

/// `/api/intake/{appointment_id}` → `/api/intake/{appointmentId}`.
pub fn path_template(route: &str) -> String {
    let mut out = String::with_capacity(route.len());
    let mut upper = false;
    for c in route.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// Runs the write-back's transaction on `client`.
pub async fn apply(
    client: &mut Client,
    schema: &TargetSchema,
    key: &str,
    patch: &Patch,
    started: Instant,
) -> Result<Stored, Refusal> {
    let key_match = key_cast(schema, key, 2)?;
    let values = Value::Object(patch.fields.clone());
    let tx = client.transaction().await.map_err(|e| DbError::new("begin", e))?;
    let actor = set_actor(&tx, Some(&patch.edited_by));
    let lock_sql = lock_sql(schema, patch, &key_match);
    let lock_params: [(&(dyn ToSql + Sync), Type); 4] = [
        (&values, Type::JSONB),
        (&key, Type::TEXT),
        (&patch.edited_by, Type::TEXT),
        (&patch.expected_updated_at, Type::TIMESTAMPTZ),
    ];
    let lock = tx.query_typed(&lock_sql, &lock_params);
    let (actor, lock, traced) = tokio::join!(actor, lock, crate::trace::emit(&tx));
    actor?;
    traced?;
    let rows = lock.map_err(|e| DbError::new("lock the row", e))?;
    let Some(row) = rows.into_iter().next().filter(|r| !r.get::<_, bool>(1)) else {
        return Err(WritebackError::NotFound(schema.target.name).into());
    };
    let refuse = |error| Refusal { error, row_exists: true };
    let (stored, same, stale, role): (Value, bool, bool, Option<String>) =
        (row.get(0), row.get(2), row.get(3), row.get(4));
    if !role.is_some_and(|r| schema.target.editors.contains(&r.as_str())) {
        return Err(refuse(WritebackError::Forbidden { target: schema.target.name, roles: schema.target.editors }));
    }
    let mut audit = Audit { schema, key, status: "duplicate", http_status: 200, written: 0, error: None, started };
    if same {
        audit.write(&tx).await?;
        tx.commit().await.map_err(|e| DbError::new("commit", e))?;
        return Ok(Stored::Replay(stored));
    }
    if stale {
        let updated_at = stored.get("updated_at").and_then(Value::as_str).unwrap_or_default().to_string();
        return Err(refuse(WritebackError::Conflict { updated_at }));
    }
    let update_sql = update_sql(schema, patch, &key_match);
    let updated = tx.query_typed(&update_sql, &[(&values, Type::JSONB), (&key, Type::TEXT)]).await;
    let row: Value = match updated.map_err(|e| DbError::new("update the row", e)) {
        Ok(rows) => rows.first().map(|r| r.get(0)).ok_or(WritebackError::NotFound(schema.target.name))?,
        Err(e) => return Err(refuse(constraint_error(schema, e))),
    };
    let notice = Notice {
        target: schema.target.name.to_string(),
        key: key.to_string(),
        coda_row_id: patch.coda_row_id.clone(),
        fields: patch.field_names(),
    };
    audit.status = "succeeded";
    audit.written = 1;
    let (notice, logged) = tokio::join!(emit(&tx, EDIT_PREFIX, &notice), audit.write(&tx));
    notice?;
    logged?;
    tx.commit().await.map_err(|e| DbError::new("commit", e))?;
    Ok(Stored::Written(row))
}

/// A check violation as the constraint and its columns; any other error as it is.
fn constraint_error(schema: &TargetSchema, e: DbError) -> WritebackError {
    let constraint = e.unredacted_postgres_error().as_db_error().and_then(|db| db.constraint()).map(str::to_string);
    match (e.code(), constraint) {
        (Some(code), Some(constraint)) if *code == SqlState::CHECK_VIOLATION => {
            let columns = schema.constraint_columns.get(&constraint).cloned().unwrap_or_default();
            WritebackError::Constraint { constraint, columns }
        }
        _ => e.into(),
    }
}

/// Writes a refused request's `sync_log` (`rejected`, the error's code and message) and
/// `access_log` rows, and, when `refusal` says the row exists or `check_exists` finds it, a
/// refresh notice, in one transaction. Best effort: a failure is logged by id.
pub async fn record_refusal(
    client: &mut Client,
    schema: &TargetSchema,
    key: &str,
    editor: Option<&str>,
    refusal: &Refusal,
    check_exists: bool,
    started: Instant,
) {
    let (status, code) = refusal.error.status_and_code();
    let audit = Audit {
        schema,
        key,
        status: "rejected",
        http_status: status.as_u16(),
        written: 0,
        error: Some((code, refusal.error.to_string())),
        started,
    };
    let result = async {
        let tx = client.transaction().await.map_err(|e| DbError::new("begin", e))?;
        set_actor(&tx, editor).await?;
        audit.write(&tx).await?;
        let corrects = matches!(status.as_u16(), 403 | 409 | 422);
        if corrects && (refusal.row_exists || (check_exists && exists(&tx, schema, key).await?)) {
            let notice = Notice {
                target: schema.target.name.to_string(),
                key: key.to_string(),
                coda_row_id: None,
                fields: vec![],
            };
            emit(&tx, REFRESH_PREFIX, &notice).await?;
        }
        tx.commit().await.map_err(|e| DbError::new("commit", e))
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(target_name = schema.target.name, key, error = %e, "could not record a refused write-back");
    }
}

async fn exists(tx: &impl GenericClient, schema: &TargetSchema, key: &str) -> Result<bool, DbError> {
    let Ok(key_match) = key_cast(schema, key, 1) else { return Ok(false) };
    let sql = format!(
        "SELECT 1 FROM {} AS t WHERE {key_match} AND NOT ({})",
        quote_ident(schema.target.table),
        deleted(schema)
    );
    tx.query_opt(&sql, &[&key]).await.map(|r| r.is_some()).map_err(|e| DbError::new("find the row", e))
}
