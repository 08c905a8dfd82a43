//! Arrow ↔ the wire: a query's result batches as Postgres rows (text or binary, per column,
//! as the client asked), its schema as a row description, and a bound statement's parameters
//! as DataFusion values.
//!
//! Result columns are first cast to one of a few wire types (text, int2/4/8, float4/8, bool,
//! date, timestamp, timestamptz); any other Arrow type (a list from a catalog query, say) is
//! sent as its text.

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Schema, TimeUnit,
    TimestampMicrosecondType,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::ScalarValue;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::results::{DataRowEncoder, FieldInfo};
use pgwire::api::Type;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");

/// The wire type an Arrow type is sent as, and the Arrow type it is cast to first (`None`:
/// sent as its text).
fn wire_type(dt: &DataType) -> (Type, Option<DataType>) {
    use DataType as D;
    match dt {
        D::Boolean => (Type::BOOL, Some(D::Boolean)),
        D::Int8 | D::Int16 | D::UInt8 => (Type::INT2, Some(D::Int16)),
        D::Int32 | D::UInt16 => (Type::INT4, Some(D::Int32)),
        D::Int64 | D::UInt32 | D::UInt64 => (Type::INT8, Some(D::Int64)),
        D::Float16 | D::Float32 => (Type::FLOAT4, Some(D::Float32)),
        D::Float64 | D::Decimal128(..) | D::Decimal256(..) => (Type::FLOAT8, Some(D::Float64)),
        D::Utf8 | D::LargeUtf8 | D::Utf8View | D::Null => (Type::TEXT, Some(D::Utf8)),
        D::Dictionary(_, value) if value.is_string() => (Type::TEXT, Some(D::Utf8)),
        D::Date32 | D::Date64 => (Type::DATE, Some(D::Date32)),
        D::Timestamp(_, None) => (Type::TIMESTAMP, Some(D::Timestamp(TimeUnit::Microsecond, None))),
        D::Timestamp(_, Some(_)) => {
            (Type::TIMESTAMPTZ, Some(D::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))))
        }
        _ => (Type::TEXT, None),
    }
}

/// The row description of `schema`, each column in the format `format` gives it.
pub fn fields(schema: &Schema, format: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| FieldInfo::new(f.name().clone(), None, None, wire_type(f.data_type()).0, format.format_for(i)))
        .collect()
}

/// The pg type DataFusion's inferred type of a parameter is described as.
pub fn param_type(dt: Option<&DataType>) -> Type {
    dt.map_or(Type::TEXT, |dt| wire_type(dt).0)
}

fn engine(e: impl std::fmt::Display) -> PgWireError {
    PgWireError::ApiError(e.to_string().into())
}

/// A column cast to its wire type.
fn wire_column(column: &ArrayRef) -> PgWireResult<ArrayRef> {
    match wire_type(column.data_type()).1 {
        Some(dt) if &dt == column.data_type() => Ok(column.clone()),
        Some(dt) => cast(column, &dt).map_err(engine),
        None => {
            let formatter = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default()).map_err(engine)?;
            let mut b = StringBuilder::new();
            for i in 0..column.len() {
                if column.is_null(i) {
                    b.append_null();
                } else {
                    b.append_value(formatter.value(i).to_string());
                }
            }
            Ok(Arc::new(b.finish()))
        }
    }
}

/// Every row of `batches`, encoded for `fields`.
pub fn rows(batches: &[RecordBatch], fields: Arc<Vec<FieldInfo>>) -> PgWireResult<Vec<DataRow>> {
    let mut encoder = DataRowEncoder::new(fields);
    let mut out = Vec::with_capacity(batches.iter().map(|b| b.num_rows()).sum());
    for batch in batches {
        let columns = batch.columns().iter().map(wire_column).collect::<PgWireResult<Vec<_>>>()?;
        for row in 0..batch.num_rows() {
            for column in &columns {
                encode(&mut encoder, column, row)?;
            }
            out.push(encoder.take_row());
        }
    }
    Ok(out)
}

fn encode(encoder: &mut DataRowEncoder, column: &ArrayRef, row: usize) -> PgWireResult<()> {
    let null = column.is_null(row);
    macro_rules! put {
        ($value:expr) => {
            encoder.encode_field(&(!null).then(|| $value))
        };
    }
    match column.data_type() {
        DataType::Boolean => put!(column.as_boolean().value(row)),
        DataType::Int16 => put!(column.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => put!(column.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => put!(column.as_primitive::<Int64Type>().value(row)),
        DataType::Float32 => put!(column.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => put!(column.as_primitive::<Float64Type>().value(row)),
        DataType::Date32 => {
            put!(EPOCH + chrono::Duration::days(i64::from(column.as_primitive::<Date32Type>().value(row))))
        }
        DataType::Timestamp(_, tz) => {
            let micros = column.as_primitive::<TimestampMicrosecondType>().value(row);
            let at = DateTime::from_timestamp_micros(micros).unwrap_or_default();
            match tz {
                None => put!(at.naive_utc()),
                Some(_) => put!(at),
            }
        }
        _ => put!(column.as_string::<i32>().value(row).to_string()),
    }
}

/// The parameters of `portal` as values, each decoded as the type the client declared for it
/// (else `declared[i]`, what the server described) and then cast to the type the plan
/// inferred (`inferred[i]`, when it did).
pub fn params<S>(portal: &Portal<S>, declared: &[Type], inferred: &[Option<DataType>]) -> PgWireResult<Vec<ScalarValue>>
where
    S: Clone,
{
    (0..portal.parameter_len())
        .map(|i| {
            let client = portal.statement.parameter_types.get(i).cloned().flatten().filter(|t| *t != Type::UNKNOWN);
            let ty = client.or_else(|| declared.get(i).cloned()).unwrap_or(Type::TEXT);
            let value = match ty {
                Type::BOOL => ScalarValue::Boolean(portal.parameter::<bool>(i, &ty)?),
                Type::INT2 => ScalarValue::Int16(portal.parameter::<i16>(i, &ty)?),
                Type::INT4 => ScalarValue::Int32(portal.parameter::<i32>(i, &ty)?),
                Type::INT8 => ScalarValue::Int64(portal.parameter::<i64>(i, &ty)?),
                Type::FLOAT4 => ScalarValue::Float32(portal.parameter::<f32>(i, &ty)?),
                Type::FLOAT8 => ScalarValue::Float64(portal.parameter::<f64>(i, &ty)?),
                Type::DATE => {
                    ScalarValue::Date32(portal.parameter::<NaiveDate>(i, &ty)?.map(|d| (d - EPOCH).num_days() as i32))
                }
                Type::TIMESTAMP => ScalarValue::TimestampMicrosecond(
                    portal.parameter::<NaiveDateTime>(i, &ty)?.map(|t| t.and_utc().timestamp_micros()),
                    None,
                ),
                Type::TIMESTAMPTZ => ScalarValue::TimestampMicrosecond(
                    portal.parameter::<DateTime<FixedOffset>>(i, &ty)?.map(|t| t.timestamp_micros()),
                    Some("+00:00".into()),
                ),
                _ => ScalarValue::Utf8(portal.parameter::<String>(i, &Type::TEXT)?),
            };
            match inferred.get(i).cloned().flatten() {
                Some(dt) if dt != value.data_type() => value.cast_to(&dt).map_err(|e| {
                    PgWireError::UserError(Box::new(pgwire::error::ErrorInfo::new(
                        "ERROR".into(),
                        "22P02".into(),
                        format!("parameter ${}: {e}", i + 1),
                    )))
                }),
                _ => Ok(value),
            }
        })
        .collect()
}
