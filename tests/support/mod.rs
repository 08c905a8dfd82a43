//! What the end-to-end tests share: August and its emulator as real child processes, plain
//! HTTP to them, and waiting until Coda holds what the views say it should (the comparison of
//! `august verify --coda`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use august_schema::access_log::AccessLog;
use august_schema::Secret;
use august_sinks::coda::client::{CodaClient, CodaSettings};
use august_sinks::coda::compare::{compare_with, RowDifference};
use august_sinks::coda::mapping::Mapping;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The bundled demo mapping: every view.
pub fn demo_mapping_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/demo-mapping.toml")
}

/// The demo mapping, parsed.
pub fn demo_mapping() -> Mapping {
    Mapping::load(&demo_mapping_path()).unwrap()
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An `august` child process whose standard error is collected line by line.
pub struct August {
    /// The process.
    pub child: tokio::process::Child,
    /// Its standard error so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl August {
    /// Starts `august ARGS` with exactly `env` (and PATH).
    pub fn spawn(args: &[&str], env: &[(&str, String)]) -> Self {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_august"));
        command.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let collected = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                collected.lock().unwrap().push(line);
            }
        });
        Self { child, stderr }
    }

    /// The first line of standard error that contains `needle`, waiting up to `within`.
    pub async fn line_with(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.stderr.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            assert!(Instant::now() < deadline, "no line with {needle:?} in:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Everything it printed on standard error.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`) to the process.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("still running").to_string();
        std::process::Command::new("kill").args([&format!("-{name}"), &pid]).status().unwrap();
    }

    /// Waits for the process to exit, up to `within`.
    pub async fn exit(&mut self, within: Duration) -> std::process::ExitStatus {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!("did not exit within {within:?}:\n{}", self.log()),
        }
    }
}

/// A test that fails with an `august` process running shows what it printed.
impl Drop for August {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- standard error of august (pid {:?}) ---\n{}", self.child.id(), self.log());
        }
    }
}

/// `august coda-emulator` for the demo mapping, as its own process, with extra flags;
/// returns it and its URL.
pub async fn emulator(token: &str, flags: &[&str]) -> (August, String) {
    emulator_for(&demo_mapping_path(), token, flags).await
}

/// `august coda-emulator` for the tables of the mapping file `mapping`, as its own process,
/// with extra flags; returns it and its URL.
pub async fn emulator_for(mapping: &std::path::Path, token: &str, flags: &[&str]) -> (August, String) {
    let mut args = vec!["coda-emulator", "--listen", "127.0.0.1:0", "--from-mapping", mapping.to_str().unwrap()];
    args.extend(flags);
    let emulator = August::spawn(&args, &[("CODA_API_TOKEN", token.to_string())]);
    let line = emulator.line_with("Coda emulator on", Duration::from_secs(30)).await;
    let base = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_string();
    (emulator, base)
}

