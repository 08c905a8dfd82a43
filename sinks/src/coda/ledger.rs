//! The ledger (`coda_sync_state`): what Coda is known to hold, per view row, so a row whose
//! content Coda already has is never written again, and a delete knows the row's id when a
//! look-up found it once.
//!
//! Beside it, `coda_pending_writes` holds the writes sent but not yet confirmed: recorded
//! before each request ([`intend`]) and removed with the confirmation ([`record`]), so what a
//! killed run left unrecorded is settled against Coda at the next start ([`settle`]).
//!
//! Each row a confirmed or settled write carried to Coda is also a disclosure: it is appended
//! to `coda_disclosures` (Coda table, PHI classes, request id; no values) in the same
//! transaction, so the accounting of disclosures holds exactly what the ledger says Coda got.

use std::collections::HashMap;

use august_cdc::Lsn;
use august_schema::{set_actor, Actor, DbError};
use tokio_postgres::Transaction;

use super::mapping::Mapping;

/// What Coda holds for one view row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Hash of the cells last confirmed written.
    pub hash: String,
    /// The Coda row id, when known.
    pub row_id: Option<String>,
}

/// A confirmed write.
#[derive(Debug, Clone)]
pub enum Confirmed {
    /// The row now holds content with this hash.
    Written {
        /// View.
        view: String,
        /// Row key.
        key: String,
        /// Content hash.
        hash: String,
        /// LSN of the update.
        lsn: Lsn,
    },
    /// The row is gone.
    Deleted {
        /// View.
        view: String,
        /// Row key.
        key: String,
    },
}

impl Confirmed {
    /// The view of the row.
    pub fn view(&self) -> &str {
        match self {
            Confirmed::Written { view, .. } | Confirmed::Deleted { view, .. } => view,
        }
    }

    /// What this write disclosed, sent as Coda's `request`.
    pub fn disclosure<'a>(&'a self, request: Option<&'a str>) -> Disclosure<'a> {
        match self {
            Confirmed::Written { view, key, hash, lsn } => {
                Disclosure { view, key, hash: Some(hash), request, lsn: Some(*lsn) }
            }
            Confirmed::Deleted { view, key } => Disclosure { view, key, hash: None, request, lsn: None },
        }
    }
}

/// One view row a write carried to Coda: its cells with content `hash`, or (`None`) a delete
/// of its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disclosure<'a> {
    /// View.
    pub view: &'a str,
    /// Row key.
    pub key: &'a str,
    /// Content hash of an upsert; `None` for a delete.
    pub hash: Option<&'a str>,
    /// Coda's request id, when known.
    pub request: Option<&'a str>,
    /// LSN of the change, when known.
    pub lsn: Option<Lsn>,
}

/// Appends `rows` to `coda_disclosures`, each with the Coda table its view is mapped to and the
/// PHI classes that table's mapped columns carry (none for a delete: only Coda's row id goes).
async fn disclose(tx: &Transaction<'_>, mapping: &Mapping, rows: &[Disclosure<'_>]) -> Result<(), DbError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut columns: [Vec<Option<String>>; 8] = Default::default();
    for row in rows {
        let table = mapping.tables.iter().find(|t| t.view == row.view);
        let classes = match (table, row.hash) {
            (Some(t), Some(_)) => t.carried().iter().map(|(c, _)| c.name()).collect::<Vec<_>>().join(" "),
            _ => String::new(),
        };
        let cells = [
            Some(row.view.to_string()),
            Some(row.key.to_string()),
            Some(table.map_or_else(|| "?".to_string(), |t| t.table_id.clone())),
            Some(if row.hash.is_some() { "upsert" } else { "delete" }.to_string()),
            Some(classes),
            row.hash.map(String::from),
            row.request.map(String::from),
            row.lsn.map(|l| l.to_string()),
        ];
        for (column, cell) in columns.iter_mut().zip(cells) {
            column.push(cell);
        }
    }
    let [views, keys, tables, operations, classes, hashes, requests, lsns] = &columns;
    tx.execute(
        "INSERT INTO coda_disclosures (view, row_key, doc_id, coda_table, operation, classes, content_hash, request_id, lsn)
         SELECT v, k, $1, t, o, string_to_array(c, ' '), h, r, l::pg_lsn
           FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
             AS d(v, k, t, o, c, h, r, l)",
        &[&mapping.doc_id, views, keys, tables, operations, classes, hashes, requests, lsns],
    )
    .await
    .map(|_| ())
    .map_err(|e| DbError::new("record Coda disclosures", e))
}

