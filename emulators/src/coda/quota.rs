//! Coda's rate limits, as the emulator enforces them: at most N requests in any window of W
//! seconds, per token (writes and reads counted apart). Exact: a sliding log of request times.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One sliding-window limit.
#[derive(Debug)]
pub struct SlidingWindow {
    limit: usize,
    window: Duration,
    log: VecDeque<Instant>,
}

impl SlidingWindow {
    /// At most `limit` requests per `window`.
    pub fn new(limit: usize, window: Duration) -> Self {
        Self { limit, window, log: VecDeque::new() }
    }

    /// Admits a request at `now`, or says how long until one would be admitted.
    pub fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        while self.log.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            self.log.pop_front();
        }
        if self.log.len() >= self.limit {
            let oldest = *self.log.front().expect("full log");
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        self.log.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_window_holds_more_than_the_limit() {
        let mut quota = SlidingWindow::new(10, Duration::from_secs(6));
        let start = Instant::now();
        for i in 0..10 {
            assert!(quota.admit(start + Duration::from_millis(i)).is_ok());
        }
        let wait = quota.admit(start + Duration::from_secs(3)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(3));
        assert!(quota.admit(start + Duration::from_secs(6)).is_ok(), "the first request has left the window");
    }
}
