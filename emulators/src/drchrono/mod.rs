//! A stand-in for DrChrono's REST API (v4, `drchrono-openapi.yml` and the prose conventions in
//! `../shared/reference/drchrono/`), serving a synthetic clinic to August's pull client, the
//! demo and the benchmarks:
//!
//! - `POST /o/token/`: the OAuth refresh grant, with rotating refresh tokens (`oauth.rs`).
//! - `GET /api/{patients, doctors, appointments, clinical_notes, medications, problems,
//!   allergies, line_items, line_item_deletions}`: the lists, with DrChrono's filters, page
//!   sizes and cursor pagination (`lists.rs`), behind the Bearer check, the hourly budget
//!   (`quota.rs`) and injected faults ([`Faults`]), in that order (`gate.rs`).
//! - `GET /_emulator/stats` (not DrChrono's): what it saw, as JSON ([`StatsSnapshot`]).
//!
//! The clinic (`clinic/`) is generated from a seed and changes only through the handle's
//! mutations, which stand for edits made in DrChrono ("a change made in DrChrono arrives on
//! the next reconcile"). Timestamps are UTC, written without a zone as DrChrono writes its
//! own.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use august_emulators::drchrono::{serve, DrChronoConfig};
//! let emulator = serve("127.0.0.1:0".parse().unwrap(), DrChronoConfig::default()).await?;
//! println!("DrChrono at {}", emulator.base_url()); // POST {base}/o/token/, GET {base}/api/patients
//! emulator.modify_patient(emulator.objects("patients")[0]["id"].as_i64().unwrap());
//! # Ok(()) }
//! ```

mod clinic;
mod faults;
mod gate;
mod lists;
mod oauth;
mod quota;
mod records;
mod stats;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{NaiveDate, NaiveDateTime, SubsecRound, Utc};
use serde_json::{json, Value};

use clinic::{Clinic, Resource, Visit};
use oauth::Tokens;
use quota::HourlyBudget;
use stats::Stats;

pub use faults::Faults;
pub use stats::StatsSnapshot;

/// Which key a list's objects come under.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Envelope {
    /// `{"previous", "results", "next"}`, as the prose and every known client say.
    #[default]
    Results,
    /// `{"previous", "data", "next"}`, as the machine schema says for every list but
    /// `/api/line_item_deletions` (whose schema says `results`, so it keeps `results`).
    Data,
}

/// How the emulator runs and what clinic it serves.
#[derive(Debug, Clone)]
pub struct DrChronoConfig {
    /// The OAuth client id the token endpoint accepts.
    pub client_id: String,
    /// The OAuth client secret the token endpoint accepts.
    pub client_secret: String,
    /// The first valid refresh token (each refresh replaces it).
    pub refresh_token: String,
    /// How long an access token lasts (`expires_in`); DrChrono's is 48 h.
    pub token_lifetime: Duration,
    /// Calls allowed per window; `None` turns the quota off (calls are still counted).
    pub calls_per_window: Option<u32>,
    /// The quota window; windows are aligned to multiples of it since the Unix epoch, as
    /// DrChrono "will reset at the top of each hour".
    pub window: Duration,
    /// Faults to inject from the start.
    pub faults: Faults,
    /// How many patients the clinic has.
    pub patients: usize,
    /// The seed the clinic is generated from: the same seed and day give the same clinic.
    pub seed: u64,
    /// The day the clinic is generated around (`None`: today, UTC). Every generated change
    /// lies before it; appointments lie within a year either side of it.
    pub today: Option<NaiveDate>,
    /// The list envelope.
    pub envelope: Envelope,
}

impl Default for DrChronoConfig {
    fn default() -> Self {
        Self {
            client_id: "emulator-client".into(),
            client_secret: "emulator-secret".into(),
            refresh_token: "emulator-refresh-token".into(),
            token_lifetime: Duration::from_secs(172_800),
            calls_per_window: Some(500),
            window: Duration::from_secs(3600),
            faults: Faults::default(),
            patients: 200,
            seed: 1,
            today: None,
            envelope: Envelope::Results,
        }
    }
}