/// Loads the ledger of `views`.
pub async fn load(
    client: &tokio_postgres::Client,
    views: &[String],
) -> Result<HashMap<(String, String), Held>, DbError> {
    let rows = client
        .query("SELECT view, row_key, content_hash, coda_row_id FROM coda_sync_state WHERE view = ANY($1)", &[&views])
        .await
        .map_err(|e| DbError::new("load the Coda ledger", e))?;
    Ok(rows.iter().map(|r| ((r.get(0), r.get(1)), Held { hash: r.get(2), row_id: r.get(3) })).collect())
}

/// Records confirmed writes, in one transaction of set-based statements. With `disclosed`
/// (the mapping, and Coda's request id), they are disclosures too; without, Coda already held
/// the rows (an edit made in Coda, read back).
pub async fn record(
    client: &mut tokio_postgres::Client,
    confirmed: &[Confirmed],
    disclosed: Option<(&Mapping, &str)>,
) -> Result<(), DbError> {
    let (mut views, mut keys, mut hashes, mut lsns) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut gone_views, mut gone_keys) = (Vec::new(), Vec::new());
    for item in confirmed {
        match item {
            Confirmed::Written { view, key, hash, lsn } => {
                views.push(view.as_str());
                keys.push(key.as_str());
                hashes.push(hash.as_str());
                lsns.push(lsn.to_string());
            }
            Confirmed::Deleted { view, key } => {
                gone_views.push(view.as_str());
                gone_keys.push(key.as_str());
            }
        }
    }
    let tx = client.transaction().await.map_err(|e| DbError::new("begin the ledger update", e))?;
    set_actor(&tx, Actor::CodaSink).await?;
    // The intents these writes fulfil; a newer intent for the same row (other content) stays.
    let (mut done_views, mut done_keys, mut done_hashes) = (Vec::new(), Vec::new(), Vec::new());
    for item in confirmed {
        let (view, key, hash) = match item {
            Confirmed::Written { view, key, hash, .. } => (view, key, Some(hash.as_str())),
            Confirmed::Deleted { view, key } => (view, key, None),
        };
        done_views.push(view.as_str());
        done_keys.push(key.as_str());
        done_hashes.push(hash);
    }
    // The intents this removes are the writes disclosed: a commit retried after its answer was
    // lost finds none, so nothing is disclosed twice.
    let fulfilled: std::collections::HashSet<(String, String)> = tx
        .query(
            "DELETE FROM coda_pending_writes p USING unnest($1::text[], $2::text[], $3::text[]) AS t(v, k, h)
              WHERE p.view = t.v AND p.row_key = t.k AND p.content_hash IS NOT DISTINCT FROM t.h
             RETURNING p.view, p.row_key",
            &[&done_views, &done_keys, &done_hashes],
        )
        .await
        .map_err(|e| DbError::new("clear settled Coda intents", e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    if !views.is_empty() {
        tx.execute(
            "INSERT INTO coda_sync_state (view, row_key, content_hash, pushed_lsn)
             SELECT v, k, h, l::pg_lsn FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(v, k, h, l)
             ON CONFLICT (view, row_key) DO UPDATE SET content_hash = EXCLUDED.content_hash, pushed_lsn = EXCLUDED.pushed_lsn, pushed_at = now()",
            &[&views, &keys, &hashes, &lsns],
        )
        .await
        .map_err(|e| DbError::new("update the Coda ledger", e))?;
    }
    if !gone_views.is_empty() {
        tx.execute(
            "DELETE FROM coda_sync_state s USING unnest($1::text[], $2::text[]) AS t(v, k) WHERE s.view = t.v AND s.row_key = t.k",
            &[&gone_views, &gone_keys],
        )
        .await
        .map_err(|e| DbError::new("update the Coda ledger", e))?;
    }
    if let Some((mapping, request)) = disclosed {
        let rows: Vec<Disclosure> = confirmed
            .iter()
            .map(|c| c.disclosure(Some(request)))
            .filter(|d| fulfilled.contains(&(d.view.to_string(), d.key.to_string())))
            .collect();
        disclose(&tx, mapping, &rows).await?;
    }
    tx.commit().await.map_err(|e| DbError::new("commit the ledger update", e))
}

/// Remembers a row id found by look-up.
pub async fn remember_row_id(
    client: &tokio_postgres::Client,
    view: &str,
    key: &str,
    row_id: &str,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE coda_sync_state SET coda_row_id = $3 WHERE view = $1 AND row_key = $2",
            &[&view, &key, &row_id],
        )
        .await
        .map(|_| ())
        .map_err(|e| DbError::new("remember a Coda row id", e))
}

