//! A model of the replicated tables, built only from the change stream, that notices anything
//! applied twice, missed or out of order; and helpers to drive a consumer in tests.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use august_cdc::relation::published_relations;
use august_cdc::{CdcConfig, ChangeKind, ChangeStream, Event, Lsn, Row, Value};
use august_testkit::TestDb;
use tokio::sync::watch;
use tokio_postgres::{Client, SimpleQueryMessage};

/// Rows by (table, key).
pub type Rows = BTreeMap<(String, Vec<Value>), Row>;

/// The stream's view of the tables.
#[derive(Debug, Default)]
pub struct Mirror {
    pub rows: Rows,
    pub frontier: Lsn,
    pub snapshot_lsn: Option<Lsn>,
    /// Anything that shows a change missed, doubled or out of order.
    pub faults: Vec<String>,
    pub transactions: Vec<Lsn>,
    pub changes: u64,
    pub events: Vec<Event>,
    pub keep_events: bool,
}

impl Mirror {
    pub fn apply(&mut self, event: &Event) {
        if self.keep_events {
            self.events.push(event.clone());
        }
        match event {
            Event::SnapshotRow { relation, row } => {
                if self.rows.insert((relation.name.clone(), row.key(relation)), row.clone()).is_some() {
                    self.faults.push(format!("snapshot row twice in {}", relation.name));
                }
            }
            Event::SnapshotEnd { lsn } => {
                self.snapshot_lsn = Some(*lsn);
                self.frontier = *lsn;
            }
            Event::Begin { commit_lsn, .. } => {
                if *commit_lsn < self.frontier {
                    self.faults.push(format!("transaction {commit_lsn} below the frontier {}", self.frontier));
                }
            }
            Event::Change(change) => {
                self.changes += 1;
                let table = change.relation.name.clone();
                match &change.kind {
                    ChangeKind::Insert { new } => {
                        if self.rows.insert((table.clone(), new.key(&change.relation)), new.clone()).is_some() {
                            self.faults.push(format!("insert of an existing row in {table}"));
                        }
                    }
                    ChangeKind::Update { old, new } => {
                        let old = old.as_ref().expect("FULL identity sends the old row");
                        match self.rows.remove(&(table.clone(), old.key(&change.relation))) {
                            Some(current) if current == *old => {}
                            Some(_) => self.faults.push(format!("update's old row differs from the mirror in {table}")),
                            None => self.faults.push(format!("update of a missing row in {table}")),
                        }
                        self.rows.insert((table, new.key(&change.relation)), new.clone());
                    }
                    ChangeKind::Delete { old } => match self.rows.remove(&(table.clone(), old.key(&change.relation))) {
                        Some(current) if current == *old => {}
                        Some(_) => self.faults.push(format!("delete's old row differs from the mirror in {table}")),
                        None => self.faults.push(format!("delete of a missing row in {table}")),
                    },
                }
            }
            Event::Truncate(relations) => {
                for relation in relations {
                    self.rows.retain(|(table, _), _| *table != relation.name);
                }
            }
            Event::Commit { commit_lsn, .. } => {
                self.transactions.push(*commit_lsn);
                self.frontier = self.frontier.max(commit_lsn.next());
            }
            Event::Progress(lsn) => self.frontier = self.frontier.max(*lsn),
            Event::Notice(_) | Event::Trace(_) => {}
        }
    }
}

/// A consumer under test, with its mirror and the durable LSN the test reports.
pub struct Consumer {
    pub stream: ChangeStream,
    pub durable: watch::Sender<Lsn>,
    pub mirror: Mirror,
    /// Report everything applied to the mirror as durable at once.
    pub auto_durable: bool,
}

/// Test defaults: quick heartbeats, status and reconnects.
pub fn test_config(slot: &str) -> CdcConfig {
    CdcConfig {
        slot: slot.to_string(),
        heartbeat: Some(Duration::from_millis(200)),
        status_interval: Duration::from_secs(1),
        confirm_interval: Duration::from_millis(20),
        backoff: (Duration::from_millis(50), Duration::from_secs(1)),
        monitor_interval: Duration::from_millis(500),
        ..CdcConfig::default()
    }
}

impl Consumer {
    pub fn start(db: &TestDb, config: CdcConfig) -> Self {
        let (durable, watch) = watch::channel(Lsn::ZERO);
        Self {
            stream: august_cdc::start(db.config(), config, watch),
            durable,
            mirror: Mirror::default(),
            auto_durable: true,
        }
    }

    /// Applies events until `done` holds; panics after `limit`.
    pub async fn pump_until(&mut self, limit: Duration, done: impl Fn(&Mirror) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(&self.mirror) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.next()).await {
                Ok(Some(event)) => {
                    self.mirror.apply(&event);
                    if self.auto_durable {
                        self.durable.send_replace(self.mirror.frontier);
                    }
                }
                Ok(None) => panic!("the consumer stopped: {:?}", self.mirror.faults),
                Err(_) => panic!("timed out; frontier {}, faults {:?}", self.mirror.frontier, self.mirror.faults),
            }
        }
    }

    /// Applies events until the frontier passes everything committed so far.
    pub async fn catch_up(&mut self, client: &Client) {
        let target = current_lsn(client).await;
        self.pump_until(Duration::from_secs(60), |m| m.frontier > target).await;
    }
}

/// The server's current WAL position.
pub async fn current_lsn(client: &Client) -> Lsn {
    let text: String = client.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.unwrap().get(0);
    text.parse().unwrap()
}

/// Every published table's rows, read directly, decoded the way the stream decodes them.
pub async fn table_rows(client: &Client) -> Rows {
    client.batch_execute("SET TimeZone = 'UTC'; SET extra_float_digits = 3; SET DateStyle = ISO").await.unwrap();
    let mut rows = Rows::new();
    for relation in published_relations(client, august_schema::PUBLICATION).await.unwrap() {
        let columns: Vec<String> = relation.columns.iter().map(|c| format!("\"{}\"", c.name)).collect();
        let sql = format!("SELECT {} FROM {}", columns.join(", "), relation.qualified_name());
        for message in client.simple_query(&sql).await.unwrap() {
            if let SimpleQueryMessage::Row(row) = message {
                let values = relation
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| row.get(i).map_or(Value::Null, |t| Value::decode(c.type_oid, t)))
                    .collect();
                let row = Row(values);
                rows.insert((relation.name.clone(), row.key(&relation)), row);
            }
        }
    }
    rows
}
