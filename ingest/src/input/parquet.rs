//! Parquet input through the `parquet` crate's Arrow reader, batch by batch.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, RecordBatch};
use arrow_buffer::ArrowNativeType;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};

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
        DataType::Dictionary(k, _) => {
            let d = a.as_any_dictionary();
            let key = match **k {
                DataType::Int8 => a.as_dictionary::<Int8Type>().keys().value(i).as_usize(),
                DataType::Int16 => a.as_dictionary::<Int16Type>().keys().value(i).as_usize(),
                DataType::Int32 => a.as_dictionary::<Int32Type>().keys().value(i).as_usize(),
                DataType::Int64 => a.as_dictionary::<Int64Type>().keys().value(i).as_usize(),
                DataType::UInt8 => a.as_dictionary::<UInt8Type>().keys().value(i).as_usize(),
                DataType::UInt16 => a.as_dictionary::<UInt16Type>().keys().value(i).as_usize(),
                DataType::UInt32 => a.as_dictionary::<UInt32Type>().keys().value(i).as_usize(),
                _ => a.as_dictionary::<UInt64Type>().keys().value(i).as_usize(),
            };
            if key >= d.values().len() {
                return FieldValue::Null;
            }
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
    let unreadable =
        |e: parquet::errors::ParquetError| input_error(format!("not a readable Parquet file: {e}"));
    // Strings are read as Arrow dictionaries: a dictionary-encoded column chunk's values then come once, with
    // keys per row, and a load interns each value once instead of each row's copy (see `crate::intern`).
    let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(unreadable)?;
    let hint: Vec<Field> = meta
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Dictionary(
                Box::new(DataType::Int32),
                Box::new(DataType::Utf8),
            )),
            _ => f.as_ref().clone(),
        })
        .collect();
    let options = ArrowReaderOptions::new().with_schema(Arc::new(Schema::new_with_metadata(
        hint,
        meta.schema().metadata().clone(),
    )));
    let meta =
        ArrowReaderMetadata::try_new(meta.metadata().clone(), options).map_err(unreadable)?;
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta);
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
