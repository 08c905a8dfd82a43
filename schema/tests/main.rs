//! The system of record on a real PostgreSQL: audit trail and its hash chains, no-op writes, constraints,
//! retention, publication, the migrations runner and TLS.
#![allow(clippy::unwrap_used, missing_docs)]

mod audit;
mod audit_chain;
mod audit_retention;
mod constraints;
mod embedded;
mod errors;
mod migrations;
mod noop_writes;
mod tls;

use august_testkit::TestDb;
use tokio_postgres::Client;

/// `SELECT count(*)` as a number.
pub async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// The first column of every row, as text.
pub async fn column_strings(
    client: &Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Vec<String> {
    client.query(sql, params).await.unwrap().iter().map(|r| r.get(0)).collect()
}

/// A fresh database and a client on it.
pub async fn db(hint: &str) -> (TestDb, Client) {
    let db = august_testkit::fresh_db(hint).await;
    let client = db.client().await;
    (db, client)
}