/// Records, before a write is sent, what it will make Coda hold for each row: the content hash,
/// or `None` for a delete.
pub async fn intend(client: &tokio_postgres::Client, view: &str, rows: &[(&str, Option<&str>)]) -> Result<(), DbError> {
    let keys: Vec<&str> = rows.iter().map(|(k, _)| *k).collect();
    let hashes: Vec<Option<&str>> = rows.iter().map(|(_, h)| *h).collect();
    client
        .execute(
            "INSERT INTO coda_pending_writes (view, row_key, content_hash)
             SELECT $1, k, h FROM unnest($2::text[], $3::text[]) AS t(k, h)
             ON CONFLICT (view, row_key) DO UPDATE SET content_hash = EXCLUDED.content_hash, request_id = NULL, sent_at = now()",
            &[&view, &keys, &hashes],
        )
        .await
        .map(|_| ())
        .map_err(|e| DbError::new("record a Coda write intent", e))
}

/// Records Coda's request id for the write just sent for `keys`.
pub async fn sent(client: &tokio_postgres::Client, view: &str, keys: &[&str], request: &str) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE coda_pending_writes SET request_id = $3 WHERE view = $1 AND row_key = ANY($2)",
            &[&view, &keys, &request],
        )
        .await
        .map(|_| ())
        .map_err(|e| DbError::new("record a Coda request id", e))
}

/// A write sent and never confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsettled {
    /// View.
    pub view: String,
    /// Row key.
    pub key: String,
    /// The content hash it carried; `None` for a delete.
    pub hash: Option<String>,
    /// Coda's request id, when Coda answered before the run ended.
    pub request: Option<String>,
}

/// The rows of `views` that a write was sent for and never confirmed.
pub async fn unsettled(client: &tokio_postgres::Client, views: &[String]) -> Result<Vec<Unsettled>, DbError> {
    let rows = client
        .query(
            "SELECT view, row_key, content_hash, request_id FROM coda_pending_writes WHERE view = ANY($1) ORDER BY view, row_key",
            &[&views],
        )
        .await
        .map_err(|e| DbError::new("load unsettled Coda writes", e))?;
    Ok(rows.iter().map(|r| Unsettled { view: r.get(0), key: r.get(1), hash: r.get(2), request: r.get(3) }).collect())
}

/// Settles unconfirmed writes with what Coda was found to hold for each row (`None`: no
/// row), in one transaction: the ledger takes Coda's state, the intents go, and the writes
/// found to have landed (`landed`) are recorded as disclosures.
pub async fn settle(
    client: &mut tokio_postgres::Client,
    view: &str,
    found: &[(String, Option<Held>)],
    landed: (&Mapping, &[Disclosure<'_>]),
) -> Result<(), DbError> {
    let tx = client.transaction().await.map_err(|e| DbError::new("begin settling Coda writes", e))?;
    set_actor(&tx, Actor::CodaSink).await?;
    let (mut held_keys, mut hashes, mut ids, mut gone) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (key, held) in found {
        match held {
            Some(h) => {
                held_keys.push(key.as_str());
                hashes.push(h.hash.as_str());
                ids.push(h.row_id.as_deref());
            }
            None => gone.push(key.as_str()),
        }
    }
    let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
    let statements: [(&str, Vec<&(dyn tokio_postgres::types::ToSql + Sync)>); 2] = [
        (
            "INSERT INTO coda_sync_state (view, row_key, content_hash, coda_row_id, pushed_lsn)
             SELECT $1, k, h, i, '0/0' FROM unnest($2::text[], $3::text[], $4::text[]) AS t(k, h, i)
             ON CONFLICT (view, row_key) DO UPDATE SET content_hash = EXCLUDED.content_hash, coda_row_id = EXCLUDED.coda_row_id, pushed_at = now()",
            vec![&view, &held_keys, &hashes, &ids],
        ),
        ("DELETE FROM coda_sync_state WHERE view = $1 AND row_key = ANY($2)", vec![&view, &gone]),
    ];
    for (sql, params) in statements {
        tx.execute(sql, &params).await.map_err(|e| DbError::new("settle Coda writes", e))?;
    }
    // As in [`record`]: only writes whose intent this removes are disclosed.
    let settled: Vec<String> = tx
        .query(
            "DELETE FROM coda_pending_writes WHERE view = $1 AND row_key = ANY($2) RETURNING row_key",
            &[&view, &keys],
        )
        .await
        .map_err(|e| DbError::new("settle Coda writes", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (mapping, landed) = landed;
    let landed: Vec<Disclosure> = landed.iter().filter(|d| settled.iter().any(|k| k == d.key)).copied().collect();
    disclose(&tx, mapping, &landed).await?;
    tx.commit().await.map_err(|e| DbError::new("commit settled Coda writes", e))
}
