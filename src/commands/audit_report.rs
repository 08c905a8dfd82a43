//! `august audit patient | actors | access`: the auditor's reports
//! ([`august_schema::audit_report`]) printed as aligned tables for people, or `--format csv`
//! / `json` for tools. Where a patient lives in each table (its patient column) and which
//! table each mirrored view's rows come from are read from the dataflow's specs, so a new table
//! or view is reported on without touching this module (a test fails if one is not).

use std::time::{Instant, SystemTime};

use august_dataflow::tables::{self, TableSpec};
use august_dataflow::views;
use august_schema::audit_report::{self, PatientColumn, Table};
use serde_json::{Map, Value};

use crate::settings::Sources;
use crate::ConfigError;

/// How a report is printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, for people.
    #[default]
    Table,
    /// Comma-separated values with a header line; a report of two parts prints two blocks
    /// separated by an empty line.
    Csv,
    /// One JSON object: each part an array of objects keyed by column.
    Json,
}

/// Which report.
#[derive(Debug)]
pub enum Report {
    /// One patient's changes and disclosures.
    Patient { id: i64, values: bool },
    /// Writes per actor per day.
    Actors,
    /// External calls per system and status.
    Access,
}

/// Runs `report` since `since` and prints it in `format`; leaves an `access_log` row.
pub async fn run(sources: &Sources, report: Report, since: Option<SystemTime>, format: Format) -> anyhow::Result<()> {
    let (_, pg) = sources.database().map_err(ConfigError)?;
    let db = august_schema::connect(&pg).await?;
    let started = Instant::now();
    let (name, subject, parts) = match report {
        Report::Patient { id, values } => {
            let tables = patient_columns();
            let views = view_sources();
            let (changes, held) = audit_report::patient(&db, id, &tables, &views, since, values).await?;
            let subject = format!("patient {id}{}", if values { " with values" } else { "" });
            ("audit patient", Some(subject), vec![("changes", changes), ("disclosures", held)])
        }
        Report::Actors => ("audit actors", None, vec![("writes", audit_report::actors(&db, since).await?)]),
        Report::Access => ("audit access", None, vec![("calls", audit_report::access(&db, since).await?)]),
    };
    let rows = parts.iter().map(|(_, t)| t.rows.len()).sum();
    print!("{}", render(&parts, format));
    audit_report::record(&db, name, subject.as_deref(), rows, started.elapsed()).await?;
    Ok(())
}

/// The column of `table` that holds a patient's DrChrono id, if it holds patients.
fn patient_column(table: &TableSpec) -> Option<&'static str> {
    if table.name == "patients" {
        return Some("drchrono_id");
    }
    ["patient_id", "drchrono_patient_id"].into_iter().find(|c| table.columns.contains(c))
}

/// Every table that holds patients, with the key its audit rows carry.
fn patient_columns() -> Vec<PatientColumn<'static>> {
    tables::TABLES
        .iter()
        .filter_map(|t| patient_column(t).map(|patient| PatientColumn { table: t.name, key: t.view_key, patient }))
        .collect()
}

/// Every view whose rows belong to a patient, with its source table.
fn view_sources() -> Vec<(&'static str, &'static str)> {
    views::all()
        .iter()
        .filter_map(|v| {
            views::source_of(v.name)
                .filter(|t| tables::table(t).and_then(patient_column).is_some())
                .map(|t| (v.name, t))
        })
        .collect()
}

/// The report's parts in `format`.
pub fn render(parts: &[(&str, Table)], format: Format) -> String {
    match format {
        Format::Table => parts
            .iter()
            .map(|(name, t)| format!("{name} ({})\n{}", t.rows.len(), aligned(t)))
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Csv => parts.iter().map(|(_, t)| csv(t)).collect::<Vec<_>>().join("\n"),
        Format::Json => {
            let object: Map<String, Value> = parts.iter().map(|(name, t)| (name.to_string(), json(t))).collect();
            format!("{}\n", Value::Object(object))
        }
    }
}

fn aligned(table: &Table) -> String {
    let text = |c: &Option<String>| c.clone().unwrap_or_else(|| "-".into());
    let mut widths: Vec<usize> = table.columns.iter().map(|c| c.chars().count()).collect();
    for row in &table.rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(text(cell).chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(table.columns.iter().map(|c| c.to_uppercase()).collect());
    for row in &table.rows {
        out.push_str(&line(row.iter().map(text).collect()));
    }
    out
}

fn csv(table: &Table) -> String {
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = format!("{}\n", table.columns.join(","));
    for row in &table.rows {
        let cells: Vec<String> = row.iter().map(|c| field(c.as_deref().unwrap_or(""))).collect();
        out.push_str(&format!("{}\n", cells.join(",")));
    }
    out
}

fn json(table: &Table) -> Value {
    let rows = table.rows.iter().map(|row| {
        let object: Map<String, Value> = table
            .columns
            .iter()
            .zip(row)
            .map(|(c, v)| (c.to_string(), v.clone().map_or(Value::Null, Value::String)))
            .collect();
        Value::Object(object)
    });
    Value::Array(rows.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_view_but_the_providers_is_traced_to_a_table_that_holds_patients() {
        let traced: Vec<&str> = view_sources().iter().map(|(v, _)| *v).collect();
        for view in views::all() {
            assert_eq!(traced.contains(&view.name), view.name != "providers", "{}", view.name);
        }
        let tables: Vec<&str> = patient_columns().iter().map(|t| t.table).collect();
        assert!(tables.contains(&"patients") && tables.contains(&"deepcura_notes") && !tables.contains(&"providers"));
    }

    #[test]
    fn each_format_prints_every_cell_and_csv_quotes_what_it_must() {
        let table = Table {
            columns: vec!["a", "b"],
            rows: vec![vec![Some("x, \"y\"".into()), None], vec![Some("z".into()), Some("w".into())]],
        };
        let parts = [("part", table)];
        assert_eq!(render(&parts, Format::Csv), "a,b\n\"x, \"\"y\"\"\",\nz,w\n");
        assert_eq!(render(&parts, Format::Table), "part (2)\nA       B\nx, \"y\"  -\nz       w\n");
        let json: Value = serde_json::from_str(&render(&parts, Format::Json)).unwrap();
        assert_eq!(json["part"][0]["b"], Value::Null);
        assert_eq!(json["part"][1]["a"], "z");
    }
}
