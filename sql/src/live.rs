//! The views' rows as of the latest closed frontier, kept in memory for queries.
//!
//! [`LiveViews::follow`] reads the dataflow's output (a copy of what the sinks get) and holds
//! each LSN's updates until the frontier passes it, then applies them all at once under the
//! write lock: a reader never sees part of a transaction, and everything it reads in one
//! [`LiveViews::snapshot`] is as of one LSN. The store is not a sink: it confirms nothing and
//! holds no slot back; after a restart it fills again from the dataflow's initial copy.
//!
//! Per view it also keeps what `august_views` reports: changes in the last minute and the
//! lag from commit to visible here (p50/p99 of the last 1,000 commits).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use august_cdc::{Lsn, Value};
use august_dataflow::{Output, ViewRow};
use chrono::{DateTime, Utc};
use datafusion::arrow::record_batch::RecordBatch;
use tokio::sync::{mpsc, watch};

use crate::columns::TableDef;
use crate::SqlError;

/// Lags kept per view, for its percentiles.
const LAGS_KEPT: usize = 1000;

#[derive(Default)]
struct ViewState {
    rows: BTreeMap<Value, ViewRow>,
    /// The rows as one batch, built at the first query after a change.
    batch: Mutex<Option<RecordBatch>>,
    /// When each change of the last minute became visible.
    recent: VecDeque<Instant>,
    /// Commit → visible, in seconds, newest last.
    lags: VecDeque<f64>,
    last_change: Option<DateTime<Utc>>,
}

#[derive(Default)]
struct State {
    lsn: Lsn,
    views: HashMap<String, ViewState>,
}

/// What `august_views` shows of one view.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewStats {
    /// Rows now.
    pub rows: usize,
    /// Changes per second over the last minute.
    pub changes_per_second: f64,
    /// When it last changed.
    pub last_change: Option<DateTime<Utc>>,
    /// Commit → visible here, median and 99th percentile, in seconds.
    pub lag_p50: Option<f64>,
    /// See `lag_p50`.
    pub lag_p99: Option<f64>,
}

/// The views' rows, one consistent LSN at a time.
pub struct LiveViews {
    state: RwLock<State>,
    frontier: watch::Sender<Lsn>,
}

impl Default for LiveViews {
    fn default() -> Self {
        Self { state: RwLock::default(), frontier: watch::channel(Lsn::ZERO).0 }
    }
}

/// Rows waiting for their frontier: (commit time, updates).
type Held = Vec<(Option<DateTime<Utc>>, Vec<august_dataflow::ViewUpdate>)>;

impl LiveViews {
    /// Applies the dataflow's output until it ends.
    pub async fn follow(self: Arc<Self>, mut output: mpsc::Receiver<Output>) {
        let mut held: Held = Vec::new();
        while let Some(out) = output.recv().await {
            match out {
                Output::Updates { commit_time, updates, .. } => held.push((commit_time, updates)),
                Output::Frontier(lsn) => self.apply(std::mem::take(&mut held), lsn),
                Output::Notices { .. } | Output::Trace { .. } => {}
            }
        }
    }

    fn apply(&self, held: Held, lsn: Lsn) {
        let now = Instant::now();
        let wall = Utc::now();
        {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            for (commit_time, updates) in held {
                let lag = commit_time.map(|t| (wall - t).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6);
                let mut touched: Vec<&'static str> = Vec::new();
                for u in updates {
                    let view = state.views.entry(u.view.to_string()).or_default();
                    match u.row {
                        Some(row) => view.rows.insert(u.key, row),
                        None => view.rows.remove(&u.key),
                    };
                    view.recent.push_back(now);
                    if touched.last() != Some(&u.view) {
                        touched.push(u.view);
                    }
                }
                for name in touched {
                    let Some(view) = state.views.get_mut(name) else { continue };
                    *view.batch.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
                    view.last_change = Some(wall);
                    if let Some(lag) = lag {
                        if view.lags.len() == LAGS_KEPT {
                            view.lags.pop_front();
                        }
                        view.lags.push_back(lag);
                    }
                }
            }
            state.lsn = state.lsn.max(lsn);
        }
        self.frontier.send_if_modified(|f| {
            let moved = lsn > *f;
            *f = (*f).max(lsn);
            moved
        });
    }

