//! Postgres restarted under August while changes flow, on a private cluster of this suite's
//! own (the shared one serves other tests): `pg_ctl restart -m fast` (sessions terminated, a
//! checkpoint, the walsender waits for August) and `-m immediate` (every process killed, crash
//! recovery at start; the slot's position goes back to the last checkpoint). The checks run
//! after each.

use std::sync::Arc;

use august_testkit::Cluster;

use crate::checks::check;
use crate::rig::Rig;
use crate::workload::{Progress, Stream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_fast_and_immediate_loses_nothing() {
    let seed = crate::seed();
    let cluster = tokio::task::spawn_blocking(Cluster::start_private).await.unwrap();
    let mut rig = Rig::new(cluster, "faults_pg_restart").await;
    rig.start().await;
    let progress = Arc::new(Progress::default());
    let rounds = crate::scaled(1, 4);
    let per_phase = crate::scaled(300, 1_500);
    let mut total = 0;
    for round in 0..rounds {
        for (mode, immediate) in [("fast", false), ("immediate", true)] {
            let name = format!("Postgres restart -m {mode} (seed {seed}, round {})", round + 1);
            let duplicates_before = rig.coda.unchanged_rows();
            let restarts_before = rig.restarts;
            rig.exits.clear();
            let from = total;
            total += per_phase;
            let stream = Stream::start(rig.db.url(), seed + total, total, progress.clone());
            stream.until(&mut rig, from + per_phase / 2).await;
            let restarted = tokio::task::spawn_blocking(move || {
                if immediate {
                    cluster.restart_immediate();
                } else {
                    cluster.restart();
                }
            });
            while !restarted.is_finished() {
                rig.supervise().await;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            restarted.await.unwrap();
            stream.finish(&mut rig).await;
            let mut figures = check(&mut rig, &progress, name, duplicates_before).await;
            figures.faults = format!("1 restart -m {mode}");
            figures.restarts -= restarts_before;
            figures.print(&rig);
            figures.assert_sound(&rig.log());
        }
    }
    rig.stop().await;
}
