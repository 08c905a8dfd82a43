//! A small reader of the PromQL that the dashboard and the rules write — selectors
//! (`name{label op "v"}`), grouping clauses (`by (…)`, `on (…)`, …), strings, ranges and
//! numbers — and what it finds checked against the metric catalog. Its own test pins what it
//! finds, so a reader that missed a name cannot make the catalog tests pass by finding nothing.

use std::collections::BTreeSet;

use august_schema::metrics;

/// One `name{label op "value", …}` of an expression: its name and the labels it matches on.
#[derive(Debug, PartialEq)]
pub(super) struct Selector {
    pub(super) name: String,
    pub(super) labels: Vec<String>,
}

/// What an expression refers to: its selectors, and the labels its grouping clauses name.
#[derive(Debug, Default)]
pub(super) struct Refs {
    pub(super) selectors: Vec<Selector>,
    pub(super) grouping: Vec<String>,
}

/// Words of PromQL that are never a metric's name.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
];
/// Clauses followed by a list of label names.
const GROUPING: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

/// The selectors and grouping labels of `expr`.
pub(super) fn refs(expr: &str) -> Refs {
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
pub(super) fn problems(expr: &str, texts: &[&str]) -> Vec<String> {
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
        problems.extend(
            s.labels.iter().filter(|l| !labels.contains(&l.as_str())).map(|l| format!("{}: no label {l}", s.name)),
        );
        carried.extend(labels);
    }
    problems.extend(
        refs.grouping
            .iter()
            .filter(|l| !carried.contains(l.as_str()))
            .map(|l| format!("groups by {l}, which no metric of it carries")),
    );
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

#[test]
fn the_promql_reader_finds_selectors_labels_and_groupings() {
    let found = refs(
        r#"histogram_quantile(0.99, sum by (view, le) (rate(august_e2e_latency_seconds_bucket{view=~"$view", x!="a,b}"}[$__rate_interval]))) / on() group_left august_up > 1e3"#,
    );
    let selectors = [("august_e2e_latency_seconds_bucket", vec!["view", "x"]), ("august_up", vec![])];
    let expected: Vec<Selector> = selectors
        .into_iter()
        .map(|(name, labels)| Selector { name: name.into(), labels: labels.into_iter().map(String::from).collect() })
        .collect();
    assert_eq!(found.selectors, expected);
    assert_eq!(found.grouping, ["view", "le"]);
    let wrong = problems(
        r#"sum by (feed) (rate(august_coda_writes_total{status="1"}[5m])) + august_nothing"#,
        &["{{view}} {{route}}"],
    );
    assert_eq!(wrong.len(), 4, "{wrong:?}");
    assert!(problems(r#"sum by (view) (rate(august_coda_writes_total{kind="upsert"}[5m]))"#, &["{{view}}"]).is_empty());
}
