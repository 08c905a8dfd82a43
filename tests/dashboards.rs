//! The dashboards and the alert rules against what August records. Every `august_…` name the
//! Grafana dashboard (`dashboards/grafana/august.json`) and the Prometheus rules
//! (`dashboards/prometheus/alerts.yml`) use is in the metric catalog, with label matchers and
//! groupings only on its labels ([`promql`]); the dashboard is what Grafana provisions; the
//! rules carry what on-call needs and pass promtool ([`alerts`]); and a real `august serve`
//! exposes every name they use.

mod alerts;
mod promql;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use august_emulators::drchrono::{self, DrChronoConfig};
use august_schema::metrics;
use serde::Deserialize;
use serde_json::{json, Value};

use self::promql::{problems, refs};

use crate::support::{drchrono_webhook, emulator, free_port, serve_env, August, DRCHRONO_SECRET};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn dashboard() -> Value {
    serde_json::from_str(&read("dashboards/grafana/august.json")).unwrap()
}

/// The dashboard's panels (with those of collapsed rows).
fn panels(dashboard: &Value) -> Vec<&Value> {
    let top = dashboard["panels"].as_array().unwrap();
    top.iter().chain(top.iter().flat_map(|p| p["panels"].as_array().into_iter().flatten())).collect()
}

/// Every query of the dashboard: (panel title, expression, legend).
fn queries(dashboard: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let (title, expr, legend) = (&panel["title"], &target["expr"], &target["legendFormat"]);
            out.push((title.as_str().unwrap_or("?").into(), expr.as_str().unwrap_or("").into(), legend.to_string()));
        }
    }
    out
}

#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    alert: String,
    expr: String,
    #[serde(rename = "for")]
    pending: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

fn alerts() -> Vec<Rule> {
    let file: RuleFile = serde_norway::from_str(&read("dashboards/prometheus/alerts.yml")).unwrap();
    file.groups.into_iter().flat_map(|g| g.rules).collect()
}

/// The `august_…` series names in `exprs`.
fn series_in(exprs: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    let names = exprs.into_iter().flat_map(|e| refs(&e).selectors).map(|s| s.name);
    names.filter(|n| n.starts_with("august_")).collect()
}

/// Every series name the dashboard's panels use.
fn dashboard_series() -> BTreeSet<String> {
    series_in(queries(&dashboard()).into_iter().map(|(_, e, _)| e))
}

/// Every series name the dashboard and the rules use.
fn used_series() -> BTreeSet<String> {
    let mut used = dashboard_series();
    used.extend(series_in(alerts().into_iter().map(|r| r.expr)));
    used
}

