//! A large segment is scanned as several shares of blocks in parallel; the answer and the counters must be those
//! of the same rows in a segment of one block, whatever the thread count.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use basalt_query::{run_sql, ExecOptions};
use basalt_segment::{
    Catalog, ColumnDef, ColumnRole, ColumnType, Commit, FileCatalog, Granularity, Interval,
    SegmentEntry, SegmentWriter, TableSchema, WriteOptions,
};

fn col(name: &str, ty: ColumnType, role: ColumnRole) -> ColumnDef {
    ColumnDef {
        name: name.into(),
        ty,
        role,
        aggregator: None,
    }
}

#[test]
fn a_split_segment_answers_like_a_whole_one() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = FileCatalog::open(dir.path(), "test").unwrap();
    let schema = TableSchema {
        name: "t".into(),
        time_column: "ts".into(),
        columns: vec![
            col("ts", ColumnType::Timestamp, ColumnRole::Time),
            col("k", ColumnType::String, ColumnRole::Dimension),
            col("n", ColumnType::Long, ColumnRole::Metric),
            col("x", ColumnType::Double, ColumnRole::Metric),
        ],
        segment_granularity: Granularity::Day,
        rollup: None,
    };
    let rows = 10_000i64;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(
            (0..rows).map(|i| i * 1000).collect::<Vec<_>>(),
        )),
        // Some NULL keys: a group of their own in every share, merged by code like the others.
        Arc::new(StringArray::from(
            (0..rows)
                .map(|i| (i % 17 != 0).then(|| format!("k{}", (i * 7919) % 13)))
                .collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(
            (0..rows).map(|i| i % 97).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            (0..rows).map(|i| (i % 11) as f64 * 0.5).collect::<Vec<_>>(),
        )),
    ];
    let batch = RecordBatch::try_new(Arc::new(schema.arrow_schema()), cols).unwrap();
    let interval = Interval::new(0, 86_400_000);
    // "t": ten blocks of 1,000 rows (three shares); "u": the same rows in one block.
    for (table, block_rows) in [("t", 1000), ("u", 100_000)] {
        let mut s = schema.clone();
        s.name = table.into();
        let (id, path) = catalog.new_segment_path(table, interval).unwrap();
        let options = WriteOptions {
            block_rows,
            ..Default::default()
        };
        let bytes = SegmentWriter::new(options)
            .write(&path, &s, interval, &batch)
            .unwrap();
        catalog
            .commit(Commit {
                tables: vec![s],
                add: vec![SegmentEntry {
                    id,
                    table: table.into(),
                    interval,
                    num_rows: rows as u64,
                    bytes,
                    version: 0,
                }],
                ..Default::default()
            })
            .unwrap();
    }
    for sql in [
        "SELECT k, COUNT(*), SUM(n), SUM(x), MIN(ts), MAX(n) FROM t GROUP BY k ORDER BY k",
        "SELECT COUNT(*), SUM(n) FROM t WHERE k IN ('k1', 'k5') AND n > 10",
        "SELECT ts, k, n FROM t WHERE n = 3 ORDER BY ts LIMIT 20",
        "SELECT k, PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY x), COUNT(DISTINCT n) FROM t GROUP BY 1 ORDER BY 1",
        // Shares see different subsets of the keys (and in different orders of first sight).
        "SELECT k, COUNT(*), SUM(x) FROM t WHERE n < 5 OR ts > '1970-01-01 02:30:00' GROUP BY k ORDER BY 2 DESC, 1",
    ] {
        let run = |sql: &str, threads: usize| {
            run_sql(
                &catalog,
                sql,
                &ExecOptions {
                    threads,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        let one = run(&sql.replace("FROM t", "FROM u"), 1);
        let four = run(sql, 4);
        assert_eq!(run(sql, 1).batch, four.batch, "{sql}");
        assert_eq!(one.batch, four.batch, "{sql}");
        assert_eq!(four.stats.segments_scanned, 1, "{sql}");
        assert_eq!(one.stats.rows_scanned, four.stats.rows_scanned, "{sql}");
        assert_eq!(one.stats.rows_from_index, four.stats.rows_from_index, "{sql}");
    }
}
