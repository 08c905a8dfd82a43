//! The consistent copy every run starts with.
//!
//! A temporary slot is created with an exported snapshot; its consistent point `C` is the LSN
//! the snapshot is taken at: every transaction that committed before `C` is in it, none that
//! committed at or after. A normal connection imports the snapshot (`SET TRANSACTION
//! SNAPSHOT`) and reads every published table through it; the temporary slot goes away with
//! its session. The stream that follows drops transactions whose commit LSN is below `C`.

use std::sync::Arc;

use futures_util::{pin_mut, TryStreamExt};
use tokio_postgres::SimpleQueryMessage;

use crate::change::{Event, Row};
use crate::relation::{published_relations, ReplicaIdentity};
use crate::stream::Emitter;
use crate::walsender::{quote_ident, quote_literal, WalSender};
use crate::{CdcError, Lsn, Relation, Value};

/// Copies the published tables (all, or those named in `only`) as of a fresh consistent
/// snapshot, sending a `SnapshotRow` per row. Returns the snapshot LSN and the relations.
pub async fn copy_tables(
    pg: &tokio_postgres::Config,
    publication: &str,
    only: Option<&[String]>,
    emit: &mut Emitter<'_>,
) -> Result<(Lsn, Vec<Arc<Relation>>), CdcError> {
    let mut exporter = WalSender::connect(pg).await?;
    let temporary = format!("august_snapshot_{}_{}", std::process::id(), chrono::Utc::now().timestamp_micros());
    let created = exporter
        .simple_query(&format!(
            "CREATE_REPLICATION_SLOT {} TEMPORARY LOGICAL pgoutput (SNAPSHOT 'export')",
            quote_ident(&temporary)
        ))
        .await?;
    let (lsn, snapshot) =
        match created.first().map(|row| (row.get(1).cloned().flatten(), row.get(2).cloned().flatten())) {
            Some((Some(lsn), Some(snapshot))) => (lsn.parse::<Lsn>().map_err(CdcError::Protocol)?, snapshot),
            _ => return Err(CdcError::Protocol("CREATE_REPLICATION_SLOT returned no snapshot".into())),
        };

    let client = august_schema::connect(pg).await?;
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
             SET TRANSACTION SNAPSHOT {};
             SET LOCAL DateStyle = ISO; SET LOCAL TimeZone = 'UTC'; SET LOCAL extra_float_digits = 3;
             SET LOCAL IntervalStyle = postgres; SET LOCAL bytea_output = hex;",
            quote_literal(&snapshot)
        ))
        .await
        .map_err(|e| CdcError::db("import the snapshot", e))?;
    // The importing transaction holds the snapshot now; the exporter and its slot can go.
    exporter.finish().await;

    let relations = published_relations(&client, publication).await?;
    require_full_identity(&relations)?;
    for relation in relations.iter().filter(|r| only.is_none_or(|names| names.iter().any(|n| *n == r.name))) {
        copy_table(&client, relation, emit).await?;
    }
    client.batch_execute("COMMIT").await.map_err(|e| CdcError::db("end the snapshot", e))?;
    tracing::info!(%lsn, tables = relations.len(), "snapshot copied");
    Ok((lsn, relations))
}

/// Every published table must log whole old rows; see [`CdcError::IdentityNotFull`].
pub fn require_full_identity(relations: &[Arc<Relation>]) -> Result<(), CdcError> {
    match relations.iter().find(|r| r.replica_identity != ReplicaIdentity::Full) {
        Some(r) => Err(CdcError::IdentityNotFull {
            table: r.name.clone(),
            identity: format!("{:?}", r.replica_identity).to_uppercase(),
        }),
        None => Ok(()),
    }
}

async fn copy_table(
    client: &tokio_postgres::Client,
    relation: &Arc<Relation>,
    emit: &mut Emitter<'_>,
) -> Result<(), CdcError> {
    let columns: Vec<String> = relation.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let sql = format!("SELECT {} FROM ONLY {}", columns.join(", "), relation.qualified_name());
    let rows = client.simple_query_raw(&sql).await.map_err(|e| CdcError::db("copy a table", e))?;
    pin_mut!(rows);
    while let Some(message) = rows.try_next().await.map_err(|e| CdcError::db("copy a table", e))? {
        if let SimpleQueryMessage::Row(row) = message {
            let values = relation
                .columns
                .iter()
                .enumerate()
                .map(|(i, column)| row.get(i).map_or(Value::Null, |text| Value::decode(column.type_oid, text)))
                .collect();
            emit.send(Event::SnapshotRow { relation: relation.clone(), row: Row(values) }).await?;
        }
    }
    Ok(())
}