impl DrChronoConfig {
    /// What is wrong with the config, if anything, naming the field.
    pub fn problem(&self) -> Option<String> {
        if let Some(why) = self.faults.problem() {
            return Some(format!("faults.{why}"));
        }
        let why = if self.window.is_zero() {
            "window must be longer than zero"
        } else if self.token_lifetime.is_zero() {
            "token_lifetime must be longer than zero"
        } else if self.calls_per_window == Some(0) {
            "calls_per_window must be at least 1 (None turns the quota off)"
        } else {
            return None;
        };
        Some(why.to_string())
    }
}

/// State shared by the handlers and the handle.
struct Inner {
    addr: SocketAddr,
    envelope: Envelope,
    clinic: RwLock<Clinic>,
    tokens: Mutex<Tokens>,
    budget: Mutex<HourlyBudget>,
    faults: Mutex<Faults>,
    /// Patients served malformed (a birth date that is not a date), as a bad record would be.
    malformed: Mutex<std::collections::BTreeSet<i64>>,
    stats: Stats,
}

type Shared = Arc<Inner>;

impl Inner {
    fn faults(&self) -> Faults {
        self.faults.lock().expect("faults lock").clone()
    }
    fn clinic(&self) -> std::sync::RwLockReadGuard<'_, Clinic> {
        self.clinic.read().expect("clinic lock")
    }
    fn clinic_mut(&self) -> std::sync::RwLockWriteGuard<'_, Clinic> {
        self.clinic.write().expect("clinic lock")
    }
}

/// DRF's error body, `{"detail": ...}`.
fn detail(status: StatusCode, why: &str) -> Response {
    (status, Json(json!({ "detail": why }))).into_response()
}

/// `http://host:port` as the client addressed the server (its `Host`), for absolute links.
fn origin(headers: &HeaderMap, addr: SocketAddr) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    format!("http://{}", host.map_or_else(|| addr.to_string(), str::to_string))
}

/// Now, to the second, as DrChrono stamps changes.
fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(0)
}

/// A running emulator. Dropping it stops the server; [`stop`](Self::stop) also waits for it.
pub struct DrChronoEmulator {
    inner: Shared,
    addr: SocketAddr,
    server: Option<tokio::task::JoinHandle<()>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for DrChronoEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrChronoEmulator").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// Generates the clinic and serves it on `addr` (port 0: any free port; see
/// [`DrChronoEmulator::base_url`]). Fails if the address cannot be bound or the config has a
/// [`problem`](DrChronoConfig::problem) (`InvalidInput`).
pub async fn serve(addr: SocketAddr, config: DrChronoConfig) -> std::io::Result<DrChronoEmulator> {
    if let Some(why) = config.problem() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, why));
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let today = config.today.unwrap_or_else(|| Utc::now().date_naive());
    let inner = Arc::new(Inner {
        addr,
        envelope: config.envelope,
        clinic: RwLock::new(clinic::generate(config.seed, config.patients, today)),
        tokens: Mutex::new(Tokens::new(
            config.client_id,
            config.client_secret,
            config.refresh_token,
            config.token_lifetime,
        )),
        budget: Mutex::new(HourlyBudget::new(config.calls_per_window, config.window)),
        faults: Mutex::new(config.faults),
        malformed: Mutex::default(),
        stats: Stats::default(),
    });
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = router(inner.clone());
    let server = tokio::spawn(async move {
        let serving = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = serving.await {
            tracing::error!(error = %e, "the DrChrono emulator stopped");
        }
    });
    Ok(DrChronoEmulator { inner, addr, server: Some(server), shutdown: Some(shutdown) })
}

impl DrChronoEmulator {
    /// `http://127.0.0.1:PORT`: the token URL is `{base}/o/token/`, the lists `{base}/api/…`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it saw so far.
    pub fn stats(&self) -> StatsSnapshot {
        let max = self.inner.budget.lock().expect("budget lock").max_used();
        self.inner.stats.snapshot(max)
    }

