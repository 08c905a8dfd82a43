//! What the end-to-end tests share: August and its emulator as real child processes, plain
//! HTTP to them, and the Coda tables the views say there should be, read from Postgres.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use august_cdc::{CdcConfig, Event, Lsn};
use august_dataflow::reference::{self, Tables};
use august_dataflow::tables::table;
use august_sinks::coda::cells::{coda_key_text, key_text, CellSources};
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

/// `august coda-emulator` for the demo mapping, as its own process, with extra flags;
/// returns it and its URL.
pub async fn emulator(token: &str, flags: &[&str]) -> (August, String) {
    let mapping = demo_mapping_path();
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

/// Coda rows per mapped table: key (as the ledger writes it) → values by column id.
pub type CodaTables = BTreeMap<String, BTreeMap<String, BTreeMap<String, Value>>>;

/// What the emulator at `base` holds for every table of `mapping`. Panics on a duplicate key.
pub async fn coda_tables(base: &str, token: &str, mapping: &Mapping) -> CodaTables {
    let mut tables = CodaTables::new();
    for table in &mapping.tables {
        let mut rows = BTreeMap::new();
        let mut url = format!("{base}/docs/{}/tables/{}/rows?limit=500", mapping.doc_id, table.table_id);
        loop {
            let (status, page) = get_json(&url, token).await;
            assert_eq!(status, 200, "{page}");
            for item in page["items"].as_array().unwrap() {
                let values: BTreeMap<String, Value> = serde_json::from_value(item["values"].clone()).unwrap();
                let key = coda_key_text(&values[table.key_column()]);
                assert!(rows.insert(key.clone(), values).is_none(), "two Coda rows for {} {key}", table.view);
            }
            match page["nextPageToken"].as_str() {
                Some(next) => {
                    url = format!("{base}/docs/{}/tables/{}/rows?pageToken={next}", mapping.doc_id, table.table_id)
                }
                None => break,
            }
        }
        tables.insert(table.table_id.clone(), rows);
    }
    tables
}

/// What Coda should hold for every table of `mapping`: the views computed from scratch over a
/// consistent copy of the database, shaped into cells as the sink shapes them.
pub async fn expected_tables(pg: &tokio_postgres::Config, mapping: &Mapping) -> CodaTables {
    let views = reference::compute(&read_tables(pg).await);
    let mut tables = CodaTables::new();
    for table in &mapping.tables {
        let sources = CellSources::of(table);
        let rows = views
            .get(&table.view)
            .into_iter()
            .flatten()
            .map(|(key, row)| (key_text(key), sources.cells(row).into_iter().collect::<BTreeMap<String, Value>>()));
        tables.insert(table.table_id.clone(), rows.collect());
    }
    tables
}

/// Every published table's live rows, read through a consistent snapshot by `cdc` itself.
async fn read_tables(pg: &tokio_postgres::Config) -> Tables {
    let config = CdcConfig { temporary_slot: true, heartbeat: None, ..CdcConfig::default() };
    let (_durable, watch) = tokio::sync::watch::channel(Lsn::ZERO);
    let mut stream = august_cdc::start(pg.clone(), config, watch);
    let mut tables = Tables::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(60), stream.next()).await.unwrap() {
        match event {
            Event::SnapshotRow { relation, row } => {
                let Some(spec) = table(&relation.name) else { continue };
                let row = spec.project(&relation, &row);
                if !spec.is_soft_deleted(&row) {
                    tables.entry(relation.name.clone()).or_default().insert(spec.key_of(&row), row);
                }
            }
            Event::SnapshotEnd { .. } => break,
            _ => {}
        }
    }
    // The copy is all that is wanted; the stream after it (which concurrent readers in this
    // process may race to name) is not.
    let _ = stream.finish().await;
    tables
}

/// Waits until the emulator holds exactly what the views say (every table, row for row),
/// up to `within`; returns the last difference otherwise.
pub async fn converged(
    pg: &tokio_postgres::Config,
    base: &str,
    token: &str,
    mapping: &Mapping,
    within: Duration,
) -> Result<usize, String> {
    let deadline = Instant::now() + within;
    loop {
        let (expected, actual) = (expected_tables(pg, mapping).await, coda_tables(base, token, mapping).await);
        if expected == actual {
            return Ok(expected.values().map(BTreeMap::len).sum());
        }
        if Instant::now() > deadline {
            return Err(describe_difference(&expected, &actual));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn describe_difference(expected: &CodaTables, actual: &CodaTables) -> String {
    let mut out = Vec::new();
    for (table, rows) in expected {
        let held = &actual[table];
        let missing = rows.keys().filter(|k| !held.contains_key(*k)).count();
        let extra = held.keys().filter(|k| !rows.contains_key(*k)).count();
        let differ: Vec<&String> =
            rows.iter().filter(|(k, v)| held.get(*k).is_some_and(|h| h != *v)).map(|(k, _)| k).collect();
        if missing + extra + differ.len() > 0 {
            out.push(format!(
                "{table}: {missing} missing, {extra} extra, {} differ (e.g. {:?})",
                differ.len(),
                differ.first()
            ));
        }
    }
    out.join("; ")
}
