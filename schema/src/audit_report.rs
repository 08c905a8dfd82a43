//! The auditor's reports, read from the audit trail: one patient's changes across every table
//! and every disclosure of their data to Coda ([`patient`]), writes per actor per day ([`actors`]), and
//! external calls per system and status ([`access`]). Each answers a [`Table`] of text cells for
//! the binary to print; [`record`] leaves the run's `access_log` row. Values (old and new) are
//! read only when asked for: the run that reads them says so in its `access_log` row.

use std::time::{Duration, SystemTime};

use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use crate::actor::Actor;
use crate::upsert::quote_ident;
use crate::DbError;

/// A report's rows: column names and text cells (`None` for SQL NULL).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Column names, in order.
    pub columns: Vec<&'static str>,
    /// Rows of cells, one per column.
    pub rows: Vec<Vec<Option<String>>>,
}

/// Where a table keeps a patient: its name, the key `change_log.record_id` holds, and the
/// column holding the patient's DrChrono id.
#[derive(Debug, Clone, Copy)]
pub struct PatientColumn<'a> {
    /// Table.
    pub table: &'a str,
    /// Its audited key column.
    pub key: &'a str,
    /// Its patient column (a DrChrono patient id).
    pub patient: &'a str,
}

/// The time format of every report: UTC, to the second.
const AT: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'";

/// One patient's records ever, as (tables, keys): rows that hold the patient now (through
/// each table's patient index), and rows whose audited values named the patient (a deleted
/// row, or one moved to another patient).
async fn records(
    client: &Client,
    patient: i64,
    tables: &[PatientColumn<'_>],
) -> Result<(Vec<String>, Vec<String>), DbError> {
    let now: Vec<String> = tables
        .iter()
        .map(|t| {
            format!(
                "SELECT '{table}'::text, {key}::text FROM {ident} WHERE {patient} = $1",
                table = t.table.replace('\'', "''"),
                key = quote_ident(t.key),
                ident = quote_ident(t.table),
                patient = quote_ident(t.patient),
            )
        })
        .collect();
    let sql = format!(
        "{now} UNION
         SELECT c.table_name, c.record_id FROM change_log c
           JOIN unnest($2::text[], $3::text[]) AS p(t, col) ON c.table_name = p.t
          WHERE c.new_values ->> p.col = $1::text OR c.old_values ->> p.col = $1::text",
        now = now.join(" UNION "),
    );
    let names: Vec<&str> = tables.iter().map(|t| t.table).collect();
    let columns: Vec<&str> = tables.iter().map(|t| t.patient).collect();
    let rows = client
        .query(&sql, &[&patient, &names, &columns])
        .await
        .map_err(|e| DbError::new("find the patient's records", e))?;
    Ok(rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))).unzip())
}

