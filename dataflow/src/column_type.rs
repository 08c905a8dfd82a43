//! Column types: what SQL type each column of a view holds, so the SQL endpoint (`august_sql`)
//! can describe a view as a typed table before it has a row. A named view declares them next
//! to its columns (text unless said otherwise); a pass-through view's columns are its table's,
//! read from the database's catalog ([`ColumnType::of_udt`]). A test holds every value the
//! views compute to the type its column declares ([`ColumnType::admits`]).

use august_cdc::Value;

/// The SQL type of a view column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// `text`: text, and every value August shows as text (uuids, JSON, lists, numerics).
    Text,
    /// `int8`: every integer.
    Int,
    /// `bool`.
    Bool,
    /// `date`.
    Date,
    /// `timestamp` (no zone).
    Timestamp,
    /// `timestamptz`.
    TimestampTz,
}

impl ColumnType {
    /// The type of a table column whose Postgres type is `udt` (`information_schema`'s
    /// `udt_name`), as the dataflow's values carry it.
    pub fn of_udt(udt: &str) -> ColumnType {
        match udt {
            "int2" | "int4" | "int8" | "oid" => ColumnType::Int,
            "bool" => ColumnType::Bool,
            "date" => ColumnType::Date,
            "timestamp" => ColumnType::Timestamp,
            "timestamptz" => ColumnType::TimestampTz,
            _ => ColumnType::Text,
        }
    }

    /// Whether `value` can be a value of a column of this type (NULL always can; a text
    /// column takes any value, as its text).
    pub fn admits(self, value: &Value) -> bool {
        matches!(
            (self, value),
            (_, Value::Null)
                | (ColumnType::Text, _)
                | (ColumnType::Int, Value::Int(_))
                | (ColumnType::Bool, Value::Bool(_))
                | (ColumnType::Date, Value::Date(_))
                | (ColumnType::Timestamp, Value::Timestamp(_))
                | (ColumnType::TimestampTz, Value::TimestampTz(_))
        )
    }

    /// Its SQL name.
    pub fn sql_name(self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::Int => "int8",
            ColumnType::Bool => "bool",
            ColumnType::Date => "date",
            ColumnType::Timestamp => "timestamp",
            ColumnType::TimestampTz => "timestamptz",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_column_admits_its_values_and_null_only() {
        assert!(ColumnType::Int.admits(&Value::Int(3)));
        assert!(ColumnType::Int.admits(&Value::Null));
        assert!(!ColumnType::Int.admits(&Value::Text("3".into())));
        assert!(ColumnType::Text.admits(&Value::Int(3)), "shown as its text");
        assert_eq!(ColumnType::of_udt("int4"), ColumnType::Int);
        assert_eq!(ColumnType::of_udt("jsonb"), ColumnType::Text);
    }
}