    /// The LSN every row here is as of.
    pub fn lsn(&self) -> Lsn {
        self.state.read().unwrap_or_else(|e| e.into_inner()).lsn
    }

    /// Watches the LSN (for tests and freshness figures).
    pub fn watch(&self) -> watch::Receiver<Lsn> {
        self.frontier.subscribe()
    }

    /// The rows of each of `tables` (views by name; names it does not hold are empty), all as
    /// of the one LSN returned with them.
    pub fn snapshot(&self, tables: &[&TableDef]) -> Result<(Lsn, Vec<RecordBatch>), SqlError> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let batches = tables
            .iter()
            .map(|def| match state.views.get(&def.name) {
                None => def.batch(std::iter::empty()),
                Some(view) => {
                    let mut cached = view.batch.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(batch) = cached.as_ref() {
                        return Ok(batch.clone());
                    }
                    let batch = def.batch(view.rows.values().map(|row| row.as_slice()))?;
                    *cached = Some(batch.clone());
                    Ok(batch)
                }
            })
            .collect::<Result<_, _>>()?;
        Ok((state.lsn, batches))
    }

    /// Per view that has ever had a row: its figures now.
    pub fn stats(&self) -> BTreeMap<String, ViewStats> {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let minute_ago = Instant::now().checked_sub(std::time::Duration::from_secs(60));
        state
            .views
            .iter_mut()
            .map(|(name, view)| {
                while view.recent.front().is_some_and(|t| Some(*t) < minute_ago) {
                    view.recent.pop_front();
                }
                let mut lags: Vec<f64> = view.lags.iter().copied().collect();
                lags.sort_by(f64::total_cmp);
                let pick = |q: f64| (!lags.is_empty()).then(|| lags[((lags.len() - 1) as f64 * q).round() as usize]);
                let stats = ViewStats {
                    rows: view.rows.len(),
                    changes_per_second: view.recent.len() as f64 / 60.0,
                    last_change: view.last_change,
                    lag_p50: pick(0.5),
                    lag_p99: pick(0.99),
                };
                (name.clone(), stats)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::{Column, SqlType};
    use august_dataflow::{ColumnType, PhiClass, ViewUpdate};

    fn def() -> TableDef {
        TableDef {
            name: "v".into(),
            columns: vec![Column { name: "k".into(), ty: SqlType::Of(ColumnType::Int), class: PhiClass::Identifier }],
        }
    }

    fn update(k: i64, present: bool) -> ViewUpdate {
        ViewUpdate { view: "v", key: Value::Int(k), row: present.then(|| vec![Value::Int(k)]) }
    }

    #[tokio::test]
    async fn updates_show_only_once_their_frontier_passes() {
        let live = Arc::new(LiveViews::default());
        let (tx, rx) = mpsc::channel(8);
        let task = tokio::spawn(live.clone().follow(rx));
        let mut frontier = live.watch();
        let updates = |u| Output::Updates { lsn: Lsn(10), commit_time: Some(Utc::now()), updates: u };
        tx.send(updates(vec![update(1, true), update(2, true)])).await.unwrap();
        tx.send(Output::Frontier(Lsn(11))).await.unwrap();
        frontier.wait_for(|l| *l == Lsn(11)).await.unwrap();
        tx.send(updates(vec![update(1, false)])).await.unwrap();
        tokio::task::yield_now().await;
        let (lsn, batches) = live.snapshot(&[&def()]).unwrap();
        assert_eq!((lsn, batches[0].num_rows()), (Lsn(11), 2), "the delete waits for its frontier");
        tx.send(Output::Frontier(Lsn(12))).await.unwrap();
        frontier.wait_for(|l| *l == Lsn(12)).await.unwrap();
        let (lsn, batches) = live.snapshot(&[&def()]).unwrap();
        assert_eq!((lsn, batches[0].num_rows()), (Lsn(12), 1));
        let stats = live.stats();
        assert_eq!(stats["v"].rows, 1);
        assert!(stats["v"].lag_p99.is_some() && stats["v"].changes_per_second > 0.0);
        drop(tx);
        task.await.unwrap();
    }
}
