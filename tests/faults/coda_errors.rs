//! The Coda emulator failing 30 % of every kind of request (503s, half of them after a 2 s
//! hang) from August's start to the end of the checks: August must ride it out alone.

use std::sync::Arc;

use crate::checks::check;
use crate::rig::Rig;
use crate::workload::{Progress, Stream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "August exits at start when a Coda read fails (check_mapping is not retried)"]
async fn a_coda_failing_30_percent_of_requests_loses_nothing() {
    let seed = crate::seed();
    let changes = crate::scaled(500, 4_000);
    let name = format!("Coda 30 % errors (seed {seed})");
    let mut rig = Rig::new(august_testkit::cluster(), "faults_coda_errors").await;
    rig.coda_error_rate(0.3);
    rig.start().await;
    let stream = Stream::start(rig.db.url(), seed, changes, Arc::new(Progress::default()));
    let progress = stream.finish(&mut rig).await;
    let mut figures = check(&mut rig, &progress, name, 0).await;
    figures.faults = rig.coda.stats().faults.load(std::sync::atomic::Ordering::Relaxed) as usize;
    figures.print();
    figures.assert_sound(&rig.log());
    rig.heal();
    rig.stop().await;
}
