//! The alert rules as on-call meets them: each has a `for:`, a severity, a summary and a
//! runbook section, and unit tests that see it firing and not firing; `promtool` accepts the
//! rules, their tests, the scrape config and every dashboard query (skipped with a message when
//! promtool is missing, failed when `AUGUST_REQUIRE_PROMTOOL=1`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{alerts, dashboard, queries, read, repo};

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

/// GitHub's anchors of the headings of a Markdown file.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let headings = markdown.lines().filter(|l| l.starts_with('#')).map(|l| l.trim_start_matches('#').trim());
    let slug = |h: &str| -> String {
        h.to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect()
    };
    headings.map(slug).collect()
}

/// The seeds' alert table and the additions, by the name each has in alerts.yml.
const REQUIRED_ALERTS: &[&str] = &[
    "AugustSyncFailure",
    "AugustDrChronoAuthError",
    "AugustWebhookErrorRate",
    "AugustNoRecentSync",
    "AugustDeadLetters",
    "AugustDatabaseStorageHigh",
    "AugustSlotLagHigh",
    "AugustRetainedWalGrowing",
    "AugustReplicationStalled",
    "AugustCodaTableStalled",
    "AugustE2eLagHigh",
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
        let anchor =
            url.strip_prefix("docs/RUNBOOK.md#").unwrap_or_else(|| panic!("{name}: {url} is not docs/RUNBOOK.md#…"));
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
pub(super) fn promtool() -> Option<PathBuf> {
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
