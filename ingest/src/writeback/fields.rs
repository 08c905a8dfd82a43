//! The field schemas of the write-back targets, read from the live catalog at start-up so that
//! validation cannot drift from the migrations: each column's type and nullability
//! (`pg_attribute`), and what its single-column `CHECK`s say as Postgres prints them
//! (`pg_get_constraintdef`): `col = ANY (ARRAY['a'::text, …])` is an enum,
//! `length(col) >= a` / `<= b` bound its length, `col >= n` / `col > n` / `col <= n` bound its
//! value. Checks over several columns are left to Postgres; their columns are kept by
//! constraint name ([`TargetSchema::constraint_columns`]) so a violation is answered naming
//! them. A table whose check ties `completed_at` to a status value
//! (`(status = 'done') = (completed_at IS NOT NULL)`) gets that value as its completion
//! status ([`TargetSchema::completion`]).

use std::collections::BTreeMap;

use august_schema::writeback::{Target, TARGETS};
use august_schema::DbError;
use tokio_postgres::GenericClient;

/// What a column holds, as far as a request's JSON is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `text` / `varchar`: a string.
    Text,
    /// `boolean`.
    Bool,
    /// `smallint`, `integer`, `bigint`: a whole number within the type's range.
    Int {
        /// Smallest value the type holds.
        min: i64,
        /// Largest value the type holds.
        max: i64,
    },
    /// `date`: `YYYY-MM-DD`.
    Date,
    /// `timestamptz`: RFC 3339 with a zone.
    Timestamptz,
    /// `uuid`.
    Uuid,
    /// `text[]`: a list of strings.
    TextList,
    /// Any other type: never settable through the write-back.
    Other,
}

impl Kind {
    fn of(type_name: &str) -> Kind {
        match type_name {
            "text" | "character varying" => Kind::Text,
            "boolean" => Kind::Bool,
            "smallint" => Kind::Int { min: i16::MIN.into(), max: i16::MAX.into() },
            "integer" => Kind::Int { min: i32::MIN.into(), max: i32::MAX.into() },
            "bigint" => Kind::Int { min: i64::MIN, max: i64::MAX },
            "date" => Kind::Date,
            "timestamp with time zone" => Kind::Timestamptz,
            "uuid" => Kind::Uuid,
            "text[]" => Kind::TextList,
            _ => Kind::Other,
        }
    }
}

/// One column, as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSchema {
    /// The column's name.
    pub name: String,
    /// Postgres' name for its type (`format_type`).
    pub sql_type: String,
    /// What a request must send for it.
    pub kind: Kind,
    /// Whether it may be set to `null`.
    pub nullable: bool,
    /// The values a `CHECK (col IN (…))` allows.
    pub allowed: Option<Vec<String>>,
    /// The shortest length a `CHECK (length(col) …)` allows.
    pub min_length: Option<i64>,
    /// The longest length a `CHECK (length(col) …)` allows.
    pub max_length: Option<i64>,
    /// The smallest value a `CHECK (col >= n)` allows.
    pub minimum: Option<i64>,
    /// The largest value a `CHECK (col <= n)` allows.
    pub maximum: Option<i64>,
}

/// One target's table, as the catalog describes it.
#[derive(Debug, Clone)]
pub struct TargetSchema {
    /// The contract's target.
    pub target: &'static Target,
    /// Every column of the table, in table order.
    pub columns: Vec<FieldSchema>,
    /// The columns of every check, by constraint name.
    pub constraint_columns: BTreeMap<String, Vec<String>>,
    /// The status value that `completed_at` follows, when the table has one.
    pub completion: Option<String>,
}

impl TargetSchema {
    /// The column `name`.
    pub fn column(&self, name: &str) -> Option<&FieldSchema> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The staff-owned fields, in the contract's order.
    pub fn fields(&self) -> impl Iterator<Item = &FieldSchema> {
        self.target.fields.iter().filter_map(|f| self.column(f))
    }

    /// The key column.
    pub fn key(&self) -> Option<&FieldSchema> {
        self.column(self.target.key)
    }
}

/// The field schemas of every target, read once.
#[derive(Debug, Clone)]
pub struct Schemas {
    /// One per target, in [`TARGETS`] order.
    pub targets: Vec<TargetSchema>,
}

impl Schemas {
    /// The schema of the target named `name`.
    pub fn get(&self, name: &str) -> Option<&TargetSchema> {
        self.targets.iter().find(|t| t.target.name == name)
    }
}

/// Why the schemas could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The catalog could not be read (retryable when the connection failed).
    #[error(transparent)]
    Db(#[from] DbError),
    /// No connection could be had to read the catalog (retryable).
    #[error("the write-back could not read the catalog: no database connection ({0})")]
    NoConnection(String),
    /// The tables do not hold what the contract names (permanent: migrate the database).
    #[error("the write-back contract does not match the database: {0}")]
    Contract(String),
}

/// Reads the schemas of every target from the catalog. A staff-owned field that the table does
/// not have, or whose type the write-back cannot take, is a permanent error naming it.
pub async fn load(client: &impl GenericClient) -> Result<Schemas, SchemaError> {
    let mut targets = Vec::with_capacity(TARGETS.len());
    for target in &TARGETS {
        targets.push(load_target(client, target).await?);
    }
    Ok(Schemas { targets })
}

