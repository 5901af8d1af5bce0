//! Helpers shared by the query crate's integration tests: schemas and committed segments on disk.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use arrow_array::RecordBatch;
use basalt_segment::{
    Catalog, ColumnDef, ColumnRole, ColumnType, Commit, FileCatalog, Granularity, Interval,
    SegmentEntry, SegmentWriter, TableSchema, WriteOptions,
};

pub fn col(name: &str, ty: ColumnType, role: ColumnRole) -> ColumnDef {
    ColumnDef {
        name: name.into(),
        ty,
        role,
        aggregator: None,
    }
}

/// A day-segmented table without rollup whose time column is `ts`.
pub fn table(name: &str, columns: Vec<ColumnDef>) -> TableSchema {
    TableSchema {
        name: name.into(),
        time_column: "ts".into(),
        columns,
        segment_granularity: Granularity::Day,
        rollup: None,
    }
}

/// Writes `batch` as one segment of `schema`'s table over `interval` (blocks of `block_rows`) and commits it.
pub fn commit_segment(
    catalog: &FileCatalog,
    schema: &TableSchema,
    interval: Interval,
    batch: &RecordBatch,
    block_rows: usize,
) {
    let (id, path) = catalog.new_segment_path(&schema.name, interval).unwrap();
    let options = WriteOptions {
        block_rows,
        ..Default::default()
    };
    let bytes = SegmentWriter::new(options)
        .write(&path, schema, interval, batch)
        .unwrap();
    catalog
        .commit(Commit {
            tables: vec![schema.clone()],
            add: vec![SegmentEntry {
                id,
                table: schema.name.clone(),
                interval,
                num_rows: batch.num_rows() as u64,
                bytes,
                version: 0,
                crc32c: None,
            }],
            ..Default::default()
        })
        .unwrap();
}