/// A GET with a Bearer token; the status and the JSON body.
pub async fn get_json(url: &str, token: &str) -> (u16, Value) {
    let response = reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// A Coda client for the emulator at `base`, with quotas no test reaches; its calls are logged
/// in `pg`'s `access_log` like the sink's.
pub fn coda_client(base: &str, token: &str, pg: &tokio_postgres::Config) -> CodaClient {
    let settings = CodaSettings {
        base: base.to_string(),
        token: Secret::new(token.to_string()),
        writes: (60_000, Duration::from_secs(6)),
        reads: (60_000, Duration::from_secs(6)),
        ..CodaSettings::default()
    };
    CodaClient::new(settings, AccessLog::start("coda", august_schema::Actor::CodaSink, pg.clone())).unwrap()
}

/// Waits until the emulator holds exactly what the views say (every table, row for row, as
/// `august verify --coda` compares them), up to `within`; returns the rows compared, or the
/// last differences.
pub async fn converged(
    pg: &tokio_postgres::Config,
    base: &str,
    token: &str,
    mapping: &Mapping,
    within: Duration,
) -> Result<usize, String> {
    let client = coda_client(base, token, pg);
    let deadline = Instant::now() + within;
    loop {
        let comparison = tokio::time::timeout(Duration::from_secs(120), compare_with(&client, mapping, pg))
            .await
            .expect("a comparison within 2 minutes")
            .unwrap();
        if comparison.differences.is_empty() {
            return Ok(comparison.rows);
        }
        if Instant::now() > deadline {
            return Err(describe(&comparison.differences));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Differences counted per view and problem, with the first key of each (keys and column
/// names only: no values).
pub fn describe(differences: &[RowDifference]) -> String {
    let mut counts: BTreeMap<(String, String), (usize, String)> = BTreeMap::new();
    for d in differences {
        let problem = d.problem.to_string();
        counts.entry((d.view.clone(), problem)).or_insert((0, d.key.clone())).0 += 1;
    }
    let lines: Vec<String> =
        counts.into_iter().map(|((view, problem), (n, key))| format!("{view}: {n} {problem} (e.g. {key})")).collect();
    lines.join("; ")
}

/// Delivers a DrChrono webhook (`event`, delivery id, object) signed with `secret`; asserts 200.
pub async fn drchrono_webhook(base: &str, secret: &str, event: &str, delivery: &str, object: Value) {
    let body = serde_json::json!({"receiver": {"id": 1}, "object": object});
    let response = post_drchrono(base, secret, event, delivery, &body).await;
    assert_eq!(response.status(), 200, "{event}: {}", response.text().await.unwrap());
}

/// Posts a DrChrono webhook with this whole `body`, whatever August answers.
pub async fn post_drchrono(base: &str, secret: &str, event: &str, delivery: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/webhooks/drchrono"))
        .header("X-drchrono-signature", secret)
        .header("X-drchrono-event", event)
        .header("X-drchrono-delivery", delivery)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The demo doc's row of `table` whose `key_column` holds `key`, once it satisfies `ready`
/// (within 45 s).
pub async fn coda_row(
    coda: &str,
    token: &str,
    table: &str,
    key_column: &str,
    key: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let (_, page) = get_json(&format!("{coda}/docs/demo-clinic/tables/{table}/rows?limit=500"), token).await;
        let row = page["items"].as_array().into_iter().flatten().find(|r| r["values"][key_column] == key);
        if let Some(row) = row.filter(|r| ready(&r["values"])) {
            return row["values"].clone();
        }
        assert!(Instant::now() < deadline, "{table} never showed {key} as expected: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The value of the Prometheus sample `name{labels}` (labels as they print, e.g.
/// `view="patient_intake"`) in a scrape, 0 when absent.
pub fn sample(scrape: &str, name: &str, labels: &str) -> f64 {
    let head = if labels.is_empty() { name.to_string() } else { format!("{name}{{{labels}}}") };
    scrape.lines().find_map(|line| line.strip_prefix(&head).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

/// The sum of every series of the Prometheus metric `name` in a scrape (0 when none).
pub fn total(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .filter_map(|line| line.strip_prefix(name))
        .filter(|rest| rest.starts_with('{') || rest.starts_with(' '))
        .filter_map(|rest| rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// The webhook secrets the end-to-end `serve` tests sign with.
pub const DRCHRONO_SECRET: &str = "drchrono-secret-0123456789";
/// See [`DRCHRONO_SECRET`].
pub const DEEPCURA_SECRET: &str = "deepcura-secret-0123456789";

/// The environment of an end-to-end `august serve`: `db`, webhooks on `port`, metrics on
/// `metrics_port`, the demo mapping mirrored into the Coda emulator at `coda`, a 1 s
/// heartbeat; `extra` is added.
pub fn serve_env(
    db: &august_testkit::TestDb,
    port: u16,
    metrics_port: u16,
    coda: &str,
    token: &str,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("DATABASE_URL", db.url().to_string()),
        ("PORT", port.to_string()),
        ("DRCHRONO_WEBHOOK_SECRET", DRCHRONO_SECRET.into()),
        ("DEEPCURA_SHARED_SECRET", DEEPCURA_SECRET.into()),
        ("AUGUST_CODA_MAPPING", demo_mapping_path().display().to_string()),
        ("CODA_API_BASE", coda.to_string()),
        ("CODA_API_TOKEN", token.to_string()),
        ("AUGUST_SLOT", db.name.clone()),
        ("AUGUST_METRICS_ADDR", format!("127.0.0.1:{metrics_port}")),
        ("AUGUST_SQL_ADDR", "127.0.0.1:0".into()),
        ("AUGUST_HEARTBEAT_SECS", "1".into()),
    ];
    env.extend(extra.iter().cloned());
    env
}

/// Waits until a replication slot of `db` is streaming: a commit after this streams through
/// cdc. A slot merely `active` is not enough: the permanent slot is active while it is being
/// created, and the copy's temporary slot while it looks for its consistent point, which waits
/// for every transaction open on the server; a commit before that point reaches the views
/// through the initial copy, which carries no trace context. A walsender is in state `catchup`
/// or `streaming` only after `START_REPLICATION`, which cdc sends once the copy is done.
pub async fn wait_streaming(db: &august_testkit::TestDb) {
    let client = db.client().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid
                  WHERE s.database = current_database() AND r.state IN ('catchup', 'streaming')",
                &[],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "no replication slot of {} was streaming within 60 s", db.name);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The settings that point `august` at a DrChrono emulator with its default credentials
/// (and a token-encryption key of the tests').
pub fn drchrono_env(
    db: &august_testkit::TestDb,
    emulator: &august_emulators::drchrono::DrChronoEmulator,
) -> Vec<(&'static str, String)> {
    let config = august_emulators::drchrono::DrChronoConfig::default();
    vec![
        ("DATABASE_URL", db.url().to_string()),
        ("DRCHRONO_API_BASE", emulator.base_url()),
        ("DRCHRONO_CLIENT_ID", config.client_id),
        ("DRCHRONO_CLIENT_SECRET", config.client_secret),
        ("DRCHRONO_REFRESH_TOKEN", config.refresh_token),
        ("DRCHRONO_TOKEN_KEY", "drchrono-test-token-key-0123".into()),
    ]
}

/// A staff member with the `operations` role, and an intake checklist in progress for
/// `appointment` of `patient`: what a write-back test edits.
pub async fn staff_and_intake(db: &august_testkit::TestDb, staff: &str, appointment: &str, patient: i64) {
    db.client()
        .await
        .execute("INSERT INTO staff_roles (email, role) VALUES ($1, 'operations')", &[&staff])
        .await
        .unwrap();
    db.client()
        .await
        .execute(
            "INSERT INTO intake_checklists (appointment_id, patient_id, status) VALUES ($1, $2, 'in_progress')",
            &[&appointment, &patient],
        )
        .await
        .unwrap();
}
