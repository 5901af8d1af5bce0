//! Parquet input through the `parquet` crate's Arrow reader, batch by batch.

use std::ops::ControlFlow;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{ByteCounter, Item};
use crate::record::{FieldValue, Record};
use crate::{Error, Result};

/// Column positions by name (looked up once per row and field: a fast hash).
type FieldIndex = hashbrown::HashMap<String, usize, foldhash::fast::FixedState>;

struct ParquetRow<'a> {
    batch: &'a RecordBatch,
    index: &'a FieldIndex,
    row: usize,
}

impl Record for ParquetRow<'_> {
    fn get(&self, name: &str) -> FieldValue<'_> {
        match self.index.get(name) {
            Some(i) => value(self.batch.column(*i).as_ref(), self.row),
            None => FieldValue::Missing,
        }
    }

    fn field_names(&self) -> Vec<String> {
        self.batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }
}

/// The value of row `i` of `a`.
pub fn value(a: &dyn Array, i: usize) -> FieldValue<'_> {
    if a.is_null(i) {
        return FieldValue::Null;
    }
    match a.data_type() {
        DataType::Utf8 => FieldValue::Str(a.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => FieldValue::Str(a.as_string::<i64>().value(i)),
        DataType::Utf8View => FieldValue::Str(a.as_string_view().value(i)),
        DataType::Boolean => FieldValue::Bool(a.as_boolean().value(i)),
        DataType::Int8 => FieldValue::Int(a.as_primitive::<Int8Type>().value(i) as i64),
        DataType::Int16 => FieldValue::Int(a.as_primitive::<Int16Type>().value(i) as i64),
        DataType::Int32 => FieldValue::Int(a.as_primitive::<Int32Type>().value(i) as i64),
        DataType::Int64 => FieldValue::Int(a.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => FieldValue::Int(a.as_primitive::<UInt8Type>().value(i) as i64),
        DataType::UInt16 => FieldValue::Int(a.as_primitive::<UInt16Type>().value(i) as i64),
        DataType::UInt32 => FieldValue::Int(a.as_primitive::<UInt32Type>().value(i) as i64),
        DataType::UInt64 => {
            let v = a.as_primitive::<UInt64Type>().value(i);
            i64::try_from(v).map_or(FieldValue::Float(v as f64), FieldValue::Int)
        }
        DataType::Float32 => FieldValue::Float(a.as_primitive::<Float32Type>().value(i) as f64),
        DataType::Float64 => FieldValue::Float(a.as_primitive::<Float64Type>().value(i)),
        DataType::Date32 => {
            FieldValue::Int(a.as_primitive::<Date32Type>().value(i) as i64 * 86_400_000)
        }
        DataType::Date64 => FieldValue::Int(a.as_primitive::<Date64Type>().value(i)),
        DataType::Timestamp(unit, _) => FieldValue::Int(match unit {
            TimeUnit::Second => a
                .as_primitive::<TimestampSecondType>()
                .value(i)
                .saturating_mul(1000),
            TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().value(i),
            TimeUnit::Microsecond => a
                .as_primitive::<TimestampMicrosecondType>()
                .value(i)
                .div_euclid(1000),
            TimeUnit::Nanosecond => a
                .as_primitive::<TimestampNanosecondType>()
                .value(i)
                .div_euclid(1_000_000),
        }),
        DataType::Dictionary(_, _) => {
            let d = a.as_any_dictionary();
            if d.values().is_empty() {
                return FieldValue::Null;
            }
            let key = d.normalized_keys()[i];
            value(d.values().as_ref(), key)
        }
        other => FieldValue::Unsupported(format!("a Parquet value of type {other}")),
    }
}

/// Reads `path` batch by batch, calling `f` with each batch and the 1-based row number of its first row.
pub(super) fn read_batches(
    path: &Path,
    counter: &ByteCounter,
    f: &mut dyn FnMut(u64, &RecordBatch) -> Result<ControlFlow<()>>,
) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let input_error = |reason: String| Error::Input {
        file: path.to_path_buf(),
        reason,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| input_error(format!("not a readable Parquet file: {e}")))?;
    let total_rows = builder.metadata().file_metadata().num_rows().max(1) as u64;
    let reader = builder
        .with_batch_size(8192)
        .build()
        .map_err(|e| input_error(e.to_string()))?;
    let mut line = 0u64;
    let mut reported = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| input_error(format!("row {}: {e}", line + 1)))?;
        if f(line + 1, &batch)?.is_break() {
            return Ok(());
        }
        line += batch.num_rows() as u64;
        let done = size * line / total_rows;
        counter.add((done - reported) as usize);
        reported = done;
    }
    Ok(())
}

/// Calls `f` with each row of `batch` in turn (numbered from `first_line`) until it breaks.
pub(super) fn each_row(
    batch: &RecordBatch,
    first_line: u64,
    f: &mut dyn FnMut(Item<'_>) -> Result<ControlFlow<()>>,
) -> Result<ControlFlow<()>> {
    let index: FieldIndex = batch
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(i, fl)| (fl.name().clone(), i))
        .collect();
    for row in 0..batch.num_rows() {
        let r = ParquetRow {
            batch,
            index: &index,
            row,
        };
        let line = first_line + row as u64;
        if f(Item { line, row: Ok(&r) })?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
}
