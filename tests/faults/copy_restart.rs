//! August stopped while the clinic keeps writing, then started again: the new run's copy
//! carries every change made while it was down, and the slot must not be confirmed past
//! those changes before the copy is in Coda.

use std::sync::Arc;

use crate::checks::check;
use crate::rig::Rig;
use crate::workload::{Progress, Stream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_while_august_was_down_reach_coda_before_the_slot_passes_them() {
    let seed = crate::seed();
    let changes = crate::scaled(300, 3_000);
    let name = format!("changes while stopped (seed {seed})");
    let mut rig = Rig::new(august_testkit::cluster(), "faults_down").await;
    let progress = Arc::new(Progress::default());
    rig.start().await;
    Stream::start(rig.db.url(), seed, changes / 3, progress.clone()).finish(&mut rig).await;
    rig.stop().await;
    Stream::start(rig.db.url(), seed + 1, changes, progress.clone()).finish(&mut rig).await;
    rig.start().await;
    let mut figures = check(&mut rig, &progress, name, 0).await;
    figures.faults = "1 stop, writes meanwhile".into();
    figures.print(&rig);
    figures.assert_sound(&rig.log());
    rig.stop().await;
}
