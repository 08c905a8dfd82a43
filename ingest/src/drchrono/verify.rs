//! `august verify`'s DrChrono half: does Postgres hold what DrChrono holds? Per feed, DrChrono's
//! list is read (under the call budget) into a temporary table shaped like the mirror, through
//! the same object → row mapping the pulls use and the same casts, so both sides are compared
//! as Postgres stores them: counts, a checksum over the mirrored columns of every row (each
//! row's `md5(ROW(…)::text)`, sorted and hashed again), and the ids that differ.
//!
//! When the hour's budget cannot cover every list, each feed gets a share of the calls left
//! and the check is *sampled*: only the rows DrChrono sent in those pages are compared, and
//! the counts are not (a sample has none to compare).
//!
//! `drchrono_raw` (kept whole, with verbose-only keys) and `deleted_at` (ours) are not compared;
//! soft-deleted rows are not live in Postgres and are left out of its side.

use std::collections::BTreeMap;

use tokio_postgres::types::{ToSql, Type};

use august_schema::upsert::quote_ident;
use august_schema::DbError;

use super::budget::{pool_error, Priority};
use super::client::DrChronoClient;
use super::error::DrChronoError;
use super::feeds::{Feed, Target};
use super::{pulled_rows, RowWrite};

/// Ids listed per table at most.
const LISTED: i64 = 20;

/// What the check found for one mirror table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableReport {
    /// The feed read.
    pub feed: &'static str,
    /// The mirror table.
    pub table: &'static str,
    /// Pages read, and whether that was the whole list.
    pub pages: u32,
    /// Whether every page was read.
    pub whole: bool,
    /// Rows DrChrono sent.
    pub drchrono_rows: i64,
    /// Live rows in Postgres (of the sampled ids, when sampled).
    pub postgres_rows: i64,
    /// Whether the checksums agree.
    pub checksum_equal: bool,
    /// Ids (keys) that differ, missing on either side included: the first few.
    pub differing: Vec<String>,
    /// How many ids differ.
    pub differing_total: i64,
}

impl TableReport {
    /// Nothing differs.
    pub fn equal(&self) -> bool {
        self.checksum_equal && self.differing_total == 0 && (!self.whole || self.drchrono_rows == self.postgres_rows)
    }
}

/// One table's shape, from the first row the mapping made for it.
struct Shape {
    table: &'static str,
    key: &'static [&'static str],
    columns: Vec<(String, String)>,
}

