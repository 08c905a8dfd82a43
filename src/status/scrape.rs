//! Reads the Prometheus text exposition format (what `GET /metrics` serves) back into samples:
//! `name{label="value",…} number`, comments skipped. It understands what
//! `metrics-exporter-prometheus` writes (escaped `\\`, `\"` and `\n` in label values, `+Inf`,
//! `NaN`); a line it cannot read is skipped, never an error, so a new exporter quirk hides one
//! series rather than the page.

/// One series' value in a scrape.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series' name (for a histogram, with its `_bucket`/`_sum`/`_count` suffix).
    pub name: String,
    /// Its labels, in the order they were written.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if the series has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Every sample of a scrape, in order.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(line).collect()
}

fn line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let (labels, rest) = match line[name_end..].strip_prefix('{') {
        Some(inside) => labels(inside)?,
        None => (Vec::new(), &line[name_end..]),
    };
    // A timestamp may follow the value; we do not use it.
    let value = number(rest.split_whitespace().next()?)?;
    Some(Sample { name: name.to_string(), labels, value })
}

/// The labels after `{`, and what follows the closing `}`.
fn labels(mut text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches([' ', ',']);
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (key, after) = text.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim().to_string(), value));
        text = &after[end + 1..];
    }
}

fn number(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_labelled_and_escaped_series_and_skips_comments() {
        let text = "# HELP august_cdc_slot_lag_bytes Lag.\n# TYPE august_cdc_slot_lag_bytes gauge\n\
                    august_cdc_slot_lag_bytes 4096\n\
                    august_coda_pending_rows{view=\"scheduling_ops\"} 3\n\
                    august_x{a=\"q\\\"uo\\\\te\",b=\"two\\nlines\"} 1.5e3\n\
                    august_e2e_latency_seconds_bucket{view=\"v\",le=\"+Inf\"} 7\n\
                    this line is not a sample\n";
        let samples = parse(text);
        assert_eq!(samples.len(), 4, "{samples:?}");
        assert_eq!(samples[0], Sample { name: "august_cdc_slot_lag_bytes".into(), labels: vec![], value: 4096.0 });
        assert_eq!(samples[1].label("view"), Some("scheduling_ops"));
        assert_eq!(samples[1].value, 3.0);
        assert_eq!(samples[2].label("a"), Some("q\"uo\\te"));
        assert_eq!(samples[2].label("b"), Some("two\nlines"));
        assert_eq!(samples[2].value, 1500.0);
        assert_eq!(samples[3].label("le"), Some("+Inf"));
    }

    #[test]
    fn a_truncated_line_is_skipped() {
        assert!(parse("august_x{view=\"unterminated 1\n").is_empty());
        assert!(parse("august_x{view=\"v\"}\n").is_empty(), "no value");
        assert_eq!(parse("august_y NaN\n").len(), 1);
    }
}
