//! Tables as the stream describes them: names, columns and types, from pgoutput's `Relation`
//! messages or, for the snapshot, from the catalog. A relation can change mid-stream (a column
//! added or dropped); the latest description wins from the next change on.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::CdcError;

/// How a table's old rows are logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaIdentity {
    /// Primary key only.
    Default,
    /// Nothing.
    Nothing,
    /// The whole old row (what August's tables use).
    Full,
    /// The columns of a chosen unique index.
    Index,
}

impl ReplicaIdentity {
    /// From the one-letter code of `pg_class.relreplident` and pgoutput.
    pub fn from_code(code: u8) -> Self {
        match code {
            b'f' => ReplicaIdentity::Full,
            b'n' => ReplicaIdentity::Nothing,
            b'i' => ReplicaIdentity::Index,
            _ => ReplicaIdentity::Default,
        }
    }
}

/// One column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Type OID (see [`crate::value::oid`]).
    pub type_oid: u32,
    /// Type modifier (e.g. varchar length), -1 when none.
    pub type_modifier: i32,
    /// Whether the column is part of the table's identity key (its primary key).
    pub is_key: bool,
}

/// A published table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    /// The table's OID, as pgoutput names it.
    pub oid: u32,
    /// Schema (namespace).
    pub schema: String,
    /// Table name.
    pub name: String,
    /// How old rows are logged.
    pub replica_identity: ReplicaIdentity,
    /// Columns in table order.
    pub columns: Vec<Column>,
}

impl Relation {
    /// Index of the column called `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Indexes of the key columns.
    pub fn key_indexes(&self) -> impl Iterator<Item = usize> + '_ {
        self.columns.iter().enumerate().filter(|(_, c)| c.is_key).map(|(i, _)| i)
    }

    /// `schema.name`, quoted for SQL.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", quote(&self.schema), quote(&self.name))
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The tables of `publication` with their columns, as the catalog has them (in the caller's
/// snapshot, when it has set one). Key columns are those of the primary key.
pub async fn published_relations(client: &Client, publication: &str) -> Result<Vec<Arc<Relation>>, CdcError> {
    let rows = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text, c.relreplident::text,
                    coalesce(array_agg(a.attname::text ORDER BY a.attnum), '{}'),
                    coalesce(array_agg(a.atttypid ORDER BY a.attnum), '{}'),
                    coalesce(array_agg(a.atttypmod ORDER BY a.attnum), '{}'),
                    coalesce(array_agg(coalesce(a.attnum = ANY(i.indkey::int2[]), false) ORDER BY a.attnum), '{}')
               FROM pg_publication_tables pt
               JOIN pg_namespace n ON n.nspname = pt.schemaname
               JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
               LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
              WHERE pt.pubname = $1
              GROUP BY c.oid, n.nspname, c.relname, c.relreplident
              ORDER BY n.nspname, c.relname",
            &[&publication],
        )
        .await
        .map_err(|e| CdcError::db("read the published tables", e))?;
    rows.iter()
        .map(|row| {
            let names: Vec<String> = row.get(4);
            let types: Vec<u32> = row.get(5);
            let modifiers: Vec<i32> = row.get(6);
            let keys: Vec<bool> = row.get(7);
            let identity: String = row.get(3);
            let columns = names
                .into_iter()
                .zip(types)
                .zip(modifiers)
                .zip(keys)
                .map(|(((name, type_oid), type_modifier), is_key)| Column { name, type_oid, type_modifier, is_key })
                .collect();
            Ok(Arc::new(Relation {
                oid: row.get(0),
                schema: row.get(1),
                name: row.get(2),
                replica_identity: ReplicaIdentity::from_code(identity.as_bytes().first().copied().unwrap_or(b'd')),
                columns,
            }))
        })
        .collect()
}
