//! A large segment is scanned as several shares of blocks in parallel; the answer and the counters must be those
//! of the same rows in a segment of one block, whatever the thread count.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use basalt_query::{run_sql, ExecOptions};
use basalt_segment::{ColumnRole, ColumnType, FileCatalog, Interval};
use common::col;

#[test]
fn a_split_segment_answers_like_a_whole_one() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = FileCatalog::open(dir.path(), "test").unwrap();
    let schema = common::table(
        "t",
        vec![
            col("ts", ColumnType::Timestamp, ColumnRole::Time),
            col("k", ColumnType::String, ColumnRole::Dimension),
            col("n", ColumnType::Long, ColumnRole::Metric),
            col("x", ColumnType::Double, ColumnRole::Metric),
        ],
    );
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
        common::commit_segment(&catalog, &s, interval, &batch, block_rows);
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
        if sql.contains("ORDER BY ts LIMIT") {
            // Blocks past the 20th time found are skipped: only in the segment split into blocks.
            assert!(four.stats.rows_scanned < one.stats.rows_scanned, "{sql}");
        } else {
            assert_eq!(one.stats.rows_scanned, four.stats.rows_scanned, "{sql}");
        }
        assert_eq!(one.stats.rows_from_index, four.stats.rows_from_index, "{sql}");
    }
}

/// Segments with different dictionaries (overlapping key sets, NULL keys, enough groups for the merge to split
/// the key space over threads): the merged groups are exactly those counted by hand from the input rows.
#[test]
fn groups_of_one_string_key_merge_across_segments_with_different_dictionaries() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = FileCatalog::open(dir.path(), "test").unwrap();
    let schema = common::table(
        "t",
        vec![
            col("ts", ColumnType::Timestamp, ColumnRole::Time),
            col("k", ColumnType::String, ColumnRole::Dimension),
            col("n", ColumnType::Long, ColumnRole::Metric),
        ],
    );
    let day = 86_400_000i64;
    let mut expected: std::collections::BTreeMap<Option<String>, (i64, i64)> = Default::default();
    // COUNT(DISTINCT k) by n and by segment (day), counted by hand.
    let mut distinct_by_n: std::collections::BTreeMap<i64, std::collections::BTreeSet<String>> =
        Default::default();
    let mut distinct_by_day: Vec<std::collections::BTreeSet<String>> = vec![Default::default(); 3];
    for seg in 0..3i64 {
        let rows = 30_000i64;
        let keys: Vec<Option<String>> = (0..rows)
            .map(|i| (i % 101 != 0).then(|| format!("key-{:06}", (i * 7 + seg * 11_000) % 40_000)))
            .collect();
        let n: Vec<i64> = (0..rows).map(|i| i % 5 + seg).collect();
        for (k, v) in keys.iter().zip(&n) {
            let e = expected.entry(k.clone()).or_default();
            e.0 += 1;
            e.1 += v;
            if let Some(k) = k {
                distinct_by_n.entry(*v).or_default().insert(k.clone());
                distinct_by_day[seg as usize].insert(k.clone());
            }
        }
        let batch = RecordBatch::try_new(
            Arc::new(schema.arrow_schema()),
            vec![
                Arc::new(Int64Array::from(
                    (0..rows).map(|i| seg * day + i).collect::<Vec<_>>(),
                )) as ArrayRef,
                Arc::new(StringArray::from(keys)),
                Arc::new(Int64Array::from(n)),
            ],
        )
        .unwrap();
        let interval = Interval::new(seg * day, (seg + 1) * day);
        common::commit_segment(&catalog, &schema, interval, &batch, 4096);
    }
    assert!(
        expected.len() > 32_768,
        "enough groups to merge on several threads"
    );
    let sql = "SELECT k, COUNT(*), SUM(n) FROM t GROUP BY k ORDER BY k NULLS FIRST";
    for threads in [1, 4] {
        let r = run_sql(
            &catalog,
            sql,
            &ExecOptions {
                threads,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r.stats.segments_scanned, 3);
        let b = &r.batch;
        let k = arrow_array::cast::AsArray::as_string::<i32>(b.column(0));
        let c =
            arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(b.column(1));
        let s =
            arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(b.column(2));
        let got: Vec<(Option<String>, (i64, i64))> = (0..b.num_rows())
            .map(|i| {
                let key = arrow_array::Array::is_valid(k, i).then(|| k.value(i).to_string());
                (key, (c.value(i), s.value(i)))
            })
            .collect();
        let want: Vec<(Option<String>, (i64, i64))> = expected.clone().into_iter().collect();
        assert_eq!(got.len(), want.len(), "threads {threads}");
        assert_eq!(got, want, "threads {threads}");
        let ints = |sql: &str| -> Vec<Vec<i64>> {
            let b = run_sql(
                &catalog,
                sql,
                &ExecOptions {
                    threads,
                    ..Default::default()
                },
            )
            .unwrap()
            .batch;
            (0..b.num_rows())
                .map(|r| {
                    (0..b.num_columns())
                        .map(|c| {
                            let a = arrow_cast::cast(b.column(c), &arrow_schema::DataType::Int64).unwrap();
                            arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(&a)
                                .value(r)
                        })
                        .collect()
                })
                .collect()
        };
        // Groups seen in one segment count codes; groups over several segments merge sorted runs of codes
        // (one per dictionary); the total hashes values.
        let all: std::collections::BTreeSet<&String> = distinct_by_day.iter().flatten().collect();
        assert_eq!(
            ints("SELECT COUNT(DISTINCT k) FROM t"),
            vec![vec![all.len() as i64]]
        );
        let by_n: Vec<Vec<i64>> = distinct_by_n
            .iter()
            .map(|(n, s)| vec![*n, s.len() as i64])
            .collect();
        assert_eq!(
            ints("SELECT n, COUNT(DISTINCT k) FROM t GROUP BY n ORDER BY n"),
            by_n
        );
        let by_day: Vec<Vec<i64>> = distinct_by_day
            .iter()
            .enumerate()
            .map(|(d, s)| vec![d as i64 * day, s.len() as i64])
            .collect();
        assert_eq!(
            ints(
                "SELECT DATE_TRUNC('day', ts) AS d, COUNT(DISTINCT k) FROM t GROUP BY 1 ORDER BY 1"
            ),
            by_day
        );
    }
}
