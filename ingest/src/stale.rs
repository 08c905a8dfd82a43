//! The stale guard of a delivery: a copy of an object older than the stored one (a sender's
//! retry that arrives after a newer delivery) writes nothing. The delivery is still answered
//! 2xx, so the sender stops retrying, and leaves one `sync_log` row with status `stale` (ids and
//! counts only).
//!
//! The guard column is the object's own time: `drchrono_updated_at` for DrChrono objects (the
//! object's `updated_at`; clinical-note lock and unlock deliveries are guarded when their
//! object carries one), `deepcura_updated_at` for Gridhooks (the note's `updated_at`). An
//! incoming copy without that time is not judged stale. [`is_stale`] also locks the stored row
//! (`FOR UPDATE`), so a concurrent delivery of the same object waits for this one's verdict;
//! the upsert's own guard ([`august_schema::Upsert`]) is the backstop.

use august_schema::upsert::quote_ident;
use august_schema::DbError;
use tokio_postgres::types::{ToSql, Type};

use crate::drchrono::RowWrite;

/// Whether `row` is older than the stored row with its key, by its stale-guard column; `false`
/// when it has no guard, no value for it, or no stored row. Locks the stored row.
pub(crate) async fn is_stale(tx: &tokio_postgres::Transaction<'_>, row: Option<&RowWrite>) -> Result<bool, DbError> {
    let Some((sql, values)) = row.and_then(stale_query) else { return Ok(false) };
    let params: Vec<(&(dyn ToSql + Sync), Type)> =
        values.iter().map(|v| (v as &(dyn ToSql + Sync), Type::TEXT)).collect();
    let stored = tx.query_typed_opt(sql.as_str(), &params).await.map_err(|e| DbError::new("check for staleness", e))?;
    Ok(stored.is_some_and(|r| r.get::<_, bool>(0)))
}

/// `SELECT coalesce(cur.guard > $1, false) FROM table AS cur WHERE key = $2 … FOR UPDATE` and
/// its text values, or `None` when the row has no guard value or lacks a key value.
fn stale_query(row: &RowWrite) -> Option<(String, Vec<String>)> {
    let column = |name: &str| {
        row.columns.iter().position(|c| c.split_once("::").map_or(c.as_str(), |(n, _)| n) == name).map(|i| {
            let cast = row.columns[i].split_once("::").map_or("text", |(_, t)| t);
            (cast, row.values[i].clone())
        })
    };
    let guard = row.stale_guard?;
    let (guard_type, Some(incoming)) = column(guard)? else { return None };
    let mut values = vec![incoming];
    let mut conditions = Vec::new();
    for key in row.conflict {
        let (key_type, Some(value)) = column(key)? else { return None };
        values.push(value);
        conditions.push(format!("cur.{} = ${}::text::{key_type}", quote_ident(key), values.len()));
    }
    let sql = format!(
        "SELECT coalesce(cur.{g} > $1::text::{guard_type}, false) FROM {table} AS cur WHERE {conditions} FOR UPDATE",
        g = quote_ident(guard),
        table = quote_ident(row.table),
        conditions = conditions.join(" AND "),
    );
    Some((sql, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_compares_the_guard_and_meets_on_the_key() {
        let row = RowWrite {
            table: "clinical_notes",
            conflict: &["drchrono_id"],
            columns: vec![
                "drchrono_id::text".into(),
                "locked::boolean".into(),
                "drchrono_updated_at::timestamp".into(),
            ],
            values: vec![Some("A-1".into()), Some("true".into()), Some("2026-01-01T10:00:00".into())],
            stale_guard: Some("drchrono_updated_at"),
        };
        let (sql, values) = stale_query(&row).unwrap();
        assert_eq!(
            sql,
            "SELECT coalesce(cur.\"drchrono_updated_at\" > $1::text::timestamp, false) FROM \"clinical_notes\" AS cur \
             WHERE cur.\"drchrono_id\" = $2::text::text FOR UPDATE"
        );
        assert_eq!(values, ["2026-01-01T10:00:00", "A-1"]);
        let undated = RowWrite { values: vec![Some("A-1".into()), Some("true".into()), None], ..row };
        assert!(stale_query(&undated).is_none(), "no time, no verdict");
    }
}
