//! Who changed a row. Every write to a clinical or operational table runs inside a
//! transaction that first names its actor; the audit trigger copies it into
//! `change_log.actor` (and writes `'unattributed'` when a writer forgot). Keeping the names in
//! one enum gives an auditor the full list of writers.

use tokio_postgres::GenericClient;

use crate::DbError;

/// A writer of clinical or operational data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// `august migrate`: schema changes and seed data.
    Migrate,
    /// A DrChrono webhook delivery.
    DrChronoWebhook,
    /// A DrChrono pull (`august sync`, `/sync/*`, the reconciliation pass).
    DrChronoSync,
    /// A Deep Cura Gridhook delivery.
    DeepCuraGridhook,
    /// The dataflow's link write-back into `deepcura_notes`.
    Linker,
    /// The Coda sink's own bookkeeping.
    CodaSink,
    /// A staff edit in Coda, sent back through `PATCH /api/…` (the editor's email goes in
    /// `app.actor_detail`).
    CodaWriteback,
    /// `august demo`'s synthetic clinic, for the tables no webhook fills (providers, the
    /// staff's intake, tasks and prior authorizations).
    Demo,
    /// `august audit verify`: reads the audit chains, writes only its own `access_log` row.
    Auditor,
}

impl Actor {
    /// The name stored in `change_log.actor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Migrate => "august_migrate",
            Actor::DrChronoWebhook => "drchrono_webhook",
            Actor::DrChronoSync => "drchrono_sync",
            Actor::DeepCuraGridhook => "deepcura_gridhook",
            Actor::Linker => "august_linker",
            Actor::CodaSink => "august_coda_sink",
            Actor::CodaWriteback => "coda_writeback",
            Actor::Demo => "august_demo",
            Actor::Auditor => "august_auditor",
        }
    }
}

/// Names the actor for the rest of the current transaction (`SET LOCAL app.actor`).
/// Outside a transaction block Postgres would forget it at once, so call this on a
/// `Transaction`.
pub async fn set_actor(tx: &impl GenericClient, actor: Actor) -> Result<(), DbError> {
    tx.execute("SELECT set_config('app.actor', $1, true)", &[&actor.as_str()])
        .await
        .map(|_| ())
        .map_err(|e| DbError::new("set app.actor", e))
}