/// One patient's trail: every change to their records (when, table, record, operation, actor,
/// editor, fields, and with `values` the old and new values), and every disclosure of a row of
/// theirs to Coda (`coda_disclosures`: when, view, row key, upsert or delete, Coda doc/table,
/// the PHI classes carried, Coda's request id, and the Coda row id the ledger knows), both
/// since `since`. `views` pairs each mirrored view with the table its key comes from.
pub async fn patient(
    client: &Client,
    patient: i64,
    tables: &[PatientColumn<'_>],
    views: &[(&str, &str)],
    since: Option<SystemTime>,
    values: bool,
) -> Result<(Table, Table), DbError> {
    let (in_tables, keys) = records(client, patient, tables).await?;
    let value_columns = if values { ", c.old_values::text, c.new_values::text" } else { "" };
    let changes = format!(
        "SELECT c.id::text, to_char(c.created_at AT TIME ZONE 'UTC', {AT}), c.table_name, c.record_id, c.operation,
                c.actor, c.actor_detail, array_to_string(c.changed_fields, ' '){value_columns}
           FROM change_log c JOIN unnest($1::text[], $2::text[]) AS r(t, k) ON c.table_name = r.t AND c.record_id = r.k
          WHERE $3::timestamptz IS NULL OR c.created_at >= $3
          ORDER BY c.id"
    );
    let params: [&(dyn ToSql + Sync); 3] = [&in_tables, &keys, &since];
    let rows = client.query(&changes, &params).await.map_err(|e| DbError::new("read the patient's changes", e))?;
    let mut change_columns = vec!["seq", "at", "table", "record", "operation", "actor", "editor", "fields"];
    if values {
        change_columns.extend(["old_values", "new_values"]);
    }
    let changes = Table { rows: cells(&rows, change_columns.len()), columns: change_columns };

    let (view_names, sources): (Vec<&str>, Vec<&str>) = views.iter().copied().unzip();
    let disclosed = format!(
        "SELECT to_char(d.created_at AT TIME ZONE 'UTC', {AT}), d.view, d.row_key, d.operation,
                d.doc_id || '/' || d.coda_table, array_to_string(d.classes, ' '), d.request_id, s.coda_row_id
           FROM coda_disclosures d
           JOIN unnest($4::text[], $5::text[]) AS v(view, t) ON d.view = v.view
           LEFT JOIN coda_sync_state s ON s.view = d.view AND s.row_key = d.row_key
          WHERE EXISTS (SELECT 1 FROM unnest($1::text[], $2::text[]) AS r(t, k) WHERE r.t = v.t AND r.k = d.row_key)
            AND ($3::timestamptz IS NULL OR d.created_at >= $3)
          ORDER BY d.created_at, d.id"
    );
    let params: [&(dyn ToSql + Sync); 5] = [&in_tables, &keys, &since, &view_names, &sources];
    let rows =
        client.query(&disclosed, &params).await.map_err(|e| DbError::new("read the patient's disclosures", e))?;
    let columns = vec!["at", "view", "row", "operation", "coda_table", "classes", "request", "coda_row_id"];
    let disclosures = Table { rows: cells(&rows, columns.len()), columns };
    Ok((changes, disclosures))
}

/// Writes per actor per day (UTC) since `since`, with how many distinct editors stood behind
/// the actor (the Coda staff behind `coda_writeback`).
pub async fn actors(client: &Client, since: Option<SystemTime>) -> Result<Table, DbError> {
    let rows = client
        .query(
            "SELECT (created_at AT TIME ZONE 'UTC')::date::text, actor, count(*)::text,
                    count(DISTINCT actor_detail)::text, count(DISTINCT table_name)::text
               FROM change_log WHERE $1::timestamptz IS NULL OR created_at >= $1
              GROUP BY 1, 2 ORDER BY 1, 2",
            &[&since],
        )
        .await
        .map_err(|e| DbError::new("count the writes per actor", e))?;
    Ok(Table { columns: vec!["day", "actor", "writes", "editors", "tables"], rows: cells(&rows, 5) })
}

/// External calls per system and status since `since`: how many, the first and last, and the
/// median and slowest duration.
pub async fn access(client: &Client, since: Option<SystemTime>) -> Result<Table, DbError> {
    let sql = format!(
        "SELECT service, coalesce(status_code::text, 'none'), count(*)::text,
                to_char(min(created_at) AT TIME ZONE 'UTC', {AT}), to_char(max(created_at) AT TIME ZONE 'UTC', {AT}),
                percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms)::text, max(duration_ms)::text
           FROM access_log WHERE $1::timestamptz IS NULL OR created_at >= $1
          GROUP BY 1, 2 ORDER BY 1, 2"
    );
    let rows = client.query(&sql, &[&since]).await.map_err(|e| DbError::new("count the external calls", e))?;
    let columns = vec!["system", "status", "calls", "first", "last", "p50_ms", "max_ms"];
    Ok(Table { columns, rows: cells(&rows, 7) })
}

/// Records a report's run in `access_log` (actor `august_auditor`): which report (`audit
/// patient`, …), `subject` (e.g. the patient's id, and whether values were read), rows shown.
pub async fn record(
    client: &Client,
    report: &str,
    subject: Option<&str>,
    rows: usize,
    took: Duration,
) -> Result<(), DbError> {
    let duration_ms = i32::try_from(took.as_millis()).unwrap_or(i32::MAX);
    let row_count = i32::try_from(rows).unwrap_or(i32::MAX);
    client
        .execute(
            "INSERT INTO access_log (service, method, path_template, duration_ms, row_count, request_id, actor)
             VALUES ('postgres', 'REPORT', $1, $2, $3, $4, $5)",
            &[&report, &duration_ms, &row_count, &subject, &Actor::Auditor.as_str()],
        )
        .await
        .map(|_| ())
        .map_err(|e| DbError::new("record the report in access_log", e))
}

fn cells(rows: &[tokio_postgres::Row], width: usize) -> Vec<Vec<Option<String>>> {
    rows.iter().map(|r| (0..width).map(|i| r.get::<_, Option<String>>(i)).collect()).collect()
}
