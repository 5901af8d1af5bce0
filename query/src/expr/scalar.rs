//! Constant values ([`Scalar`]) and the conversions between them and Arrow arrays: one value of an array, an
//! array built from values, and the order of values of one type.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{
    new_null_array, Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray,
    TimestampMillisecondArray,
};
use arrow_schema::DataType;

use super::TS;
use crate::error::{QueryError, Result};

/// A constant value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// Epoch milliseconds.
    Timestamp(i64),
}

impl Scalar {
    pub fn data_type(&self) -> DataType {
        match self {
            Scalar::Null => DataType::Null,
            Scalar::Bool(_) => DataType::Boolean,
            Scalar::Int(_) => DataType::Int64,
            Scalar::Float(_) => DataType::Float64,
            Scalar::Str(_) => DataType::Utf8,
            Scalar::Timestamp(_) => TS,
        }
    }

    /// An array of `len` copies.
    pub fn to_array(&self, len: usize) -> ArrayRef {
        match self {
            Scalar::Null => new_null_array(&DataType::Null, len),
            Scalar::Bool(b) => Arc::new(BooleanArray::from(vec![*b; len])),
            Scalar::Int(i) => Arc::new(Int64Array::from_value(*i, len)),
            Scalar::Float(f) => Arc::new(Float64Array::from_value(*f, len)),
            Scalar::Str(s) => Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                s.as_str(),
                len,
            ))),
            Scalar::Timestamp(t) => Arc::new(TimestampMillisecondArray::from_value(*t, len)),
        }
    }
}

/// The value at row `r` (not null) as a scalar.
pub fn scalar_at(a: &ArrayRef, r: usize) -> Result<Scalar> {
    if a.is_null(r) {
        return Ok(Scalar::Null);
    }
    Ok(match a.data_type() {
        DataType::Int64 => Scalar::Int(a.as_primitive::<Int64Type>().value(r)),
        DataType::Float64 => Scalar::Float(a.as_primitive::<Float64Type>().value(r)),
        DataType::Utf8 => Scalar::Str(a.as_string::<i32>().value(r).to_string()),
        DataType::Boolean => Scalar::Bool(a.as_boolean().value(r)),
        DataType::Timestamp(_, _) => {
            Scalar::Timestamp(a.as_primitive::<TimestampMillisecondType>().value(r))
        }
        DataType::Dictionary(_, _) => {
            let d = a.as_any_dictionary();
            if d.values().is_empty() {
                return Ok(Scalar::Null);
            }
            let k = d.normalized_keys()[r];
            scalar_at(d.values(), k)?
        }
        DataType::Null => Scalar::Null,
        other => {
            return Err(QueryError::Execution(format!(
                "unsupported value type {other}"
            )))
        }
    })
}

/// Orders two values of an ORDER BY key: descending or not, NULLs first or last.
pub(crate) fn compare_sort_key(
    a: &Scalar,
    b: &Scalar,
    desc: bool,
    nulls_first: bool,
) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Scalar::Null, Scalar::Null) => Ordering::Equal,
        (Scalar::Null, _) if nulls_first => Ordering::Less,
        (Scalar::Null, _) => Ordering::Greater,
        (_, Scalar::Null) if nulls_first => Ordering::Greater,
        (_, Scalar::Null) => Ordering::Less,
        (x, y) if desc => compare_scalars(x, y).reverse(),
        (x, y) => compare_scalars(x, y),
    }
}

/// Orders scalars of one type; NULL last.
pub fn compare_scalars(a: &Scalar, b: &Scalar) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Scalar::Null, Scalar::Null) => Ordering::Equal,
        (Scalar::Null, _) => Ordering::Greater,
        (_, Scalar::Null) => Ordering::Less,
        (Scalar::Int(x), Scalar::Int(y)) | (Scalar::Timestamp(x), Scalar::Timestamp(y)) => x.cmp(y),
        (Scalar::Float(x), Scalar::Float(y)) => x.total_cmp(y),
        (Scalar::Str(x), Scalar::Str(y)) => x.cmp(y),
        (Scalar::Bool(x), Scalar::Bool(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// Builds an array of type `ty` from scalars.
pub fn scalars_to_array(values: impl Iterator<Item = Scalar>, ty: &DataType) -> Result<ArrayRef> {
    let values: Vec<Scalar> = values.collect();
    Ok(match ty {
        DataType::Int64 => Arc::new(Int64Array::from(
            values
                .iter()
                .map(|v| match v {
                    Scalar::Int(i) => Some(*i),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )),
        DataType::Float64 => Arc::new(Float64Array::from(
            values
                .iter()
                .map(|v| match v {
                    Scalar::Float(f) => Some(*f),
                    Scalar::Int(i) => Some(*i as f64),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )),
        DataType::Utf8 => Arc::new(StringArray::from(
            values
                .iter()
                .map(|v| match v {
                    Scalar::Str(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )),
        DataType::Boolean => Arc::new(BooleanArray::from(
            values
                .iter()
                .map(|v| match v {
                    Scalar::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )),
        t if *t == TS => Arc::new(TimestampMillisecondArray::from(
            values
                .iter()
                .map(|v| match v {
                    Scalar::Timestamp(t) => Some(*t),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        )),
        DataType::Null => new_null_array(&DataType::Null, values.len()),
        other => {
            return Err(QueryError::Execution(format!(
                "cannot build a column of type {other}"
            )))
        }
    })
}

/// An array element as PostgreSQL quotes it: bare unless empty, `NULL`, or holding `{},"\` or white space.
fn element(v: &Option<String>) -> String {
    match v {
        None => "NULL".into(),
        Some(s) => {
            let plain = !s.is_empty()
                && !s.eq_ignore_ascii_case("null")
                && !s
                    .chars()
                    .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_whitespace());
            if plain {
                s.clone()
            } else {
                let escaped = s.replace('\\', "\\\\").replace('"', "\\\"");
                format!("\"{escaped}\"")
            }
        }
    }
}

/// Elements as the text of a PostgreSQL array: `{a,"b c",NULL}`.
pub fn pg_array_text(items: &[Option<String>]) -> String {
    let parts: Vec<String> = items.iter().map(element).collect();
    format!("{{{}}}", parts.join(","))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn arrays_are_written_as_postgresql_writes_them() {
        let items = [
            Some("abc".to_string()),
            Some("a b".into()),
            Some(String::new()),
            Some("x\"y".into()),
            Some("NULL".into()),
            None,
        ];
        assert_eq!(
            pg_array_text(&items),
            r#"{abc,"a b","","x\"y","NULL",NULL}"#
        );
        assert_eq!(pg_array_text(&[]), "{}");
    }
}
