//! `august tail`: prints committed changes as JSON lines, like a decoded `pg_recvlogical`.
//!
//! One line per change: `lsn` (the transaction's commit LSN), `commit_time`, `table`, `op`,
//! `key` (and `old_key` when an update changed it), and the row's `values` unless
//! `--keys-only`. Values are PHI: `--keys-only` prints ids alone. It streams from a temporary
//! slot unless `--slot` names a permanent one, whose position then advances as lines are
//! written.

use std::io::Write;

use anyhow::Context;
use august_cdc::{CdcConfig, Change, ChangeKind, Event, Lsn, Relation, Row, Value};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value as Json};
use tokio::sync::watch;

use crate::settings::Sources;
use crate::ConfigError;

/// What `august tail` was asked for.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// Only this table (repeat for more).
    #[arg(long = "table", value_name = "TABLE")]
    tables: Vec<String>,
    /// Print keys only, no column values (no PHI).
    #[arg(long)]
    keys_only: bool,
    /// Stream from this permanent slot (created if missing) instead of a temporary one.
    #[arg(long, value_name = "NAME")]
    slot: Option<String>,
}

/// Streams until Ctrl-C or SIGTERM.
pub async fn run(sources: &Sources, args: TailArgs) -> anyhow::Result<()> {
    let (settings, pg) = sources.database().map_err(ConfigError)?;
    let config = CdcConfig {
        snapshot: false,
        temporary_slot: args.slot.is_none(),
        slot: args.slot.clone().unwrap_or_default(),
        only: (!args.tables.is_empty()).then_some(args.tables.clone()),
        heartbeat: None,
        ..CdcConfig::default()
    };
    let (durable, watch) = watch::channel(Lsn::ZERO);
    let mut stream = august_cdc::start(pg, config, watch);
    let slot = args.slot.as_deref().unwrap_or("a temporary slot");
    eprintln!("august: tailing {} from {slot}; Ctrl-C to stop", settings.describe());

    let mut stdout = std::io::stdout().lock();
    let mut txn: Option<(Lsn, DateTime<Utc>)> = None;
    let shutdown = crate::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let event = tokio::select! {
            _ = &mut shutdown => break,
            event = stream.next() => match event { Some(event) => event, None => break },
        };
        match event {
            Event::Begin { commit_lsn, commit_time, .. } => txn = Some((commit_lsn, commit_time)),
            Event::Change(change) => {
                let (lsn, time) = txn.context("a change outside a transaction")?;
                writeln!(stdout, "{}", change_line(&change, lsn, time, args.keys_only))?;
            }
            Event::Truncate(relations) => {
                let (lsn, time) = txn.context("a truncate outside a transaction")?;
                for relation in relations {
                    writeln!(
                        stdout,
                        "{}",
                        json!({"lsn": lsn.to_string(), "commit_time": time, "table": relation.name, "op": "truncate"})
                    )?;
                }
            }
            Event::Commit { commit_lsn, .. } => {
                stdout.flush()?;
                durable.send_replace(commit_lsn.next());
            }
            Event::Progress(lsn) => {
                stdout.flush()?;
                durable.send_replace(lsn);
            }
            Event::SnapshotRow { .. } | Event::SnapshotEnd { .. } => {}
        }
    }
    stdout.flush()?;
    stream.finish().await?;
    Ok(())
}

/// One change as a JSON object.
pub fn change_line(change: &Change, lsn: Lsn, commit_time: DateTime<Utc>, keys_only: bool) -> Json {
    let relation = &change.relation;
    let mut line = json!({
        "lsn": lsn.to_string(),
        "commit_time": commit_time,
        "table": relation.name,
        "op": change.op(),
        "key": keyed(relation, &change.key()),
    });
    if let Some(old_key) = change.old_key() {
        line["old_key"] = keyed(relation, &old_key);
    }
    if !keys_only {
        let row = match &change.kind {
            ChangeKind::Insert { new } | ChangeKind::Update { new, .. } => new,
            ChangeKind::Delete { old } => old,
        };
        line["values"] = values(relation, row);
    }
    line
}

fn keyed(relation: &Relation, key: &[Value]) -> Json {
    let names = relation.columns.iter().filter(|c| c.is_key).map(|c| c.name.clone());
    Json::Object(names.zip(key.iter().map(Value::to_json)).collect::<Map<_, _>>())
}

fn values(relation: &Relation, row: &Row) -> Json {
    Json::Object(relation.columns.iter().zip(&row.0).map(|(c, v)| (c.name.clone(), v.to_json())).collect())
}