async fn load_target(client: &impl GenericClient, target: &'static Target) -> Result<TargetSchema, SchemaError> {
    let columns = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
               FROM pg_attribute a
              WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
            &[&target.table],
        )
        .await
        .map_err(|e| DbError::new(format!("read the columns of {}", target.table), e))?;
    let checks = client
        .query(
            "SELECT c.conname::text, pg_get_constraintdef(c.oid),
                    ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(n, i)
                            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i)
               FROM pg_constraint c
              WHERE c.conrelid = $1::text::regclass AND c.contype = 'c'
              ORDER BY c.conname",
            &[&target.table],
        )
        .await
        .map_err(|e| DbError::new(format!("read the checks of {}", target.table), e))?;
    let mut schema = TargetSchema {
        target,
        columns: columns
            .iter()
            .map(|row| {
                let sql_type: String = row.get(1);
                FieldSchema {
                    name: row.get(0),
                    kind: Kind::of(&sql_type),
                    sql_type,
                    nullable: row.get(2),
                    allowed: None,
                    min_length: None,
                    max_length: None,
                    minimum: None,
                    maximum: None,
                }
            })
            .collect(),
        constraint_columns: BTreeMap::new(),
        completion: None,
    };
    for row in &checks {
        let (name, definition, on): (String, String, Vec<String>) = (row.get(0), row.get(1), row.get(2));
        if let [column] = on.as_slice() {
            if let Some(field) = schema.columns.iter_mut().find(|c| &c.name == column) {
                apply_check(field, &definition);
            }
        } else if on.iter().any(|c| c == "completed_at") {
            schema.completion = schema.completion.or_else(|| completion_status(&definition));
        }
        schema.constraint_columns.insert(name, on);
    }
    for field in target.fields {
        match schema.column(field) {
            Some(f) if f.kind != Kind::Other => {}
            Some(_) => {
                return Err(SchemaError::Contract(format!(
                    "{}.{field} has a type the write-back cannot take",
                    target.table
                )))
            }
            None => return Err(SchemaError::Contract(format!("{} has no column {field}", target.table))),
        }
    }
    Ok(schema)
}

/// Reads what a single-column check says about `field`.
fn apply_check(field: &mut FieldSchema, definition: &str) {
    let col = &field.name;
    if let Some(list) = after(definition, &format!("{col} = ANY (ARRAY[")) {
        let list = list.split(']').next().unwrap_or("");
        field.allowed = Some(list.split(", ").filter_map(quoted_literal).collect());
    }
    if let Some(n) = number_after(definition, &format!("length({col}) >= ")) {
        field.min_length = Some(n);
    }
    if let Some(n) = number_after(definition, &format!("length({col}) <= ")) {
        field.max_length = Some(n);
    }
    if let Some(n) = number_after(definition, &format!("({col} >= ")) {
        field.minimum = Some(n);
    }
    if let Some(n) = number_after(definition, &format!("({col} > ")) {
        field.minimum = Some(n.saturating_add(1));
    }
    if let Some(n) = number_after(definition, &format!("({col} <= ")) {
        field.maximum = Some(n);
    }
}

/// `'complete'` in `((status = 'complete'::text) = (completed_at IS NOT NULL))`.
fn completion_status(definition: &str) -> Option<String> {
    if !definition.contains("(completed_at IS NOT NULL)") {
        return None;
    }
    let rest = after(definition, "(status = ")?;
    quoted_literal(rest.split(')').next()?)
}

fn after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    text.find(marker).map(|at| &text[at + marker.len()..])
}

fn number_after(text: &str, marker: &str) -> Option<i64> {
    let rest = after(text, marker)?;
    let digits: String = rest
        .chars()
        .enumerate()
        .take_while(|(i, c)| c.is_ascii_digit() || (*i == 0 && *c == '-'))
        .map(|(_, c)| c)
        .collect();
    digits.parse().ok()
}

/// `'a''b'::text` → `a'b`.
fn quoted_literal(item: &str) -> Option<String> {
    let item = item.trim();
    let body = item.strip_prefix('\'')?;
    let end = body.rfind('\'')?;
    Some(body[..end].replace("''", "'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_field(name: &str) -> FieldSchema {
        FieldSchema {
            name: name.into(),
            sql_type: "text".into(),
            kind: Kind::Text,
            nullable: false,
            allowed: None,
            min_length: None,
            max_length: None,
            minimum: None,
            maximum: None,
        }
    }

    #[test]
    fn postgres_printed_checks_become_enums_and_bounds() {
        let mut status = text_field("status");
        apply_check(&mut status, "CHECK ((status = ANY (ARRAY['open'::text, 'it''s'::text, 'done'::text])))");
        assert_eq!(status.allowed, Some(vec!["open".into(), "it's".into(), "done".into()]));
        let mut title = text_field("title");
        apply_check(&mut title, "CHECK (((length(title) >= 1) AND (length(title) <= 500)))");
        assert_eq!((title.min_length, title.max_length), (Some(1), Some(500)));
        let mut units = text_field("units");
        apply_check(&mut units, "CHECK (((units IS NULL) OR (units >= 0)))");
        assert_eq!((units.minimum, units.maximum), (Some(0), None));
        let mut version = text_field("version");
        apply_check(&mut version, "CHECK ((version > 0))");
        assert_eq!(version.minimum, Some(1));
        assert_eq!(
            completion_status("CHECK (((status = 'complete'::text) = (completed_at IS NOT NULL)))"),
            Some("complete".into())
        );
    }
}