/// Checks `feeds` (line item deletions are skipped: they are events, not rows). Uses at most
/// the calls a person may make this hour; never waits for the next one.
pub async fn verify(
    client: &DrChronoClient,
    pool: &august_schema::PgPool,
    feeds: &[&'static Feed],
) -> Result<Vec<TableReport>, DrChronoError> {
    let feeds: Vec<&'static Feed> =
        feeds.iter().copied().filter(|f| !matches!(f.target, Target::LineItemDeletions)).collect();
    let mut db = pool.get().await.map_err(pool_error)?;
    let (available, _) = client.budget().available(Priority::Manual).await?;
    if (available as usize) < feeds.len() {
        // Not even one page each: better no answer now than a sample too thin to mean anything.
        return Err(DrChronoError::BudgetSpent { calls_left: available });
    }
    let needed = pages_needed(&db, &feeds).await?;
    let whole_fits = needed.iter().sum::<u32>() <= available;
    let mut reports = Vec::new();
    for (feed, need) in feeds.iter().zip(&needed) {
        let allowance = if whole_fits { u32::MAX } else { (available / feeds.len() as u32).min(*need) };
        let (pages, whole, shapes) = read_into_temp(client, &mut db, feed, allowance).await?;
        for shape in shapes.values() {
            reports.push(compare(&db, feed, shape, pages, whole).await?);
            // The connection goes back to the pool: leave nothing of DrChrono's data on it.
            db.batch_execute(&format!("DROP TABLE pg_temp.{}", quote_ident(&temp_name(shape.table))))
                .await
                .map_err(|e| DbError::new("drop a verification table", e))?;
        }
    }
    Ok(reports)
}

/// Pages each feed's whole list should take, from the mirror's row count.
async fn pages_needed(db: &tokio_postgres::Client, feeds: &[&'static Feed]) -> Result<Vec<u32>, DrChronoError> {
    let mut needed = Vec::new();
    for feed in feeds {
        let table = match feed.target {
            Target::Mirror(spec) => spec.table,
            _ => "clinical_notes",
        };
        let rows: i64 = db
            .query_one(&format!("SELECT count(*) FROM {}", quote_ident(table)), &[])
            .await
            .map_err(|e| DbError::new("count a mirror", e))?
            .get(0);
        needed.push(u32::try_from(rows).unwrap_or(u32::MAX).div_ceil(feed.page_size).max(1));
    }
    Ok(needed)
}

async fn read_into_temp(
    client: &DrChronoClient,
    db: &mut tokio_postgres::Client,
    feed: &'static Feed,
    allowance: u32,
) -> Result<(u32, bool, BTreeMap<&'static str, Shape>), DrChronoError> {
    let mut query: Vec<(&str, String)> = vec![("page_size", feed.page_size.to_string())];
    if feed.verbose {
        query.push(("verbose", "true".into()));
    }
    query.extend(feed.extra.iter().map(|(k, v)| (*k, v.to_string())));
    if feed.filter == super::feeds::ChangeFilter::SinceRequired {
        query.push(("since", "1970-01-01".into()));
    }
    let mut url = client.url(feed.path, &query);
    let mut shapes: BTreeMap<&'static str, Shape> = BTreeMap::new();
    let mut pages = 0;
    loop {
        if pages >= allowance {
            return Ok((pages, false, shapes));
        }
        let page = client.page(&url, feed.path, Priority::Manual).await?;
        pages += 1;
        let target = match feed.target {
            Target::Mirror(spec) => Some(spec),
            _ => None,
        };
        let rows: Vec<RowWrite> = page.results.iter().filter_map(|o| pulled_rows(target, o).ok()).flatten().collect();
        let tx = db.transaction().await.map_err(|e| DbError::new("begin", e))?;
        for row in &rows {
            if !shapes.contains_key(row.table) {
                let shape = shape_of(row);
                let columns = shape.columns.iter().map(|(c, _)| quote_ident(c)).collect::<Vec<_>>().join(", ");
                let temp = quote_ident(&temp_name(row.table));
                tx.batch_execute(&format!(
                    "DROP TABLE IF EXISTS pg_temp.{temp}; CREATE TEMP TABLE {temp} AS SELECT {columns} FROM {} WITH NO DATA",
                    quote_ident(row.table)
                ))
                .await
                .map_err(|e| DbError::new("create a verification table", e))?;
                shapes.insert(row.table, shape);
            }
            let shape = &shapes[row.table];
            let values: Vec<&Option<String>> = row
                .columns
                .iter()
                .zip(&row.values)
                .filter(|(c, _)| shape.columns.iter().any(|(name, _)| c.split("::").next() == Some(name)))
                .map(|(_, v)| v)
                .collect();
            let placeholders = shape
                .columns
                .iter()
                .enumerate()
                .map(|(i, (_, t))| format!("${}::text::{t}", i + 1))
                .collect::<Vec<_>>();
            let columns = shape.columns.iter().map(|(c, _)| quote_ident(c)).collect::<Vec<_>>().join(", ");
            let params: Vec<(&(dyn ToSql + Sync), Type)> = values.iter().map(|v| (*v as _, Type::TEXT)).collect();
            tx.query_typed(
                &format!(
                    "INSERT INTO {} ({columns}) VALUES ({})",
                    quote_ident(&temp_name(row.table)),
                    placeholders.join(", ")
                ),
                &params,
            )
            .await
            .map_err(|e| DbError::new("fill a verification table", e))?;
        }
        tx.commit().await.map_err(|e| DbError::new("commit", e))?;
        match page.next {
            Some(next) => url = next,
            None => return Ok((pages, true, shapes)),
        }
    }
}

fn temp_name(table: &str) -> String {
    format!("august_verify_{table}")
}

fn shape_of(row: &RowWrite) -> Shape {
    let columns = row
        .columns
        .iter()
        .filter_map(|c| c.split_once("::"))
        .filter(|(name, _)| !["drchrono_raw", "deleted_at"].contains(name))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    Shape { table: row.table, key: row.conflict, columns }
}

async fn compare(
    db: &tokio_postgres::Client,
    feed: &'static Feed,
    shape: &Shape,
    pages: u32,
    whole: bool,
) -> Result<TableReport, DrChronoError> {
    let temp = quote_ident(&temp_name(shape.table));
    let table = quote_ident(shape.table);
    let key = shape.key.iter().map(|k| quote_ident(k)).collect::<Vec<_>>().join(", ");
    let key_text =
        shape.key.iter().map(|k| format!("{}::text", quote_ident(k))).collect::<Vec<_>>().join(" || ':' || ");
    let columns = shape.columns.iter().map(|(c, _)| quote_ident(c)).collect::<Vec<_>>().join(", ");
    let sampled = if whole { String::new() } else { format!(" AND ({key}) IN (SELECT {key} FROM {temp})") };
    let sql = format!(
        "WITH d AS (SELECT DISTINCT ON ({key}) {key_text} AS k, md5(ROW({columns})::text) AS h FROM {temp}),
              p AS (SELECT {key_text} AS k, md5(ROW({columns})::text) AS h FROM {table} WHERE deleted_at IS NULL{sampled}),
              diff AS (SELECT coalesce(d.k, p.k) AS k FROM d FULL JOIN p ON d.k = p.k WHERE d.h IS DISTINCT FROM p.h)
         SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM p),
                (SELECT md5(string_agg(h, '' ORDER BY h)) FROM d) IS NOT DISTINCT FROM
                (SELECT md5(string_agg(h, '' ORDER BY h)) FROM p),
                (SELECT count(*) FROM diff),
                ARRAY(SELECT k FROM diff ORDER BY k LIMIT {LISTED})"
    );
    let row = db.query_one(&sql, &[]).await.map_err(|e| DbError::new("compare a mirror", e))?;
    Ok(TableReport {
        feed: feed.name,
        table: shape.table,
        pages,
        whole,
        drchrono_rows: row.get(0),
        postgres_rows: row.get(1),
        checksum_equal: row.get(2),
        differing_total: row.get(3),
        differing: row.get(4),
    })
}