#[test]
fn dashboard_and_rules_use_only_catalog_metrics_and_their_labels() {
    let dashboard = dashboard();
    let mut wrong = Vec::new();
    for (title, expr, legend) in queries(&dashboard) {
        wrong.extend(problems(&expr, &[legend.as_str()]).into_iter().map(|p| format!("panel {title:?}: {p}")));
    }
    for rule in alerts() {
        let texts: Vec<&str> = rule.annotations.values().map(String::as_str).collect();
        wrong.extend(problems(&rule.expr, &texts).into_iter().map(|p| format!("alert {}: {p}", rule.alert)));
    }
    let view = dashboard["templating"]["list"].as_array().unwrap().iter().find(|v| v["name"] == "view").unwrap();
    let query = view["query"]["query"].as_str().or(view["query"].as_str()).unwrap();
    assert_eq!(query, "label_values(august_coda_pending_rows, view)");
    assert!(metrics::find("august_coda_pending_rows").is_some_and(|m| m.labels.contains(&"view")));
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn every_catalog_metric_has_a_panel() {
    let used = dashboard_series();
    let missing: Vec<&str> = metrics::ALL
        .iter()
        .filter(|m| !used.iter().any(|s| metrics::find(s).is_some_and(|f| f.name == m.name)))
        .map(|m| m.name)
        .collect();
    assert!(missing.is_empty(), "no panel shows {missing:?}");
}

/// The rows the on-call engineer looks for, and the metrics each must show.
const ROWS: &[(&str, &[&str])] = &[
    (
        "Pipeline health at a glance",
        &[
            "august_e2e_latency_seconds_bucket",
            "august_cdc_slot_lag_bytes",
            "august_coda_stalled",
            "august_coda_dead_letters_open",
            "august_ingest_deliveries_total",
            "august_drchrono_calls_left",
        ],
    ),
    (
        "Coda lag per table",
        &["august_e2e_latency_seconds_bucket", "august_coda_oldest_pending_seconds", "august_coda_pending_rows"],
    ),
    (
        "Coda quota use",
        &[
            "august_coda_quota_writes_used",
            "august_coda_quota_writes_limit",
            "august_coda_writes_total",
            "august_coda_requests_total",
        ],
    ),
    (
        "Replication slot and WAL",
        &[
            "august_cdc_received_lsn",
            "august_cdc_flushed_lsn",
            "august_cdc_confirmed_lsn",
            "august_cdc_slot_lag_bytes",
            "august_cdc_retained_wal_bytes",
            "august_cdc_seconds_since_last_message",
            "august_cdc_reconnects_total",
        ],
    ),
    (
        "Dataflow",
        &["august_dataflow_frontier_lag_bytes", "august_dataflow_changes_total", "august_dataflow_arrangement_records"],
    ),
    (
        "Webhooks",
        &[
            "august_ingest_deliveries_total",
            "august_ingest_handler_seconds_bucket",
            "august_ingest_commit_seconds_bucket",
            "august_ingest_overloaded_total",
        ],
    ),
    (
        "DrChrono pull",
        &[
            "august_drchrono_calls_left",
            "august_drchrono_last_success_timestamp_seconds",
            "august_drchrono_last_reconcile_timestamp_seconds",
            "august_drchrono_calls_total",
        ],
    ),
    (
        "Write-back",
        &["august_writeback_requests_total", "august_writeback_seconds_bucket", "august_coda_echoes_avoided_total"],
    ),
];

#[test]
fn the_provisioning_files_give_grafana_a_dashboard_folder_and_a_prometheus() {
    let yaml = |path: &str| -> Value { serde_norway::from_str(&read(path)).unwrap() };
    let dashboards = yaml("dashboards/grafana/provisioning/dashboards/august.yaml");
    let provider = &dashboards["providers"][0];
    assert_eq!((&dashboards["apiVersion"], &provider["type"]), (&json!(1), &json!("file")));
    assert!(provider["options"]["path"].as_str().is_some_and(|p| p.starts_with('/')), "{provider}");
    let datasources = yaml("dashboards/grafana/provisioning/datasources/prometheus.yaml");
    let prometheus = &datasources["datasources"][0];
    assert_eq!((&datasources["apiVersion"], &prometheus["type"]), (&json!(1), &json!("prometheus")));
    assert!(prometheus["url"].as_str().is_some_and(|u| u.starts_with("http")), "{prometheus}");
}

#[test]
fn the_dashboard_is_what_grafana_provisions_with_the_rows_on_call_needs() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "august-pipeline", "a stable uid, so links and provisioning survive edits");
    assert!(dashboard["id"].is_null(), "a provisioned dashboard carries no database id");
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36 && dashboard["title"].is_string());
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let datasource = variables.iter().find(|v| v["name"] == "datasource").expect("a datasource variable");
    assert_eq!((&datasource["type"], &datasource["query"]), (&json!("datasource"), &json!("prometheus")));
    let view = variables.iter().find(|v| v["name"] == "view").expect("a view variable");
    assert_eq!(view["datasource"]["uid"], "${datasource}");

    let all = panels(&dashboard);
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(u64, u64, u64, u64, &str)> = Vec::new();
    for panel in &all {
        let title = panel["title"].as_str().expect("every panel has a title");
        assert!(ids.insert(panel["id"].as_u64().expect("a numeric id")), "panel id {} twice", panel["id"]);
        let at = |k: &str| panel["gridPos"][k].as_u64().unwrap_or_else(|| panic!("{title}: gridPos.{k}"));
        let (x, y, w, h) = (at("x"), at("y"), at("w"), at("h"));
        assert!(w > 0 && h > 0 && x + w <= 24, "{title}: gridPos off the 24-column grid");
        let overlaps =
            boxes.iter().find(|(bx, by, bw, bh, _)| x < bx + bw && *bx < x + w && y < by + bh && *by < y + h);
        assert!(overlaps.is_none(), "{title} overlaps {:?}", overlaps.map(|b| b.4));
        boxes.push((x, y, w, h, title));
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}: datasource");
        let targets =
            panel["targets"].as_array().filter(|t| !t.is_empty()).unwrap_or_else(|| panic!("{title}: no target"));
        let ref_ids: BTreeSet<&str> = targets.iter().filter_map(|t| t["refId"].as_str()).collect();
        assert_eq!(ref_ids.len(), targets.len(), "{title}: each target needs its own refId");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}: a target's datasource");
            assert!(target["expr"].as_str().is_some_and(|e| !e.trim().is_empty()), "{title}: empty query");
        }
    }

    // A row holds the panels below it down to the next row.
    let mut rows: Vec<(&str, u64)> = all
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| (p["title"].as_str().unwrap(), p["gridPos"]["y"].as_u64().unwrap()))
        .collect();
    rows.sort_by_key(|r| r.1);
    for (title, wanted) in ROWS {
        let at = rows.iter().position(|r| r.0 == *title).unwrap_or_else(|| panic!("no row {title:?}"));
        let (top, bottom) = (rows[at].1, rows.get(at + 1).map_or(u64::MAX, |r| r.1));
        let inside: Vec<&&Value> = all
            .iter()
            .filter(|p| p["type"] != "row" && (top..bottom).contains(&p["gridPos"]["y"].as_u64().unwrap()))
            .collect();
        let shown: BTreeSet<String> = inside
            .iter()
            .flat_map(|p| p["targets"].as_array().into_iter().flatten())
            .flat_map(|t| refs(t["expr"].as_str().unwrap_or("")).selectors)
            .map(|s| s.name)
            .collect();
        let missing: Vec<&&str> = wanted.iter().filter(|m| !shown.contains(**m)).collect();
        assert!(missing.is_empty(), "row {title:?} does not show {missing:?}");
        if *title == "Pipeline health at a glance" {
            assert!(inside.iter().all(|p| p["type"] == "stat"), "the health row is stat panels");
        }
    }
    let coda_lag = queries(&dashboard)
        .into_iter()
        .filter(|(_, e, _)| e.contains("august_e2e_latency_seconds_bucket{view=~\"$view\"}"));
    let quantiles: BTreeSet<String> =
        coda_lag.filter_map(|(_, e, _)| e.split(',').next().map(str::to_string)).collect();
    assert!(
        quantiles.contains("histogram_quantile(0.5") && quantiles.contains("histogram_quantile(0.99"),
        "{quantiles:?}"
    );
}

