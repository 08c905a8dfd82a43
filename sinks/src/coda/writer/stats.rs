//! What the writer did: counters for tests and the demo's status line, and the
//! commit-to-durable latency of each durable row (the `august_e2e_latency_seconds{view}`
//! histogram, and the latest values for a quick p50/p99).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

/// The histogram of commit-to-durable latency, per view.
pub const LATENCY_METRIC: &str = august_schema::metrics::E2E_LATENCY_SECONDS.name;

/// What the writer did, for tests and the status line.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Write requests accepted by Coda.
    pub writes: AtomicU64,
    /// Rows sent in accepted upserts.
    pub rows_written: AtomicU64,
    /// Rows dead-lettered.
    pub dead_letters: AtomicU64,
    /// Retries after 429, 5xx or time-outs.
    pub retries: AtomicU64,
    /// Updates skipped because Coda already held them.
    pub skipped: AtomicU64,
    /// Rows confirmed durable in Coda (written or deleted).
    pub rows_durable: AtomicU64,
    /// Rows settled at start-up from a previous run's unconfirmed writes.
    pub settled: AtomicU64,
    /// Rows a staff edit had already put in Coda: read and found equal, so not written
    /// (`august_coda_echoes_avoided_total{view}`).
    pub echoes_avoided: AtomicU64,
    /// Coda rows read before a write to check for a staff edit (verify first).
    pub verifies: AtomicU64,
    /// Write requests accepted by Coda, per view.
    pub writes_by_view: Mutex<BTreeMap<String, u64>>,
    /// Why tables were stopped (each names the mapping entry at fault).
    pub stopped: Mutex<Vec<String>>,
    /// The latest commit-to-durable latencies, in milliseconds (at most [`RECENT`]).
    pub recent_latency_ms: Mutex<VecDeque<u64>>,
}

/// How many latencies [`WriterStats::recent_latency_ms`] keeps.
pub const RECENT: usize = 512;

/// The counter of rows not written because a staff edit had put them in Coda already.
pub const ECHOES_METRIC: &str = august_schema::metrics::CODA_ECHOES_AVOIDED.name;

impl WriterStats {
    /// Write requests accepted by Coda for `view`.
    pub fn writes_to(&self, view: &str) -> u64 {
        self.writes_by_view.lock().map(|w| w.get(view).copied().unwrap_or(0)).unwrap_or(0)
    }

    pub(super) fn wrote(&self, view: &str) {
        if let Ok(mut writes) = self.writes_by_view.lock() {
            *writes.entry(view.to_string()).or_default() += 1;
        }
    }

    /// The `q` quantile (0..=1) of the recent latencies, in milliseconds.
    pub fn recent_latency(&self, q: f64) -> Option<u64> {
        let mut recent: Vec<u64> = self.recent_latency_ms.lock().ok()?.iter().copied().collect();
        if recent.is_empty() {
            return None;
        }
        recent.sort_unstable();
        Some(recent[((recent.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize])
    }

    pub(super) fn observe_latency(&self, view: &str, latency: Duration) {
        metrics::histogram!(LATENCY_METRIC, "view" => view.to_string()).record(latency.as_secs_f64());
        if let Ok(mut recent) = self.recent_latency_ms.lock() {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(latency.as_millis() as u64);
        }
    }
}
