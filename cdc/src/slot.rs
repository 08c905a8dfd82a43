//! The permanent replication slot: choosing it, creating it, checking it at start-up, and
//! reporting how much WAL it holds back.
//!
//! Slots belong to the whole cluster, but a logical slot decodes one database. Two Augusts on
//! two databases of one server (staging and production, two clinics) therefore need two slots:
//! the default is `august_<database>` ([`default_slot_name`]), except that a database which
//! already has a slot named `august` (the old default) keeps it ([`choose_slot`]). A slot of
//! another database is refused before anything is copied ([`CdcError::SlotOfAnotherDatabase`]).
//!
//! A slot whose WAL Postgres had to remove (`wal_status = 'lost'`) can never stream again; a
//! slot dropped while August runs cannot resume. Both are permanent errors that name the slot
//! and the way out, `august replicate --resnapshot`, which drops and recreates it (safe,
//! because every start copies the tables anyway).

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::stream::StreamStats;
use crate::walsender::{quote_ident, WalSender};
use crate::{metrics as m, CdcError, Lsn};

/// A slot as `pg_replication_slots` reports it, with its lag in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotStatus {
    /// A session is streaming from it.
    pub active: bool,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
    /// What the consumer last confirmed as durable.
    pub confirmed_flush: Option<Lsn>,
    /// The oldest WAL the slot needs.
    pub restart_lsn: Option<Lsn>,
    /// Server WAL position minus confirmed flush: how far durability lags the database.
    pub lag_bytes: i64,
    /// Server WAL position minus restart LSN: the WAL this slot keeps on disk.
    pub retained_bytes: i64,
    /// How much more WAL can be written before the slot is invalidated (NULL when unlimited).
    pub safe_wal_size: Option<i64>,
    /// The database the slot decodes (`None` for a physical slot).
    pub database: Option<String>,
}

/// The old default slot name, still used by a database that has a slot of that name.
pub const LEGACY_SLOT: &str = "august";

/// Longest slot name Postgres takes (`NAMEDATALEN - 1`).
pub const MAX_SLOT_NAME: usize = 63;

/// Whether `name` follows Postgres' rules for slot names: 1 to 63 lower-case letters, digits
/// and underscores.
pub fn is_valid_slot_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SLOT_NAME
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The default slot of `database`: `august_<database>`. A name that had to be changed to fit the
/// slot-name rules (upper case, other characters, too long) also carries a hash of the real
/// name, so two databases whose names differ only there still get two slots.
pub fn default_slot_name(database: &str) -> String {
    let clean: String = database
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let plain = format!("{LEGACY_SLOT}_{clean}");
    if clean == database && plain.len() <= MAX_SLOT_NAME {
        return plain;
    }
    // FNV-1a: stable across builds and platforms, which `DefaultHasher` does not promise.
    let hash = database.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    let room = MAX_SLOT_NAME - LEGACY_SLOT.len() - 2 - 8;
    let clean: String = clean.chars().take(room).collect();
    format!("{LEGACY_SLOT}_{clean}_{hash:08x}")
}

/// The slot this database streams from: `configured` (`AUGUST_SLOT`) when set; otherwise
/// [`LEGACY_SLOT`] if this database already has it, else [`default_slot_name`]. A slot that
/// exists but decodes another database is refused ([`CdcError::SlotOfAnotherDatabase`]).
pub async fn choose_slot(client: &Client, configured: Option<&str>) -> Result<String, CdcError> {
    let here: String = client
        .query_one("SELECT current_database()::text", &[])
        .await
        .map_err(|e| CdcError::db("read the database name", e))?
        .get(0);
    let slot = match configured {
        Some(slot) => slot.to_string(),
        None => match slot_status(client, LEGACY_SLOT).await? {
            Some(legacy) if legacy.database.as_deref() == Some(here.as_str()) => LEGACY_SLOT.to_string(),
            _ => default_slot_name(&here),
        },
    };
    if let Some(status) = slot_status(client, &slot).await? {
        check_database(&slot, &status, &here)?;
    }
    Ok(slot)
}

fn check_database(slot: &str, status: &SlotStatus, here: &str) -> Result<(), CdcError> {
    if status.database.as_deref() == Some(here) {
        return Ok(());
    }
    Err(CdcError::SlotOfAnotherDatabase {
        slot: slot.to_string(),
        database: status.database.clone().unwrap_or_else(|| "none (a physical slot)".to_string()),
        here: here.to_string(),
    })
}

