//! What every delivery leaves behind besides its data: a `sync_log` row (source, event,
//! status, counts), and, for deliveries with an id, a `processed_messages` row that makes a
//! redelivery a no-op. A stale delivery leaves only these ([`claim_as_stale`]). Both are written in the delivery's own transaction, except for a
//! delivery whose data Postgres refused: that transaction rolled back, and the `rejected` row
//! is written on its own afterwards ([`record_rejection`]).

use august_schema::DbError;
use tokio_postgres::GenericClient;

use crate::IngestError;

/// The `sync_log` row of a delivery.
const LOG_SQL: &str =
    "INSERT INTO sync_log (source, event, delivery_id, status, records_received, records_written, finished_at)
     VALUES ($1, $2, $3, $4, $5, $6, now())";

/// Records a delivery's outcome.
pub async fn log(
    client: &impl GenericClient,
    source: &str,
    event: &str,
    delivery: Option<&str>,
    status: &str,
    received: i32,
    written: i32,
) -> Result<(), DbError> {
    client
        .execute(LOG_SQL, &[&source, &event, &delivery, &status, &received, &written])
        .await
        .map(|_| ())
        .map_err(|e| DbError::new("write sync_log", e))
}

/// `SET LOCAL app.actor`, in one round trip (pipelinable).
pub async fn set_actor_text(tx: &tokio_postgres::Transaction<'_>, actor: august_schema::Actor) -> Result<(), DbError> {
    tx.execute_typed(
        "SELECT set_config('app.actor', $1, true)",
        &[(&actor.as_str(), tokio_postgres::types::Type::TEXT)],
    )
    .await
    .map(|_| ())
    .map_err(|e| DbError::new("set app.actor", e))
}

/// Claims a delivery id, in one round trip (pipelinable); `false` when it was already
/// processed.
pub async fn claim_text(tx: &tokio_postgres::Transaction<'_>, source: &str, delivery: &str) -> Result<bool, DbError> {
    let text = tokio_postgres::types::Type::TEXT;
    tx.query_typed_opt(
        "INSERT INTO processed_messages (source, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
        &[(&source, text.clone()), (&delivery, text)],
    )
    .await
    .map(|row| row.is_some())
    .map_err(|e| DbError::new("claim the delivery", e))
}

/// [`log`] inside the delivery's transaction, in one round trip.
pub async fn log_in(
    tx: &tokio_postgres::Transaction<'_>,
    source: &str,
    event: &str,
    delivery: &str,
    status: &str,
    received: i32,
    written: i32,
) -> Result<(), DbError> {
    use tokio_postgres::types::Type;
    tx.execute_typed(
        LOG_SQL,
        &[
            (&source, Type::TEXT),
            (&event, Type::TEXT),
            (&delivery, Type::TEXT),
            (&status, Type::TEXT),
            (&received, Type::INT4),
            (&written, Type::INT4),
        ],
    )
    .await
    .map(|_| ())
    .map_err(|e| DbError::new("write sync_log", e))
}

/// A stale delivery ([`crate::stale`]), whose own transaction rolled back: claims its id (a
/// redelivery is then a duplicate) and logs it `stale`, writing nothing else, in one
/// transaction of its own.
pub async fn claim_as_stale(
    client: &mut tokio_postgres::Client,
    source: &str,
    event: &str,
    delivery: &str,
    received: i32,
) -> Result<(), DbError> {
    let tx = client.transaction().await.map_err(|e| DbError::new("begin", e))?;
    let claim = claim_text(&tx, source, delivery);
    let log = log_in(&tx, source, event, delivery, "stale", received, 0);
    tokio::try_join!(biased; claim, log)?;
    tx.commit().await.map_err(|e| DbError::new("commit", e))
}

/// When `result` is a delivery whose data Postgres refused ([`IngestError::Rejected`]), writes
/// its `sync_log` row with status `rejected`, the SQLSTATE as `error_code` and the condition
/// and object names as `error_message` (no values), in a transaction of its own on `client`,
/// whose delivery transaction has rolled back. Returns `result` unchanged.
pub async fn record_rejection<T>(
    client: &impl GenericClient,
    source: &str,
    event: &str,
    delivery: Option<&str>,
    result: Result<T, IngestError>,
) -> Result<T, IngestError> {
    if let Err(IngestError::Rejected(e)) = &result {
        let code = e.code().map(|c| c.code());
        client
            .execute(
                "INSERT INTO sync_log (source, event, delivery_id, status, records_received, error_code, error_message, finished_at)
                 VALUES ($1, $2, $3, 'rejected', 1, $4, $5, now())",
                &[&source, &event, &delivery, &code, &e.summary()],
            )
            .await
            .map_err(|e| DbError::new("write sync_log", e))?;
    }
    result
}
