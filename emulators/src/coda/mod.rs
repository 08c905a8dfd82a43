//! A faithful stand-in for Coda's API, for tests, benchmarks and the demo: docs, tables,
//! columns and rows (list with `query` and `pageToken`; upsert with `keyColumns`; delete one or
//! many), asynchronous mutations with `mutationStatus`, the Bearer check, Coda's error body,
//! the write (10 per 6 s) and read (100 per 6 s) quotas with 429s, and injected faults (error
//! rate with timeouts, added latency, 429 storms, slow mutation completion, mutations that
//! never complete, a table whose writes all fail, a value rejected with 400). A plain HTML page
//! at `/` shows each table's rows, with a form to edit a cell as staff would; `GET
//! /_emulator/stats` (not part of Coda's API) shows what it saw, including writes that changed
//! nothing and the automations' calls.
//!
//! A table may carry an [`Automation`] (`automation.rs`): Coda's "row changed" rule running a
//! Pack action that sends the changed cells to August's write-back URL. Staff edits come in
//! through `POST /_emulator/edit` (`edit.rs`); changes made through the API fire it too.
//!
//! It serves the tables of one [`Doc`], named at start. Run it with
//! `august coda-emulator --listen 127.0.0.1:PORT --from-mapping FILE` (the doc a mapping file
//! names), or as a library with [`serve`].

mod automation;
mod edit;
mod page;
pub mod quota;
pub mod recorder;
mod routes;
pub mod state;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use axum::Router;

pub use automation::{rebase, Automation, AutomationStats, Call};
use quota::SlidingWindow;
use state::Model;
pub use state::{ColumnDef, Doc, TableSpec};

/// Faults to inject (all off by default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Fraction of requests answered 503, half of them only after `timeout`.
    pub error_rate: f64,
    /// How long a "timed-out" request hangs before its 503.
    pub timeout: Duration,
    /// Added to every request.
    pub latency: Duration,
    /// How long a write takes to complete after its 202.
    pub mutation_delay: Duration,
}

/// What the emulator saw and did, for tests.
#[derive(Debug, Default)]
pub struct Stats {
    /// Write requests admitted.
    pub writes: AtomicU64,
    /// Read requests admitted.
    pub reads: AtomicU64,
    /// 429s answered.
    pub throttled: AtomicU64,
    /// Faults injected.
    pub faults: AtomicU64,
    /// Rows received in upserts.
    pub rows_upserted: AtomicU64,
    /// Rows received in deletes.
    pub rows_deleted: AtomicU64,
    /// Rows per upsert request, in order.
    pub batch_sizes: Mutex<Vec<usize>>,
    /// What the tables' automations did.
    pub automations: Arc<AutomationStats>,
}

/// How the emulator runs.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The token requests must carry (`Authorization: Bearer …`).
    pub token: String,
    /// Enforce Coda's quotas.
    pub quota: bool,
    /// Writes allowed per window.
    pub writes_per_window: usize,
    /// Reads allowed per window.
    pub reads_per_window: usize,
    /// The quota window.
    pub window: Duration,
    /// Faults at start.
    pub faults: Faults,
    /// The email of the API token's owner: changes made through the API are theirs, as
    /// `User()` in the automations they fire.
    pub api_user: String,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            token: "emulator-token".into(),
            quota: true,
            writes_per_window: 10,
            reads_per_window: 100,
            window: Duration::from_secs(6),
            faults: Faults::default(),
            api_user: "api@coda-emulator.example".into(),
        }
    }
}

struct Inner {
    token: String,
    base: String,
    quota_enabled: bool,
    model: Mutex<Model>,
    quotas: Mutex<(SlidingWindow, SlidingWindow)>,
    faults: Mutex<Faults>,
    storm: AtomicU32,
    reject_value: Mutex<Option<serde_json::Value>>,
    failing_table: Mutex<Option<String>>,
    stats: Stats,
    dispatcher: Option<automation::Dispatcher>,
}

type Shared = Arc<Inner>;

