//! The emulator's model of Coda: docs, tables, columns, rows, and mutations that take effect
//! asynchronously (a write answers 202 at once and is applied when its mutation completes).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::automation::{Automation, Call, Dispatcher};

/// The doc an emulator serves from the start: its id and its tables, all empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    /// Doc id.
    pub id: String,
    /// Its tables, in order.
    pub tables: Vec<TableSpec>,
}

impl Doc {
    /// A doc with these tables.
    pub fn new(id: impl Into<String>, tables: impl IntoIterator<Item = TableSpec>) -> Self {
        Self { id: id.into(), tables: tables.into_iter().collect() }
    }
}

/// A table to serve: its id, its name, its columns and its automation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Table id (`grid-…`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Columns, in order.
    pub columns: Vec<ColumnDef>,
    /// The "row changed" automation that sends staff edits to August, if any.
    pub automation: Option<Automation>,
}

impl TableSpec {
    /// A table whose columns are named by their ids (all a mapping file says of a column).
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        column_ids: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        let columns = column_ids
            .into_iter()
            .map(|id| {
                let id = id.into();
                ColumnDef { name: id.clone(), id }
            })
            .collect();
        Self { id: id.into(), name: name.into(), columns, automation: None }
    }

    /// The table with this automation.
    pub fn with_automation(mut self, automation: Automation) -> Self {
        self.automation = Some(automation);
        self
    }
}

/// A column: its id and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    /// Column id (`c-…`).
    pub id: String,
    /// Display name.
    pub name: String,
}

/// A row as stored.
#[derive(Debug, Clone)]
pub struct StoredRow {
    /// Row id (`i-…`).
    pub id: String,
    /// Position in the table.
    pub index: u64,
    /// Values by column id.
    pub values: BTreeMap<String, Value>,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last updated.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// A table.
#[derive(Debug, Clone)]
pub struct Table {
    /// Table id (`grid-…`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Columns, in order.
    pub columns: Vec<ColumnDef>,
    /// Rows, in creation order.
    pub rows: Vec<StoredRow>,
    /// Its automation, if any.
    pub automation: Option<Automation>,
    next_row: u64,
}

impl Table {
    /// A new, empty table.
    pub fn new(id: &str, name: &str, columns: Vec<ColumnDef>) -> Self {
        Self { id: id.into(), name: name.into(), columns, rows: Vec::new(), automation: None, next_row: 1 }
    }

    /// The id of the column named by id or name.
    pub fn column_id(&self, id_or_name: &str) -> Option<String> {
        self.columns.iter().find(|c| c.id == id_or_name || c.name == id_or_name).map(|c| c.id.clone())
    }
}

/// A write waiting to take effect.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Upsert rows keyed on the given column ids.
    Upsert {
        /// Doc id.
        doc: String,
        /// Table id.
        table: String,
        /// Cells by column id, per row.
        rows: Vec<BTreeMap<String, Value>>,
        /// Column ids that identify a row.
        key_columns: Vec<String>,
    },
    /// Delete rows by id.
    Delete {
        /// Doc id.
        doc: String,
        /// Table id.
        table: String,
        /// Row ids.
        row_ids: Vec<String>,
    },
}

/// Rows an upsert applied to one table, and when: what an observer of the emulator sees.
#[derive(Debug, Clone)]
pub struct Applied {
    /// Table id.
    pub table: String,
    /// The rows' cells by column id, as sent.
    pub rows: Vec<BTreeMap<String, Value>>,
    /// When the mutation took effect.
    pub at: Instant,
}

/// The emulated service.
#[derive(Debug, Default)]
pub struct Model {
    /// Tables by doc id.
    pub docs: HashMap<String, Vec<Table>>,
    mutations: HashMap<String, (Instant, Option<Edit>)>,
    next_request: u64,
    /// Upserted rows that matched an existing row whose cells already held every value sent:
    /// writes that changed nothing.
    pub unchanged_rows: u64,
    /// Where applied upserts are reported, when someone watches.
    pub observer: Option<tokio::sync::mpsc::UnboundedSender<Applied>>,
    /// How many of the next writes get a mutation that never reports completed, and whether
    /// their edits are applied all the same (see [`Model::stick`]).
    stick: (u32, bool),
    /// Requests whose mutation never reports completed.
    stuck: std::collections::HashSet<String>,
    /// Where automation calls go, and the API token owner's email (API changes are theirs).
    automations: Option<(Dispatcher, String)>,
}

