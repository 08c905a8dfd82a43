//! The dashboards and the alert rules against what August records. Every `august_…` name the
//! Grafana dashboard (`dashboards/grafana/august.json`) and the Prometheus rules
//! (`dashboards/prometheus/alerts.yml`) use is in the metric catalog, with label matchers and
//! groupings only on its labels; the dashboard is what Grafana provisions; `promtool` accepts
//! the rules, their unit tests and every dashboard query; each alert carries what on-call needs
//! and a section of `docs/RUNBOOK.md`; and a real `august serve` exposes every name they use.
//!
//! The PromQL reader here is deliberately small: it knows selectors (`name{label op "v"}`),
//! grouping clauses (`by (…)`, `on (…)`, …), strings, ranges and numbers, which is all the
//! dashboard and the rules write; its own test below pins what it finds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use august_emulators::drchrono::{self, DrChronoConfig};
use august_schema::metrics;
use serde::Deserialize;
use serde_json::{json, Value};

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

#[derive(Deserialize)]
struct RuleTests {
    tests: Vec<RuleTest>,
}

#[derive(Deserialize)]
struct RuleTest {
    #[serde(default)]
    alert_rule_test: Vec<AlertCase>,
}

#[derive(Deserialize)]
struct AlertCase {
    alertname: String,
    exp_alerts: Vec<serde_norway::Value>,
}

/// One `name{label op "value", …}` of an expression: its name and the labels it matches on.
#[derive(Debug, PartialEq)]
struct Selector {
    name: String,
    labels: Vec<String>,
}

/// What an expression refers to: its selectors, and the labels its grouping clauses name.
#[derive(Debug, Default)]
struct Refs {
    selectors: Vec<Selector>,
    grouping: Vec<String>,
}

/// Words of PromQL that are never a metric's name.
const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "sum",
    "min", "max", "avg", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
];
/// Clauses followed by a list of label names.
const GROUPING: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

fn refs(expr: &str) -> Refs {
    let chars: Vec<char> = expr.chars().collect();
    let word_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let skip_spaces = |mut i: usize| {
        while chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        i
    };
    let skip_string = |i: usize| {
        let quote = chars[i];
        let mut j = i + 1;
        while j < chars.len() && chars[j] != quote {
            j += if chars[j] == '\\' { 2 } else { 1 };
        }
        j + 1
    };
    let mut refs = Refs::default();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(i);
        } else if c == '[' {
            i += chars[i..].iter().position(|&c| c == ']').unwrap_or(chars.len() - i) + 1;
        } else if c.is_ascii_digit() {
            while chars.get(i).is_some_and(|&c| c.is_ascii_alphanumeric() || c == '.') {
                i += 1;
            }
        } else if word_char(c) {
            let start = i;
            while chars.get(i).is_some_and(|&c| word_char(c)) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = skip_spaces(i);
            match chars.get(next) {
                Some('(') if GROUPING.contains(&word.as_str()) => {
                    let end = next + chars[next..].iter().position(|&c| c == ')').unwrap_or(chars.len() - next);
                    let list: String = chars[next + 1..end].iter().collect();
                    refs.grouping.extend(list.split(',').map(|l| l.trim().to_string()).filter(|l| !l.is_empty()));
                    i = end + 1;
                }
                Some('(') => {} // a function
                _ if KEYWORDS.contains(&word.as_str()) => {}
                Some('{') => {
                    let mut labels = Vec::new();
                    let mut j = next + 1;
                    loop {
                        j = skip_spaces(j);
                        match chars.get(j) {
                            None | Some('}') => break,
                            Some(',') => j += 1,
                            Some('"' | '\'' | '`') => j = skip_string(j),
                            Some('=' | '!' | '~') => j += 1,
                            Some(&c) if word_char(c) => {
                                let start = j;
                                while chars.get(j).is_some_and(|&c| word_char(c)) {
                                    j += 1;
                                }
                                labels.push(chars[start..j].iter().collect());
                            }
                            Some(_) => j += 1,
                        }
                    }
                    refs.selectors.push(Selector { name: word, labels });
                    i = j + 1;
                }
                _ => refs.selectors.push(Selector { name: word, labels: Vec::new() }),
            }
        } else {
            i += 1;
        }
    }
    refs
}

/// The labels a series of `m` carries (a histogram's `_bucket` series adds `le`).
fn labels_of(series: &str, m: &metrics::Metric) -> Vec<&'static str> {
    let bucket = series.ends_with("_bucket").then_some("le");
    m.labels.iter().copied().chain(bucket).collect()
}