/// A running emulator.
#[derive(Clone)]
pub struct Emulator {
    inner: Shared,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Emulator {
    /// The base URL to give a client (`CODA_API_BASE`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What it saw.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Replaces the faults.
    pub fn set_faults(&self, faults: Faults) {
        *self.inner.faults.lock().expect("faults lock") = faults;
    }

    /// Answers the next `n` requests with 429.
    pub fn storm_429(&self, n: u32) {
        self.inner.storm.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Answers 400 to any upsert carrying this cell value.
    pub fn reject_value(&self, value: serde_json::Value) {
        *self.inner.reject_value.lock().expect("reject lock") = Some(value);
    }

    /// Makes the mutations of the next `n` writes never report completed (`mutationStatus`
    /// says `completed: false` for ever); their edits are applied all the same when `applied`,
    /// never otherwise.
    pub fn stick_mutations(&self, n: u32, applied: bool) {
        self.inner.model.lock().expect("model lock").stick(n, applied);
    }

    /// Answers 503 to every write to this table (`None`: to none).
    pub fn fail_writes_to(&self, table: Option<&str>) {
        *self.inner.failing_table.lock().expect("failing lock") = table.map(String::from);
    }

    /// Sends the automations' later calls to `base` (`http://host:port`) instead of the
    /// server their URLs name.
    pub fn point_automations_at(&self, base: &str) {
        if let Some(dispatcher) = &self.inner.dispatcher {
            dispatcher.point_at(base);
        }
    }

    /// Upserted rows that changed nothing (every value sent was already held).
    pub fn unchanged_rows(&self) -> u64 {
        self.inner.model.lock().expect("model lock").unchanged_rows
    }

    /// Reports every applied upsert, with its time, on the returned channel.
    pub fn observe(&self) -> tokio::sync::mpsc::UnboundedReceiver<state::Applied> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.inner.model.lock().expect("model lock").observer = Some(tx);
        rx
    }

    /// The applied rows of a table: values by column id, in row order.
    pub fn rows(&self, doc: &str, table: &str) -> Vec<std::collections::BTreeMap<String, serde_json::Value>> {
        let mut model = self.inner.model.lock().expect("model lock");
        model.apply_due();
        model.table(doc, table).map(|t| t.rows.iter().map(|r| r.values.clone()).collect()).unwrap_or_default()
    }
}

/// Starts an emulator serving `doc` on `listen`.
pub async fn serve(listen: SocketAddr, doc: Doc, config: EmulatorConfig) -> std::io::Result<Emulator> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let stats = Stats::default();
    let mut model = Model::new(doc);
    let automated = model.docs.values().flatten().any(|t| t.automation.is_some());
    let dispatcher = automated.then(|| automation::Dispatcher::start(stats.automations.clone()));
    if let Some(dispatcher) = &dispatcher {
        model.automate(dispatcher.clone(), config.api_user);
    }
    let inner = Arc::new(Inner {
        token: config.token,
        base: format!("http://{addr}"),
        quota_enabled: config.quota,
        model: Mutex::new(model),
        quotas: Mutex::new((
            SlidingWindow::new(config.writes_per_window, config.window),
            SlidingWindow::new(config.reads_per_window, config.window),
        )),
        faults: Mutex::new(config.faults),
        storm: AtomicU32::new(0),
        reject_value: Mutex::new(None),
        failing_table: Mutex::new(None),
        stats,
        dispatcher,
    });
    if automated {
        // Mutations take effect when due even if no request looks, so automations fire then.
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(50));
            while let Some(inner) = weak.upgrade() {
                inner.model.lock().expect("model lock").apply_due();
                drop(inner);
                ticks.tick().await;
            }
        });
    }
    let app = router(inner.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the Coda emulator stopped");
        }
    });
    Ok(Emulator { inner, addr })
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(page::tables_page))
        .route("/docs/{doc}/tables", get(routes::list_tables))
        .route("/docs/{doc}/tables/{table}/columns", get(routes::list_columns))
        .route(
            "/docs/{doc}/tables/{table}/rows",
            get(routes::list_rows).post(routes::upsert_rows).delete(routes::delete_rows),
        )
        .route("/docs/{doc}/tables/{table}/rows/{row}", axum::routing::delete(routes::delete_row))
        .route("/mutationStatus/{request}", get(routes::mutation_status))
        .route("/_emulator/stats", get(routes::stats))
        .route("/_emulator/edit", axum::routing::post(edit::edit))
        .fallback(|| async {
            routes::error(
                axum::http::StatusCode::NOT_FOUND,
                "The resource could not be located with the current API token.",
            )
        })
        .with_state(shared)
}