impl Model {
    /// A model serving `doc`, its tables empty.
    pub fn new(doc: Doc) -> Self {
        let mut model = Model::default();
        let tables = doc
            .tables
            .into_iter()
            .map(|t| Table { automation: t.automation, ..Table::new(&t.id, &t.name, t.columns) })
            .collect();
        model.docs.insert(doc.id, tables);
        model
    }

    /// The table `id_or_name` of `doc`.
    pub fn table(&self, doc: &str, id_or_name: &str) -> Option<&Table> {
        self.docs.get(doc)?.iter().find(|t| t.id == id_or_name || t.name == id_or_name)
    }

    fn table_mut(&mut self, doc: &str, id: &str) -> Option<&mut Table> {
        self.docs.get_mut(doc)?.iter_mut().find(|t| t.id == id)
    }

    /// Runs the tables' automations: their calls go to `dispatcher`, and changes made through
    /// the API are attributed to `api_user` (the API token's owner).
    pub fn automate(&mut self, dispatcher: Dispatcher, api_user: String) {
        self.automations = Some((dispatcher, api_user));
    }

    /// The API token owner's email, when automations run.
    pub fn api_user(&self) -> Option<&str> {
        self.automations.as_ref().map(|(_, user)| user.as_str())
    }

    /// Queues automation calls (never waits; dropped when automations do not run).
    pub fn fire(&self, calls: Vec<Call>) {
        if let Some((dispatcher, _)) = &self.automations {
            dispatcher.send(calls);
        }
    }

    /// Queues an edit; it takes effect after `delay` (at once when there is none). Returns
    /// its request id.
    pub fn queue(&mut self, edit: Edit, delay: Duration) -> String {
        self.next_request += 1;
        let id = format!("req-{:08}", self.next_request);
        let mut edit = Some(edit);
        if self.stick.0 > 0 {
            self.stick.0 -= 1;
            self.stuck.insert(id.clone());
            if !self.stick.1 {
                edit = None; // lost: never applied
            }
        }
        self.mutations.insert(id.clone(), (Instant::now() + delay, edit));
        if delay.is_zero() {
            self.apply_due();
        }
        id
    }

