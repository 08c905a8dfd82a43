//! The write pattern for mirrored data: an upsert that does nothing when nothing changed.
//!
//! DrChrono redelivers webhooks and the reconciliation pass re-reads whole tables, so most
//! writes repeat what is already stored. A repeat must not be a write: no new row version, no
//! `change_log` row, no change on the replication stream (and so no Coda write downstream).
//! The statement this module builds is
//!
//! ```sql
//! INSERT INTO patients AS cur (drchrono_id, first_name, …) VALUES ($1, $2, …)
//! ON CONFLICT (drchrono_id) DO UPDATE
//!    SET first_name = EXCLUDED.first_name, …
//!  WHERE ROW(cur.first_name, …) IS DISTINCT FROM ROW(EXCLUDED.first_name, …)
//!    AND (cur.drchrono_updated_at IS NULL OR EXCLUDED.drchrono_updated_at IS NULL
//!         OR EXCLUDED.drchrono_updated_at >= cur.drchrono_updated_at)   -- stale guard
//! RETURNING (xmax = 0) AS inserted
//! ```
//!
//! When the `WHERE` is false Postgres only locks the existing row: pgoutput sends nothing (it
//! skips transactions without changes) and no trigger fires. The optional stale guard keeps an
//! older copy of an object, delivered late, from overwriting a newer one. A row back from
//! `RETURNING` tells inserted from updated; no row means unchanged (equal or stale). Every
//! tracked table also carries `suppress_redundant_updates_trigger`, so even a plain `UPDATE`
//! that changes nothing writes nothing.

use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Statement};

use crate::DbError;

/// What an upsert did to the stored row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertOutcome {
    /// No row had the key; one was inserted.
    Inserted,
    /// The row existed and at least one column changed.
    Updated,
    /// The row existed and either nothing changed or the incoming copy was older.
    Unchanged,
}

/// A no-op-safe upsert statement for one table. Build once, run many times.
#[derive(Debug, Clone)]
pub struct Upsert {
    sql: String,
    columns: usize,
}

