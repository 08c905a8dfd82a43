//! Coda's quotas on our side: writes are paced one per `window / count` (a [`Pacer`], whose
//! next slot can be looked at without taking it, and which counts the writes of the last
//! window for `august_coda_quota_writes_used`); reads go through a `governor` limiter.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// One call per `window / count`, 2% slower still, so jitter in delivery cannot bunch
/// `count + 1` calls into one window at the server (120 ms of slack over Coda's 6 s).
fn spacing((count, window): (u32, Duration)) -> Duration {
    (window.mul_f64(1.02) / count.max(1)).max(Duration::from_micros(1))
}

/// A limiter that never lets more than `count` calls into any `window` (see [`spacing`]).
pub(super) fn limiter(quota: (u32, Duration)) -> DefaultDirectRateLimiter {
    RateLimiter::direct(Quota::with_period(spacing(quota)).expect("positive period").allow_burst(NonZeroU32::MIN))
}

/// The write quota: one write per spacing, whose next slot can be looked at without taking it
/// (the writer waits for it, builds its batch, and the request takes it as it leaves). The
/// first slot is one spacing after start, so a run started right after a killed one cannot
/// bunch its first write onto the killed run's last.
#[derive(Debug)]
pub(super) struct Pacer {
    spacing: Duration,
    next: Mutex<Instant>,
    /// The quota's window, and when each write of the last window left.
    window: Duration,
    sent: Mutex<std::collections::VecDeque<Instant>>,
}

impl Pacer {
    pub(super) fn new(quota: (u32, Duration)) -> Self {
        let spacing = spacing(quota);
        Self { spacing, next: Mutex::new(Instant::now() + spacing), window: quota.1, sent: Mutex::default() }
    }

    /// Writes that left in the last window.
    pub(super) fn used(&self) -> u32 {
        let mut sent = self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while sent.front().is_some_and(|at| at.elapsed() >= self.window) {
            sent.pop_front();
        }
        sent.len() as u32
    }

    /// When the next slot opens.
    pub(super) fn ready_at(&self) -> Instant {
        *self.next.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the next slot, waiting for it to open.
    pub(super) async fn take(&self) {
        loop {
            let wait = {
                let mut next = self.next.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = Instant::now();
                if *next <= now {
                    *next = now + self.spacing;
                    self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push_back(now);
                    self.used(); // keeps only the last window
                    return;
                }
                *next - now
            };
            tokio::time::sleep(wait).await;
        }
    }
}