    /// Applies every edit whose time has come, in request order.
    pub fn apply_due(&mut self) {
        let now = Instant::now();
        let mut due: Vec<(String, Edit)> = self
            .mutations
            .iter_mut()
            .filter(|(_, (at, edit))| *at <= now && edit.is_some())
            .map(|(id, (_, edit))| (id.clone(), edit.take().expect("filtered")))
            .collect();
        due.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, edit) in due {
            self.apply(edit);
        }
    }

    /// Whether a mutation has completed; `None` for an unknown request id.
    pub fn completed(&mut self, request: &str) -> Option<bool> {
        self.apply_due();
        self.mutations.get(request).map(|(_, edit)| edit.is_none() && !self.stuck.contains(request))
    }

    /// Makes the mutations of the next `n` writes never report completed: their edits are
    /// applied as usual when `applied`, never otherwise.
    pub fn stick(&mut self, n: u32, applied: bool) {
        self.stick = (n, applied);
    }

    fn apply(&mut self, edit: Edit) {
        let now = chrono::Utc::now();
        if let (Some(observer), Edit::Upsert { table, rows, .. }) = (&self.observer, &edit) {
            let applied = Applied { table: table.clone(), rows: rows.clone(), at: Instant::now() };
            if observer.send(applied).is_err() {
                self.observer = None;
            }
        }
        match edit {
            Edit::Upsert { doc, table, rows, key_columns } => {
                let mut unchanged = 0;
                let mut calls = Vec::new();
                let api_user = self.api_user().unwrap_or_default().to_string();
                let Some(table) = self.table_mut(&doc, &table) else { return };
                // Rows by their key values, built once per mutation (not per row: a backfill
                // of n rows would otherwise cost n² comparisons).
                let key_of = |values: &BTreeMap<String, Value>| -> Vec<Option<Value>> {
                    key_columns.iter().map(|k| values.get(k).cloned()).collect()
                };
                let mut by_key: HashMap<Vec<Option<Value>>, Vec<usize>> = HashMap::new();
                if !key_columns.is_empty() {
                    for (i, row) in table.rows.iter().enumerate() {
                        by_key.entry(key_of(&row.values)).or_default().push(i);
                    }
                }
                for cells in rows {
                    let matches = if key_columns.is_empty() {
                        vec![]
                    } else {
                        by_key.get(&key_of(&cells)).cloned().unwrap_or_default()
                    };
                    if matches.is_empty() {
                        if !key_columns.is_empty() {
                            by_key.entry(key_of(&cells)).or_default().push(table.rows.len());
                        }
                        let id = format!("i-{:06}", table.next_row);
                        table.rows.push(StoredRow {
                            id,
                            index: table.next_row,
                            values: cells,
                            created_at: now,
                            updated_at: now,
                        });
                        table.next_row += 1;
                    } else {
                        for i in matches {
                            let row = &mut table.rows[i];
                            if cells.iter().all(|(column, value)| row.values.get(column) == Some(value)) {
                                unchanged += 1;
                            }
                            let before = table.automation.as_ref().map(|_| row.values.clone());
                            row.values.extend(cells.clone());
                            row.updated_at = now;
                            if let (Some(automation), Some(before)) = (&table.automation, before) {
                                calls.extend(automation.call(&row.id, &before, &row.values, &api_user));
                            }
                        }
                    }
                }
                self.unchanged_rows += unchanged;
                self.fire(calls);
            }
            Edit::Delete { doc, table, row_ids } => {
                if let Some(table) = self.table_mut(&doc, &table) {
                    table.rows.retain(|r| !row_ids.contains(&r.id));
                }
            }
        }
    }
}

/// A `query` filter: `<column id>:<JSON value>` or `"<column name>":<JSON value>`.
pub fn parse_query(table: &Table, query: &str) -> Result<(String, Value), String> {
    let (column, rest) = if let Some(quoted) = query.strip_prefix('"') {
        let end = quoted.find("\":").ok_or("a quoted column name must be followed by a colon")?;
        (&quoted[..end], &quoted[end + 2..])
    } else {
        query.split_once(':').ok_or("query must be <column>:<value>")?
    };
    let column = table.column_id(column).ok_or_else(|| format!("unknown column {column}"))?;
    let value: Value =
        serde_json::from_str(rest).map_err(|_| "the query value must be JSON (quote strings)".to_string())?;
    Ok((column, value))
}

/// Whether a stored value equals a query value (numbers and their text are the same value).
pub fn value_matches(stored: Option<&Value>, wanted: &Value) -> bool {
    match (stored, wanted) {
        (Some(s), w) if s == w => true,
        (Some(Value::String(s)), Value::Number(n)) | (Some(Value::Number(n)), Value::String(s)) => *s == n.to_string(),
        _ => false,
    }
}

/// The JSON of a stored row, as `listRows` returns it.
pub fn row_json(base: &str, doc: &str, table: &Table, row: &StoredRow) -> Value {
    let name = table.columns.first().and_then(|c| row.values.get(&c.id)).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    json!({
        "id": row.id,
        "type": "row",
        "href": format!("{base}/docs/{doc}/tables/{}/rows/{}", table.id, row.id),
        "name": name.unwrap_or_default(),
        "index": row.index,
        "browserLink": format!("{base}/d/_d{doc}#_tu{}/_ru{}", table.id, row.id),
        "createdAt": row.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "updatedAt": row.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "values": row.values,
    })
}
