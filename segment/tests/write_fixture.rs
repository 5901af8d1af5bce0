//! Writes `tests/data/format_v{N}.bslt` with the build's own format version N (run with
//! `BASALT_WRITE_FIXTURE=1`, once, by the build that introduced version N; see `tests/compat.rs`).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use basalt_segment::{
    ColumnDef, ColumnRole, ColumnType, Granularity, Interval, SegmentWriter, TableSchema,
    WriteOptions,
};

pub const ROWS: usize = 65_536;
pub const START: i64 = 1_600_000_000_000;

fn col(name: &str, ty: ColumnType, role: ColumnRole) -> ColumnDef {
    ColumnDef {
        name: name.into(),
        ty,
        role,
        aggregator: None,
    }
}

pub fn schema() -> TableSchema {
    TableSchema {
        name: "t".into(),
        time_column: "ts".into(),
        columns: vec![
            col("ts", ColumnType::Timestamp, ColumnRole::Time),
            col("s", ColumnType::String, ColumnRole::Dimension),
            col("u", ColumnType::String, ColumnRole::Dimension),
            col("l", ColumnType::Long, ColumnRole::Dimension),
            col("d", ColumnType::Double, ColumnRole::Metric),
        ],
        segment_granularity: Granularity::Day,
        rollup: None,
    }
}

/// Row `i`: 64 rows a second from START; `s` cycles five values (NULL where i % 7 == 3); `u` is near-unique
/// (seven rows per value: no bitmap index from version 2 on); `l` and `d` with NULLs, extremes in the first rows,
/// then short cycles (so the committed files stay small).
pub fn batch() -> RecordBatch {
    let n = ROWS as i64;
    let ts: Vec<i64> = (0..n).map(|i| START + (i / 64) * 1000).collect();
    let s: Vec<Option<String>> = (0..ROWS)
        .map(|i| (i % 7 != 3).then(|| ["", "a", "b", "ü", "zz"][i % 5].to_string()))
        .collect();
    let u: Vec<String> = (0..ROWS).map(|i| format!("u{:04}", i / 7)).collect();
    let l: Vec<Option<i64>> = (0..n)
        .map(|i| match (i, i % 6) {
            (_, 0) => None,
            (1, _) => Some(i64::MIN),
            (2, _) => Some(i64::MAX),
            _ => Some(i % 1000 - 10),
        })
        .collect();
    let d: Vec<Option<f64>> = (0..n)
        .map(|i| match (i, i % 5) {
            (_, 0) => None,
            (1, _) => Some(-0.0),
            (2, _) => Some(f64::INFINITY),
            _ => Some((i % 100) as f64 / 4.0),
        })
        .collect();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ts)),
        Arc::new(StringArray::from(s)),
        Arc::new(StringArray::from(u)),
        Arc::new(Int64Array::from(l)),
        Arc::new(Float64Array::from(d)),
    ];
    RecordBatch::try_new(Arc::new(schema().arrow_schema()), cols).unwrap()
}

#[test]
fn write_fixture() {
    if std::env::var("BASALT_WRITE_FIXTURE").is_err() {
        return;
    }
    let bytes = SegmentWriter::new(WriteOptions {
        block_rows: 16_384,
        ..Default::default()
    })
    .encode(
        &schema(),
        Interval::new(START, START + 86_400_000),
        &batch(),
    )
    .unwrap();
    let version = basalt_segment::format::FORMAT_VERSION;
    let path = format!(
        "{}/tests/data/format_v{version}.bslt",
        env!("CARGO_MANIFEST_DIR")
    );
    // A committed fixture is never rewritten (a later build would write its own version's layout into it).
    assert!(
        !std::path::Path::new(&path).exists(),
        "{path} exists: fixtures are written once, by the build that introduced their version"
    );
    std::fs::write(&path, bytes).unwrap();
    eprintln!("wrote {path}");
}
