//! The demo's live status line: rows mirrored into Coda, end-to-end lag (commit → Coda
//! durable, over the latest rows), Coda writes used of the quota in the last 6 s, the staff's
//! write-backs (the emulator's automation calls August answered 2xx, and the refused ones),
//! the echoes the Coda sink avoided (rows Coda already held after a staff edit), and what the clinic sent. On a terminal it is one line redrawn every second; otherwise a line every 5 s.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use august_emulators::coda::AutomationStats;
use august_sinks::coda::writer::WriterStats;
use tokio_util::sync::CancellationToken;

use super::clinic::ClinicStats;

/// The counters the line reads.
pub struct Counters {
    /// The Coda sink's counters.
    pub coda: Arc<WriterStats>,
    /// The clinic's.
    pub clinic: Arc<ClinicStats>,
    /// The emulator's automations' (the write-backs of staff edits).
    pub writebacks: Arc<AutomationStats>,
    /// Coda writes allowed per 6 s (`None`: no quota).
    pub quota: Option<u32>,
}

/// Prints the line until `stop` is cancelled, then ends it with a newline.
pub async fn show(counters: Counters, stop: CancellationToken) {
    let terminal = std::io::stderr().is_terminal();
    let mut writes: VecDeque<u64> = VecDeque::new(); // one sample a second, the last 6 s
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        writes.push_back(counters.coda.writes.load(Ordering::Relaxed));
        if writes.len() > 7 {
            writes.pop_front();
        }
        let used = writes.back().copied().unwrap_or(0) - writes.front().copied().unwrap_or(0);
        let text = line(&counters, used);
        n += 1;
        if terminal {
            eprint!("\r\x1b[2K{text}");
            let _ = std::io::stderr().flush();
        } else if n % 5 == 0 {
            eprintln!("{text}");
        }
    }
    if terminal {
        eprintln!();
    }
}

/// The line itself.
pub fn line(counters: &Counters, writes_in_window: u64) -> String {
    let coda = &counters.coda;
    let lag = match (coda.recent_latency(0.5), coda.recent_latency(0.99)) {
        (Some(p50), Some(p99)) => format!("lag p50 {} p99 {}", seconds(p50), seconds(p99)),
        _ => "lag —".to_string(),
    };
    let quota = match counters.quota {
        Some(q) => format!("{writes_in_window}/{q}"),
        None => format!("{writes_in_window} (no quota)"),
    };
    let parts = [
        format!("mirrored {} rows", coda.rows_durable.load(Ordering::Relaxed)),
        lag,
        format!("Coda writes {quota} per 6 s"),
        format!(
            "write-backs {}, {} refused, {} echoes avoided",
            counters.writebacks.succeeded(),
            counters.writebacks.refused(),
            coda.echoes_avoided.load(Ordering::Relaxed)
        ),
        format!(
            "webhooks {} sent, {} refused",
            counters.clinic.delivered.load(Ordering::Relaxed),
            counters.clinic.refused.load(Ordering::Relaxed)
        ),
    ];
    parts.join(" · ")
}

fn seconds(ms: u64) -> String {
    format!("{:.2} s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_counts_write_backs_answered_2xx_and_refused() {
        let writebacks = Arc::new(AutomationStats::default());
        writebacks.by_status.lock().unwrap().extend([(200, 3), (204, 1), (403, 2)]);
        writebacks.failures.fetch_add(1, Ordering::Relaxed);
        let coda = Arc::new(WriterStats::default());
        coda.echoes_avoided.fetch_add(2, Ordering::Relaxed);
        let counters = Counters { coda, clinic: Arc::default(), writebacks, quota: Some(10) };
        let text = line(&counters, 4);
        assert!(text.contains(" · write-backs 4, 3 refused, 2 echoes avoided · "), "{text}");
        assert!(text.contains("Coda writes 4/10 per 6 s"), "{text}");
    }
}
