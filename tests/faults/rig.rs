//! One scenario's world: a fresh database (on the shared test cluster or a private one), the
//! Coda emulator in this process (so its rows, faults and counters are at hand), a fault
//! proxy in front of Postgres and one in front of the emulator, and `august replicate` as a
//! real child process that the rig supervises like a service manager would: an exit it did
//! not ask for is counted and followed by a new start.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use august_emulators::coda::{self, Doc, Emulator, EmulatorConfig, Faults, TableSpec};
use august_sinks::coda::mapping::Mapping;
use august_testkit::proxy::{Fault, FaultProxy};
use august_testkit::{Cluster, TestDb};

use crate::support::{demo_mapping, demo_mapping_path, August};

/// The token the emulator wants.
pub const TOKEN: &str = "fault-token";

/// How long a Coda write takes to complete after its 202: long enough that kills and faults
/// find writes in flight.
pub const MUTATION_DELAY: Duration = Duration::from_millis(150);

/// The running pieces of a scenario.
pub struct Rig {
    /// The scenario's database.
    pub db: TestDb,
    /// The Coda emulator.
    pub coda: Emulator,
    /// The mapping August writes with (the demo's: every view).
    pub mapping: Mapping,
    /// Between August and Postgres (its pool and its replication sessions).
    pub pg_proxy: FaultProxy,
    /// Between August and the emulator.
    pub coda_proxy: FaultProxy,
    env: Vec<(&'static str, String)>,
    august: Option<August>,
    /// Every log line of every August run, for failure messages.
    logs: Vec<String>,
    /// Exits nobody asked for, each followed by a new start.
    pub restarts: u32,
    /// The error each of those runs exited with.
    pub exits: Vec<String>,
    /// Starts so far.
    pub starts: u32,
}

impl Rig {
    /// A rig on `cluster` with a fresh database; August is not started yet.
    pub async fn new(cluster: &'static Cluster, hint: &str) -> Rig {
        let db = cluster.fresh_db(hint).await;
        let mapping = demo_mapping();
        let tables = mapping.tables.iter().map(|t| TableSpec::new(&t.table_id, &t.view, t.columns.values()));
        let faults = Faults { mutation_delay: MUTATION_DELAY, timeout: Duration::from_secs(2), ..Faults::default() };
        let config = EmulatorConfig { token: TOKEN.into(), quota: false, faults, ..EmulatorConfig::default() };
        let listen: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        let coda = coda::serve(listen, Doc::new(&mapping.doc_id, tables), config).await.expect("the Coda emulator");
        let postgres = tokio::net::lookup_host((cluster.host.as_str(), cluster.port))
            .await
            .expect("the test server's address")
            .next()
            .expect("an address");
        let pg_proxy = FaultProxy::start(postgres).await.expect("a proxy to Postgres");
        let coda_proxy = FaultProxy::start(coda.addr).await.expect("a proxy to the emulator");
        let database_url = db.url().replacen(&format!(":{}/", cluster.port), &format!(":{}/", pg_proxy.port()), 1);
        assert_ne!(database_url, db.url(), "DATABASE_URL must lead through the proxy");
        let env = vec![
            ("DATABASE_URL", database_url),
            ("AUGUST_SLOT", db.name.clone()),
            ("AUGUST_HEARTBEAT_SECS", "1".into()),
            ("AUGUST_METRICS_ADDR", "127.0.0.1:0".into()),
            ("AUGUST_SQL_ADDR", "127.0.0.1:0".into()),
            ("AUGUST_CODA_MAPPING", demo_mapping_path().display().to_string()),
            ("CODA_API_BASE", format!("http://{}", coda_proxy.addr())),
            ("CODA_API_TOKEN", TOKEN.into()),
            ("AUGUST_CODA_WRITES_PER_6S", "60000".into()),
            ("AUGUST_CODA_READS_PER_6S", "60000".into()),
        ];
        Rig {
            db,
            coda,
            mapping,
            pg_proxy,
            coda_proxy,
            env,
            august: None,
            logs: Vec::new(),
            restarts: 0,
            exits: Vec::new(),
            starts: 0,
        }
    }

    /// Starts `august replicate` (unless it runs) and waits until it replicates.
    pub async fn start(&mut self) {
        if self.august.is_none() {
            self.spawn();
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        while !self.august.as_ref().is_some_and(|a| a.log().contains("replicating")) {
            self.supervise().await;
            assert!(Instant::now() < deadline, "August never started replicating:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn spawn(&mut self) {
        self.august = Some(August::spawn(&["replicate"], &self.env));
        self.starts += 1;
    }

    /// Starts August again if it exited on its own (counted in `restarts`).
    pub async fn supervise(&mut self) {
        let exited = match self.august.as_mut() {
            Some(august) => august.child.try_wait().expect("the child's status").is_some(),
            None => false,
        };
        if exited {
            let log = self.august.as_ref().map(|a| a.log()).unwrap_or_default();
            let error = log.lines().rev().find(|l| l.starts_with("august: error")).unwrap_or("no error line");
            self.exits.push(error.to_string());
            self.retire();
            self.restarts += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
            self.spawn();
        }
    }

    /// SIGKILLs August and starts it again at once (the kill is not a restart it chose).
    pub async fn kill_and_restart(&mut self) {
        if let Some(august) = self.august.as_mut() {
            if august.child.id().is_some() {
                august.signal("KILL");
            }
            august.exit(Duration::from_secs(10)).await;
        }
        self.retire();
        self.spawn();
    }

    /// Whether the current run has logged `needle`.
    pub fn running_log_contains(&self, needle: &str) -> bool {
        self.august.as_ref().is_some_and(|a| a.log().contains(needle))
    }

    fn retire(&mut self) {
        if let Some(august) = self.august.take() {
            self.logs.push(format!("--- run {} ---\n{}", self.starts, august.log()));
        }
    }

    /// How many runs (finished or not) logged `needle`.
    pub fn runs_logging(&self, needle: &str) -> usize {
        let current = self.running_log_contains(needle);
        self.logs.iter().filter(|log| log.contains(needle)).count() + usize::from(current)
    }

    /// Every run's log so far.
    pub fn log(&self) -> String {
        let current = self.august.as_ref().map(|a| a.log()).unwrap_or_default();
        format!("{}\n--- current run ---\n{current}", self.logs.join("\n"))
    }

    /// Lifts every fault: both proxies pass, the emulator answers every request.
    pub fn heal(&self) {
        self.pg_proxy.set(Fault::Pass);
        self.coda_proxy.set(Fault::Pass);
        self.coda.set_faults(Faults { mutation_delay: MUTATION_DELAY, ..Faults::default() });
    }

    /// Makes the emulator fail this fraction of requests (half of them after a 2 s hang).
    pub fn coda_error_rate(&self, rate: f64) {
        self.coda.set_faults(Faults {
            error_rate: rate,
            timeout: Duration::from_secs(2),
            mutation_delay: MUTATION_DELAY,
            ..Faults::default()
        });
    }

    /// Stops August with SIGTERM; it must exit cleanly.
    pub async fn stop(&mut self) {
        self.supervise().await;
        if let Some(august) = self.august.as_mut() {
            august.signal("TERM");
            let status = august.exit(Duration::from_secs(60)).await;
            assert!(status.success(), "August did not stop cleanly:\n{}", self.log());
        }
        self.retire();
    }
}
