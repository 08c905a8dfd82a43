//! The last hour of the status page's charts: a ring buffer of small points, one per sample,
//! the oldest dropped as a new one comes. Only what a chart draws is kept (each table's
//! pending rows and oldest pending age, the totals, slot lag, quota use), not whole snapshots.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use super::snapshot::Snapshot;

/// What the charts draw at one sample.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    /// When, in Unix seconds.
    pub at: f64,
    /// Per table (by view): `[rows waiting, the oldest one's age in seconds]`.
    pub tables: BTreeMap<String, TablePoint>,
    /// Rows waiting, every table.
    pub pending_rows: Option<f64>,
    /// The slot's lag, in bytes.
    pub slot_lag_bytes: Option<f64>,
    /// WAL the slot retains, in bytes.
    pub retained_wal_bytes: Option<f64>,
    /// Coda writes spent in the current quota window.
    pub quota_writes_used: Option<f64>,
}

/// One table's lag at one sample: rows waiting, and the oldest one's age in seconds. A pair
/// (serialized `[rows, age]`) because an hour holds 1 800 points of every table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TablePoint(pub Option<f64>, pub Option<f64>);

impl Point {
    /// The chart's share of `snapshot`.
    pub fn of(snapshot: &Snapshot) -> Self {
        let tables = snapshot
            .tables
            .iter()
            .map(|t| (t.view.clone(), TablePoint(t.pending_rows, t.oldest_pending_seconds)))
            .collect();
        Point {
            at: snapshot.at,
            tables,
            pending_rows: snapshot.coda.pending_rows,
            slot_lag_bytes: snapshot.cdc.slot_lag_bytes,
            retained_wal_bytes: snapshot.cdc.retained_wal_bytes,
            quota_writes_used: snapshot.coda.quota_writes_used,
        }
    }
}

/// The points of the last `capacity` samples, oldest first.
#[derive(Debug)]
pub struct History {
    points: VecDeque<Point>,
    capacity: usize,
}

impl History {
    /// An empty history that keeps `capacity` points.
    pub fn new(capacity: usize) -> Self {
        History { points: VecDeque::with_capacity(capacity), capacity }
    }

    /// Adds `point`, dropping the oldest when full.
    pub fn push(&mut self, point: Point) {
        if self.points.len() == self.capacity {
            self.points.pop_front();
        }
        self.points.push_back(point);
    }

    /// The points taken after `since` (Unix seconds; all when `None`), oldest first.
    pub fn since(&self, since: Option<f64>) -> Vec<Point> {
        self.points.iter().filter(|p| since.is_none_or(|s| p.at > s)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at: f64) -> Point {
        Point {
            at,
            tables: BTreeMap::new(),
            pending_rows: Some(at),
            slot_lag_bytes: None,
            retained_wal_bytes: None,
            quota_writes_used: None,
        }
    }

    #[test]
    fn keeps_the_newest_points_and_answers_those_after_a_time() {
        let mut history = History::new(3);
        for at in 1..=5 {
            history.push(point(f64::from(at)));
        }
        let ats: Vec<f64> = history.since(None).iter().map(|p| p.at).collect();
        assert_eq!(ats, [3.0, 4.0, 5.0], "the oldest two dropped");
        let ats: Vec<f64> = history.since(Some(4.0)).iter().map(|p| p.at).collect();
        assert_eq!(ats, [5.0]);
        assert!(history.since(Some(5.0)).is_empty());
    }
}
