//! What the emulator saw, for tests and benchmarks: counted as requests are answered, read as
//! a [`StatsSnapshot`] (also served as JSON at `GET /_emulator/stats`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// The counters, updated by the request handlers.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub api_calls: AtomicU64,
    pub unauthorized: AtomicU64,
    pub throttled: AtomicU64,
    pub redirects: AtomicU64,
    pub faults: AtomicU64,
    pub bad_requests: AtomicU64,
    pub token_refreshes: AtomicU64,
    pub token_refusals: AtomicU64,
    pub by_path: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    /// Counts one `/api/*` request (whatever its answer) under its path, trailing `/` dropped.
    pub fn call(&self, path: &str) {
        self.api_calls.fetch_add(1, Ordering::Relaxed);
        let path = path.trim_end_matches('/');
        *self.by_path.lock().expect("stats lock").entry(path.to_string()).or_default() += 1;
    }

    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now, with the quota's high-water mark.
    pub fn snapshot(&self, max_calls_in_window: u32) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            api_calls: get(&self.api_calls),
            max_calls_in_window,
            unauthorized: get(&self.unauthorized),
            throttled: get(&self.throttled),
            redirects: get(&self.redirects),
            faults: get(&self.faults),
            bad_requests: get(&self.bad_requests),
            token_refreshes: get(&self.token_refreshes),
            token_refusals: get(&self.token_refusals),
            calls_by_path: self.by_path.lock().expect("stats lock").clone(),
        }
    }
}

/// What the emulator saw since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Requests to `/api/*`, whatever their answer.
    pub api_calls: u64,
    /// The most requests counted against the quota in any one window (with the quota off too).
    pub max_calls_in_window: u32,
    /// `401`s: no, unknown or expired access token.
    pub unauthorized: u64,
    /// `429`s: over the hourly budget.
    pub throttled: u64,
    /// `302`s injected by `redirect_rate`.
    pub redirects: u64,
    /// `500`/`503`s injected by `error_rate`.
    pub faults: u64,
    /// `400`s and `404`s answered to authenticated requests (bad filters, cursors or paths).
    pub bad_requests: u64,
    /// Refresh tokens exchanged for new tokens at `POST /o/token/`.
    pub token_refreshes: u64,
    /// Token requests refused (`400`/`401`).
    pub token_refusals: u64,
    /// `/api/*` requests per path (trailing `/` dropped).
    pub calls_by_path: BTreeMap<String, u64>,
}
