//! The system tables: August's own state, for the engineer on call. None holds PHI: ids,
//! counts, LSNs, times and statuses only, so every role may read them.
//!
//! * `august_status` — pipeline state, uptime, last error, the LSN the views are at;
//! * `august_slot` — the replication slot: received/confirmed/flushed LSN, lag, retained WAL,
//!   seconds since the last message;
//! * `august_views` — per view: rows, changes/s, pending Coda rows, oldest pending age, last
//!   Coda write, commit → visible lag p50/p99;
//! * `august_coda_quota` — writes used and allowed in the current window;
//! * `august_dead_letters` — the open dead letters (ids, status, LSN; never the payload or
//!   Coda's message, which may quote a value);
//! * `august_drchrono_sync` — per resource: watermark, last run and success, counts, calls
//!   used this hour;
//! * `august_webhooks` — deliveries per source and outcome in the last minute and hour.
//!
//! The process's own figures come from a [`PipelineStatus`] the binary provides (read from its
//! metrics); the rest is read from Postgres when a query names the table.

use std::collections::BTreeMap;
use std::sync::Arc;

use august_cdc::{Lsn, Value};
use august_dataflow::{ColumnType, PhiClass};
use chrono::{DateTime, Utc};

use crate::columns::{Column, SqlType, TableDef};
use crate::live::LiveViews;
use crate::SqlError;

/// One Coda table's figures, by the view it mirrors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CodaTable {
    /// Rows waiting to be written.
    pub pending_rows: Option<f64>,
    /// Age of the oldest waiting row, in seconds.
    pub oldest_pending_seconds: Option<f64>,
    /// When Coda last confirmed a write.
    pub last_write: Option<DateTime<Utc>>,
}

/// The process's own figures at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// `running`, `stopping`, …
    pub state: String,
    /// When the process started.
    pub started_at: Option<DateTime<Utc>>,
    /// The last error logged (its message has no PHI by construction).
    pub last_error: Option<String>,
    /// The slot's name.
    pub slot: Option<String>,
    /// The last position received from the stream.
    pub received_lsn: Option<Lsn>,
    /// The position confirmed to the slot.
    pub confirmed_lsn: Option<Lsn>,
    /// The position every sink holds.
    pub flushed_lsn: Option<Lsn>,
    /// Server WAL position minus the confirmed LSN.
    pub lag_bytes: Option<f64>,
    /// WAL the slot keeps on the server.
    pub retained_wal_bytes: Option<f64>,
    /// Seconds since the last message on the stream.
    pub seconds_since_last_message: Option<f64>,
    /// Per view with a Coda table.
    pub coda: BTreeMap<String, CodaTable>,
    /// Writes spent in the current quota window.
    pub quota_used: Option<f64>,
    /// Writes allowed per window.
    pub quota_limit: Option<f64>,
    /// The window, in seconds.
    pub quota_window_seconds: Option<f64>,
}

/// Where the process's figures come from.
pub type PipelineStatus = Arc<dyn Fn() -> Status + Send + Sync>;

macro_rules! columns {
    ($($name:literal $ty:ident),+ $(,)?) => {
        vec![$(column($name, columns!(@ty $ty))),+]
    };
    (@ty Float) => { SqlType::Float };
    (@ty $ty:ident) => { SqlType::Of(ColumnType::$ty) };
}

fn column(name: &str, ty: SqlType) -> Column {
    let class = if name.ends_with("_id") || name == "id" || name == "row_key" {
        PhiClass::Identifier
    } else {
        PhiClass::Operational
    };
    Column { name: name.into(), ty, class }
}

/// Every system table, with its columns.
pub fn tables() -> Vec<TableDef> {
    let def = |name: &str, columns| TableDef { name: name.into(), columns };
    vec![
        def(
            "august_status",
            columns![
                "state" Text, "started_at" TimestampTz, "uptime_seconds" Float, "last_error" Text, "views_lsn" Text,
            ],
        ),
        def(
            "august_slot",
            columns![
                "slot_name" Text, "received_lsn" Text, "confirmed_lsn" Text, "flushed_lsn" Text, "lag_bytes" Float,
                "retained_wal_bytes" Float, "seconds_since_last_message" Float,
            ],
        ),
        def(
            "august_views",
            columns![
                "view" Text, "rows" Int, "changes_per_second" Float, "pending_coda_rows" Float,
                "oldest_pending_seconds" Float, "last_write" TimestampTz, "last_change" TimestampTz,
                "lag_p50_seconds" Float, "lag_p99_seconds" Float,
            ],
        ),
        def("august_coda_quota", columns!["writes_used" Float, "writes_limit" Float, "window_seconds" Float]),
        def(
            "august_dead_letters",
            columns![
                "id" Int, "sink" Text, "view" Text, "row_key" Text, "status_code" Int, "lsn" Text, "created_at" TimestampTz,
            ],
        ),
        def(
            "august_drchrono_sync",
            columns![
                "resource" Text, "watermark" Timestamp, "last_run_at" TimestampTz, "last_success_at" TimestampTz,
                "fetched" Int, "inserted" Int, "updated" Int, "failed" Int, "calls_used_this_hour" Int,
            ],
        ),
        def("august_webhooks", columns!["source" Text, "outcome" Text, "last_minute" Int, "last_hour" Int]),
    ]
}

