//! `august tail`: prints committed changes as JSON lines, like a decoded `pg_recvlogical`.
//!
//! One line per change: `lsn` (the transaction's commit LSN), `commit_time`, `table`, `op`,
//! `key` (and `old_key` when an update changed it), and the row's `values` unless
//! `--keys-only`. Values are PHI: `--keys-only` prints ids alone. It streams from a temporary
//! slot unless `--slot` names a permanent one, whose position then advances as lines are
//! written.

use std::io::Write;

use anyhow::Context;
use august_cdc::{CdcConfig, Change, ChangeKind, Event, Lsn, Relation, Value};
use chrono::{DateTime, Utc};
use serde_json::{json, Value as Json};
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
            Event::SnapshotRow { .. } | Event::SnapshotEnd { .. } | Event::Notice(_) | Event::Trace(_) => {}
        }
    }
    stdout.flush()?;
    stream.finish().await?;
    Ok(())
}

/// One change as a line of JSON. Values are written by [`Value::exact_json`], so a JSON
/// column keeps numbers no f64 holds, which `serde_json::Value` would round or reject.
pub fn change_line(change: &Change, lsn: Lsn, commit_time: DateTime<Utc>, keys_only: bool) -> String {
    let relation = &change.relation;
    let mut fields = vec![
        ("lsn", Json::from(lsn.to_string()).to_string()),
        ("commit_time", json!(commit_time).to_string()),
        ("table", Json::from(relation.name.as_str()).to_string()),
        ("op", Json::from(change.op()).to_string()),
        ("key", keyed(relation, &change.key())),
    ];
    if let Some(old_key) = change.old_key() {
        fields.push(("old_key", keyed(relation, &old_key)));
    }
    if !keys_only {
        let row = match &change.kind {
            ChangeKind::Insert { new } | ChangeKind::Update { new, .. } => new,
            ChangeKind::Delete { old } => old,
        };
        let values = relation.columns.iter().zip(&row.0).map(|(c, v)| (c.name.as_str(), v.exact_json()));
        fields.push(("values", object(values)));
    }
    object(fields)
}

fn keyed(relation: &Relation, key: &[Value]) -> String {
    let names = relation.columns.iter().filter(|c| c.is_key).map(|c| c.name.as_str());
    object(names.zip(key.iter().map(Value::exact_json)))
}

/// A JSON object from names and values that are already JSON text, in the given order.
fn object<'a>(fields: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let fields: Vec<String> = fields.into_iter().map(|(name, value)| format!("{}:{value}", Json::from(name))).collect();
    format!("{{{}}}", fields.join(","))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use august_cdc::{Column, ReplicaIdentity, Row};

    use super::*;

    #[test]
    fn a_json_column_keeps_numbers_no_f64_holds() {
        let column = |name: &str, type_oid, is_key| Column { name: name.into(), type_oid, type_modifier: -1, is_key };
        let relation = Arc::new(Relation {
            oid: 1,
            schema: "public".into(),
            name: "things".into(),
            replica_identity: ReplicaIdentity::Full,
            columns: vec![column("id", 23, true), column("doc", 3802, false)],
        });
        let doc = r#"{"big": 123456789012345678901234567890.5, "huge": 1e400}"#;
        let new = Row(vec![Value::Int(7), Value::decode(3802, doc)]);
        let change = Change { relation, kind: ChangeKind::Insert { new } };
        let line = change_line(&change, Lsn(0x16B3748), DateTime::UNIX_EPOCH, false);
        assert_eq!(
            line,
            r#"{"lsn":"0/16B3748","commit_time":"1970-01-01T00:00:00Z","table":"things","op":"insert","key":{"id":7},"values":{"id":7,"doc":{"big":123456789012345678901234567890.5,"huge":1e400}}}"#
        );
        let keys: Json = serde_json::from_str(&change_line(&change, Lsn(1), DateTime::UNIX_EPOCH, true)).unwrap();
        assert_eq!(keys["key"], json!({"id": 7}));
        assert!(keys.get("values").is_none());
    }
}
