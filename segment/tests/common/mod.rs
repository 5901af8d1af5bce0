//! Helpers shared by the segment crate's integration tests.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

pub mod postgres;

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use basalt_segment::{ColumnDef, ColumnRole, ColumnType, Granularity, TableSchema};

pub fn schema() -> TableSchema {
    TableSchema {
        name: "t".into(),
        time_column: "ts".into(),
        columns: vec![
            ColumnDef {
                name: "ts".into(),
                ty: ColumnType::Timestamp,
                role: ColumnRole::Time,
                aggregator: None,
            },
            ColumnDef {
                name: "s".into(),
                ty: ColumnType::String,
                role: ColumnRole::Dimension,
                aggregator: None,
            },
            ColumnDef {
                name: "l".into(),
                ty: ColumnType::Long,
                role: ColumnRole::Dimension,
                aggregator: None,
            },
            ColumnDef {
                name: "d".into(),
                ty: ColumnType::Double,
                role: ColumnRole::Metric,
                aggregator: None,
            },
        ],
        segment_granularity: Granularity::Day,
        rollup: None,
    }
}

pub type Rows = (
    Vec<i64>,
    Vec<Option<String>>,
    Vec<Option<i64>>,
    Vec<Option<f64>>,
);

pub fn batch(rows: &Rows) -> RecordBatch {
    let (ts, s, l, d) = rows;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ts.clone())),
        Arc::new(StringArray::from(s.clone())),
        Arc::new(Int64Array::from(l.clone())),
        Arc::new(Float64Array::from(d.clone())),
    ];
    RecordBatch::try_new(Arc::new(schema().arrow_schema()), cols).unwrap()
}

/// A fixed sample with nulls, empty strings, extremes and pre-1970 times.
pub fn sample_rows(n: usize) -> Rows {
    let ts: Vec<i64> = (0..n as i64).map(|i| -86_400_000 + i * 1000).collect();
    let s = (0..n)
        .map(|i| {
            if i % 7 == 3 {
                None
            } else {
                Some(["", "a", "b", "ü", "zz"][i % 5].to_string())
            }
        })
        .collect();
    let l = (0..n)
        .map(|i| match i % 6 {
            0 => None,
            1 => Some(i64::MIN),
            2 => Some(i64::MAX),
            _ => Some(i as i64 - 10),
        })
        .collect();
    let d = (0..n)
        .map(|i| match i % 5 {
            0 => None,
            1 => Some(-0.0),
            2 => Some(f64::INFINITY),
            _ => Some(i as f64 / 3.0),
        })
        .collect();
    (ts, s, l, d)
}