fn lsn(l: Option<Lsn>) -> Value {
    l.map_or(Value::Null, |l| Value::Text(l.to_string()))
}

fn float(f: Option<f64>) -> Value {
    f.map_or(Value::Null, |f| Value::Numeric(f.to_string()))
}

fn time(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, Value::TimestampTz)
}

/// The rows of system table `name` now.
pub async fn rows(
    name: &str,
    status: &PipelineStatus,
    live: &LiveViews,
    pg: &tokio_postgres::Client,
) -> Result<Vec<Vec<Value>>, SqlError> {
    let s = status();
    Ok(match name {
        "august_status" => {
            let uptime = s.started_at.map(|t| (Utc::now() - t).num_milliseconds() as f64 / 1000.0);
            vec![vec![
                Value::Text(s.state.clone()),
                time(s.started_at),
                float(uptime),
                s.last_error.clone().map_or(Value::Null, Value::Text),
                lsn(Some(live.lsn())),
            ]]
        }
        "august_slot" => vec![vec![
            s.slot.clone().map_or(Value::Null, Value::Text),
            lsn(s.received_lsn),
            lsn(s.confirmed_lsn),
            lsn(s.flushed_lsn),
            float(s.lag_bytes),
            float(s.retained_wal_bytes),
            float(s.seconds_since_last_message),
        ]],
        "august_views" => {
            let stats = live.stats();
            let mut names: Vec<String> = august_dataflow::views::all().iter().map(|v| v.name.to_string()).collect();
            names.sort();
            names
                .into_iter()
                .map(|view| {
                    let (v, c) = (stats.get(&view), s.coda.get(&view).cloned().unwrap_or_default());
                    vec![
                        Value::Int(v.map_or(0, |v| v.rows as i64)),
                        float(v.map(|v| v.changes_per_second)),
                        float(c.pending_rows),
                        float(c.oldest_pending_seconds),
                        time(c.last_write),
                        time(v.and_then(|v| v.last_change)),
                        float(v.and_then(|v| v.lag_p50)),
                        float(v.and_then(|v| v.lag_p99)),
                    ]
                    .into_iter()
                    .fold(vec![Value::Text(view.clone())], |mut row, value| {
                        row.push(value);
                        row
                    })
                })
                .collect()
        }
        "august_coda_quota" => vec![vec![float(s.quota_used), float(s.quota_limit), float(s.quota_window_seconds)]],
        "august_dead_letters" => query(
            pg,
            "SELECT id, sink, view, row_key, status_code::int8, lsn::text, created_at
             FROM sink_dead_letters WHERE resolved_at IS NULL ORDER BY id",
        )
        .await?,
        "august_drchrono_sync" => query(
            pg,
            "SELECT resource, watermark, last_run_at, last_success_at, fetched::int8, inserted::int8, updated::int8,
                    failed::int8,
                    (SELECT coalesce(sum(calls), 0)::int8 FROM drchrono_call_budget
                     WHERE window_start > now() - interval '1 hour')
             FROM drchrono_sync_state ORDER BY resource",
        )
        .await?,
        "august_webhooks" => query(
            pg,
            "SELECT source, status,
                    count(*) FILTER (WHERE coalesce(finished_at, started_at) > now() - interval '1 minute'),
                    count(*)
             FROM sync_log WHERE coalesce(finished_at, started_at) > now() - interval '1 hour' AND delivery_id IS NOT NULL
             GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .await?,
        _ => vec![],
    })
}

async fn query(pg: &tokio_postgres::Client, sql: &str) -> Result<Vec<Vec<Value>>, SqlError> {
    let rows = pg
        .query(sql, &[])
        .await
        .map_err(|e| SqlError::Postgres(august_schema::DbError::new("read a system table", e).to_string()))?;
    Ok(rows
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|i| {
                    use tokio_postgres::types::Type;
                    let t = row.columns()[i].type_();
                    match *t {
                        Type::INT8 => row.get::<_, Option<i64>>(i).map_or(Value::Null, Value::Int),
                        Type::TIMESTAMPTZ => {
                            row.get::<_, Option<DateTime<Utc>>>(i).map_or(Value::Null, Value::TimestampTz)
                        }
                        Type::TIMESTAMP => {
                            row.get::<_, Option<chrono::NaiveDateTime>>(i).map_or(Value::Null, Value::Timestamp)
                        }
                        _ => row.get::<_, Option<String>>(i).map_or(Value::Null, Value::Text),
                    }
                })
                .collect()
        })
        .collect())
}