impl Upsert {
    /// An upsert into `table` keyed on the `conflict` columns (a unique constraint), writing
    /// `columns` (which must include the conflict columns). `stale_guard` names a timestamp
    /// column that must not move backwards (e.g. `drchrono_updated_at`).
    ///
    /// Parameters are bound in the order of `columns`. A column written `name::type` takes its
    /// value as text and casts it (`$n::text::type`), so callers can bind every value as
    /// `Option<String>`.
    pub fn new(table: &str, conflict: &[&str], columns: &[&str], stale_guard: Option<&str>) -> Self {
        let split: Vec<(&str, Option<&str>)> =
            columns.iter().map(|c| c.split_once("::").map_or((*c, None), |(n, t)| (n, Some(t)))).collect();
        let names: Vec<&str> = split.iter().map(|(n, _)| *n).collect();
        let columns = names.as_slice();
        let quoted = |c: &&str| quote_ident(c);
        let column_list = columns.iter().map(quoted).collect::<Vec<_>>().join(", ");
        let placeholders = split
            .iter()
            .enumerate()
            .map(|(i, (_, cast))| match cast {
                Some(cast) => format!("${}::text::{cast}", i + 1),
                None => format!("${}", i + 1),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let conflict_list = conflict.iter().map(quoted).collect::<Vec<_>>().join(", ");
        let updated: Vec<&str> = columns.iter().copied().filter(|c| !conflict.contains(c)).collect();
        let set = updated.iter().map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c))).collect::<Vec<_>>().join(", ");
        let current = updated.iter().map(|c| format!("cur.{}", quote_ident(c))).collect::<Vec<_>>().join(", ");
        let incoming = updated.iter().map(|c| format!("EXCLUDED.{}", quote_ident(c))).collect::<Vec<_>>().join(", ");
        let mut sql = format!(
            "INSERT INTO {table} AS cur ({column_list}) VALUES ({placeholders}) ON CONFLICT ({conflict_list}) ",
            table = quote_ident(table)
        );
        if updated.is_empty() {
            sql.push_str("DO NOTHING");
        } else {
            sql.push_str(&format!("DO UPDATE SET {set} WHERE ROW({current}) IS DISTINCT FROM ROW({incoming})"));
            if let Some(guard) = stale_guard {
                let g = quote_ident(guard);
                sql.push_str(&format!(" AND (cur.{g} IS NULL OR EXCLUDED.{g} IS NULL OR EXCLUDED.{g} >= cur.{g})"));
            }
        }
        sql.push_str(" RETURNING (xmax = 0) AS inserted");
        Self { sql, columns: columns.len() }
    }

    /// The statement's text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Runs the upsert with every value as text (columns declared `name::type`), in one
    /// round trip: no prepare. Futures of several such calls on one transaction can be awaited
    /// together and are pipelined, executed in the order they were created.
    pub async fn run_text(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        values: &[Option<String>],
    ) -> Result<UpsertOutcome, DbError> {
        debug_assert_eq!(values.len(), self.columns, "one value per column");
        let params: Vec<(&(dyn ToSql + Sync), tokio_postgres::types::Type)> =
            values.iter().map(|v| (v as &(dyn ToSql + Sync), tokio_postgres::types::Type::TEXT)).collect();
        let row = tx.query_typed_opt(self.sql.as_str(), &params).await.map_err(|e| DbError::new("upsert", e))?;
        Ok(outcome(row))
    }

    /// Prepares the statement on `tx` with every parameter as text, for
    /// [`Upsert::run_prepared`]: many rows into one table pay for parsing and planning once.
    pub async fn prepare_text(&self, tx: &tokio_postgres::Transaction<'_>) -> Result<Statement, DbError> {
        let types = vec![tokio_postgres::types::Type::TEXT; self.columns];
        tx.prepare_typed(self.sql.as_str(), &types).await.map_err(|e| DbError::new("prepare an upsert", e))
    }

    /// Runs this upsert's statement, prepared by [`Upsert::prepare_text`], with every value as
    /// text. Pipelines like [`Upsert::run_text`].
    pub async fn run_prepared(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        statement: &Statement,
        values: &[Option<String>],
    ) -> Result<UpsertOutcome, DbError> {
        debug_assert_eq!(values.len(), self.columns, "one value per column");
        let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let row = tx.query_opt(statement, &params).await.map_err(|e| DbError::new("upsert", e))?;
        Ok(outcome(row))
    }

    /// Runs the upsert with `values` in column order, inside the caller's transaction (which
    /// should already have named its actor).
    pub async fn run(
        &self,
        client: &impl GenericClient,
        values: &[&(dyn ToSql + Sync)],
    ) -> Result<UpsertOutcome, DbError> {
        debug_assert_eq!(values.len(), self.columns, "one value per column");
        let row = client.query_opt(self.sql.as_str(), values).await.map_err(|e| DbError::new("upsert", e))?;
        Ok(outcome(row))
    }
}

/// What `RETURNING (xmax = 0) AS inserted` says: no row means nothing changed.
fn outcome(row: Option<tokio_postgres::Row>) -> UpsertOutcome {
    match row {
        None => UpsertOutcome::Unchanged,
        Some(row) if row.get::<_, bool>(0) => UpsertOutcome::Inserted,
        Some(_) => UpsertOutcome::Updated,
    }
}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_every_non_key_column_and_the_stale_column() {
        let up = Upsert::new(
            "patients",
            &["drchrono_id"],
            &["drchrono_id", "first_name", "drchrono_updated_at"],
            Some("drchrono_updated_at"),
        );
        let sql = up.sql();
        assert!(
            sql.contains("ON CONFLICT (\"drchrono_id\") DO UPDATE SET \"first_name\" = EXCLUDED.\"first_name\""),
            "{sql}"
        );
        assert!(sql.contains("WHERE ROW(cur.\"first_name\", cur.\"drchrono_updated_at\") IS DISTINCT FROM ROW(EXCLUDED.\"first_name\", EXCLUDED.\"drchrono_updated_at\")"), "{sql}");
        assert!(sql.contains("EXCLUDED.\"drchrono_updated_at\" >= cur.\"drchrono_updated_at\""), "{sql}");
        assert!(!sql.contains("SET \"drchrono_id\""), "the key is never rewritten: {sql}");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
