//! Link faults through the fault proxy, while changes flow: between August and Postgres (its
//! pool, its ledger session and its replication session all lead through the proxy) and
//! between August and Coda. A seeded plan of delays, resets, blackholes and refused
//! connections; then every fault is lifted and the checks run.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use august_testkit::proxy::Fault;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::checks::check;
use crate::rig::Rig;
use crate::workload::{Progress, Stream};

/// Which link the faults hit.
#[derive(Debug, Clone, Copy)]
enum Link {
    Postgres,
    Coda,
}

/// One fault of the plan.
#[derive(Debug, Clone, Copy)]
enum Step {
    Delay(Duration),
    Reset,
    Blackhole(Duration),
    DropNew(Duration),
}

/// A seeded plan: every kind of fault once (in seeded order, with seeded durations), then
/// more drawn at random in the long mode.
fn plan(rng: &mut StdRng, steps: usize) -> Vec<Step> {
    let mut kinds = vec![0, 1, 2, 3];
    let mut plan = Vec::new();
    while !kinds.is_empty() {
        plan.push(kinds.remove(rng.random_range(0..kinds.len())));
    }
    while plan.len() < steps {
        plan.push(rng.random_range(0..4));
    }
    plan.into_iter()
        .map(|kind| match kind {
            0 => Step::Delay(Duration::from_millis(rng.random_range(10..=60))),
            1 => Step::Reset,
            2 => Step::Blackhole(Duration::from_millis(rng.random_range(1_000..=4_000))),
            _ => Step::DropNew(Duration::from_millis(rng.random_range(300..=1_500))),
        })
        .collect()
}

async fn link_faults(link: Link, hint: &str) {
    let seed = crate::seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let steps = plan(&mut rng, crate::scaled(4, 20));
    let changes = crate::scaled(400, 4_000);
    let name = format!("{link:?} link faults (seed {seed})");
    eprintln!("{name}: plan {steps:?}");
    let mut rig = Rig::new(august_testkit::cluster(), hint).await;
    rig.start().await;
    let stream = Stream::start(rig.db.url(), seed, changes, Arc::new(Progress::default()));
    let every = changes / (steps.len() as u64 + 1);
    for (i, step) in steps.iter().enumerate() {
        stream.until(&mut rig, every * (i as u64 + 1)).await;
        let proxy = match link {
            Link::Postgres => &rig.pg_proxy,
            Link::Coda => &rig.coda_proxy,
        };
        match *step {
            Step::Delay(delay) => proxy.set(Fault::Delay(delay)),
            Step::Reset => {
                proxy.set(Fault::Pass);
                proxy.reset_all();
            }
            Step::Blackhole(for_) => {
                proxy.set(Fault::Blackhole);
                stream.hold(&mut rig, for_).await;
                rig.heal();
            }
            Step::DropNew(for_) => {
                proxy.set(Fault::DropNew);
                proxy.reset_all(); // so that August has to connect again, and is refused
                stream.hold(&mut rig, for_).await;
                rig.heal();
            }
        }
    }
    let progress = stream.finish(&mut rig).await;
    rig.heal();
    let mut figures = check(&mut rig, &progress, name, 0).await;
    let stats = match link {
        Link::Postgres => rig.pg_proxy.stats(),
        Link::Coda => rig.coda_proxy.stats(),
    };
    figures.faults = format!(
        "{} ({} connections reset, {} refused)",
        steps.len(),
        stats.reset.load(Ordering::Relaxed),
        stats.dropped.load(Ordering::Relaxed)
    );
    figures.print(&rig);
    figures.assert_sound(&rig.log());
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_link_faults_lose_nothing_and_leave_no_phantoms() {
    link_faults(Link::Postgres, "faults_pg_link").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coda_link_faults_lose_nothing_and_leave_no_phantoms() {
    link_faults(Link::Coda, "faults_coda_link").await;
}