/// What is wrong with `expr`: names outside the catalog, matchers or groupings on labels its
/// metrics do not carry, templated labels (`{{x}}`, `$labels.x`) in `texts` that no metric of
/// it carries.
fn problems(expr: &str, texts: &[&str]) -> Vec<String> {
    let refs = refs(expr);
    let mut problems = Vec::new();
    if refs.selectors.is_empty() {
        problems.push(format!("no metric found in {expr:?}"));
    }
    let mut carried = BTreeSet::new();
    for s in &refs.selectors {
        if !s.name.starts_with("august_") {
            match s.name.as_str() {
                "up" => carried.extend(["job", "instance"]),
                other => problems.push(format!("{other}: neither an august_ metric nor Prometheus's `up`")),
            }
            continue;
        }
        let Some(m) = metrics::find(&s.name) else {
            problems.push(format!("{} is not in the catalog", s.name));
            continue;
        };
        let labels = labels_of(&s.name, m);
        problems.extend(s.labels.iter().filter(|l| !labels.contains(&l.as_str())).map(|l| format!("{}: no label {l}", s.name)));
        carried.extend(labels);
    }
    problems.extend(refs.grouping.iter().filter(|l| !carried.contains(l.as_str())).map(|l| format!("groups by {l}, which no metric of it carries")));
    for text in texts {
        let templated = text.split("{{").skip(1).filter_map(|t| t.split("}}").next()).map(|t| t.trim());
        for label in templated.map(|t| t.trim_start_matches("$labels.")).filter(|t| !t.starts_with('$')) {
            if !carried.contains(label) {
                problems.push(format!("{text:?} shows {label}, which no metric of it carries"));
            }
        }
    }
    problems
}

/// Every series name the dashboard and the rules use.
fn used_series() -> BTreeSet<String> {
    let exprs = queries(&dashboard()).into_iter().map(|(_, e, _)| e).chain(alerts().into_iter().map(|r| r.expr));
    exprs.flat_map(|e| refs(&e).selectors).map(|s| s.name).filter(|n| n.starts_with("august_")).collect()
}

