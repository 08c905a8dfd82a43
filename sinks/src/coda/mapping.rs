//! The Coda mapping file: which view goes to which Coda table, keyed by which column, with
//! which view column written to which Coda column.
//!
//! ```toml
//! doc_id = "AbCdEfGh"
//! [[tables]]
//! view = "scheduling_ops"
//! table_id = "grid-sched"
//! allow = ["direct", "identifier", "operational"]   # the PHI classes it may carry
//! key = "appointment_id"
//! on_delete = "delete"          # or "keep"
//! [tables.columns]
//! appointment_id = "c-apptid"
//! patient_name = "c-name"
//! intake_status = "c-intake-status"
//! [tables.edits]                # optional: columns staff edit in Coda, sent back to August
//! target = "intake"             # a write-back target (see `august_schema::writeback`)
//! url = "https://august.example.org/api/intake/{key}"
//! [tables.edits.fields]         # view column -> the write-back field it sets
//! intake_status = "status"
//! ```
//!
//! `edits` tells the Coda automation (the emulator's, or the clinic's Pack action) where to
//! send a staff edit, and the sink which tables' rows may already hold a staff edit (its echo
//! guard). The target's view must be the table's view, and each edited column a mapped
//! column whose field the target lets staff set.
//!
//! **Minimum necessary.** Every table lists the PHI classes ([`august_dataflow::phi`]) it may
//! carry in `allow`; a mapping that maps a column of a class its table does not allow is
//! refused, naming every such column, so PHI reaches a Coda doc only where someone said it
//! may. `august views --mapping FILE` prints what each table carries.
//!
//! Checked twice at start-up: here, against the views (every name must exist, the key must be
//! mapped), and by the sink, against Coda (every table and column must exist there). Either
//! failure is one clear error naming the offending entry, before any row is sent.

use std::collections::BTreeMap;
use std::path::Path;

use august_dataflow::phi::PhiClass;
use august_dataflow::views::{self, ViewSpec};
use serde::Deserialize;

/// What to do with a Coda row whose view row is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDelete {
    /// Delete the Coda row.
    Delete,
    /// Leave it in Coda.
    Keep,
}

/// One view mirrored into one Coda table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableMapping {
    /// The view (or published table) name.
    pub view: String,
    /// The Coda table id.
    pub table_id: String,
    /// The view column that identifies a row (sent as `keyColumns`).
    pub key: String,
    /// What a removed view row does to the Coda row.
    pub on_delete: OnDelete,
    /// The PHI classes its columns may be (`direct`, `clinical`, `identifier`, `operational`).
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// View column → Coda column id.
    pub columns: BTreeMap<String, String>,
    /// The columns staff edit in Coda, and where their edits go.
    #[serde(default)]
    pub edits: Option<Edits>,
}

/// Staff edits of one mapped table, sent back to August by a Coda automation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edits {
    /// The write-back target: `intake`, `tasks` or `prior-auth`.
    pub target: String,
    /// August's write-back URL; `{key}` stands for the row's key.
    pub url: String,
    /// View column staff edit → the write-back field it sets.
    pub fields: BTreeMap<String, String>,
}

/// The whole mapping file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The Coda doc every table lives in.
    pub doc_id: String,
    /// The mirrored tables.
    pub tables: Vec<TableMapping>,
}

/// A mapping that cannot be used, naming the entry at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Coda mapping {origin}: {message}")]
pub struct MappingError {
    /// The file (and entry) at fault.
    pub origin: String,
    /// What is wrong.
    pub message: String,
}

