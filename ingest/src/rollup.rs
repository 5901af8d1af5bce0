//! Ordering rows for a segment, and rollup: rows with equal (truncated) time and equal dimensions combined into
//! one, metrics merged by their aggregators.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, UInt32Array,
};
use arrow_ord::sort::{lexsort_to_indices, SortColumn};
use arrow_schema::DataType;
use basalt_segment::{Aggregator, ColumnRole, TableSchema};

use crate::{Error, Result};

fn arrow_err(e: arrow_schema::ArrowError) -> Error {
    Error::Spec(format!("internal: {e}"))
}

/// Sorts table rows: by time (stable, so equal times keep input order) or, for a rolled-up table, by time and
/// then every dimension so equal keys become adjacent.
pub fn sort_rows(batch: &RecordBatch, schema: &TableSchema) -> Result<RecordBatch> {
    let time = batch.column(0).as_primitive::<Int64Type>();
    let indices = if schema.is_rolled_up() {
        let mut keys = vec![SortColumn {
            values: batch.column(0).clone(),
            options: None,
        }];
        for def in schema
            .columns
            .iter()
            .filter(|c| c.role == ColumnRole::Dimension)
        {
            if let Some(col) = batch.column_by_name(&def.name) {
                keys.push(SortColumn {
                    values: col.clone(),
                    options: None,
                });
            }
        }
        lexsort_to_indices(&keys, None).map_err(arrow_err)?
    } else {
        if time.values().windows(2).all(|w| w[0] <= w[1]) {
            return Ok(batch.clone());
        }
        let mut idx: Vec<u32> = (0..batch.num_rows() as u32).collect();
        let values = time.values();
        idx.sort_by_key(|i| values[*i as usize]);
        UInt32Array::from(idx)
    };
    arrow_select::take::take_record_batch(batch, &indices).map_err(arrow_err)
}

/// Combines adjacent rows of a batch sorted by [`sort_rows`] whose time and dimensions are equal.
pub fn rollup(batch: &RecordBatch, schema: &TableSchema) -> Result<RecordBatch> {
    let n = batch.num_rows();
    if n < 2 {
        return Ok(batch.clone());
    }
    // A row starts a new group where the time or any dimension differs from the previous row.
    let mut starts_new = vec![false; n];
    starts_new[0] = true;
    let key_cols: Vec<&ArrayRef> = std::iter::once(batch.column(0))
        .chain(
            schema
                .columns
                .iter()
                .filter(|c| c.role == ColumnRole::Dimension)
                .filter_map(|c| batch.column_by_name(&c.name)),
        )
        .collect();
    for col in key_cols {
        let prev = col.slice(0, n - 1);
        let next = col.slice(1, n - 1);
        let differs: BooleanArray = arrow_ord::cmp::distinct(&prev, &next).map_err(arrow_err)?;
        for (i, d) in differs.values().iter().enumerate() {
            starts_new[i + 1] |= d;
        }
    }
    let starts: Vec<usize> = (0..n).filter(|i| starts_new[*i]).collect();
    if starts.len() == n {
        return Ok(batch.clone());
    }
    let firsts = UInt32Array::from(starts.iter().map(|s| *s as u32).collect::<Vec<_>>());
    let bounds: Vec<(usize, usize)> = starts
        .iter()
        .zip(starts.iter().skip(1).chain(std::iter::once(&n)))
        .map(|(s, e)| (*s, *e))
        .collect();
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
        let def = schema.column(field.name());
        let agg = def
            .filter(|d| d.role == ColumnRole::Metric)
            .and_then(|d| d.aggregator);
        columns.push(match agg {
            None => arrow_select::take::take(col.as_ref(), &firsts, None).map_err(arrow_err)?,
            Some(agg) => combine(col, &bounds, agg)?,
        });
    }
    RecordBatch::try_new(batch.schema(), columns).map_err(arrow_err)
}

fn combine(col: &ArrayRef, bounds: &[(usize, usize)], agg: Aggregator) -> Result<ArrayRef> {
    fn fold<T: Copy>(
        values: impl Fn(usize) -> Option<T>,
        bounds: &[(usize, usize)],
        f: impl Fn(T, T) -> T,
    ) -> Vec<Option<T>> {
        bounds
            .iter()
            .map(|(s, e)| (*s..*e).filter_map(&values).reduce(&f))
            .collect()
    }
    Ok(match col.data_type() {
        DataType::Int64 => {
            let a = col.as_primitive::<Int64Type>();
            let get = |i: usize| a.is_valid(i).then(|| a.value(i));
            let out = match agg {
                Aggregator::Sum | Aggregator::Count => fold(get, bounds, i64::wrapping_add),
                Aggregator::Min => fold(get, bounds, i64::min),
                Aggregator::Max => fold(get, bounds, i64::max),
            };
            Arc::new(Int64Array::from(out))
        }
        DataType::Float64 => {
            let a = col.as_primitive::<Float64Type>();
            let get = |i: usize| a.is_valid(i).then(|| a.value(i));
            let out = match agg {
                Aggregator::Sum | Aggregator::Count => fold(get, bounds, |x, y| x + y),
                Aggregator::Min => fold(get, bounds, f64::min),
                Aggregator::Max => fold(get, bounds, f64::max),
            };
            Arc::new(Float64Array::from(out))
        }
        other => {
            return Err(Error::Spec(format!(
                "metric of type {other} cannot be rolled up"
            )))
        }
    })
}
