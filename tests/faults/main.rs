//! The fault-injection suite: `august replicate` (a real process) mirrors a clinic's writes
//! into the Coda emulator while the suite breaks things: the links to Postgres and to Coda
//! (through [`august_testkit::proxy`]: delay, dropped connections, resets, a blackhole),
//! Postgres itself (`pg_ctl restart -m fast` and `-m immediate`, on a private cluster), August
//! (SIGKILL at seeded random points), and Coda (30 % of requests failing). After each
//! scenario [`checks`] proves nothing was lost, nothing phantom appeared, the slot never ran
//! ahead of what Coda held, and `change_log` misses nothing; each prints its figures as a
//! table row (see them with `--nocapture`).
//!
//! `AUGUST_FAULT_SEED=N` replays a run (every scenario prints its seed);
//! `AUGUST_FAULTS_LONG=1` runs many more faults, kill points and changes.
#![allow(clippy::unwrap_used, missing_docs)]

mod checks;
mod coda_errors;
mod copy_restart;
mod kills;
mod link_faults;
mod restarts;
mod rig;
#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;
mod workload;

/// The run's seed: `AUGUST_FAULT_SEED`, or one drawn from the clock (printed by each
/// scenario, so a failure can be replayed).
pub fn seed() -> u64 {
    match std::env::var("AUGUST_FAULT_SEED") {
        Ok(seed) => seed.trim().parse().expect("AUGUST_FAULT_SEED must be a number"),
        Err(_) => {
            static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
            *SEED.get_or_init(|| {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
                now.as_nanos() as u64 % 1_000_000
            })
        }
    }
}

/// Whether the long mode is on (`AUGUST_FAULTS_LONG=1`).
pub fn long() -> bool {
    std::env::var("AUGUST_FAULTS_LONG").is_ok_and(|v| v == "1")
}

/// `short` in the default run, `long` with `AUGUST_FAULTS_LONG=1`.
pub fn scaled<T>(short: T, long: T) -> T {
    if crate::long() {
        long
    } else {
        short
    }
}