impl Mapping {
    /// Reads and checks a mapping file.
    pub fn load(path: &Path) -> Result<Self, MappingError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| MappingError { origin: origin.clone(), message: format!("cannot read: {e}") })?;
        Self::parse(&text, &origin)
    }

    /// Parses and checks mapping text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, MappingError> {
        let mapping: Mapping = toml::from_str(text)
            .map_err(|e| MappingError { origin: origin.to_string(), message: e.message().to_string() })?;
        mapping.validate(origin)?;
        Ok(mapping)
    }

    fn validate(&self, origin: &str) -> Result<(), MappingError> {
        let fail = |entry: String, message: String| MappingError { origin: format!("{origin} ({entry})"), message };
        if self.doc_id.trim().is_empty() {
            return Err(fail("doc_id".into(), "is empty".into()));
        }
        if self.tables.is_empty() {
            return Err(fail("tables".into(), "maps no table".into()));
        }
        let mut disallowed = Vec::new();
        let mut seen_views = Vec::new();
        let mut seen_tables = Vec::new();
        for (i, table) in self.tables.iter().enumerate() {
            let entry = format!("tables[{i}], view {}", table.view);
            let Some(view) = views::find(&table.view) else {
                return Err(fail(entry, "names no view August has (see `august views`)".into()));
            };
            if seen_views.contains(&table.view) {
                return Err(fail(entry, "maps the same view twice".into()));
            }
            if seen_tables.contains(&table.table_id) {
                return Err(fail(entry, format!("Coda table {} is mapped twice", table.table_id)));
            }
            seen_views.push(table.view.clone());
            seen_tables.push(table.table_id.clone());
            if table.table_id.trim().is_empty() {
                return Err(fail(entry, "table_id is empty".into()));
            }
            if !view.columns.contains(&table.key.as_str()) {
                return Err(fail(entry, format!("key {} is not a column of the view", table.key)));
            }
            if !table.columns.contains_key(&table.key) {
                return Err(fail(entry, format!("key {} must be mapped to a Coda column", table.key)));
            }
            if let Some(column) = table.columns.keys().find(|c| !view.columns.contains(&c.as_str())) {
                return Err(fail(entry, format!("column {column} is not a column of the view")));
            }
            if let Some((column, _)) = table.columns.iter().find(|(_, id)| id.trim().is_empty()) {
                return Err(fail(entry, format!("column {column} maps to an empty Coda column id")));
            }
            if let Some(edits) = &table.edits {
                edits.validate(table).map_err(|message| fail(format!("{entry}, edits"), message))?;
            }
            let allowed = table.allowed().map_err(|message| fail(format!("{entry}, allow"), message))?;
            let offending: Vec<String> = table
                .columns
                .keys()
                .filter_map(|c| {
                    view.class(c).filter(|class| !allowed.contains(class)).map(|class| format!("{c} ({class})"))
                })
                .collect();
            if !offending.is_empty() {
                disallowed.push(format!("tables[{i}] (view {}): {}", table.view, offending.join(", ")));
            }
        }
        if !disallowed.is_empty() {
            let message = format!(
                "maps columns whose PHI class its table does not allow (add the class to the table's \
                 `allow`, or unmap the column): {}",
                disallowed.join("; ")
            );
            return Err(MappingError { origin: origin.to_string(), message });
        }
        Ok(())
    }
}

impl Edits {
    fn validate(&self, table: &TableMapping) -> Result<(), String> {
        let Some(target) = august_schema::writeback::target(&self.target) else {
            let names: Vec<&str> = august_schema::writeback::TARGETS.iter().map(|t| t.name).collect();
            return Err(format!("target {} is not one of {}", self.target, names.join(", ")));
        };
        if target.view != table.view {
            return Err(format!("target {} writes the rows of view {}, not {}", target.name, target.view, table.view));
        }
        if !self.url.contains("{key}") {
            return Err("url must hold {key}, where the row's key goes".into());
        }
        if self.fields.is_empty() {
            return Err("fields names no column".into());
        }
        for (column, field) in &self.fields {
            if !table.columns.contains_key(column) {
                return Err(format!("column {column} is not mapped to a Coda column"));
            }
            if !target.fields.contains(&field.as_str()) {
                return Err(format!(
                    "field {field} (column {column}) is not a field staff may set through {}",
                    target.name
                ));
            }
        }
        Ok(())
    }
}

impl TableMapping {
    /// The PHI classes its `allow` lists, or why it cannot be used.
    pub fn allowed(&self) -> Result<Vec<PhiClass>, String> {
        let Some(names) = &self.allow else {
            return Err("is missing: list the PHI classes this Coda table may carry, \
                        e.g. allow = [\"identifier\", \"operational\"] (see `august views`)"
                .into());
        };
        names
            .iter()
            .map(|n| {
                PhiClass::parse(n)
                    .ok_or_else(|| format!("{n} is not a PHI class (direct, clinical, identifier or operational)"))
            })
            .collect()
    }

    /// Which mapped columns carry which PHI class, most sensitive class first:
    /// (class, [(view column, Coda column)]), classes with no column left out.
    pub fn carried(&self) -> Vec<(PhiClass, Vec<(&str, &str)>)> {
        let view = self.view_spec();
        PhiClass::ALL
            .into_iter()
            .map(|class| {
                let columns = self
                    .columns
                    .iter()
                    .filter(|(c, _)| view.class(c) == Some(class))
                    .map(|(c, id)| (c.as_str(), id.as_str()))
                    .collect::<Vec<_>>();
                (class, columns)
            })
            .filter(|(_, columns)| !columns.is_empty())
            .collect()
    }