/// The slot's status, or `None` when it does not exist.
pub async fn slot_status(client: &Client, slot: &str) -> Result<Option<SlotStatus>, CdcError> {
    let row = client
        .query_opt(
            "SELECT active, wal_status, confirmed_flush_lsn::text, restart_lsn::text,
                    coalesce((pg_current_wal_lsn() - confirmed_flush_lsn)::bigint, 0),
                    coalesce((pg_current_wal_lsn() - restart_lsn)::bigint, 0),
                    safe_wal_size, database::text
               FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| CdcError::db("read the replication slot", e))?;
    Ok(row.map(|row| SlotStatus {
        active: row.get(0),
        wal_status: row.get(1),
        confirmed_flush: row.get::<_, Option<String>>(2).and_then(|s| s.parse().ok()),
        restart_lsn: row.get::<_, Option<String>>(3).and_then(|s| s.parse().ok()),
        lag_bytes: row.get(4),
        retained_bytes: row.get(5),
        safe_wal_size: row.get(6),
        database: row.get(7),
    }))
}

/// Makes sure the permanent slot exists and can stream: creates a missing one; refuses one of
/// another database (before anything is copied; `--resnapshot` does not drop it either); refuses
/// a lost one unless `resnapshot`, which drops and recreates it (as it does a healthy one).
pub async fn prepare_slot(
    client: &Client,
    pg: &tokio_postgres::Config,
    slot: &str,
    resnapshot: bool,
) -> Result<(), CdcError> {
    let status = slot_status(client, slot).await?;
    if let Some(status) = &status {
        let here: String = client
            .query_one("SELECT current_database()::text", &[])
            .await
            .map_err(|e| CdcError::db("read the database name", e))?
            .get(0);
        check_database(slot, status, &here)?;
    }
    match status {
        Some(status) if resnapshot => {
            tracing::warn!(slot, wal_status = ?status.wal_status, "dropping the replication slot to recreate it (--resnapshot)");
            drop_slot(client, slot).await?;
        }
        Some(status) if status.wal_status.as_deref() == Some("lost") => {
            return Err(CdcError::SlotLost { slot: slot.to_string() })
        }
        Some(_) => return Ok(()),
        None => tracing::info!(slot, "creating the replication slot"),
    }
    let mut session = WalSender::connect(pg).await?;
    session
        .simple_query(&format!("CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT 'nothing')", quote_ident(slot)))
        .await?;
    session.finish().await;
    Ok(())
}

/// Drops a slot, waiting briefly for a previous session to let go of it.
pub async fn drop_slot(client: &Client, slot: &str) -> Result<(), CdcError> {
    for attempt in 0..50 {
        match client.execute("SELECT pg_drop_replication_slot($1)", &[&slot]).await {
            Ok(_) => return Ok(()),
            Err(e) if e.code().is_some_and(|c| c.code() == "55006") && attempt < 49 => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(CdcError::db("drop the replication slot", e)),
        }
    }
    Ok(())
}

/// Reports the slot's lag and retained WAL as metrics every `interval`, with the seconds since
/// the stream last heard from the server, until cancelled.
pub async fn monitor_slot(
    pg: tokio_postgres::Config,
    slot: String,
    interval: Duration,
    stats: Arc<StreamStats>,
    cancel: CancellationToken,
) {
    let mut client: Option<Client> = None;
    let mut ticks = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        metrics::gauge!(m::SECONDS_SINCE_LAST_MESSAGE).set(stats.seconds_since_last_message());
        if client.is_none() {
            client = august_schema::connect(&pg).await.ok();
        }
        let Some(c) = &client else { continue };
        match slot_status(c, &slot).await {
            Ok(Some(status)) => {
                metrics::gauge!(m::SLOT_LAG_BYTES).set(status.lag_bytes as f64);
                metrics::gauge!(m::RETAINED_WAL_BYTES).set(status.retained_bytes as f64);
                if let Some(confirmed) = status.confirmed_flush {
                    metrics::gauge!(m::CONFIRMED_LSN).set(confirmed.0 as f64);
                }
                if status.wal_status.as_deref() == Some("lost") {
                    tracing::error!(slot, "the replication slot is invalidated; run `august replicate --resnapshot`");
                } else if status.wal_status.as_deref() == Some("unreserved") {
                    tracing::warn!(
                        slot,
                        retained_bytes = status.retained_bytes,
                        "the replication slot is about to lose WAL"
                    );
                }
            }
            Ok(None) => tracing::warn!(slot, "the replication slot is missing"),
            Err(_) => client = None,
        }
    }
}