#[test]
fn the_promql_reader_finds_selectors_labels_and_groupings() {
    let found = refs(r#"histogram_quantile(0.99, sum by (view, le) (rate(august_e2e_latency_seconds_bucket{view=~"$view", x!="a,b}"}[$__rate_interval]))) / on() group_left august_up > 1e3"#);
    let selectors = [("august_e2e_latency_seconds_bucket", vec!["view", "x"]), ("august_up", vec![])];
    let expected: Vec<Selector> = selectors
        .into_iter()
        .map(|(name, labels)| Selector { name: name.into(), labels: labels.into_iter().map(String::from).collect() })
        .collect();
    assert_eq!(found.selectors, expected);
    assert_eq!(found.grouping, ["view", "le"]);
    let wrong = problems(r#"sum by (feed) (rate(august_coda_writes_total{status="1"}[5m])) + august_nothing"#, &["{{view}} {{route}}"]);
    assert_eq!(wrong.len(), 4, "{wrong:?}");
    assert!(problems(r#"sum by (view) (rate(august_coda_writes_total{kind="upsert"}[5m]))"#, &["{{view}}"]).is_empty());
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
    let used = used_series();
    let missing: Vec<&str> = metrics::ALL
        .iter()
        .filter(|m| !used.iter().any(|s| metrics::find(s).is_some_and(|f| f.name == m.name)))
        .map(|m| m.name)
        .collect();
    assert!(missing.is_empty(), "no panel shows {missing:?}");
}

/// The rows the on-call engineer looks for, and the metrics each must show.
const ROWS: &[(&str, &[&str])] = &[
    ("Pipeline health at a glance", &[
        "august_e2e_latency_seconds_bucket", "august_cdc_slot_lag_bytes", "august_coda_stalled",
        "august_coda_dead_letters_open", "august_ingest_deliveries_total", "august_drchrono_calls_left",
    ]),
    ("Coda lag per table", &["august_e2e_latency_seconds_bucket", "august_coda_oldest_pending_seconds", "august_coda_pending_rows"]),
    ("Coda quota use", &[
        "august_coda_quota_writes_used", "august_coda_quota_writes_limit", "august_coda_writes_total", "august_coda_requests_total",
    ]),
    ("Replication slot and WAL", &[
        "august_cdc_received_lsn", "august_cdc_flushed_lsn", "august_cdc_confirmed_lsn", "august_cdc_slot_lag_bytes",
        "august_cdc_retained_wal_bytes", "august_cdc_seconds_since_last_message", "august_cdc_reconnects_total",
    ]),
    ("Dataflow", &["august_dataflow_frontier_lag_bytes", "august_dataflow_changes_total", "august_dataflow_arrangement_records"]),
    ("Webhooks", &[
        "august_ingest_deliveries_total", "august_ingest_handler_seconds_bucket", "august_ingest_commit_seconds_bucket",
        "august_ingest_overloaded_total",
    ]),
    ("DrChrono pull", &[
        "august_drchrono_calls_left", "august_drchrono_last_success_timestamp_seconds",
        "august_drchrono_last_reconcile_timestamp_seconds", "august_drchrono_calls_total",
    ]),
    ("Write-back", &["august_writeback_requests_total", "august_writeback_seconds_bucket", "august_coda_echoes_avoided_total"]),
];

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
        let overlaps = boxes.iter().find(|(bx, by, bw, bh, _)| x < bx + bw && *bx < x + w && y < by + bh && *by < y + h);
        assert!(overlaps.is_none(), "{title} overlaps {:?}", overlaps.map(|b| b.4));
        boxes.push((x, y, w, h, title));
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}: datasource");
        let targets = panel["targets"].as_array().filter(|t| !t.is_empty()).unwrap_or_else(|| panic!("{title}: no target"));
        let ref_ids: BTreeSet<&str> = targets.iter().filter_map(|t| t["refId"].as_str()).collect();
        assert_eq!(ref_ids.len(), targets.len(), "{title}: each target needs its own refId");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}: a target's datasource");
            assert!(target["expr"].as_str().is_some_and(|e| !e.trim().is_empty()), "{title}: empty query");
        }
    }

    // A row holds the panels below it down to the next row.
    let mut rows: Vec<(&str, u64)> = all.iter().filter(|p| p["type"] == "row").map(|p| (p["title"].as_str().unwrap(), p["gridPos"]["y"].as_u64().unwrap())).collect();
    rows.sort_by_key(|r| r.1);
    for (title, wanted) in ROWS {
        let at = rows.iter().position(|r| r.0 == *title).unwrap_or_else(|| panic!("no row {title:?}"));
        let (top, bottom) = (rows[at].1, rows.get(at + 1).map_or(u64::MAX, |r| r.1));
        let inside: Vec<&&Value> = all.iter().filter(|p| p["type"] != "row" && (top..bottom).contains(&p["gridPos"]["y"].as_u64().unwrap())).collect();
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
    let coda_lag = queries(&dashboard).into_iter().filter(|(_, e, _)| e.contains("august_e2e_latency_seconds_bucket{view=~\"$view\"}"));
    let quantiles: BTreeSet<String> = coda_lag.filter_map(|(_, e, _)| e.split(',').next().map(str::to_string)).collect();
    assert!(quantiles.contains("histogram_quantile(0.5") && quantiles.contains("histogram_quantile(0.99"), "{quantiles:?}");
}

/// GitHub's anchors of the headings of a Markdown file.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let headings = markdown.lines().filter(|l| l.starts_with('#')).map(|l| l.trim_start_matches('#').trim());
    let slug = |h: &str| -> String {
        h.to_lowercase().chars().filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ').map(|c| if c == ' ' { '-' } else { c }).collect()
    };
    headings.map(slug).collect()
}

/// The seeds' alert table and the issue's additions, by the name each has in alerts.yml.
const REQUIRED_ALERTS: &[&str] = &[
    "AugustSyncFailure", "AugustDrChronoAuthError", "AugustWebhookErrorRate", "AugustNoRecentSync", "AugustDeadLetters",
    "AugustDatabaseStorageHigh", "AugustSlotLagHigh", "AugustRetainedWalGrowing", "AugustReplicationStalled",
    "AugustCodaTableStalled", "AugustE2eLagHigh",
];

