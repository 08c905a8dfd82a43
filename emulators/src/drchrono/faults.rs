//! Injected faults: server errors in DRF's `{"detail": ...}` body, added latency, and the `302`
//! the prose warns about ("Some endpoints may return a `302` redirect response ... You will
//! need to resend the original request with the right HTTP method and headers to the new
//! \"Location\""). All off by default; [`DrChronoEmulator::set_faults`](super::DrChronoEmulator::set_faults)
//! changes them while running.

use std::time::Duration;

/// Faults to inject into `/api/*` requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Fraction (0 to 1) of authenticated `/api/*` requests answered `500` or `503` (even odds)
    /// after they are counted against the quota.
    pub error_rate: f64,
    /// Added to every request, the token endpoint's included.
    pub latency: Duration,
    /// Fraction (0 to 1) of list GETs answered `302` to an equivalent URL on the same server
    /// (the same path and query plus `_redirected=1`), which then answers normally.
    pub redirect_rate: f64,
}

impl Faults {
    /// What is wrong with these faults, if anything (a rate outside 0 to 1).
    pub fn problem(&self) -> Option<&'static str> {
        let rate = |r: f64| (0.0..=1.0).contains(&r);
        match (rate(self.error_rate), rate(self.redirect_rate)) {
            (false, _) => Some("error_rate must be between 0 and 1"),
            (_, false) => Some("redirect_rate must be between 0 and 1"),
            _ => None,
        }
    }
}

/// A server error to answer instead, if the dice say so: `(status, detail)`.
pub(crate) fn draw_error(faults: &Faults) -> Option<(u16, &'static str)> {
    if faults.error_rate <= 0.0 || rand::random::<f64>() >= faults.error_rate {
        return None;
    }
    Some(match rand::random::<bool>() {
        true => (500, "A server error occurred."),
        false => (503, "Service temporarily unavailable, try again later."),
    })
}

/// Whether to answer this list GET with a redirect.
pub(crate) fn draw_redirect(faults: &Faults) -> bool {
    faults.redirect_rate > 0.0 && rand::random::<f64>() < faults.redirect_rate
}
