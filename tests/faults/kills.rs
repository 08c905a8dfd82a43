//! `august replicate` killed with SIGKILL at seeded random points while changes flow (and
//! started again at once): in its start-up (copy, settling), mid-stream, with Coda writes in
//! flight. The checks run once the stream is over; and no row may be sent again with the
//! content Coda already held.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::checks::check;
use crate::rig::Rig;
use crate::workload::{Progress, Stream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_seeded_random_points_loses_nothing() {
    let seed = crate::seed();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED);
    let kills = crate::scaled(3, 25);
    let changes = crate::scaled(600, 6_000);
    let name = format!("SIGKILL (seed {seed})");
    let mut rig = Rig::new(august_testkit::cluster(), "faults_kill").await;
    rig.start().await;
    let stream = Stream::start(rig.db.url(), seed, changes, Arc::new(Progress::default()));
    let mut kill_points = Vec::new();
    for _ in 0..kills {
        let after = Duration::from_millis(rng.random_range(200..=2_500));
        let started = Instant::now();
        stream.hold(&mut rig, after).await;
        let phase = if rig.running_log_contains("replicating") { "streaming" } else { "starting" };
        kill_points.push(format!("{}ms/{phase}/{}", started.elapsed().as_millis(), stream.progress.changes()));
        rig.kill_and_restart().await;
    }
    let progress = stream.finish(&mut rig).await;
    let mut figures = check(&mut rig, &progress, name, 0).await;
    figures.faults = format!("{kills} SIGKILL");
    figures.kill_points = kill_points;
    figures.settled_runs = rig.runs_logging("settled Coda writes left unconfirmed");
    figures.print(&rig);
    figures.assert_sound(&rig.log());
    // Writes a kill left in flight are settled against Coda at the next start, not sent again.
    assert_eq!(figures.duplicates, 0, "a row was sent again with the content Coda held:\n{}", rig.log());
    rig.stop().await;
}
