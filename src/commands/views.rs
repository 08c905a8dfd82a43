//! `august views [--json] [--mapping FILE]`: every view with its key column and its columns,
//! each with its PHI class (for writing a Coda mapping file); with a mapping, exactly which
//! PHI leaves for which Coda table (what an auditor asks of a mirror).

use std::io::Write;
use std::path::Path;

use august_dataflow::views;
use august_sinks::coda::mapping::Mapping;

/// Prints the views (`--json`: `[{"name", "key", "columns", "classes"}, …]`, `classes[i]`
/// being the class of `columns[i]`), or what `mapping` sends where.
pub fn run(json: bool, mapping: Option<&Path>) -> anyhow::Result<()> {
    if let Some(path) = mapping {
        let mapping = Mapping::load(path)
            .map_err(|e| crate::ConfigError(august_schema::SettingError::new("--mapping", e.to_string())))?;
        return print_all(&disclosures(&mapping, json)?);
    }
    let all = views::all();
    let mut text = String::new();
    if json {
        text = serde_json::to_string(&all)?;
        text.push('\n');
    } else {
        for view in &all {
            let columns: Vec<String> =
                view.columns.iter().zip(view.classes).map(|(c, class)| format!("{c} [{class}]")).collect();
            text.push_str(&format!("{} (key: {})\n    {}\n", view.name, view.key, columns.join(", ")));
        }
    }
    print_all(&text)
}

/// Per mapped table: its view, its Coda table, what it allows and which columns of each class
/// it carries (view column → Coda column).
fn disclosures(mapping: &Mapping, json: bool) -> anyhow::Result<String> {
    if json {
        let tables: Vec<serde_json::Value> = mapping
            .tables
            .iter()
            .map(|t| {
                let carried: serde_json::Map<String, serde_json::Value> = t
                    .carried()
                    .into_iter()
                    .map(|(class, columns)| {
                        let columns: serde_json::Map<String, serde_json::Value> =
                            columns.into_iter().map(|(v, c)| (v.to_string(), c.into())).collect();
                        (class.name().to_string(), columns.into())
                    })
                    .collect();
                serde_json::json!({
                    "view": t.view, "doc_id": mapping.doc_id, "table_id": t.table_id,
                    "allow": t.allow, "carries": carried,
                })
            })
            .collect();
        return Ok(serde_json::to_string(&tables)? + "\n");
    }
    let mut text = String::new();
    for t in &mapping.tables {
        let allow = t.allow.as_deref().unwrap_or_default().join(", ");
        text.push_str(&format!("{} -> Coda {}/{} (allow: {allow})\n", t.view, mapping.doc_id, t.table_id));
        for (class, columns) in t.carried() {
            let columns: Vec<String> = columns.iter().map(|(v, c)| format!("{v} -> {c}")).collect();
            text.push_str(&format!("    {:<13}{}\n", format!("{class}:"), columns.join(", ")));
        }
    }
    Ok(text)
}

/// Writes to standard output; a reader that went away early (`| head`) is not an error.
pub fn print_all(text: &str) -> anyhow::Result<()> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
