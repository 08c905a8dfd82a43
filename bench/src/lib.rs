//! Shared set-up for the benchmarks: a throw-away embedded Postgres with August's schema, and
//! small measuring helpers. Each benchmark is a binary in `src/bin/` that prints its figures
//! and the ratio against a baseline measured in the same run.
#![forbid(missing_docs)]

use std::time::Duration;

use august_emulators::coda::{Doc, TableSpec};
use august_schema::embedded::EmbeddedPostgres;
use august_schema::{migrate, Migration};
use august_sinks::coda::mapping::Mapping;

/// A benchmark's database server and the migrated database on it.
#[derive(Debug)]
pub struct BenchDb {
    /// The server.
    pub server: EmbeddedPostgres,
    /// Connection settings for the benchmark database.
    pub config: tokio_postgres::Config,
    /// Its URL.
    pub url: String,
    _root: tempfile::TempDir,
}

impl BenchDb {
    /// Starts a throw-away server and creates a migrated database `bench` on it.
    pub async fn start() -> Result<Self, Box<dyn std::error::Error>> {
        let root = tempfile::Builder::new().prefix("august-bench-").tempdir()?;
        let server = EmbeddedPostgres::start(&root.path().join("pg"), true)?;
        let admin = august_schema::connect(&server.url("postgres").parse()?).await?;
        admin.batch_execute("CREATE DATABASE bench").await?;
        let url = server.url("bench");
        let config: tokio_postgres::Config = url.parse()?;
        let mut client = august_schema::connect(&config).await?;
        migrate(&mut client, Migration::embedded()).await?;
        Ok(Self { server, config, url, _root: root })
    }

    /// A new connection to the benchmark database.
    pub async fn client(&self) -> Result<tokio_postgres::Client, Box<dyn std::error::Error>> {
        Ok(august_schema::connect(&self.config).await?)
    }
}

/// The doc a mapping names, for the Coda emulator to serve: each mapped table with its mapped
/// columns, named by their ids.
pub fn emulated_doc(mapping: &Mapping) -> Doc {
    let tables = mapping.tables.iter().map(|t| TableSpec::new(&t.table_id, &t.view, t.columns.values()));
    Doc::new(&mapping.doc_id, tables)
}

/// Rate per second.
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// This process's peak resident memory, in MiB (from `/proc/self/status`).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Builds the release `august` binary (a no-op when it is up to date) and returns its path;
/// `AUGUST_BIN` names one to use instead.
pub fn build_august() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("AUGUST_BIN") {
        return path.into();
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "august", "--bin", "august"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cannot build august");
    let bench = std::env::current_exe().expect("the benchmark's own path");
    let exe = bench.parent().expect("the benchmark's folder").join("august");
    assert!(exe.exists(), "no august binary beside {}", bench.display());
    exe
}
