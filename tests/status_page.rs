//! The status page (`/status` on the metrics address) of a real `august serve` with the demo
//! mapping and the Coda emulator, fed webhooks: in headless Chromium (driven over WebDriver by
//! `chromedriver`) its chart fills, every number it shows equals the `/metrics` scrape taken
//! with it, and a screenshot is saved to `target/status-page.png`; `/status.json` has the
//! shape the page reads; neither the page nor the JSON ever holds the sample's PHI, even when
//! a delivery with it is refused and logged.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium` and
//! `chromium-driver`; `AUGUST_CHROMIUM` and `AUGUST_CHROMEDRIVER` point elsewhere); without
//! them the browser test says so and passes, unless `AUGUST_REQUIRE_CHROMIUM=1`: it fails.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::support::{
    coda_row, drchrono_webhook, emulator, free_port, post_drchrono, serve_env, August, DRCHRONO_SECRET,
};

const TOKEN: &str = "status-token";
/// Where Debian's `chromium` and `chromium-driver` put them (`AUGUST_CHROMIUM`,
/// `AUGUST_CHROMEDRIVER` say otherwise).
const CHROMIUM: (&str, &str) = ("AUGUST_CHROMIUM", "/usr/bin/chromium");
const CHROMEDRIVER: (&str, &str) = ("AUGUST_CHROMEDRIVER", "/usr/bin/chromedriver");
/// What the sample patient's webhooks carry that must never reach the page.
const PHI: &[&str] = &["Grace", "Hopper", "1986-12-09"];

/// A `serve` with the Coda emulator, having stored one patient and one appointment (and
/// refused one patient whose status breaks a CHECK constraint); its metrics port.
struct Served {
    _coda: August,
    serve: August,
    metrics: u16,
}

async fn serve_with_a_patient(db: &august_testkit::TestDb) -> Served {
    let (port, metrics) = (free_port(), free_port());
    let (coda_process, coda) = emulator(TOKEN, &[]).await;
    let serve = August::spawn(&["serve"], &serve_env(db, port, metrics, &coda, TOKEN, &[]));
    serve.line_with("serving webhooks and replicating", Duration::from_secs(60)).await;
    let base = format!("http://127.0.0.1:{port}");
    let patient = json!({
        "id": 701, "first_name": "Grace", "last_name": "Hopper", "date_of_birth": "1986-12-09", "doctor": 9,
        "updated_at": "2026-11-30T10:00:00"
    });
    drchrono_webhook(&base, DRCHRONO_SECRET, "PATIENT_CREATE", "st-1", patient).await;
    let appointment = json!({
        "id": "A-7101", "patient": 701, "doctor": 9, "scheduled_time": "2026-12-03T09:30:00", "duration": 50,
        "status": "Confirmed", "reason": "Intake", "updated_at": "2026-11-30T10:01:00"
    });
    drchrono_webhook(&base, DRCHRONO_SECRET, "APPOINTMENT_CREATE", "st-2", appointment).await;
    // Refused by Postgres (whose error quotes the whole row) and logged as a warning: the
    // page lists it, without the values.
    let refused = json!({"receiver": {"id": 1}, "object": {
        "id": 702, "first_name": "Grace", "last_name": "Hopper", "date_of_birth": "1986-12-09", "doctor": 9,
        "patient_status": "X", "updated_at": "2026-11-30T10:02:00"
    }});
    let response = post_drchrono(&base, DRCHRONO_SECRET, "PATIENT_CREATE", "st-3", &refused).await;
    assert_eq!(response.status(), 422, "a status the CHECK constraint refuses: {}", response.text().await.unwrap());
    coda_row(&coda, TOKEN, "grid-scheduling-ops", "c-appointment-id", "A-7101", |v| {
        v["c-patient-name"] == json!("Grace Hopper")
    })
    .await;
    Served { _coda: coda_process, serve, metrics }
}

