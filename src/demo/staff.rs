//! The demo clinic's staff, working in Coda: they edit intake checklists, follow-up tasks and
//! prior authorizations in the emulated Coda tables (`POST /_emulator/edit`, as a person edits
//! a cell), and the tables' automations send each edit to August's write-back endpoints, so
//! the loop runs both ways. Each staff member is seeded in `staff_roles` with the role that
//! may edit what they edit. All made up.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use august_sinks::coda::mapping::Mapping;
use serde_json::{Map, Value};

/// The front desk (works intake checklists and tasks).
pub const FRONT_DESK: &str = "frontdesk@clinic.example";
/// Billing (works prior authorizations).
pub const BILLING: &str = "billing@clinic.example";
/// A clinician (closes their follow-up tasks).
pub const CLINICIAN: &str = "dr.beck@clinic.example";

/// Who works in Coda: email, display name and `staff_roles` role.
pub const STAFF: &[(&str, &str, &str)] = &[
    (FRONT_DESK, "Front Desk", "operations"),
    (BILLING, "Billing Office", "billing"),
    (CLINICIAN, "Aaron Beck", "clinician"),
];

/// Seeds one of [`STAFF`] (`$1` email, `$2` name, `$3` role); an existing member is left as is.
pub const SEED: &str =
    "INSERT INTO staff_roles (email, display_name, role) VALUES ($1, $2, $3) ON CONFLICT (email) DO NOTHING";

/// What became of an edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edited {
    /// Applied in Coda (its automation fires).
    Done,
    /// The row is not in Coda yet (August has not mirrored it): try again later.
    NotYet,
}

/// The staff's hands on the emulated Coda tables.
pub struct Staff {
    http: reqwest::Client,
    edit_url: String,
    /// View → (Coda table id, view column → Coda column id).
    tables: BTreeMap<String, (String, BTreeMap<String, String>)>,
}

impl Staff {
    /// Staff editing the tables of `mapping` in the emulator at `coda` (its base URL).
    pub fn new(coda: &str, mapping: &Mapping) -> anyhow::Result<Self> {
        let tables = mapping.tables.iter().map(|t| (t.view.clone(), (t.table_id.clone(), t.columns.clone()))).collect();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?;
        Ok(Self { http, edit_url: format!("{coda}/_emulator/edit"), tables })
    }

    /// `user` sets the cells of the row keyed `key` in the Coda table of `view` (cells named
    /// by view column).
    pub async fn edit(&self, view: &str, key: &str, cells: &[(&str, Value)], user: &str) -> anyhow::Result<Edited> {
        let (table, columns) = self.tables.get(view).with_context(|| format!("the demo maps no view {view}"))?;
        let mut values = Map::new();
        for (column, value) in cells {
            let id = columns.get(*column).with_context(|| format!("the demo maps no column {view}.{column}"))?;
            values.insert(id.clone(), value.clone());
        }
        let body = serde_json::json!({"table": table, "row": key, "values": values, "user": user});
        let answer = self.http.post(&self.edit_url).json(&body).send().await.context("reach the Coda emulator")?;
        match answer.status().as_u16() {
            200 => Ok(Edited::Done),
            404 => Ok(Edited::NotYet),
            status => anyhow::bail!("the Coda emulator refused a staff edit of {table} with {status}"),
        }
    }
}