    /// The view this table mirrors.
    pub fn view_spec(&self) -> ViewSpec {
        views::find(&self.view).expect("validated at load")
    }

    /// The Coda column id of the key.
    pub fn key_column(&self) -> &str {
        &self.columns[&self.key]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
doc_id = "AbCdEfGh"
[[tables]]
allow = ["direct", "clinical", "identifier", "operational"]
view = "scheduling_ops"
table_id = "grid-sched"
key = "appointment_id"
on_delete = "delete"
[tables.columns]
appointment_id = "c-apptid"
patient_name = "c-name"
"#;

    #[test]
    fn a_table_must_say_which_phi_it_may_carry_and_carry_no_other() {
        let missing = GOOD.replace("allow = [\"direct\", \"clinical\", \"identifier\", \"operational\"]\n", "");
        let refused = Mapping::parse(&missing, "m.toml").unwrap_err();
        assert!(refused.origin.contains("tables[0]") && refused.message.contains("allow = ["), "{refused}");

        let narrow = GOOD.replace("\"direct\", \"clinical\", ", "");
        let refused = Mapping::parse(&narrow, "m.toml").unwrap_err().to_string();
        assert!(refused.contains("tables[0] (view scheduling_ops): patient_name (direct)"), "{refused}");
        assert!(!refused.contains("appointment_id"), "identifiers are allowed: {refused}");

        let unknown = GOOD.replace("\"clinical\"", "\"secret\"");
        let refused = Mapping::parse(&unknown, "m.toml").unwrap_err().to_string();
        assert!(refused.contains("secret is not a PHI class"), "{refused}");

        let mapping = Mapping::parse(GOOD, "m.toml").unwrap();
        let carried = mapping.tables[0].carried();
        assert_eq!(carried[0], (PhiClass::Direct, vec![("patient_name", "c-name")]));
        assert_eq!(carried[1], (PhiClass::Identifier, vec![("appointment_id", "c-apptid")]));
    }

    #[test]
    fn the_documented_shape_parses() {
        let mapping = Mapping::parse(GOOD, "m.toml").unwrap();
        assert_eq!(mapping.tables[0].key_column(), "c-apptid");
        assert_eq!(mapping.tables[0].on_delete, OnDelete::Delete);
    }

    const EDITS: &str = r#"
doc_id = "AbCdEfGh"
[[tables]]
allow = ["direct", "clinical", "identifier", "operational"]
view = "patient_intake"
table_id = "grid-intake"
key = "appointment_id"
on_delete = "delete"
[tables.columns]
appointment_id = "c-apptid"
intake_status = "c-status"
[tables.edits]
target = "intake"
url = "http://127.0.0.1:8080/api/intake/{key}"
[tables.edits.fields]
intake_status = "status"
"#;

    #[test]
    fn edits_parse_and_each_mistake_is_named() {
        let mapping = Mapping::parse(EDITS, "m.toml").unwrap();
        let edits = mapping.tables[0].edits.as_ref().unwrap();
        assert_eq!(edits.fields["intake_status"], "status");
        let cases = [
            (EDITS.replace("target = \"intake\"", "target = \"intakes\""), "is not one of intake, tasks, prior-auth"),
            (
                EDITS.replace("target = \"intake\"", "target = \"tasks\""),
                "writes the rows of view post_appointment_tasks",
            ),
            (EDITS.replace("{key}", "id"), "must hold {key}"),
            (EDITS.replace("intake_status = \"status\"", "intake_status = \"completed_at\""), "field completed_at"),
            (
                EDITS.replace("intake_status = \"status\"", "assigned_to = \"assigned_to\""),
                "column assigned_to is not mapped",
            ),
        ];
        for (text, expected) in cases {
            let err = Mapping::parse(&text, "m.toml").unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should say {expected}");
            assert!(err.contains("edits"), "{err}");
        }
    }

    #[test]
    fn each_mistake_is_named() {
        let cases = [
            (GOOD.replace("scheduling_ops", "schedule"), "names no view"),
            (GOOD.replace("patient_name =", "patient_nam ="), "column patient_nam is not a column"),
            (GOOD.replace("appointment_id = \"c-apptid\"", ""), "must be mapped"),
            (GOOD.replace("\"delete\"", "\"purge\""), "unknown variant"),
            (GOOD.replace("doc_id = \"AbCdEfGh\"", "doc_id = \"\""), "doc_id"),
            (format!("extra = 1\n{GOOD}"), "unknown field"),
        ];
        for (text, expected) in cases {
            let err = Mapping::parse(&text, "m.toml").unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should say {expected}");
            assert!(err.starts_with("Coda mapping m.toml"), "{err}");
        }
    }
}
