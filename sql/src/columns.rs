//! The tables the endpoint answers, as typed columns, and the dataflow's values as Arrow
//! arrays of those types: a view's rows become one `RecordBatch` for the SQL engine.
//!
//! A value that does not fit its column's declared type is an error naming the view and the
//! column ([`SqlError::Shape`]), never a panic and never the value.

use std::sync::Arc;

use august_cdc::Value;
use august_dataflow::{ColumnType, PhiClass};
use chrono::{NaiveDate, NaiveDateTime};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use crate::SqlError;

/// The SQL type of a column: a view's [`ColumnType`], or a float (system tables only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    /// A view column's type.
    Of(ColumnType),
    /// `float8`.
    Float,
}

/// One column of a table the endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: SqlType,
    /// Its PHI class (system tables: operational or identifier).
    pub class: PhiClass,
}

/// A table: a view, or a system table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    /// Its name.
    pub name: String,
    /// Its columns, in order.
    pub columns: Vec<Column>,
}

impl TableDef {
    /// Its Arrow schema (every column nullable).
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns.iter().map(|c| Field::new(&c.name, arrow_type(c.ty), true)).collect::<Vec<_>>(),
        ))
    }

    /// `rows` (values in column order) as one batch.
    pub fn batch<'r>(&self, rows: impl Iterator<Item = &'r [Value]> + Clone) -> Result<RecordBatch, SqlError> {
        let arrays = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, column)| {
                array(column.ty, rows.clone().map(|row| row.get(i).unwrap_or(&Value::Null)))
                    .map_err(|()| SqlError::Shape { table: self.name.clone(), column: column.name.clone() })
            })
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new(self.schema(), arrays).map_err(|e| SqlError::Engine(e.to_string()))
    }
}

/// The Arrow type of a column of type `ty`.
pub fn arrow_type(ty: SqlType) -> DataType {
    match ty {
        SqlType::Float => DataType::Float64,
        SqlType::Of(ColumnType::Text) => DataType::Utf8,
        SqlType::Of(ColumnType::Int) => DataType::Int64,
        SqlType::Of(ColumnType::Bool) => DataType::Boolean,
        SqlType::Of(ColumnType::Date) => DataType::Date32,
        SqlType::Of(ColumnType::Timestamp) => DataType::Timestamp(TimeUnit::Microsecond, None),
        SqlType::Of(ColumnType::TimestampTz) => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
    }
}

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");

fn micros(t: &NaiveDateTime) -> i64 {
    t.and_utc().timestamp_micros()
}

/// One column's values as an array of type `ty`; `Err` on a value the type does not admit.
fn array<'v>(ty: SqlType, values: impl Iterator<Item = &'v Value>) -> Result<ArrayRef, ()> {
    macro_rules! build {
        ($builder:expr, $($pattern:pat => $value:expr),+) => {{
            let mut b = $builder;
            for v in values {
                match v {
                    Value::Null => b.append_null(),
                    $($pattern => b.append_value($value),)+
                    #[allow(unreachable_patterns)]
                    _ => return Err(()),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match ty {
        SqlType::Of(ColumnType::Text) => build!(StringBuilder::new(), other => text_of(other)),
        SqlType::Of(ColumnType::Int) => build!(Int64Builder::new(), Value::Int(i) => *i),
        SqlType::Of(ColumnType::Bool) => build!(BooleanBuilder::new(), Value::Bool(b) => *b),
        SqlType::Of(ColumnType::Date) => {
            build!(Date32Builder::new(), Value::Date(d) => (*d - EPOCH).num_days() as i32)
        }
        SqlType::Of(ColumnType::Timestamp) => {
            build!(TimestampMicrosecondBuilder::new(), Value::Timestamp(t) => micros(t))
        }
        SqlType::Of(ColumnType::TimestampTz) => build!(
            TimestampMicrosecondBuilder::new().with_timezone("+00:00"),
            Value::TimestampTz(t) => t.timestamp_micros()
        ),
        SqlType::Float => build!(
            Float64Builder::new(),
            Value::Int(i) => *i as f64,
            Value::Numeric(n) => n.parse::<f64>().map_err(|_| ())?
        ),
    })
}

/// A value as a text column shows it: text as is, JSON and lists as JSON text, the rest as
/// their usual text.
pub fn text_of(value: &Value) -> String {
    match value {
        Value::Text(s) => s.clone(),
        Value::Json(_) | Value::Array(_) => value.exact_json(),
        other => match other.to_json() {
            serde_json::Value::String(s) => s,
            json => json.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(ty: SqlType) -> TableDef {
        TableDef { name: "t".into(), columns: vec![Column { name: "c".into(), ty, class: PhiClass::Operational }] }
    }

    #[test]
    fn values_become_arrays_of_their_column_type() {
        let rows = [vec![Value::Int(7)], vec![Value::Null]];
        let batch = def(SqlType::Of(ColumnType::Int)).batch(rows.iter().map(|r| r.as_slice())).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(0).null_count(), 1);
        let texts = [vec![Value::Array(vec![Value::Text("a".into())])], vec![Value::Int(3)]];
        let batch = def(SqlType::Of(ColumnType::Text)).batch(texts.iter().map(|r| r.as_slice())).unwrap();
        let col = batch.column(0).as_any().downcast_ref::<datafusion::arrow::array::StringArray>().unwrap();
        assert_eq!((col.value(0), col.value(1)), ("[\"a\"]", "3"));
    }

    #[test]
    fn a_value_of_another_type_is_an_error_naming_the_column_not_the_value() {
        let rows = [vec![Value::Text("Ada Lovelace".into())]];
        let err = def(SqlType::Of(ColumnType::Int)).batch(rows.iter().map(|r| r.as_slice())).unwrap_err();
        assert!(err.to_string().contains("t.c") && !err.to_string().contains("Ada"), "{err}");
    }
}
