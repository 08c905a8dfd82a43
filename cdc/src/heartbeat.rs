//! The heartbeat: a transactional logical message written into the WAL every few seconds.
//!
//! When only unpublished tables (or other databases) change, pgoutput has nothing to send and
//! the slot would hold WAL back. A heartbeat is a small transaction the stream does see, so
//! the progress frontier, the durable LSN and with them the slot keep moving.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics as m;

/// The prefix of heartbeat messages.
pub const PREFIX: &str = "august.heartbeat";

/// Emits a heartbeat every `interval` until cancelled, reconnecting as needed.
pub async fn emit_heartbeats(pg: tokio_postgres::Config, interval: Duration, cancel: CancellationToken) {
    let mut client = None;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if client.is_none() {
            client = august_schema::connect(&pg).await.ok();
        }
        let Some(c) = &client else { continue };
        match c.execute("SELECT pg_logical_emit_message(true, $1, now()::text)", &[&PREFIX]).await {
            Ok(_) => metrics::counter!(m::HEARTBEATS).increment(1),
            Err(e) => {
                tracing::debug!(error = %august_schema::DbError::new("emit a heartbeat", e), "heartbeat failed; reconnecting");
                client = None;
            }
        }
    }
}