#[test]
fn every_alert_has_for_severity_summary_a_runbook_section_and_unit_tests_both_ways() {
    let runbook = anchors(&read("docs/RUNBOOK.md"));
    let tests: RuleTests = serde_norway::from_str(&read("dashboards/prometheus/alerts_test.yml")).unwrap();
    let cases: Vec<AlertCase> = tests.tests.into_iter().flat_map(|t| t.alert_rule_test).collect();
    let rules = alerts();
    let names: BTreeSet<&str> = rules.iter().map(|r| r.alert.as_str()).collect();
    assert_eq!(names.len(), rules.len(), "alert names are unique");
    for required in REQUIRED_ALERTS {
        assert!(names.contains(required), "no alert {required}");
    }
    for rule in &rules {
        let name = &rule.alert;
        let pending = rule.pending.as_deref().unwrap_or_else(|| panic!("{name}: no `for:`"));
        let (amount, unit) = pending.split_at(pending.len() - 1);
        assert!(amount.parse::<u32>().is_ok() && ["s", "m", "h"].contains(&unit), "{name}: for: {pending}");
        let severity = rule.labels.get("severity").map(String::as_str);
        assert!(matches!(severity, Some("critical" | "high" | "medium")), "{name}: severity {severity:?}");
        assert!(rule.annotations.get("summary").is_some_and(|s| !s.is_empty()), "{name}: no summary");
        let url = rule.annotations.get("runbook_url").unwrap_or_else(|| panic!("{name}: no runbook_url"));
        let anchor = url.strip_prefix("docs/RUNBOOK.md#").unwrap_or_else(|| panic!("{name}: {url} is not docs/RUNBOOK.md#…"));
        assert!(runbook.contains(anchor), "{name}: docs/RUNBOOK.md has no section #{anchor}");
        let firing = cases.iter().any(|c| &c.alertname == name && !c.exp_alerts.is_empty());
        let quiet = cases.iter().any(|c| &c.alertname == name && c.exp_alerts.is_empty());
        assert!(firing && quiet, "{name}: alerts_test.yml must test it firing ({firing}) and not firing ({quiet})");
    }
    let unknown: Vec<&str> = cases.iter().map(|c| c.alertname.as_str()).filter(|n| !names.contains(n)).collect();
    assert!(unknown.is_empty(), "alerts_test.yml tests alerts that do not exist: {unknown:?}");
}

/// promtool, or None when it is not installed (then the caller skips, unless
/// `AUGUST_REQUIRE_PROMTOOL=1`, which makes a missing promtool a failure).
fn promtool() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).map(|dir| dir.join("promtool")).find(|p| p.is_file());
    if found.is_none() {
        let required = std::env::var("AUGUST_REQUIRE_PROMTOOL").is_ok_and(|v| v == "1");
        assert!(!required, "AUGUST_REQUIRE_PROMTOOL=1 but promtool is not on PATH (Debian package `prometheus`)");
        eprintln!("SKIPPED: promtool is not installed (Debian package `prometheus`); AUGUST_REQUIRE_PROMTOOL=1 makes this fail");
    }
    found
}

fn run_promtool(promtool: &Path, args: &[&str], dir: &Path) {
    let out = Command::new(promtool).args(args).current_dir(dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {}:\n{text}", args.join(" "));
}

#[test]
fn promtool_accepts_the_rules_their_unit_tests_the_scrape_config_and_every_dashboard_query() {
    let Some(promtool) = promtool() else { return };
    let dir = repo("dashboards/prometheus");
    run_promtool(&promtool, &["check", "rules", "alerts.yml"], &dir);
    run_promtool(&promtool, &["test", "rules", "alerts_test.yml"], &dir);
    run_promtool(&promtool, &["check", "config", "prometheus.yml"], &dir);
    // Each dashboard query as a recording rule: promtool parses it as Prometheus would.
    let grafana = |e: &str| e.replace("$__rate_interval", "5m").replace("$view", ".*");
    let rules: Vec<Value> = queries(&dashboard())
        .iter()
        .enumerate()
        .map(|(i, (_, expr, _))| json!({"record": format!("august:dashboard_query:{i}"), "expr": grafana(expr)}))
        .collect();
    let scratch = tempfile::tempdir().unwrap();
    let file = json!({"groups": [{"name": "dashboard", "rules": rules}]});
    std::fs::write(scratch.path().join("dashboard.yml"), serde_norway::to_string(&file).unwrap()).unwrap();
    run_promtool(&promtool, &["check", "rules", "dashboard.yml"], scratch.path());
}

/// The names of the samples of a scrape.
fn scraped_names(scrape: &str) -> BTreeSet<String> {
    let samples = scrape.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty());
    samples.filter_map(|l| l.split(['{', ' ']).next()).map(str::to_string).collect()
}

const TOKEN: &str = "dashboards-token";
const WRITEBACK_TOKEN: &str = "dashboards-writeback-token-0123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the metrics helper"]
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
        let scrape = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.unwrap().text().await.unwrap();
        let present = scraped_names(&scrape);
        let missing: Vec<&String> = wanted.iter().filter(|n| !present.contains(*n)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "used by the dashboard or the alerts, missing from a real scrape: {missing:#?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    serve.signal("TERM");
    assert!(serve.exit(Duration::from_secs(30)).await.success(), "{}", serve.log());
}
