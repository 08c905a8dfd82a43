//! DrChrono's hourly budget: "Applications are subject to an hourly rate limit, which will
//! reset at the top of each hour ... By default, applications are limited to 500 calls per
//! hour." Windows are fixed, aligned to multiples of the window length since the Unix epoch
//! (the top of each hour for the real length), not sliding: a client may spend the whole
//! budget in the last second of one window and again in the first second of the next.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Calls counted in the current window, and the most seen in any window.
#[derive(Debug)]
pub(crate) struct HourlyBudget {
    limit: Option<u32>,
    window_ms: u64,
    current: u64,
    used: u32,
    max_used: u32,
}

impl HourlyBudget {
    /// A budget of `limit` calls per `window` (`None`: counted, never refused).
    pub fn new(limit: Option<u32>, window: Duration) -> HourlyBudget {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        HourlyBudget { limit, window_ms, current: 0, used: 0, max_used: 0 }
    }

    /// Counts a call made at `now`, or refuses it with the time left until its window ends
    /// (what `Retry-After` carries). Refused calls are not counted.
    pub fn admit(&mut self, now: SystemTime) -> Result<(), Duration> {
        let ms = u64::try_from(now.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(u64::MAX);
        let window = ms / self.window_ms;
        if window != self.current {
            (self.current, self.used) = (window, 0);
        }
        if self.limit.is_some_and(|limit| self.used >= limit) {
            return Err(Duration::from_millis((window + 1) * self.window_ms - ms));
        }
        self.used += 1;
        self.max_used = self.max_used.max(self.used);
        Ok(())
    }

    /// The most calls counted in any one window so far.
    pub fn max_used(&self) -> u32 {
        self.max_used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_resets_when_the_aligned_window_turns() {
        let mut budget = HourlyBudget::new(Some(2), Duration::from_secs(10));
        let at = |s: u64, ms: u64| UNIX_EPOCH + Duration::from_secs(s) + Duration::from_millis(ms);
        assert!(budget.admit(at(1_000, 0)).is_ok());
        assert!(budget.admit(at(1_005, 0)).is_ok());
        assert_eq!(budget.admit(at(1_009, 500)), Err(Duration::from_millis(500)));
        assert!(budget.admit(at(1_010, 0)).is_ok(), "a new window starts at a multiple of 10 s");
        assert_eq!(budget.max_used(), 2);
    }

    #[test]
    fn no_limit_counts_without_refusing() {
        let mut budget = HourlyBudget::new(None, Duration::from_secs(3600));
        for _ in 0..1000 {
            assert!(budget.admit(SystemTime::now()).is_ok());
        }
        assert!(budget.max_used() >= 500);
    }
}