    /// Objects per list: `patients`, `doctors`, `appointments`, `clinical_notes`,
    /// `medications`, `problems`, `allergies`, `line_items`, `line_item_deletions`.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        self.inner.clinic().counts()
    }

    /// Every object of a list (named as in [`counts`](Self::counts)) as `verbose=true` renders
    /// it, in list order; empty for an unknown name.
    pub fn objects(&self, resource: &str) -> Vec<Value> {
        Resource::from_name(resource).map(|r| self.inner.clinic().render_all(r, true)).unwrap_or_default()
    }

    /// A patient edited in DrChrono: new `cell_phone` and `preferred_language`, `updated_at`
    /// now. False if there is no such patient.
    pub fn modify_patient(&self, id: i64) -> bool {
        u64::try_from(id).is_ok_and(|id| self.inner.clinic_mut().modify_patient(id, now()))
    }

    /// An appointment edited in DrChrono: its `status` moves on, `updated_at` now. False if
    /// there is no such appointment.
    pub fn modify_appointment(&self, id: &str) -> bool {
        id.parse().is_ok_and(|id| self.inner.clinic_mut().modify_appointment(id, now()))
    }

    /// A line item deleted in DrChrono: gone from `/api/line_items`, recorded in
    /// `/api/line_item_deletions` with `created_at` now. False if there is no such line item.
    pub fn delete_line_item(&self, id: i64) -> bool {
        u64::try_from(id).is_ok_and(|id| self.inner.clinic_mut().delete_line_item(id, now()))
    }

    /// From now on the patient is served malformed (its `date_of_birth` is not a date), as a
    /// broken record in DrChrono would be; the client must skip it and go on. False if there is
    /// no such patient.
    pub fn malform_patient(&self, id: i64) -> bool {
        let exists = self.inner.clinic().render_all(Resource::Patients, false).iter().any(|p| p["id"] == json!(id));
        if exists {
            self.inner.malformed.lock().expect("malformed lock").insert(id);
        }
        exists
    }

    /// Every access token issued so far expires now (later refreshes issue working ones).
    pub fn expire_access_tokens(&self) {
        self.inner.tokens.lock().expect("tokens lock").expire_all(Instant::now());
    }

    /// While `refuse` is true, every refresh is answered `400 {"error": "invalid_grant"}`, as
    /// when the practice revokes the app.
    pub fn refuse_refresh(&self, refuse: bool) {
        self.inner.tokens.lock().expect("tokens lock").refuse(refuse);
    }

    /// The refresh token that works now (after rotations, the newest).
    pub fn refresh_token(&self) -> Option<String> {
        self.inner.tokens.lock().expect("tokens lock").current_refresh()
    }

    /// Replaces the faults.
    pub fn set_faults(&self, faults: Faults) {
        *self.inner.faults.lock().expect("faults lock") = faults;
    }

    /// Stops serving and waits until the server has finished its requests in flight.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for DrChronoEmulator {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/o/token/", post(oauth::token).fallback(method_not_allowed))
        .route("/api/{resource}", get(list).fallback(method_not_allowed))
        .route("/api/{resource}/", get(list).fallback(method_not_allowed))
        .route("/_emulator/stats", get(stats_json))
        .fallback(|| async { detail(StatusCode::NOT_FOUND, "Not found.") })
        .with_state(shared)
}

async fn method_not_allowed() -> Response {
    detail(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.")
}

/// `GET /api/{resource}`: the gate, then the page.
async fn list(State(shared): State<Shared>, Path(resource): Path<String>, uri: Uri, headers: HeaderMap) -> Response {
    if let Err(refused) = gate::admit(&shared, &headers, &uri).await {
        return refused;
    }
    let Some(resource) = Resource::from_name(&resource) else {
        Stats::bump(&shared.stats.bad_requests);
        return detail(StatusCode::NOT_FOUND, "Not found.");
    };
    let origin = origin(&headers, shared.addr);
    match lists::respond(&shared.clinic(), resource, shared.envelope, &origin, &uri) {
        Ok(mut body) => {
            if resource == Resource::Patients {
                malform(&mut body, &shared.malformed.lock().expect("malformed lock"));
            }
            Json(body).into_response()
        }
        Err((status, body)) => {
            Stats::bump(&shared.stats.bad_requests);
            (status, Json(body)).into_response()
        }
    }
}

/// Breaks the chosen patients of a page: `date_of_birth` becomes text that is no date.
fn malform(body: &mut Value, ids: &std::collections::BTreeSet<i64>) {
    if ids.is_empty() {
        return;
    }
    let key = if body.get("results").is_some() { "results" } else { "data" };
    for item in body.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten() {
        if item["id"].as_i64().is_some_and(|id| ids.contains(&id)) {
            item["date_of_birth"] = json!("not a date");
        }
    }
}

async fn stats_json(State(shared): State<Shared>) -> Json<StatsSnapshot> {
    let max = shared.budget.lock().expect("budget lock").max_used();
    Json(shared.stats.snapshot(max))
}