/// The names of the samples of a scrape.
fn scraped_names(scrape: &str) -> BTreeSet<String> {
    let samples = scrape.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty());
    samples.filter_map(|l| l.split(['{', ' ']).next()).map(str::to_string).collect()
}

const TOKEN: &str = "dashboards-token";
const WRITEBACK_TOKEN: &str = "dashboards-writeback-token-0123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_august_exposes_every_metric_the_dashboard_and_the_alerts_use() {
    let db = august_testkit::fresh_db("dashboards_scrape").await;
    let config = DrChronoConfig { patients: 3, ..Default::default() };
    let drchrono = drchrono::serve("127.0.0.1:0".parse().unwrap(), config.clone()).await.unwrap();
    let (_coda_process, coda) = emulator(TOKEN, &[]).await;
    let (port, metrics_port) = (free_port(), free_port());
    let extra = [
        ("AUGUST_HTTP_ADDR", "127.0.0.1:0".to_string()),
        ("DRCHRONO_API_BASE", drchrono.base_url()),
        ("DRCHRONO_CLIENT_ID", config.client_id),
        ("DRCHRONO_CLIENT_SECRET", config.client_secret),
        ("DRCHRONO_REFRESH_TOKEN", config.refresh_token),
        ("DRCHRONO_TOKEN_KEY", "dashboards-test-token-key".into()),
        ("AUGUST_RECONCILE_SECS", "2".into()),
        ("CODA_WRITEBACK_TOKEN", WRITEBACK_TOKEN.into()),
        ("AUGUST_DB_CAPACITY_BYTES", (10u64 << 30).to_string()),
    ];
    let mut serve = August::spawn(&["serve"], &serve_env(&db, port, metrics_port, &coda, TOKEN, &extra));
    serve.line_with("serving webhooks and replicating", Duration::from_secs(60)).await;
    let base = format!("http://127.0.0.1:{port}");
    let patient = json!({"id": 801, "first_name": "Synthetic", "last_name": "Patient", "doctor": 9, "updated_at": "2026-11-30T10:00:00"});
    drchrono_webhook(&base, DRCHRONO_SECRET, "PATIENT_CREATE", "dash-1", patient).await;
    let refused = reqwest::Client::new()
        .patch(format!("{base}/api/prior-auth/PA-1"))
        .bearer_auth("not-the-token")
        .json(&json!({"status": "approved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "a write-back without the token is refused (and counted)");

    let wanted = used_series();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let scrape =
            reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.unwrap().text().await.unwrap();
        let present = scraped_names(&scrape);
        let missing: Vec<&String> = wanted.iter().filter(|n| !present.contains(*n)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "used by the dashboard or the alerts, missing from a real scrape: {missing:#?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let scrape = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.unwrap().text().await.unwrap();
    the_scrape_is_the_catalog(&scrape);
    assert!(!["Synthetic", "Patient"].iter().any(|phi| scrape.contains(phi)), "a name in the scrape");
    serve.signal("TERM");
    assert!(serve.exit(Duration::from_secs(30)).await.success(), "{}", serve.log());
}

/// The label names of a sample line (`name{k="v",…} value`; values may hold `{`, `}` and `,`).
fn label_names(line: &str) -> BTreeSet<&str> {
    let mut names = BTreeSet::new();
    let Some((_, mut rest)) = line.split_once('{') else { return names };
    while let Some((key, after)) = rest.split_once("=\"") {
        names.insert(key.trim_start_matches(','));
        let mut end = 0;
        let bytes = after.as_bytes();
        while end < bytes.len() && !(bytes[end] == b'"' && (end == 0 || bytes[end - 1] != b'\\')) {
            end += 1;
        }
        rest = &after[(end + 1).min(after.len())..];
        if rest.starts_with('}') {
            break;
        }
    }
    names
}

/// Every `august_…` sample of a real scrape is a catalog metric of its kind, with the catalog's
/// labels (and `le` on buckets); every view has its pending-rows gauge; the quota is within
/// its limit; promtool's linter accepts the scrape.
fn the_scrape_is_the_catalog(scrape: &str) {
    for line in scrape.lines().filter(|l| l.starts_with("august_")) {
        let name = line.split(['{', ' ']).next().unwrap();
        let metric = metrics::find(name).unwrap_or_else(|| panic!("{name} is not in the catalog: {line}"));
        let labels = label_names(line);
        let mut expected: BTreeSet<&str> = metric.labels.iter().copied().collect();
        if name.ends_with("_bucket") {
            expected.insert("le");
        }
        assert_eq!(labels, expected, "{line}");
        let kind = match metric.kind {
            metrics::Kind::Counter => "counter",
            metrics::Kind::Gauge => "gauge",
            metrics::Kind::Histogram => "histogram",
        };
        assert!(scrape.contains(&format!("# TYPE {} {kind}", metric.name)), "{} is not a {kind}", metric.name);
        assert!(scrape.contains(&format!("# HELP {} ", metric.name)), "{} has no # HELP", metric.name);
    }
    let views: BTreeSet<&str> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("august_coda_pending_rows{view=\""))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    for view in ["scheduling_ops", "patient_intake", "prior_auths", "clinical_notes"] {
        assert!(views.contains(view), "no pending-rows gauge for {view}: {views:?}");
    }
    let value = |name: &str| crate::support::total(scrape, name);
    assert!(value("august_coda_quota_writes_limit") > 0.0);
    assert!(value("august_coda_quota_writes_used") <= value("august_coda_quota_writes_limit"));
    assert!(value("august_coda_rows_written_total") > 0.0, "the webhook's rows reached Coda");
    assert!(value("august_e2e_latency_seconds_count") > 0.0);
    assert!(value("august_postgres_database_bytes") > 0.0);
    if let Some(promtool) = alerts::promtool() {
        let mut child = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), scrape.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "promtool check metrics:\n{text}");
    }
}