async fn get_text(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

fn assert_no_phi(what: &str, text: &str) {
    for phi in PHI {
        assert!(!text.contains(phi), "{what} holds {phi:?}:\n{text}");
    }
}

#[tokio::test]
async fn the_status_json_has_the_pages_shape_and_no_phi() {
    let db = august_testkit::fresh_db("status_json").await;
    let served = serve_with_a_patient(&db).await;
    let url = format!("http://127.0.0.1:{}/status.json", served.metrics);
    let deadline = Instant::now() + Duration::from_secs(30);
    let body: Value = loop {
        let body: Value = serde_json::from_str(&get_text(&url).await).unwrap();
        if body["history"].as_array().is_some_and(|h| h.len() >= 2) && !body["errors"].as_array().unwrap().is_empty() {
            break body;
        }
        assert!(Instant::now() < deadline, "no history or no logged refusal: {body}\n{}", served.serve.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(body["sample_every_seconds"], json!(2));
    assert_eq!(body["history_seconds"], json!(3600));
    let now = &body["now"];
    let views: BTreeSet<&str> = now["tables"].as_array().unwrap().iter().map(|t| t["view"].as_str().unwrap()).collect();
    let mapped: BTreeSet<String> = crate::support::demo_mapping().tables.iter().map(|t| t.view.clone()).collect();
    assert_eq!(views, mapped.iter().map(String::as_str).collect(), "one entry per mapped table");
    for key in ["coda", "cdc", "dataflow", "drchrono"] {
        assert!(now[key].is_object(), "now.{key}: {now}");
    }
    assert!(now["cdc"]["slot_lag_bytes"].is_number(), "the slot is monitored: {now}");
    let history = body["history"].as_array().unwrap();
    assert!(history.windows(2).all(|w| w[0]["at"].as_f64() < w[1]["at"].as_f64()), "oldest first");
    let point = history.last().unwrap();
    for (view, lag) in point["tables"].as_object().unwrap() {
        assert!(mapped.contains(view) && lag.as_array().is_some_and(|l| l.len() == 2), "{view}: {point}");
    }
    assert!(point["slot_lag_bytes"].is_number(), "{point}");
    let last = history.last().unwrap()["at"].as_f64().unwrap();
    let newer: Value = serde_json::from_str(&get_text(&format!("{url}?since={last}")).await).unwrap();
    assert!(
        newer["history"].as_array().unwrap().iter().all(|p| p["at"].as_f64().unwrap() > last),
        "since= returns only newer points"
    );
    let refusal = body["errors"].as_array().unwrap().iter().find(|e| e["level"] == "WARN");
    assert!(refusal.is_some_and(|e| e["target"].as_str().unwrap().starts_with("august")), "{body}");
    let bad = reqwest::get(format!("{url}?since=soon")).await.unwrap();
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["error"]["code"], "bad_query");

    assert_no_phi("/status.json", &get_text(&url).await);
    let page = get_text(&format!("http://127.0.0.1:{}/status", served.metrics)).await;
    assert!(page.contains("id=\"chart-pending-total\""));
    assert_no_phi("/status", &page);
    assert!(served.serve.log().contains("refused"), "the refusal was logged: {}", served.serve.log());
}

#[tokio::test]
async fn the_status_page_in_chromium_shows_what_metrics_says() {
    let Some(browser) = Browser::start().await else { return };
    let db = august_testkit::fresh_db("status_page").await;
    let served = serve_with_a_patient(&db).await;
    let metrics = format!("http://127.0.0.1:{}", served.metrics);
    browser.open(&format!("{metrics}/status")).await;

    // The charts fill as the sampler takes points (one every 2 s): the total's, and each
    // table's whose rows waiting are recorded.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let points = browser.script(CHART_POINTS).await;
        let total = points["total"].as_str().and_then(|p| p.parse::<u32>().ok());
        if total.is_some_and(|n| n >= 3) && points["tables"].as_array().unwrap().iter().all(|n| n.as_u64() >= Some(2)) {
            break;
        }
        assert!(Instant::now() < deadline, "the charts have no data: {points}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Every number shown equals the scrape taken right after the page refreshed (a gauge may
    // move between the two: then both are read again).
    let deadline = Instant::now() + Duration::from_secs(45);
    let shown = loop {
        let shown = browser.script_async(SHOWN).await;
        let scrape = get_text(&format!("{metrics}/metrics")).await;
        let differences = differences(&shown, &scrape);
        if differences.is_empty() {
            break shown;
        }
        assert!(Instant::now() < deadline, "the page differs from /metrics: {differences:#?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let shown = shown.as_array().unwrap();
    let names: BTreeSet<&str> = shown.iter().map(|s| s["metric"].as_str().unwrap()).collect();
    for name in &names {
        assert!(august_schema::metrics::find(name).is_some(), "{name} is not in the catalog");
    }
    for name in ["august_coda_pending_rows", "august_cdc_slot_lag_bytes", "august_coda_quota_writes_limit"] {
        assert!(names.contains(name), "the page shows {name}");
    }
    let shows = |metric: &str| shown.iter().any(|s| s["metric"] == metric && s["value"] != "");
    assert!(shows("august_coda_pending_rows") && shows("august_cdc_slot_lag_bytes"), "{shown:?}");
    let views: BTreeSet<String> = browser
        .script("return [...document.querySelectorAll('#tables tbody tr[data-view]')].map(r => r.dataset.view)")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mapped: BTreeSet<String> = crate::support::demo_mapping().tables.iter().map(|t| t.view.clone()).collect();
    assert_eq!(views, mapped, "a row per Coda table");
    let errors = browser.script("return document.querySelector('#errors tbody').innerText").await;
    assert!(errors.as_str().unwrap().contains("refused"), "the refused delivery is listed: {errors}");
    let html = browser.script("return document.documentElement.outerHTML").await;
    assert_no_phi("the rendered page", html.as_str().unwrap());

    let png = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/status-page.png");
    browser.screenshot(&png).await;
    assert!(std::fs::metadata(&png).unwrap().len() > 10_000, "a screenshot of the page");
}

/// The points on the total's chart, and on each chart of a table that shows rows waiting.
const CHART_POINTS: &str = "return {
    total: document.getElementById('chart-pending-total').dataset.points,
    tables: [...document.querySelectorAll('#tables tbody tr[data-view]')]
        .filter(r => r.querySelector('[data-metric=\"august_coda_pending_rows\"]').dataset.value !== '')
        .map(r => Number(r.querySelector('svg').dataset.points))}";

/// Makes the page refresh now, then answers every element showing a metric: its name,
/// labels, raw value ("" when absent) and whether it is a sum over every series of the name.
const SHOWN: &str = "const done = arguments[arguments.length - 1];
    refresh().then(() => done([...document.querySelectorAll('[data-metric]')].map(e => ({
        metric: e.dataset.metric, labels: e.dataset.labels, value: e.dataset.value, sum: e.dataset.sum === '1'}))))";

/// The elements whose value differs from `scrape`'s.
fn differences(shown: &Value, scrape: &str) -> Vec<String> {
    let series = parse_scrape(scrape);
    let mut differences = Vec::new();
    for element in shown.as_array().unwrap() {
        let (metric, labels) = (element["metric"].as_str().unwrap(), element["labels"].as_str().unwrap());
        let wanted = label_set(labels);
        let matching: Vec<f64> = series
            .iter()
            .filter(|(name, set, _)| {
                name == metric && if element["sum"] == json!(true) { wanted.is_subset(set) } else { *set == wanted }
            })
            .map(|(_, _, value)| *value)
            .collect();
        let expected = (!matching.is_empty()).then(|| matching.iter().sum::<f64>());
        let value = element["value"].as_str().unwrap();
        let shown = (!value.is_empty()).then(|| value.parse::<f64>().unwrap());
        if shown != expected {
            differences.push(format!("{metric}{{{labels}}}: page {shown:?}, /metrics {expected:?}"));
        }
    }
    differences
}

/// Each sample of a scrape as (name, labels, value).
fn parse_scrape(scrape: &str) -> Vec<(String, BTreeSet<String>, f64)> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            Some((name.to_string(), label_set(labels), value.parse().ok()?))
        })
        .collect()
}

/// `a="x",b="y"` as a set of `a="x"` (our label values hold no commas).
fn label_set(labels: &str) -> BTreeSet<String> {
    labels.split(',').filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// A headless Chromium session, spoken to over WebDriver (chromedriver's HTTP API).
struct Browser {
    http: reqwest::Client,
    driver: String,
    session: String,
    _chromedriver: tokio::process::Child,
}

impl Browser {
    /// Starts chromedriver and a session; `None` (the test skips) when chromium or
    /// chromedriver is missing, unless `AUGUST_REQUIRE_CHROMIUM=1`.
    async fn start() -> Option<Self> {
        let [chromium, chromedriver] =
            [CHROMIUM, CHROMEDRIVER].map(|(var, default)| std::env::var(var).unwrap_or_else(|_| default.to_string()));
        let missing: Vec<&str> =
            [&chromium, &chromedriver].into_iter().map(String::as_str).filter(|p| !Path::new(p).exists()).collect();
        if !missing.is_empty() {
            let why =
                format!("{} not installed (Debian: apt-get install chromium chromium-driver)", missing.join(", "));
            assert!(std::env::var("AUGUST_REQUIRE_CHROMIUM").as_deref() != Ok("1"), "AUGUST_REQUIRE_CHROMIUM=1: {why}");
            // Straight to stderr, past the test harness's capture, so the skip shows.
            let skipped = format!("the_status_page_in_chromium_shows_what_metrics_says: SKIPPED, {why}\n");
            std::io::stderr().write_all(skipped.as_bytes()).unwrap();
            return None;
        }
        let port = free_port();
        let chromedriver = tokio::process::Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let driver = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{driver}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1280,1800"]
            }
        }}});
        let created: Value =
            http.post(format!("{driver}/session")).json(&capabilities).send().await.unwrap().json().await.unwrap();
        let session =
            created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}")).to_string();
        Some(Browser { http, driver, session, _chromedriver: chromedriver })
    }

    async fn command(&self, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}/{path}", self.driver, self.session);
        let request = match body {
            Some(body) => self.http.post(url).json(&body),
            None => self.http.get(url),
        };
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(answer["value"].get("error").is_none(), "WebDriver {path}: {answer}");
        answer["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.command("url", Some(json!({"url": url}))).await;
    }

    async fn script(&self, script: &str) -> Value {
        self.command("execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    /// Runs `script`, which calls its last argument with the answer.
    async fn script_async(&self, script: &str) -> Value {
        self.command("execute/async", Some(json!({"script": script, "args": []}))).await
    }

    async fn screenshot(&self, to: &Path) {
        let png = self.command("screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, png).unwrap();
    }
}

impl Drop for Browser {
    /// Ends the session (chromedriver then closes Chromium) before chromedriver is killed.
    fn drop(&mut self) {
        let address = self.driver.trim_start_matches("http://");
        if let Ok(mut stream) = std::net::TcpStream::connect(address) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request =
                format!("DELETE /session/{} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n", self.session);
            if stream.write_all(request.as_bytes()).is_ok() {
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
    }
}
